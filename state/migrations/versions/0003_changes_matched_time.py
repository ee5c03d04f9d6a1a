"""changes: index (matched, detected_at) replaces (matched), so the matched changes come newest
first from the index instead of a sort of every matched change

Revision ID: 0003
Revises: 0002
"""
from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_changes_matched_time", "changes", ["matched", "detected_at"], unique=False)
    op.drop_index("ix_changes_matched", table_name="changes")


def downgrade() -> None:
    op.create_index("ix_changes_matched", "changes", ["matched"], unique=False)
    op.drop_index("ix_changes_matched_time", table_name="changes")
