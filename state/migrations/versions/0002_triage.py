"""triage: the analyst audit trail (triage_actions) and current review state (triage_states)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel  # the tables' string and UTC datetime types, as in 0001


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triage_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["change_id"], ["changes.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_triage_actions_change_time", "triage_actions", ["change_id", "created_at"], unique=False)
    op.create_table(
        "triage_states",
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["change_id"], ["changes.id"]),
        sa.PrimaryKeyConstraint("change_id"),
    )
    op.create_index("ix_triage_states_state", "triage_states", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_triage_states_state", table_name="triage_states")
    op.drop_table("triage_states")
    op.drop_index("ix_triage_actions_change_time", table_name="triage_actions")
    op.drop_table("triage_actions")
