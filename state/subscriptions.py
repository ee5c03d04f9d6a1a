"""Subscriptions: saved searches that alert, at once or as a daily or weekly digest.

A subscription is a name, a query (state/search.py's syntax) with optional topic, source and
severity filters, a cadence and Apprise targets. Operators define them in the configuration (synced
here by name, origin "config"); analysts make their own in the web UI (origin "web", owned).

How nothing is sent twice and nothing skipped, across restarts and crashes:
- A change is matched against every subscription when it is recorded, in the transaction that
  records it (so the search index already holds it). An instant subscription gets one outbox row
  per target in that transaction; a digest subscription gets a `subscription_matches` row.
- Sending a digest takes the subscription's unsent matches, writes the digest's outbox rows, marks
  those matches with the digest and moves the subscription's cursor (the highest change id sent)
  and its next due time, all in one transaction; the outbox then delivers it like any alert (at
  least once, with the X-Govwatch-Delivery key a webhook receiver uses to drop a repeat). A match
  belongs to exactly one digest. (A bare "id > cursor" would skip changes on PostgreSQL, where
  workers commit ids out of order; the cursor is kept to show how far a subscription has got.)
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Index, Text, UniqueConstraint, select
from sqlmodel import Field, SQLModel

from state.errors import StateError
from state.models import utcnow

CADENCES = ("instant", "daily", "weekly")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SEVERITIES = ("low", "medium", "high")
TARGET_PREFIX = "sub:"  # outbox target names of subscriptions: sub:<subscription name>:<target>
DEFAULT_AT = "08:00"


class SubscriptionRecord(SQLModel, table=True):
    __tablename__ = "subscriptions"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    origin: str = "web"  # config | web
    owner: str = ""  # the analyst who made it in the web UI
    query: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    every: str = "instant"  # instant | daily@HH:MM | weekly@<day> HH:MM
    timezone: str = "UTC"
    topics: str = ""  # comma-separated; "" = any
    sources: str = ""  # comma-separated; "" = any
    min_severity: str = ""  # "" = any change, matched or not
    targets_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))  # web: Apprise URLs (secrets)
    enabled: bool = True
    cursor: int = 0  # the highest change id sent (or queued) to this subscription
    next_digest_at: datetime | None = None
    last_digest_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class SubscriptionMatchRecord(SQLModel, table=True):
    """A change a digest subscription will list: unsent while digest_id is None."""

    __tablename__ = "subscription_matches"
    __table_args__ = (UniqueConstraint("subscription_id", "change_id", name="uq_subscription_matches"),
                      Index("ix_subscription_matches_pending", "subscription_id", "digest_id"))
    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(foreign_key="subscriptions.id")
    change_id: int = Field(foreign_key="changes.id")
    created_at: datetime = Field(default_factory=utcnow)
    digest_id: int | None = None  # the first outbox row of the digest that listed it


# -- cadence ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cadence:
    kind: str  # instant | daily | weekly
    hour: int = 8
    minute: int = 0
    weekday: int = 0  # Monday

    def __str__(self) -> str:
        if self.kind == "instant":
            return "instant"
        at = f"{self.hour:02d}:{self.minute:02d}"
        return f"daily@{at}" if self.kind == "daily" else f"weekly@{WEEKDAYS[self.weekday]} {at}"

    def next_after(self, after: datetime, tz: str) -> datetime | None:
        """The first due time strictly after `after` (UTC), in the time zone's wall clock."""
        if self.kind == "instant":
            return None
        zone = ZoneInfo(tz)
        local = after.astimezone(zone)
        day = local.replace(hour=self.hour, minute=self.minute, second=0, microsecond=0)
        for k in range(0, 9):
            cand = (day + timedelta(days=k)).replace(tzinfo=zone)
            if cand.astimezone(timezone.utc) <= after:
                continue
            if self.kind == "weekly" and cand.weekday() != self.weekday:
                continue
            return cand.astimezone(timezone.utc)
        raise AssertionError("no due time within 9 days")  # pragma: no cover


_CADENCE = re.compile(r"(instant|daily|weekly)(?:@(?:([a-z]+)\s*)?(?:(\d{1,2}):(\d{2}))?)?$")


def parse_cadence(text: str) -> Cadence:
    """instant | daily[@HH:MM] | weekly[@<day>][ HH:MM] (08:00 and Monday unless said)."""
    m = _CADENCE.match((text or "").strip().lower())
    if not m:
        raise StateError(f"'{text}' is not a cadence: instant, daily@08:00 or weekly@monday 08:00")
    kind, day, hh, mm = m.groups()
    if kind == "instant" and (day or hh):
        raise StateError("an instant subscription has no time")
    if day and kind != "weekly":
        raise StateError(f"'{text}': only a weekly digest names a day")
    weekday = 0
    if day:
        names = [w for w in WEEKDAYS if w.startswith(day)] if len(day) >= 3 else []
        if len(names) != 1:
            raise StateError(f"'{day}' is not a day of the week (monday ... sunday)")
        weekday = WEEKDAYS.index(names[0])
    hour, minute = (int(hh), int(mm)) if hh else (8, 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise StateError(f"'{hh}:{mm}' is not a time of day")
    return Cadence(kind, hour, minute, weekday)


def check_timezone(tz: str) -> str:
    from zoneinfo import ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise StateError(f"'{tz}' is not a time zone name (e.g. America/New_York, UTC)") from None
    return tz


def targets_of(rec: SubscriptionRecord) -> list[str]:
    try:
        urls = json.loads(rec.targets_json or "[]")
    except ValueError:
        return []
    return [u for u in urls if isinstance(u, str)]


def target_name(subscription_id: int, key: str | int) -> str:
    """The outbox's name of a subscription's target: by the subscription's id, so a rename or a
    delete never strands or misroutes a queued row."""
    return f"{TARGET_PREFIX}{subscription_id}:{key}"


def subscription_of_target(session, target: str) -> str:
    """The subscription's name for an outbox target name ("" for a target of `notify`)."""
    if not target.startswith(TARGET_PREFIX):
        return ""
    sid = target[len(TARGET_PREFIX):].split(":", 1)[0]
    rec = session.get(SubscriptionRecord, int(sid)) if sid.isdigit() else None
    return rec.name if rec is not None else "subscription"


def enabled(session) -> list[SubscriptionRecord]:
    return list(session.scalars(select(SubscriptionRecord).where(SubscriptionRecord.enabled.is_(True))
                                .order_by(SubscriptionRecord.id)))


# -- quiet hours of a notify target ----------------------------------------------------------------
_QUIET = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def parse_quiet_hours(text: str) -> tuple[int, int]:
    """"22:00-07:00" -> (start, end) in minutes of the day; the span may cross midnight."""
    m = _QUIET.match((text or "").strip())
    if not m:
        raise StateError(f"'{text}' is not quiet hours such as 22:00-07:00")
    h1, m1, h2, m2 = map(int, m.groups())
    if not (h1 <= 23 and h2 <= 23 and m1 <= 59 and m2 <= 59) or (h1, m1) == (h2, m2):
        raise StateError(f"'{text}' is not quiet hours such as 22:00-07:00")
    return h1 * 60 + m1, h2 * 60 + m2


def quiet_now(text: str, tz: str, now: datetime) -> bool:
    """Whether `now` falls in the quiet hours (in the time zone's wall clock)."""
    start, end = parse_quiet_hours(text)
    local = now.astimezone(ZoneInfo(tz))
    minute = local.hour * 60 + local.minute
    return start <= minute < end if start < end else (minute >= start or minute < end)
