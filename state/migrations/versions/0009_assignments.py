"""assignments (state/triage.py): the analyst a change is assigned to; each assignment is also an
event of the change's audit trail (triage_actions).

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel  # the tables' UTC datetime type, as in 0001


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("assignee", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("assigned_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("assigned_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["change_id"], ["changes.id"]),
        sa.PrimaryKeyConstraint("change_id"),
    )
    op.create_index("ix_assignments_assignee", "assignments", ["assignee"])


def downgrade() -> None:
    op.drop_index("ix_assignments_assignee", table_name="assignments")
    op.drop_table("assignments")
