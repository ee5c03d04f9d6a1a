"""deliveries: unique per (change, target, kind) instead of (change, target), so a change can have
one `update` delivery beside its first alert (a new item's full text that adds a topic)

Revision ID: 0004
Revises: 0003
"""
from alembic import op


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_change_target", type_="unique")
        batch_op.create_unique_constraint("uq_deliveries_change_target_kind", ["change_id", "target", "kind"])


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE kind = 'update'")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint("uq_deliveries_change_target_kind", type_="unique")
        batch_op.create_unique_constraint("uq_deliveries_change_target", ["change_id", "target"])
