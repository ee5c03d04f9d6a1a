"""Analyst triage of the change log: an append-only audit trail of actions (who, when, note) and
the current review state of each change, written together in one transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, select
from sqlmodel import Field, Session, SQLModel

from state.errors import StateError
from state.models import ChangeRecord, utcnow
from state.store import chunks, one_of

# The review states an analyst can set; "unreviewed" is the absence of a state row.
ACTIONS = ("reviewed", "significant", "not_relevant")
ACTION_LABELS = {"reviewed": "Reviewed", "significant": "Significant", "not_relevant": "Not relevant",
                 "delivery_retried": "Alert queued again", "assigned": "Assigned", "unassigned": "Unassigned"}
# Events in the same audit trail that are not a review state (the change's state stays as it was).
EVENTS = ("delivery_retried", "assigned", "unassigned")
MAX_NOTE_CHARS = 4000


class TriageActionRecord(SQLModel, table=True):
    """One analyst action on one change; never updated or deleted (the audit trail)."""

    __tablename__ = "triage_actions"
    __table_args__ = (Index("ix_triage_actions_change_time", "change_id", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="changes.id")
    action: str  # one of ACTIONS
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    actor: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class TriageStateRecord(SQLModel, table=True):
    """The latest action per change, kept so the change log can filter by review state cheaply."""

    __tablename__ = "triage_states"
    change_id: int = Field(foreign_key="changes.id", primary_key=True)
    state: str = Field(index=True)
    actor: str = ""
    updated_at: datetime = Field(default_factory=utcnow)
    action_id: int | None = None


class AssignmentRecord(SQLModel, table=True):
    """Who a change is assigned to (one analyst at a time); every assignment is also in the trail."""

    __tablename__ = "assignments"
    change_id: int = Field(foreign_key="changes.id", primary_key=True)
    assignee: str = Field(index=True)
    assigned_by: str = ""
    assigned_at: datetime = Field(default_factory=utcnow)


def record_action(session: Session, change_id: int, action: str, actor: str, note: str = "",
                  at: datetime | None = None) -> TriageActionRecord:
    """Append an action to the audit trail and make it the change's state (same transaction)."""
    if action not in ACTIONS:
        raise StateError(f"unknown triage action {action!r}; known: {', '.join(ACTIONS)}")
    if session.get(ChangeRecord, change_id) is None:
        raise StateError(f"no change with id {change_id}")
    at = at or utcnow()
    rec = TriageActionRecord(change_id=change_id, action=action, note=note[:MAX_NOTE_CHARS], actor=actor[:200],
                             created_at=at)
    session.add(rec)
    session.flush()
    state = session.get(TriageStateRecord, change_id)
    if state is None:
        state = TriageStateRecord(change_id=change_id, state=action)
        session.add(state)
    state.state, state.actor, state.updated_at, state.action_id = action, rec.actor, at, rec.id
    session.flush()
    return rec


def record_event(session: Session, change_id: int, event: str, actor: str, note: str = "",
                 at: datetime | None = None) -> TriageActionRecord:
    """Append an event (e.g. an alert delivery queued again) to a change's audit trail; unlike an
    action it does not change the review state."""
    if event not in EVENTS:
        raise StateError(f"unknown audit event {event!r}; known: {', '.join(EVENTS)}")
    rec = TriageActionRecord(change_id=change_id, action=event, note=note[:MAX_NOTE_CHARS], actor=actor[:200],
                             created_at=at or utcnow())
    session.add(rec)
    session.flush()
    return rec


def actions_of(session: Session, change_id: int) -> list[TriageActionRecord]:
    """The audit trail of one change, oldest first."""
    q = (select(TriageActionRecord).where(TriageActionRecord.change_id == change_id)
         .order_by(TriageActionRecord.created_at, TriageActionRecord.id))
    return list(session.scalars(q))


def states_of(session: Session, change_ids: list[int]) -> dict[int, TriageStateRecord]:
    if not change_ids:
        return {}
    return {r.change_id: r for part in chunks(change_ids)  # bounded statements for a large export
            for r in session.scalars(select(TriageStateRecord).where(one_of(session, TriageStateRecord.change_id, part)))}


def not_relevant_actions(session: Session) -> list[tuple[TriageActionRecord, ChangeRecord]]:
    """Every change whose current state is "not relevant", with the action that set it, newest first."""
    q = (select(TriageActionRecord, ChangeRecord)
         .join(TriageStateRecord, TriageStateRecord.action_id == TriageActionRecord.id)
         .join(ChangeRecord, ChangeRecord.id == TriageActionRecord.change_id)
         .where(TriageStateRecord.state == "not_relevant")
         .order_by(TriageActionRecord.created_at.desc(), TriageActionRecord.id.desc()))
    return [(a, c) for a, c in session.execute(q).all()]


def assign(session: Session, change_id: int, assignee: str, actor: str, at: datetime | None = None) -> None:
    """Assign the change to `assignee` ("" takes the assignment away), in the audit trail."""
    if session.get(ChangeRecord, change_id) is None:
        raise StateError(f"no change with id {change_id}")
    at = at or utcnow()
    rec = session.get(AssignmentRecord, change_id)
    if not assignee:
        if rec is not None:
            record_event(session, change_id, "unassigned", actor, note=f"was assigned to {rec.assignee}", at=at)
            session.delete(rec)
        return
    if rec is not None and rec.assignee == assignee:
        return
    record_event(session, change_id, "assigned", actor, note=f"to {assignee}", at=at)
    if rec is None:
        session.add(AssignmentRecord(change_id=change_id, assignee=assignee, assigned_by=actor[:200], assigned_at=at))
    else:
        rec.assignee, rec.assigned_by, rec.assigned_at = assignee, actor[:200], at
    session.flush()


def assignees_of(session: Session, change_ids: list[int]) -> dict[int, str]:
    if not change_ids:
        return {}
    return {cid: who for part in chunks(change_ids)
            for cid, who in session.execute(select(AssignmentRecord.change_id, AssignmentRecord.assignee)
                                            .where(one_of(session, AssignmentRecord.change_id, part)))}

