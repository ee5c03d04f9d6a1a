"""Sources made in the web UI ("watches") and the audit trail of what admins do to sources: add,
edit, remove a watch, pause and resume any source, ask for a check now."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, select
from sqlmodel import Field, SQLModel

from state.models import utcnow

ADMIN_ACTIONS = ("watch_added", "watch_removed", "paused", "resumed", "check_requested")


class WatchRecord(SQLModel, table=True):
    """A source added in the web UI: its entry as the configuration file would hold it (YAML keys)."""

    __tablename__ = "watches"
    source_id: str = Field(primary_key=True)
    spec_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    removed_at: datetime | None = None


class AdminActionRecord(SQLModel, table=True):
    """One admin action on a source; never updated or deleted (the audit trail)."""

    __tablename__ = "admin_actions"
    __table_args__ = (Index("ix_admin_actions_source_time", "source_id", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    source_id: str = ""
    action: str = ""  # one of ADMIN_ACTIONS
    actor: str = ""
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)


def audit(session, source_id: str, action: str, actor: str, detail: str = "") -> None:
    if action not in ADMIN_ACTIONS:
        raise ValueError(f"unknown admin action {action!r}")
    session.add(AdminActionRecord(source_id=source_id, action=action, actor=actor[:200], detail=detail[:2000]))


def trail_of(session, source_id: str) -> list[AdminActionRecord]:
    return list(session.scalars(select(AdminActionRecord).where(AdminActionRecord.source_id == source_id)
                                .order_by(AdminActionRecord.created_at, AdminActionRecord.id)))


def live_watches(session) -> list[WatchRecord]:
    return list(session.scalars(select(WatchRecord).where(WatchRecord.removed_at.is_(None)).order_by(WatchRecord.created_at)))
