"""Retention (`govwatch prune`): what a store that runs for months piles up and nobody will ask for
is dropped; whatever proves something is kept.

Dropped, when older than the cutoff:
- routine fetch attempts (`unchanged`, `not_modified`), except the newest KEEP_ATTEMPTS of each URL
  of each source (the shrink check reads the last two; a source's health lives on its own row);
- the stored bytes (body, text, screenshot, server HTML) of snapshots that are no evidence.

Kept, whatever their age: the snapshots of every change that matched a topic, was triaged or
assigned, was alerted (deliveries), was listed by a saved search, or was sent to a web archive;
the snapshots of changes detected after the cutoff; the latest snapshot of each source and item
(the next diff's base) and those that sources and items point at. A blob is shared by every
snapshot with the same bytes: it goes only when no kept snapshot refers to it.

Snapshot rows stay (URL, fetch time, headers, SHA-256), and so does the chain of custody: its
entries are bound to snapshots and are never rewritten. What was dropped is on the record instead:
`prune_runs` (when, the cutoff, the chain's head at the time, what was freed) and `pruned_blobs`
(each SHA-256 dropped), which `govwatch verify` reads to tell a pruned body from a lost one.

Deletes run in batches of their own transactions (a 100,000-row prune never holds the database in
one transaction, nor passes more than BATCH values to one statement) while the scheduler writes:
before each batch of blobs is deleted, what was written or became evidence since the plan was made
is looked at again under a lock that `Store.put_blob` respects (the database's write lock on
SQLite, the blob rows' locks on PostgreSQL), so a capture being stored never loses its bytes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, union, update
from sqlmodel import Session

from state import custody
from state.custody import ArchiveRecord, PrunedBlobRecord, PruneRunRecord
from state.models import (BlobRecord, ChangeRecord, DeliveryRecord, FetchAttemptRecord, ItemRecord, SnapshotRecord,
                          SourceRecord, TopicMatchRecord, utcnow)
from state.store import Store, chunks, dialect_insert
from state.subscriptions import SubscriptionMatchRecord
from state.triage import AssignmentRecord, TriageActionRecord, TriageStateRecord

ROUTINE = ("unchanged", "not_modified")  # fetch outcomes that record nothing but "still the same"
KEEP_ATTEMPTS = 3  # the newest attempts of each URL of each source, kept whatever their age
BATCH = 500  # rows per statement and per transaction
_SHAS = (SnapshotRecord.body_sha256, SnapshotRecord.text_sha256, SnapshotRecord.screenshot_sha256, SnapshotRecord.raw_sha256)
_EVIDENCE_TABLES = (TopicMatchRecord, TriageActionRecord, DeliveryRecord, ArchiveRecord, SubscriptionMatchRecord)
_CLOCK_SKEW = timedelta(minutes=5)  # assignments and review states are found by time: allow for another host's clock


@dataclass
class PruneReport:
    """What a prune freed (or, with dry_run, would free)."""

    cutoff: datetime
    dry_run: bool
    attempts: int = 0  # fetch attempts deleted
    snapshots: int = 0  # snapshots that lost stored bytes (their rows stay)
    blobs: int = 0  # blobs deleted
    bytes_freed: int = 0  # stored (compressed) bytes of those blobs
    kept_snapshots: int = 0  # snapshots older than the cutoff kept whole: evidence or a diff base
    run_id: int | None = None


@dataclass
class _Plan:
    """The snapshots found prunable and the blobs only they refer to, with the high-water marks
    taken before the scan: anything newer is looked at again before each delete."""

    since: datetime
    batch: int
    max_snapshot: int
    max_change: int
    marks: dict[type, int]
    pruned: set[int] = field(default_factory=set)
    candidates: dict[str, int] = field(default_factory=dict)  # sha256 -> stored bytes
    kept_old: int = 0


# -- the plan -----------------------------------------------------------------------------------
def _max_id(s: Session, model) -> int:
    return s.scalar(select(func.max(model.id))) or 0


def _capture_ids(prev: int | None, new: int | None, meta: str | None) -> set[int]:
    """The snapshots a change stands on: its two captures, and the last capture a removal names."""
    ids = {i for i in (prev, new) if i is not None}
    if meta and "last_capture_id" in meta:
        try:
            last = json.loads(meta).get("last_capture_id")
        except (ValueError, AttributeError):
            last = None
        if isinstance(last, int):
            ids.add(last)
    return ids


def _evidence_changes():
    """The changes that are evidence: matched, triaged or assigned, alerted, in a saved search's
    digest, or sent to a web archive."""
    return or_(ChangeRecord.matched.is_(True),
               *(ChangeRecord.id.in_(select(t.change_id)) for t in (*_EVIDENCE_TABLES, TriageStateRecord, AssignmentRecord)))


def _snapshots_of_changes(s: Session, where) -> set[int]:
    ids: set[int] = set()
    q = select(ChangeRecord.prev_snapshot_id, ChangeRecord.new_snapshot_id, ChangeRecord.meta_json).where(where)
    for prev, new, meta in s.execute(q.execution_options(yield_per=2000)):
        ids |= _capture_ids(prev, new, meta)
    return ids


def _listings_before_new_documents(s: Session, where) -> set[int]:
    """For each new document among these changes, the source's listing capture before the one the
    change names: a followed document's change names the listing that already shows it, and the
    capture that shows it absent is what dates its appearance."""
    earlier = (select(func.max(SnapshotRecord.id))
               .where(SnapshotRecord.source_id == ChangeRecord.source_id, SnapshotRecord.item_key == "",
                      SnapshotRecord.id < ChangeRecord.prev_snapshot_id)
               .correlate(ChangeRecord).scalar_subquery())
    q = select(earlier).where(where, ChangeRecord.kind == "new_item", ChangeRecord.prev_snapshot_id.is_not(None))
    return {i for i in s.scalars(q.execution_options(yield_per=2000)) if i is not None}


def kept_snapshot_ids(s: Session, cutoff: datetime) -> set[int]:
    """Every snapshot whose bytes stay whatever its age (see the module's docstring)."""
    keep = set(s.scalars(select(func.max(SnapshotRecord.id)).group_by(SnapshotRecord.source_id, SnapshotRecord.item_key)))
    keep.update(s.scalars(select(SourceRecord.last_snapshot_id).where(SourceRecord.last_snapshot_id.is_not(None))))
    keep.update(s.scalars(select(ItemRecord.snapshot_id).where(ItemRecord.snapshot_id.is_not(None))))
    kept_changes = or_(ChangeRecord.detected_at >= cutoff, _evidence_changes())
    keep |= _snapshots_of_changes(s, kept_changes)
    keep |= _listings_before_new_documents(s, _evidence_changes())
    return keep


def _plan(store: Store, cutoff: datetime, batch: int) -> _Plan:
    with store.session() as s:
        # marks first: whatever is written while the scan runs is newer than them
        plan = _Plan(since=utcnow() - _CLOCK_SKEW, batch=batch, max_snapshot=_max_id(s, SnapshotRecord), max_change=_max_id(s, ChangeRecord),
                     marks={t: _max_id(s, t) for t in _EVIDENCE_TABLES})
        keep = kept_snapshot_ids(s, cutoff)
        shas: set[str] = set()
        old = select(SnapshotRecord.id, *_SHAS).where(SnapshotRecord.fetched_at < cutoff).order_by(SnapshotRecord.id)
        for sid, *digests in s.execute(old.execution_options(yield_per=2000)):
            if sid in keep:
                plan.kept_old += 1
            else:
                plan.pruned.add(sid)
                shas.update(d for d in digests if d)
        if shas:  # a blob another snapshot still needs stays
            for sid, *digests in s.execute(select(SnapshotRecord.id, *_SHAS).execution_options(yield_per=2000)):
                if sid not in plan.pruned:
                    shas.difference_update(digests)
        ordered = sorted(shas)
        for part in chunks(ordered, batch):  # only what is stored now (an earlier prune took the rest)
            q = select(BlobRecord.sha256, func.length(BlobRecord.data)).where(BlobRecord.sha256.in_(part))
            plan.candidates.update((sha, n or 0) for sha, n in s.execute(q))
    return plan


def _protected_since(s: Session, plan: _Plan) -> set[str]:
    """Blobs the plan may no longer drop: those of snapshots written after it was made, and those of
    pruned snapshots whose change has since become evidence (an analyst triaged it meanwhile)."""
    newer = [select(t.change_id).where(t.id > plan.marks[t]) for t in _EVIDENCE_TABLES]
    newer += [select(TriageStateRecord.change_id).where(TriageStateRecord.updated_at >= plan.since),
              select(AssignmentRecord.change_id).where(AssignmentRecord.assigned_at >= plan.since),
              select(ChangeRecord.id).where(ChangeRecord.id > plan.max_change)]
    changed = ChangeRecord.id.in_(union(*newer))
    ids = sorted((_snapshots_of_changes(s, changed) | _listings_before_new_documents(s, changed)) & plan.pruned)
    shas: set[str] = set()
    for part in chunks(ids, plan.batch):
        for row in s.execute(select(*_SHAS).where(SnapshotRecord.id.in_(part))):
            shas.update(row)
    for row in s.execute(select(*_SHAS).where(SnapshotRecord.id > plan.max_snapshot)):
        shas.update(row)
    return shas


# -- the deletes --------------------------------------------------------------------------------
def _attempt_batches(store: Store, cutoff: datetime, batch: int):
    """Batches of routine attempt ids older than the cutoff, never the newest of their URL."""
    with store.session() as s:
        ranked = select(FetchAttemptRecord.id, func.row_number().over(
            partition_by=(FetchAttemptRecord.source_id, FetchAttemptRecord.url), order_by=FetchAttemptRecord.id.desc()).label("n")).subquery()
        newest = set(s.scalars(select(ranked.c.id).where(ranked.c.n <= KEEP_ATTEMPTS)))
    last = 0
    while True:
        with store.session() as s:
            ids = list(s.scalars(select(FetchAttemptRecord.id)
                                 .where(FetchAttemptRecord.started_at < cutoff, FetchAttemptRecord.outcome.in_(ROUTINE),
                                        FetchAttemptRecord.id > last)
                                 .order_by(FetchAttemptRecord.id).limit(batch)))
        if not ids:
            return
        last = ids[-1]
        doomed = [i for i in ids if i not in newest]
        if doomed:
            yield doomed


def _record(s: Session, run_id: int, **add: int) -> None:
    """Add to the run's counts; on SQLite, as the batch's first statement, it takes the write lock."""
    add = add or {"bytes_freed": 0}
    s.execute(update(PruneRunRecord).where(PruneRunRecord.id == run_id)
              .values({k: getattr(PruneRunRecord, k) + v for k, v in add.items()}).execution_options(synchronize_session=False))


def _delete_blob_batch(store: Store, plan: _Plan, chunk: list[str], run_id: int) -> dict[str, int]:
    """Delete one batch of blobs in one transaction; returns sha256 -> stored bytes of those deleted."""
    with store.session() as s:
        _record(s, run_id)  # SQLite: the write lock is ours from here to the commit
        if store.dialect == "postgresql":
            # a writer storing a snapshot holds its blobs (FOR KEY SHARE in put_blob): those are
            # skipped, never waited for, and the rows locked here wait for this commit
            chunk = list(s.scalars(select(BlobRecord.sha256).where(BlobRecord.sha256.in_(chunk))
                                   .with_for_update(skip_locked=True)))
        protected = _protected_since(s, plan)
        doomed = [sha for sha in chunk if sha not in protected]
        if not doomed:
            return {}
        rows = {sha: (size, n or 0) for sha, size, n in
                s.execute(select(BlobRecord.sha256, BlobRecord.size, func.length(BlobRecord.data)).where(BlobRecord.sha256.in_(doomed)))}
        if not rows:
            return {}
        s.execute(delete(BlobRecord).where(BlobRecord.sha256.in_(list(rows))).execution_options(synchronize_session=False))
        now = utcnow()
        insert = dialect_insert(store.dialect)(PrunedBlobRecord)
        s.execute(insert.on_conflict_do_update(index_elements=["sha256"],
                                               set_={"run_id": insert.excluded.run_id, "pruned_at": insert.excluded.pruned_at}),
                  [{"sha256": sha, "size": size, "run_id": run_id, "pruned_at": now} for sha, (size, _) in rows.items()])
        freed = {sha: n for sha, (_, n) in rows.items()}
        _record(s, run_id, blobs_deleted=len(freed), bytes_freed=sum(freed.values()))
    return freed


def _stripped(store: Store, plan: _Plan, gone: set[str]) -> int:
    """How many of the pruned snapshots lost at least one of their stored blobs."""
    if not gone:
        return 0
    n = 0
    ids = sorted(plan.pruned)
    with store.session() as s:
        for part in chunks(ids, plan.batch):
            for row in s.execute(select(*_SHAS).where(SnapshotRecord.id.in_(part))):
                n += any(d in gone for d in row)
    return n


def _start(store: Store, cutoff: datetime, actor: str) -> int:
    with store.session() as s:
        h = custody.head(s)
        run = PruneRunRecord(cutoff=cutoff, actor=actor[:200], custody_seq=h.seq if h else 0,
                             custody_head=h.entry_hash if h else custody.GENESIS)
        s.add(run)
        s.flush()
        return run.id


def prune(store: Store, cutoff: datetime, *, dry_run: bool = False, actor: str = "", batch: int = BATCH) -> PruneReport:
    """Drop routine fetch attempts and the stored bytes of non-evidence snapshots older than
    `cutoff` (see the module's docstring); with dry_run, count the same and change nothing."""
    report = PruneReport(cutoff=cutoff, dry_run=dry_run)
    if not dry_run:
        report.run_id = _start(store, cutoff, actor)
    for ids in _attempt_batches(store, cutoff, batch):
        if not dry_run:
            with store.session() as s:
                _record(s, report.run_id, attempts_deleted=len(ids))
                s.execute(delete(FetchAttemptRecord).where(FetchAttemptRecord.id.in_(ids)).execution_options(synchronize_session=False))
        report.attempts += len(ids)
    plan = _plan(store, cutoff, batch)
    report.kept_snapshots = plan.kept_old
    if dry_run:
        freed = dict(plan.candidates)
    else:
        freed = {}
        ordered = sorted(plan.candidates)
        for part in chunks(ordered, batch):
            freed.update(_delete_blob_batch(store, plan, part, report.run_id))
    report.blobs, report.bytes_freed = len(freed), sum(freed.values())
    report.snapshots = _stripped(store, plan, set(freed))
    if not dry_run:
        with store.session() as s:
            _record(s, report.run_id, snapshots_pruned=report.snapshots)
            s.execute(update(PruneRunRecord).where(PruneRunRecord.id == report.run_id).values(finished_at=utcnow())
                      .execution_options(synchronize_session=False))
    return report
