"""snapshots.extraction: which extraction read the stored text (monitor/documents.extraction_key),
so a new version's previous text is read again from the old raw body only when today's extraction
differs from the one that stored it (an upgrade, an edited `select` or `ignore`, other OCR settings).
Snapshots stored before have '' (unknown): their old body is read again, as before.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite has it): a batch copy of `snapshots` would drop a table that others reference
    op.add_column("snapshots", sa.Column("extraction", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("snapshots", "extraction")
