"""subscriptions and subscription_matches (state/subscriptions.py): saved searches that alert at
once or as daily or weekly digests; a digest's unsent matches, each listed in exactly one digest.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel  # the tables' UTC datetime type, as in 0001


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("origin", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("every", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("topics", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("sources", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("min_severity", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("targets_json", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        sa.Column("next_digest_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_digest_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "subscription_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["change_id"], ["changes.id"]),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "change_id", name="uq_subscription_matches"),
    )
    op.create_index("ix_subscription_matches_pending", "subscription_matches", ["subscription_id", "digest_id"])


def downgrade() -> None:
    op.drop_index("ix_subscription_matches_pending", table_name="subscription_matches")
    op.drop_table("subscription_matches")
    op.drop_table("subscriptions")
