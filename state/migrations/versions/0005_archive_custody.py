"""evidence: the chain of custody (custody_log, every stored snapshot so far appended in id order),
RFC 3161 time-stamps of its daily head (custody_timestamps) and the queue of web archive captures
per change (archive_captures)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel  # the tables' string and UTC datetime types, as in 0001


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custody_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("fetched_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("body_sha256", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("entry_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_custody_log_snapshot_id", "custody_log", ["snapshot_id"], unique=False)
    op.create_index("ix_custody_log_entry_hash", "custody_log", ["entry_hash"], unique=True)
    op.create_table(
        "archive_captures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("service", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("job_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("archive_url", sa.Text(), nullable=False),
        sa.Column("captured_at", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("next_try_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["change_id"], ["changes.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("change_id", "service", name="uq_archive_change_service"),
    )
    op.create_index("ix_archive_captures_change_id", "archive_captures", ["change_id"], unique=False)
    op.create_index("ix_archive_status_next", "archive_captures", ["status", "next_try_at"], unique=False)
    op.create_table(
        "custody_timestamps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("entry_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("tsa_url", sa.Text(), nullable=False),
        sa.Column("gen_time", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_custody_timestamps_day", "custody_timestamps", ["day"], unique=False)
    _backfill()


def _backfill() -> None:
    """The snapshots stored before the log existed enter it now, in id order: the chain proves
    they were not changed after this migration (not before it)."""
    from datetime import datetime, timezone

    from state.custody import GENESIS, entry_hash, iso_micro

    conn = op.get_bind()
    snaps = sa.table("snapshots", sa.column("id", sa.Integer()), sa.column("url", sa.Text()),
                     sa.column("fetched_at", sqlmodel.sql.sqltypes.UTCDateTime()), sa.column("body_sha256", sa.String()))
    log = sa.table("custody_log", *(sa.column(c) for c in ("seq", "snapshot_id", "url", "fetched_at", "body_sha256",
                                                           "prev_hash", "entry_hash", "recorded_at")))
    now = datetime.now(timezone.utc)
    prev, seq, batch = GENESIS, 0, []
    for sid, url, fetched, sha in conn.execute(sa.select(snaps.c.id, snaps.c.url, snaps.c.fetched_at, snaps.c.body_sha256)
                                               .order_by(snaps.c.id)):
        seq += 1
        at = iso_micro(fetched)
        h = entry_hash(seq, prev, sid, url or "", at, sha or "")
        batch.append({"seq": seq, "snapshot_id": sid, "url": url or "", "fetched_at": at, "body_sha256": sha or "",
                      "prev_hash": prev, "entry_hash": h, "recorded_at": now})
        prev = h
        if len(batch) >= 1000:
            conn.execute(log.insert(), batch)
            batch = []
    if batch:
        conn.execute(log.insert(), batch)


def downgrade() -> None:
    op.drop_index("ix_custody_timestamps_day", table_name="custody_timestamps")
    op.drop_table("custody_timestamps")
    op.drop_index("ix_archive_status_next", table_name="archive_captures")
    op.drop_index("ix_archive_captures_change_id", table_name="archive_captures")
    op.drop_table("archive_captures")
    op.drop_index("ix_custody_log_entry_hash", table_name="custody_log")
    op.drop_index("ix_custody_log_snapshot_id", table_name="custody_log")
    op.drop_table("custody_log")
