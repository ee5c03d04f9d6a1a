"""Full-text search of the change log (state/search.py): on SQLite an FTS5 table over `changes`
kept in step by triggers, on PostgreSQL a generated tsvector column with a GIN index; the changes
already recorded are indexed by the upgrade.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

from state import search

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _run(statements: list[str]) -> None:
    for sql in statements:
        op.execute(sql)


def upgrade() -> None:
    _run(search.postgres_ddl() if op.get_bind().dialect.name == "postgresql" else search.sqlite_ddl())


def downgrade() -> None:
    _run(search.postgres_drop_ddl() if op.get_bind().dialect.name == "postgresql" else search.sqlite_drop_ddl())
