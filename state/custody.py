"""The chain of custody and the archive queue: every stored capture appended to a hash-linked log in
the snapshot's own transaction, the check of that log and of every stored blob against its hash
(knowing which bytes retention deleted on purpose: prune_runs, pruned_blobs, written by
state/retention.py), and the durable queue of captures asked of an outside web archive (Save Page
Now) per change."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint, func, insert, select
from sqlmodel import Field, Session, SQLModel

from state import blobs
from state.store import chunks, one_of
from state.models import BlobRecord, SnapshotRecord, utcnow

GENESIS = "0" * 64  # the previous hash of the first entry
FORMAT = "govwatch-custody-1"
_PG_LOCK = 7366022  # one appender at a time on PostgreSQL (SQLite serialises writers itself)


class CustodyRecord(SQLModel, table=True):
    """One stored capture in the hash-linked log; never updated or deleted. The fields that are
    hashed are kept here as text, so the hash can be recomputed by anyone, offline."""

    __tablename__ = "custody_log"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})  # 1, 2, 3 ... no gaps
    snapshot_id: int = Field(index=True)
    url: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    fetched_at: str = ""  # ISO 8601 UTC with microseconds, exactly as hashed
    body_sha256: str = ""
    prev_hash: str = ""
    entry_hash: str = Field(default="", unique=True, index=True)
    recorded_at: datetime = Field(default_factory=utcnow)

    def as_dict(self) -> dict:
        return {"seq": self.seq, "snapshot_id": self.snapshot_id, "url": self.url, "fetched_at": self.fetched_at,
                "body_sha256": self.body_sha256, "prev_hash": self.prev_hash, "entry_hash": self.entry_hash}


class ArchiveRecord(SQLModel, table=True):
    """A capture of a change's URL asked of an outside web archive: queued with the change, worked
    after delivery (never before it), retried with backoff; `archive_url` once the capture exists."""

    __tablename__ = "archive_captures"
    __table_args__ = (UniqueConstraint("change_id", "service", name="uq_archive_change_service"),
                      Index("ix_archive_status_next", "status", "next_try_at"))
    id: int | None = Field(default=None, primary_key=True)
    change_id: int = Field(foreign_key="changes.id", index=True)
    service: str = "wayback"
    url: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # the page asked for
    status: str = "pending"  # pending | submitted (a job to poll) | success | failed
    job_id: str = ""
    archive_url: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    captured_at: str = ""  # the archive's capture time, ISO 8601 UTC
    attempts: int = 0  # submissions that failed (a 429 is not a failure: it is a wait)
    polls: int = 0
    last_status: int | None = None  # HTTP status of the archive's last answer
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    next_try_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class CustodyStampRecord(SQLModel, table=True):
    """An RFC 3161 time-stamp token over the chain's head of one UTC day: a time stamping
    authority's signed word that the entry (and so every entry before it) existed at `gen_time`."""

    __tablename__ = "custody_timestamps"
    id: int | None = Field(default=None, primary_key=True)
    day: str = Field(index=True)  # YYYY-MM-DD, UTC
    seq: int = 0
    entry_hash: str = ""  # the message stamped is this hex string, as ASCII
    tsa_url: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    gen_time: str = ""  # the authority's time, as it says it
    token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # the DER TimeStampToken (CMS SignedData)
    created_at: datetime = Field(default_factory=utcnow)


# Retention's record (written by state/retention.py, read by verify_store): the chain's entries are
# bound to their captures and never rewritten, so what `govwatch prune` deleted is kept here instead.
class PruneRunRecord(SQLModel, table=True):
    """One `govwatch prune` that changed something: when, by whom, the cutoff, the chain of custody's
    head when it ran, and what it freed (counted as each batch commits)."""

    __tablename__ = "prune_runs"
    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    cutoff: datetime
    actor: str = ""
    custody_seq: int = 0
    custody_head: str = ""
    attempts_deleted: int = 0
    snapshots_pruned: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = Field(default=0, sa_type=BigInteger)  # past 2 GiB over the years


class PrunedBlobRecord(SQLModel, table=True):
    """A blob deleted by retention: its SHA-256 stays in the snapshot rows and the chain of custody,
    and `govwatch verify` reports the snapshots as pruned rather than as bytes gone missing."""

    __tablename__ = "pruned_blobs"
    sha256: str = Field(primary_key=True)
    size: int = 0  # the bytes' own size (uncompressed)
    run_id: int = Field(foreign_key="prune_runs.id")
    pruned_at: datetime = Field(default_factory=utcnow)


# -- the chain --------------------------------------------------------------------------
def iso_micro(dt: datetime) -> str:
    """The one text form of a fetch time in the chain (SQLite hands back naive UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(seq: int, prev_hash: str, snapshot_id: int, url: str, fetched_at: str, body_sha256: str) -> str:
    """SHA-256 (hex) of the entry's fields as a compact JSON array: unambiguous, and easy to
    recompute with any JSON library: ["govwatch-custody-1", seq, prev, snapshot, url, time, sha256]."""
    data = json.dumps([FORMAT, seq, prev_hash, snapshot_id, url, fetched_at, body_sha256],
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def recompute(e: CustodyRecord | dict) -> str:
    d = e.as_dict() if isinstance(e, CustodyRecord) else e
    return entry_hash(int(d["seq"]), d["prev_hash"], int(d["snapshot_id"]), d["url"], d["fetched_at"], d["body_sha256"])


def head(session: Session) -> CustodyRecord | None:
    return session.scalars(select(CustodyRecord).order_by(CustodyRecord.seq.desc()).limit(1)).first()


_HEAD_LINK = select(CustodyRecord.seq, CustodyRecord.entry_hash).order_by(CustodyRecord.seq.desc()).limit(1)
_INSERT = insert(CustodyRecord.__table__)


def append(session: Session, snap: SnapshotRecord) -> CustodyRecord:
    """Append a stored snapshot to the log, inside the caller's transaction (so the capture and
    its entry are written together or not at all). The primary key on `seq` makes a fork a failed
    transaction, never a silent second branch. Core statements (no ORM unit of work: this runs for
    every new version); the entry is returned as a record, not added to the session."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_PG_LOCK)))
    conn = session.connection()
    last = conn.execute(_HEAD_LINK).first()
    seq, prev = (last.seq + 1, last.entry_hash) if last else (1, GENESIS)
    fetched = iso_micro(snap.fetched_at)
    row = dict(seq=seq, snapshot_id=snap.id, url=snap.url, fetched_at=fetched, body_sha256=snap.body_sha256,
               prev_hash=prev, entry_hash=entry_hash(seq, prev, snap.id, snap.url, fetched, snap.body_sha256),
               recorded_at=utcnow())
    conn.execute(_INSERT, row)
    return CustodyRecord(**row)


def entries_of(session: Session, snapshot_ids: list[int]) -> dict[int, CustodyRecord]:
    out: dict[int, CustodyRecord] = {}
    for part in chunks(snapshot_ids):
        for e in session.scalars(select(CustodyRecord).where(one_of(session, CustodyRecord.snapshot_id, part))):
            out[e.snapshot_id] = e
    return out


@dataclass
class StoreCheck:
    """What `govwatch verify` found in the database: counts and every problem, named."""

    entries: int = 0
    snapshots: int = 0
    blobs: int = 0
    pruned: int = 0  # snapshots whose raw bytes retention deleted (`govwatch prune`): not a mismatch
    head: CustodyRecord | None = None
    problems: list[str] = field(default_factory=list)


def verify_store(session: Session) -> StoreCheck:
    """Recompute the chain (each entry's hash and its link to the one before) and the SHA-256 of
    every stored blob; each snapshot must be in the chain with the fields it was logged with, and
    its raw bytes stored unless retention deleted them (counted apart, not a mismatch)."""
    out = StoreCheck()
    prev: CustodyRecord | None = None
    logged: dict[int, CustodyRecord] = {}
    for e in session.scalars(select(CustodyRecord).order_by(CustodyRecord.seq).execution_options(yield_per=1000)):
        out.entries += 1
        where = f"custody entry {e.seq} (snapshot {e.snapshot_id}, {e.url})"
        want_seq, want_prev = (prev.seq + 1, prev.entry_hash) if prev else (1, GENESIS)
        if e.seq != want_seq:
            out.problems.append(f"custody log: entries {want_seq}-{e.seq - 1} are missing (deleted from the log)"
                                if e.seq > want_seq else f"{where}: out of order")
        if e.prev_hash != want_prev:
            out.problems.append(f"{where}: links to {e.prev_hash[:16]}…, but the entry before it hashes to {want_prev[:16]}…")
        if recompute(e) != e.entry_hash:
            out.problems.append(f"{where}: its fields no longer hash to its recorded hash {e.entry_hash[:16]}… (the entry was edited)")
        logged[e.snapshot_id] = e
        prev = e
    out.head = prev
    by_body: dict[str, list[SnapshotRecord]] = {}
    for snap in session.scalars(select(SnapshotRecord).order_by(SnapshotRecord.id).execution_options(yield_per=1000)):
        out.snapshots += 1
        by_body.setdefault(snap.body_sha256, []).append(snap)
        e = logged.pop(snap.id, None)
        name = f"snapshot {snap.id} ({snap.url}, fetched {iso_micro(snap.fetched_at)})"
        if e is None:
            out.problems.append(f"{name}: not in the chain of custody")
            continue
        for what, logged_v, now_v in (("URL", e.url, snap.url), ("fetch time", e.fetched_at, iso_micro(snap.fetched_at)),
                                      ("SHA-256", e.body_sha256, snap.body_sha256)):
            if logged_v != now_v:
                out.problems.append(f"{name}: its {what} was {logged_v!r} when logged (custody entry {e.seq}), now {now_v!r}")
    for sid, e in sorted(logged.items()):
        out.problems.append(f"snapshot {sid} ({e.url}, fetched {e.fetched_at}): logged in custody entry {e.seq} but its row is gone")
    seen: set[str] = set()
    for sha, size, codec, data in session.execute(select(BlobRecord.sha256, BlobRecord.size, BlobRecord.codec, BlobRecord.data)
                                                  .execution_options(yield_per=200)):
        out.blobs += 1
        seen.add(sha)
        snaps = by_body.get(sha, [])
        whose = (", the raw bytes of " + ", ".join(f"snapshot {s.id} ({s.url}, fetched {iso_micro(s.fetched_at)})" for s in snaps[:5])
                 + (f" and {len(snaps) - 5} more" if len(snaps) > 5 else "")) if snaps else " (an extracted text)"
        try:
            body = blobs.decompress(data, codec)
        except blobs.DecodeError as err:
            out.problems.append(f"blob {sha[:16]}…{whose}: cannot be read ({err})")
            continue
        got = hashlib.sha256(body).hexdigest()
        if got != sha:
            out.problems.append(f"blob {sha[:16]}…{whose}: the stored bytes hash to {got[:16]}…, not to the SHA-256 they were stored under")
    missing = [sha for sha in by_body if sha and sha not in seen]
    pruned = pruned_of(session, missing) if missing else {}
    for sha in missing:
        snaps = by_body[sha]
        if sha in pruned:  # deleted on purpose by `govwatch prune`; the entry still names the digest
            out.pruned += len(snaps)
        else:
            out.problems.append(f"snapshot {snaps[0].id} ({snaps[0].url}): its raw bytes ({sha[:16]}…) are not stored")
    return out


# -- what retention deleted ------------------------------------------------------------
def pruned_of(s: Session, digests: list[str]) -> dict[str, datetime]:
    """The digests among these that retention deleted, with when."""
    out: dict[str, datetime] = {}
    for part in chunks(digests):
        out.update(s.execute(select(PrunedBlobRecord.sha256, PrunedBlobRecord.pruned_at)
                             .where(one_of(s, PrunedBlobRecord.sha256, part))).tuples().all())
    return out


# -- the archive queue ------------------------------------------------------------------
def archives_of(session: Session, change_ids: list[int]) -> dict[int, list[ArchiveRecord]]:
    out: dict[int, list[ArchiveRecord]] = {i: [] for i in change_ids}
    for part in chunks(change_ids):
        for a in session.scalars(select(ArchiveRecord).where(one_of(session, ArchiveRecord.change_id, part)).order_by(ArchiveRecord.id)):
            out[a.change_id].append(a)
    return out


def archive_dict(a: ArchiveRecord) -> dict:
    """The public shape (`show --format json`, the web page, exports)."""
    return {"service": a.service, "url": a.archive_url, "status": a.status, "timestamp": a.captured_at,
            "requested_url": a.url, "attempts": a.attempts, "error": a.last_error if a.status != "success" else ""}
