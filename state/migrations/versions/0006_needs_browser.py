"""sources.needs_browser: a page or listing with `render: auto` that met a JavaScript wall over plain
HTTP is rendered through the browser from then on (shown by `govwatch sources`);
snapshots.screenshot_sha256 and raw_sha256: the full-page PNG and the server's own HTML of a rendered
version (blobs, deduplicated by hash; body_sha256 is the rendered DOM);
items.doc_checked_at: a listed document fetched again to see whether it was replaced at its URL

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel  # the tables' UTC datetime type, as in 0001


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite has it): a batch copy of `sources` would drop a table that others reference
    op.add_column("sources", sa.Column("needs_browser", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("snapshots", sa.Column("screenshot_sha256", sa.String(), nullable=False, server_default=""))
    op.add_column("snapshots", sa.Column("raw_sha256", sa.String(), nullable=False, server_default=""))
    op.add_column("items", sa.Column("doc_checked_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("items", "doc_checked_at")
    op.drop_column("snapshots", "raw_sha256")
    op.drop_column("snapshots", "screenshot_sha256")  # SQLite 3.35+ drops a column in place
    op.drop_column("sources", "needs_browser")
