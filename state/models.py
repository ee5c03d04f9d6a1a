"""SQLModel tables: sources, fetch attempts, content-addressed blobs, snapshots, items, changes,
topic matches and the alert outbox. The schema is versioned by Alembic (state/migrations)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from state import blobs


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(dt: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime: SQLite hands back naive UTC ones (None stays None)."""
    return dt if dt is None or dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class SourceRecord(SQLModel, table=True):
    """A watched source and its health; the configuration is the truth, this row is its state."""

    __tablename__ = "sources"
    id: str = Field(primary_key=True)
    name: str = ""
    url: str = ""
    kind: str = ""
    agency: str = ""
    enabled: bool = True
    disabled_reason: str = ""
    every_seconds: int = 21600
    created_at: datetime = Field(default_factory=utcnow)
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    last_change_at: datetime | None = None
    last_new_item_at: datetime | None = None
    next_due_at: datetime | None = Field(default=None, index=True)
    consecutive_failures: int = 0
    consecutive_blocks: int = 0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    last_status: int | None = None
    etag: str = ""
    last_modified: str = ""
    last_snapshot_id: int | None = None
    health: str = "unknown"  # unknown | ok | failing | blocked | empty | silent
    health_alerted: str = ""  # the health problem last alerted, so a recovery can be announced
    lease_owner: str = ""
    lease_until: datetime | None = None
    needs_browser: bool = False  # render: auto met a JavaScript wall: the page is rendered from now on
    paused: bool = False  # paused in the web UI: not checked until resumed (migration 0011)


class FetchAttemptRecord(SQLModel, table=True):
    """One fetch of one URL: when, how long, what came back, and why it failed."""

    __tablename__ = "fetch_attempts"
    __table_args__ = (Index("ix_fetch_attempts_source_time", "source_id", "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="sources.id")
    url: str = ""
    started_at: datetime = Field(default_factory=utcnow)
    duration_ms: int = 0
    status: int | None = None
    outcome: str = ""  # changed | unchanged | not_modified | baseline | error | blocked | removed
    bytes: int = 0
    etag: str = ""
    last_modified: str = ""
    content_type: str = ""
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class BlobRecord(SQLModel, table=True):
    """Raw bodies and extracted texts, stored once per SHA-256 of the uncompressed bytes."""

    __tablename__ = "blobs"
    sha256: str = Field(primary_key=True)
    size: int = 0
    codec: str = blobs.CODEC
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class SnapshotRecord(SQLModel, table=True):
    """One distinct version of a source (or of a followed document) as fetched."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_source_time", "source_id", "fetched_at"),)
    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="sources.id")
    url: str = ""
    item_key: str = ""  # empty for the source's own page; the item key for a followed document
    fetched_at: datetime = Field(default_factory=utcnow)
    status: int | None = None
    content_type: str = ""
    headers_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    body_sha256: str = ""
    text_sha256: str = ""
    text_chars: int = 0
    title: str = ""
    note: str = ""  # e.g. "PDF without a text layer"
    screenshot_sha256: str = ""  # a page rendered by the browser: its full-page PNG (a blob)
    raw_sha256: str = ""  # ... and the HTML its server sent (a blob); body_sha256 is then the rendered DOM
    item_keys_json: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # listing/feed order
    extraction: str = ""  # which extraction read `text_sha256` (monitor/documents.extraction_key); "" unknown


class ItemRecord(SQLModel, table=True):
    """An entry of a feed, listing or API source, keyed by id/link."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("source_id", "key", name="uq_items_source_key"),)
    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="sources.id", index=True)
    key: str
    url: str = ""
    title: str = ""
    published: str = ""
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    first_seen_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    removed_at: datetime | None = None
    snapshot_id: int | None = None
    extra_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # provenance
    doc_url: str = ""  # the document to fetch for full text ("" = none)
    # "" (nothing to fetch) | pending (a new item's document, alerted) | fetched | failed |
    # backfill (listed at the baseline: archived, never alerted) | archived
    doc_status: str = ""
    doc_attempts: int = 0
    doc_error: str = ""
    doc_checked_at: datetime | None = None  # the document last fetched again (its bytes compared: replaced?)


class ChangeRecord(SQLModel, table=True):
    """The change log: one row per detected change, matched by a topic or not."""

    __tablename__ = "changes"
    # (matched, detected_at): the matched changes newest first (web filters, Atom feeds,
    # `changes --matched`) are read in order from the index instead of sorted (migration 0003).
    __table_args__ = (Index("ix_changes_source_time", "source_id", "detected_at"),
                      Index("ix_changes_matched_time", "matched", "detected_at"))
    id: int | None = Field(default=None, primary_key=True)
    source_id: str = Field(foreign_key="sources.id")
    url: str = ""
    detected_at: datetime = Field(default_factory=utcnow, index=True)
    kind: str = ""  # new | changed | removed | new_item
    title: str = ""
    item_key: str = ""
    item_published: str = ""
    prev_snapshot_id: int | None = None
    new_snapshot_id: int | None = None
    added_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    removed_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    diff_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    topics: str = ""  # comma-separated topic ids matched (denormalised for filtering)
    severity: str = ""  # highest severity of the matches, "" when none
    matched: bool = False
    note: str = ""  # e.g. "document could not be fetched: HTTP 403; classified on title and summary"
    meta_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # provenance of a new document


class TopicMatchRecord(SQLModel, table=True):
    """Why a change was flagged: topic, score, severity and the evidence (JSON)."""

    __tablename__ = "topic_matches"
    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="changes.id", index=True)
    topic: str = Field(index=True)
    score: float = 0.0
    severity: str = ""
    evidence_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))


class DeliveryRecord(SQLModel, table=True):
    """The alert outbox: one row per (change, target, kind), written with the change; never sent twice.
    A change's first alert is kind `change`; `update` is its one follow-up when a new item's full
    text, come later, adds a topic or raises the severity (migration 0004)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("change_id", "target", "kind", name="uq_deliveries_change_target_kind"),
        Index("ix_deliveries_status_next", "status", "next_try_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    change_id: int | None = Field(default=None, foreign_key="changes.id")
    kind: str = "change"  # change | update | health | subscription (an instant saved search) | digest
    target: str  # the target's name (or "target-N"), never its URL
    status: str = "pending"  # pending | sending | sent | retrying | failed
    attempts: int = 0
    next_try_at: datetime = Field(default_factory=utcnow)
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    title: str = ""  # health alerts carry their own text
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    claimed_by: str = ""
    claimed_until: datetime | None = None




class WorkerRecord(SQLModel, table=True):
    """A `govwatch run` process: its heartbeat, for `govwatch health` and lease take-over."""

    __tablename__ = "workers"
    id: str = Field(primary_key=True)  # host:pid
    started_at: datetime = Field(default_factory=utcnow)
    last_cycle_at: datetime | None = None
    last_beat_at: datetime = Field(default_factory=utcnow)
    cycles: int = 0
    tick_seconds: float = 30.0
    stopped_at: datetime | None = None


ALL_TABLES = [SourceRecord, FetchAttemptRecord, BlobRecord, SnapshotRecord, ItemRecord, ChangeRecord,
              TopicMatchRecord, DeliveryRecord, WorkerRecord]
