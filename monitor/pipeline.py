"""One check of one source, end to end: fetched bytes -> snapshot -> diff -> classify -> change
log -> outbox, all written in one transaction; plus the cycle that runs every due source."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

from sqlalchemy import insert, select, update
from sqlmodel import Session

from monitor import classify as classify_mod
from monitor.config import Config, SourceConfig
from monitor.diff import diff
from monitor.extract import compile_ignore, extract
from spiders import source_kinds
from spiders.blocks import judge
from spiders.kinds import FetchRequest, Fetched, Item, Parsed
from state.errors import ExtractError, GovwatchError, SourceError
from state.models import (
    ChangeRecord,
    DeliveryRecord,
    FetchAttemptRecord,
    ItemRecord,
    SnapshotRecord,
    SourceRecord,
    TopicMatchRecord,
)
from state.store import Store, bulk_update, dialect_insert, sha256
from alerts.outbox import worker_id

logger = logging.getLogger(__name__)

FAILURE_BACKOFF_CAP = 8  # a failing source waits at most 8x its interval (and at most a day more)
DOC_ATTEMPTS = 3  # a new item's document is tried on this many runs before it is recorded without full text
SHRINK_ACCEPT_AFTER = 3  # the same shrunken page this many times in a row is accepted as the new content
MIN_TEXT_FOR_SHRINK = 400  # pages shorter than this are too small to judge shrinking
QUIET_BATCH = 200  # queued quiet outcomes (304, same bytes) written together ...
QUIET_SECONDS = 1.0  # ... or once the oldest has waited this long


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Outcome:
    source_id: str
    outcome: str  # changed | unchanged | not_modified | baseline | error | blocked | removed
    changes: int = 0
    matched: int = 0
    error: str = ""
    part: str = ""  # "" for a source's own fetch; "page" or "document" for follow-ups


@dataclass
class CycleReport:
    started_at: datetime
    finished_at: datetime | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    sent: int = 0
    retrying: int = 0
    failed_deliveries: int = 0
    interrupted: bool = False

    def count(self, outcome: str, part: str = "") -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome and o.part == part)

    @property
    def sources(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.part]

    @property
    def documents(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.part == "document"]

    @property
    def changes(self) -> int:
        return sum(o.changes for o in self.outcomes)

    @property
    def matched(self) -> int:
        return sum(o.matched for o in self.outcomes)


@dataclass
class _Doc:
    text: str
    title: str
    note: str = ""


def items_text(items: list[Item]) -> str:
    """A feed or listing as text, for the snapshot (evidence) and the web view."""
    blocks = []
    for it in items:
        head = it.title or it.key
        lines = [head, it.url] + ([it.published] if it.published else []) + ([it.summary] if it.summary else [])
        blocks.append("\n".join(x for x in lines if x))
    return "\n\n".join(blocks)


class Monitor:
    """Composes the layers. `process()` is called for every fetched response (off the event loop,
    one at a time: SQLite has one writer)."""

    def __init__(self, config: Config, store: Store, *, clock: Callable[[], datetime] = utcnow, worker: str | None = None):
        self.config = config
        self.store = store
        self.clock = clock
        self.worker = worker or worker_id()
        self.lease_seconds = config.scheduler.lease
        self._requested: set[tuple[str, str]] = set()  # follow-ups already asked for in this cycle
        self._cycle_started = clock()  # items seen since then moved pages rather than vanished
        # Quiet outcomes (304, same bytes) of healthy sources are written in batches during a cycle:
        # their one row and one update each cost more in sessions than the fetch itself.
        self._quiet_every: dict[str, float] = {}   # healthy source -> every_seconds, set per cycle
        self._first_time: set[str] = set()          # sources without a snapshot yet: nothing to look up
        self._quiet_rows: list[tuple[dict, dict]] = []
        self._quiet_lock = threading.RLock()  # the writer queues and flushes; an abandoned cycle flushes from outside
        self._quiet_since = 0.0
        self._ignore = {s.id: compile_ignore(s.ignore) for s in config.sources}
        self._kinds = {s.id: source_kinds.get(s.kind)() for s in config.sources}
        self._topics_for: dict[str, list] = {}
        for s in config.sources:
            self._topics_for[s.id] = [t for t in config.topics if s.topics is None or t.id in s.topics]

    # -- sources ------------------------------------------------------------------------
    def sync_sources(self) -> None:
        """Make the sources table match the configuration (history of removed sources is kept).
        Runs every cycle: reads the configured columns in one query and writes only what differs."""
        cols = ("name", "url", "kind", "agency", "every_seconds", "enabled", "disabled_reason")
        with self.store.engine.connect() as conn:
            have = {r.id: r for r in conn.execute(select(SourceRecord.id, *(getattr(SourceRecord, c) for c in cols)))}
        missing = [src.id for src in self.config.sources if src.id not in have]
        if missing:
            # workers starting together may all see a source as new: insert-if-missing, never fail
            with self.store.session() as s:
                s.execute(dialect_insert(self.store.dialect)(SourceRecord).values([{"id": i, "created_at": self.clock()} for i in missing])
                          .on_conflict_do_nothing(index_elements=["id"]))
        changed: list[dict] = []
        for src in self.config.sources:
            reason = self.disabled_reason(src)
            want = {"name": src.display_name, "url": src.url, "kind": src.kind, "agency": src.agency,
                    "every_seconds": int(src.every), "enabled": not reason, "disabled_reason": reason}
            old = have.get(src.id)
            if old is not None and all(getattr(old, c) == want[c] for c in cols):
                continue
            if old is not None and old.url and old.url != src.url:
                # a new URL is a new baseline: validators of the old URL must not be sent
                want.update(etag="", last_modified="")
            changed.append({"id": src.id, **want})
        if changed:
            with self.store.session() as s:
                bulk_update(s, SourceRecord, changed)

    def disabled_reason(self, src: SourceConfig) -> str:
        """Why a source is not checked ("" when it is): the configuration, or a kind that lacks
        what it needs (e.g. an API key)."""
        if not src.enabled:
            return "disabled in the configuration"
        kind = self._kinds[src.id]
        return (kind.disabled_reason(src) or "") if hasattr(kind, "disabled_reason") else ""

    def due_sources(self, *, force: bool = False, only: Iterable[str] | None = None) -> list[SourceConfig]:
        only = set(only or ())
        unknown = only - {s.id for s in self.config.sources}
        if unknown:
            raise GovwatchError(f"unknown source id(s): {', '.join(sorted(unknown))}; see `govwatch sources`")
        now = self.clock()
        with self.store.session() as s:
            recs = {r.id: r for r in s.scalars(select(SourceRecord))}
        due = []
        for src in self.config.sources:
            if only and src.id not in only:
                continue
            rec = recs.get(src.id)
            if self.disabled_reason(src):
                continue
            if force or only or rec is None or rec.next_due_at is None or rec.next_due_at <= now:
                due.append(src)
        return self._lease(due, now, recheck_due=not (force or only)) if due else []

    def _lease(self, due: list[SourceConfig], now: datetime, recheck_due: bool = True) -> list[SourceConfig]:
        """Take the due sources that no other worker holds: one conditional UPDATE (atomic on SQLite,
        whose writes are serialised; with SKIP LOCKED on PostgreSQL so workers never wait on each
        other). A lease expires, so a dead worker's sources are taken over."""
        until = now + timedelta(seconds=self.lease_seconds)
        ids = [s.id for s in due]
        with self.store.session() as s:
            free = (SourceRecord.lease_until.is_(None)) | (SourceRecord.lease_until < now) | (SourceRecord.lease_owner == self.worker)
            if recheck_due:
                # another worker may have checked it since the due list was read: due *now*, in the same statement
                free = free & (SourceRecord.next_due_at.is_(None) | (SourceRecord.next_due_at <= now))
            q = select(SourceRecord.id).where(SourceRecord.id.in_(ids), free)
            if self.store.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            free_ids = list(s.scalars(q))
            if free_ids:
                s.execute(update(SourceRecord).where(SourceRecord.id.in_(free_ids), free)
                          .values(lease_owner=self.worker, lease_until=until))
        with self.store.session() as s:
            mine = set(s.scalars(select(SourceRecord.id).where(SourceRecord.id.in_(ids), SourceRecord.lease_owner == self.worker)))
        return [src for src in due if src.id in mine]

    def _keep_up(self) -> None:
        self.flush_quiet(older_than=QUIET_SECONDS)
        self.renew_leases()

    def renew_leases(self) -> None:
        """Keep holding what this worker is still checking (a long cycle outlasts one lease)."""
        with self.store.session() as s:
            s.execute(update(SourceRecord).where(SourceRecord.lease_owner == self.worker)
                      .values(lease_until=self.clock() + timedelta(seconds=self.lease_seconds)))

    def release_leases(self) -> None:
        """Give back what this worker still holds (at the end of a cycle, or on shutdown)."""
        with self.store.session() as s:
            s.execute(update(SourceRecord).where(SourceRecord.lease_owner == self.worker).values(lease_owner="", lease_until=None))

    def _headers(self, src: SourceConfig) -> dict[str, str]:
        kind = self._kinds[src.id]
        return kind.request_headers(src) if hasattr(kind, "request_headers") else {}

    def requests_for(self, sources: list[SourceConfig]) -> list[FetchRequest]:
        """The first request of each source, with its stored validators (one query for all)."""
        with self.store.session() as s:
            recs = {r.id: r for r in s.scalars(select(SourceRecord).where(SourceRecord.id.in_([src.id for src in sources])))}
        out = []
        for src in sources:
            kind, rec = self._kinds[src.id], recs.get(src.id)
            url = kind.request_url(src) if hasattr(kind, "request_url") else src.url
            same_url = rec is not None and rec.url == src.url
            etag, lm = (rec.etag, rec.last_modified) if same_url else ("", "")
            out.append(FetchRequest(source_id=src.id, url=url, etag=etag, last_modified=lm, headers=self._headers(src)))
            if rec is not None and _healthy(rec) and not src.expect_update_within:
                self._quiet_every[src.id] = float(rec.every_seconds)
            if rec is None or rec.last_snapshot_id is None:
                self._first_time.add(src.id)
        return out

    # -- the cycle ----------------------------------------------------------------------
    async def run_cycle(self, fetcher, *, force: bool = False, only: Iterable[str] | None = None,
                        stop_event: asyncio.Event | None = None, progress=None) -> CycleReport:
        report = CycleReport(started_at=self.clock())
        self._requested = set()
        self._cycle_started = report.started_at
        self._quiet_every, self._first_time = {}, set()
        await asyncio.to_thread(self.sync_sources)
        due = await asyncio.to_thread(self.due_sources, force=force, only=only)
        requests = await asyncio.to_thread(self.requests_for, due)
        if progress:
            progress.start(len(requests))
        loop = asyncio.get_running_loop()
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="govwatch-writer")

        async def on_result(fetched: Fetched):
            outcome, follow = await loop.run_in_executor(writer, self.process, fetched)
            report.outcomes.append(outcome)
            if progress:
                progress.advance(outcome)
            return follow

        async def keep_leases() -> None:
            # On the writer thread: serialised with the writes of this worker (a renewal beside a
            # batch update of the same rows could deadlock on PostgreSQL); it also writes queued
            # quiet outcomes when no response has come for a while.
            while True:
                await asyncio.sleep(max(self.lease_seconds / 3, 0.2))
                try:
                    await loop.run_in_executor(writer, self._keep_up)
                except GovwatchError as e:
                    logger.error("could not renew this worker's leases (%s); trying again", e)

        renewer = asyncio.ensure_future(keep_leases())
        crawl = asyncio.ensure_future(fetcher.fetch(requests, on_result))
        waiter = asyncio.ensure_future(stop_event.wait()) if stop_event else None
        try:
            done, _ = await asyncio.wait([f for f in (crawl, waiter) if f], return_when=asyncio.FIRST_COMPLETED)
            if waiter and waiter in done and not crawl.done():
                report.interrupted = True
                await fetcher.stop()  # in-flight responses finish and are stored; nothing half-written
                await crawl
            else:
                crawl.result()
        finally:
            renewer.cancel()
            if waiter:
                waiter.cancel()
            writer.submit(self.flush_quiet)
            writer.shutdown(wait=True)
            self._quiet_every, self._first_time = {}, set()
            await asyncio.to_thread(self.release_leases)  # e.g. a source whose response never came
        report.finished_at = self.clock()
        return report

    # -- one response -------------------------------------------------------------------
    def process(self, fetched: Fetched) -> tuple[Outcome, list[FetchRequest]]:
        """Store what one response means; returns the outcome and the follow-up requests."""
        try:
            return self._process_one(fetched)
        finally:
            self.flush_quiet(older_than=QUIET_SECONDS)  # queued outcomes wait at most ~QUIET_SECONDS

    def _process_one(self, fetched: Fetched) -> tuple[Outcome, list[FetchRequest]]:
        sid = fetched.request.source_id
        part = _part(fetched.request)
        try:
            return self._process(fetched)
        except Exception as e:  # never let one source break the cycle; record it
            if not isinstance(e, GovwatchError):
                logger.exception("source %s: unexpected error", sid)
            reason = str(e) if isinstance(e, GovwatchError) else f"internal error: {type(e).__name__}: {e}"
            if part == "document":
                return self._doc_failed(fetched, reason), []
            self._record_failure(fetched, reason)
            return Outcome(sid, "error", error=reason, part=part), []

    def _attempt(self, fetched: Fetched, outcome: str, error: str = "") -> FetchAttemptRecord:
        return FetchAttemptRecord(**self._attempt_row(fetched, outcome, error))

    @staticmethod
    def _attempt_row(fetched: Fetched, outcome: str, error: str = "") -> dict:
        h = fetched.headers
        return dict(
            source_id=fetched.request.source_id,
            url=fetched.url,
            started_at=fetched.started_at,
            duration_ms=fetched.duration_ms,
            status=fetched.status,
            outcome=outcome,
            bytes=len(fetched.body),
            etag=h.get("etag", ""),
            last_modified=h.get("last-modified", ""),
            content_type=h.get("content-type", "")[:200],
            error=error[:2000],
        )

    def _next_due(self, rec: SourceRecord, now: datetime) -> datetime:
        return _due_after(float(rec.every_seconds), max(rec.consecutive_failures, rec.consecutive_blocks), now)

    def _record_failure(self, fetched: Fetched, reason: str) -> None:
        sid = fetched.request.source_id
        part = _part(fetched.request)
        logger.warning("source %s: fetch failed%s: %s", sid, f" ({part} {fetched.url})" if part else "", reason)
        now = self.clock()
        with self.store.session() as s:
            s.add(self._attempt(fetched, "error", reason))
            rec = s.get(SourceRecord, sid)
            if rec is None or part:
                return  # a later page failing does not make the source unhealthy
            rec.last_attempt_at = now
            rec.lease_owner, rec.lease_until = "", None
            rec.consecutive_failures += 1
            rec.last_error = reason[:2000]
            rec.last_status = fetched.status
            # the watched region vanishing (a redesign) is its own problem: say so at once
            problem = "empty" if "matched nothing" in reason else "failing"
            rec.health = problem
            rec.next_due_at = self._next_due(rec, _aware(fetched.started_at))
            self._health_alert(s, rec, problem, f"{rec.consecutive_failures} consecutive failure(s); last error: {reason[:300]}",
                               problem == "empty" or self.config.health.failures_before_alert <= rec.consecutive_failures)

    def _record_block(self, fetched: Fetched, reason: str) -> Outcome:
        """A bot wall or a page that lost most of its text: never a content change; the last good
        snapshot stays the comparison base; repeated blocks raise a health alert."""
        sid = fetched.request.source_id
        part = _part(fetched.request)
        logger.warning("source %s: blocked: %s", sid, reason)
        now = self.clock()
        with self.store.session() as s:
            s.add(self._attempt(fetched, "blocked", reason))
            rec = s.get(SourceRecord, sid)
            if rec is not None and not part:
                rec.last_attempt_at = now
                rec.lease_owner, rec.lease_until = "", None
                rec.consecutive_blocks += 1
                rec.last_error = reason[:2000]
                rec.last_status = fetched.status
                rec.health = "blocked"
                rec.next_due_at = self._next_due(rec, _aware(fetched.started_at))
                self._health_alert(s, rec, "blocked", f"{rec.consecutive_blocks} blocked fetches in a row; last: {reason[:300]}",
                                   self.config.health.blocks_before_alert <= rec.consecutive_blocks)
        return Outcome(sid, "blocked", error=reason, part=part)

    def _health_alert(self, s: Session, rec: SourceRecord, problem: str, detail: str, due: bool) -> None:
        """Queue a health alert once per problem, and a recovery message when it clears."""
        now = self.clock()
        if due and rec.health_alerted != problem:
            rec.health_alerted = problem
            title = f"govwatch health: {rec.name or rec.id} ({rec.id}) is {problem}"
            body = f"Source `{rec.id}` ({rec.url}) is **{problem}**: {detail}"
        elif problem == "ok" and rec.health_alerted:
            title = f"govwatch health: {rec.name or rec.id} ({rec.id}) recovered"
            body = f"Source `{rec.id}` ({rec.url}) recovered (was {rec.health_alerted})."
            rec.health_alerted = ""
        else:
            return
        logger.warning("%s", title)
        for t in self.config.health_notify:
            s.add(DeliveryRecord(kind="health", target=t.name, title=title, body=body, next_try_at=now))

    def _success(self, s: Session, rec: SourceRecord, fetched: Fetched, now: datetime) -> None:
        if _part(fetched.request):
            return  # only the source's own fetch speaks for its health and schedule
        rec.last_attempt_at = now
        rec.last_success_at = now
        rec.lease_owner, rec.lease_until = "", None
        rec.last_status = fetched.status
        rec.consecutive_failures = 0
        rec.consecutive_blocks = 0
        rec.last_error = ""
        rec.health = "ok"
        silent = self._silent(rec, now)
        if silent:
            rec.health = "silent"
            self._health_alert(s, rec, "silent", silent, True)
        for name, value in _validators(fetched).items():
            setattr(rec, name, value)
        rec.next_due_at = self._next_due(rec, _aware(fetched.started_at))
        if not silent:
            self._health_alert(s, rec, "ok", "", False)

    def _silent(self, rec: SourceRecord, now: datetime) -> str:
        """A feed or listing with no new item for longer than its expect_update_within."""
        src = self.config.source(rec.id)
        if not src.expect_update_within:
            return ""
        ref = rec.last_new_item_at or rec.created_at
        if ref.tzinfo is None:
            ref = ref.replace(tzinfo=timezone.utc)
        quiet = (now - ref).total_seconds()
        if quiet <= src.expect_update_within:
            return ""
        return f"no new item for {quiet / 86400:.1f} days (expected one within {src.expect_update_within / 86400:g} days)"

    def _process(self, fetched: Fetched) -> tuple[Outcome, list[FetchRequest]]:
        sid = fetched.request.source_id
        src = self.config.source(sid)
        part = _part(fetched.request)
        if part == "document":
            return self._process_item_doc(fetched, src), []
        if fetched.error:
            self._record_failure(fetched, fetched.error)
            return Outcome(sid, "error", error=fetched.error, part=part), []
        if fetched.status == 304 and judge(fetched, seen_before=True) is None:
            # the server says unchanged: nothing to read or compare
            return self._unchanged(fetched, "not_modified"), self._pending_docs(src)
        page_key = fetched.request.item_key
        if not page_key and sid in self._first_time:
            self._first_time.discard(sid)
            last = None
        else:
            with self.store.session() as s:
                last = self.store.latest_snapshot(s, sid, page_key)
        verdict = judge(fetched, seen_before=last is not None)
        if verdict is not None and verdict.kind == "blocked":
            return self._record_block(fetched, verdict.reason), []
        if verdict is not None and verdict.kind == "removed":
            return self._record_removed(fetched, src, verdict.reason, last), []
        if fetched.status == 304:
            return self._unchanged(fetched, "not_modified"), self._pending_docs(src)
        if fetched.status is not None and fetched.status >= 400:
            reason = f"HTTP {fetched.status}"
            self._record_failure(fetched, reason)
            return Outcome(sid, "error", error=reason, part=part), []

        digest = sha256(fetched.body)
        if last is not None and last.body_sha256 == digest:
            # the same bytes as last time: no parsing, no extraction
            return self._unchanged(fetched, "unchanged"), self._pending_docs(src)

        parsed = self._kinds[sid].parse(fetched, src)
        if parsed.items is not None:
            outcome = self._process_items(fetched, src, parsed, digest, last)
            return outcome, self._next_page(src, fetched, parsed) + self._pending_docs(src)
        doc = self._extract(fetched, src, parsed)
        return self._process_document(fetched, src, doc, digest, last), []

    def _extract(self, fetched: Fetched, src: SourceConfig, parsed: Parsed, select: str | None | bool = True) -> _Doc:
        try:
            ex = extract(parsed.document or b"", content_type=parsed.content_type or fetched.content_type,
                         url=fetched.url, select=src.select if select is True else None, ignore=self._ignore[src.id])
        except SourceError as e:
            e.source_id, e.url = src.id, fetched.url
            raise
        note = "PDF without a text layer" if ex.no_text_layer else ""
        return _Doc(text=ex.text, title=ex.title or parsed.title or "", note=note)

    def _unchanged(self, fetched: Fetched, outcome: str) -> Outcome:
        sid = fetched.request.source_id
        now = self.clock()
        logger.info("source %s: %s", sid, "not modified (304)" if outcome == "not_modified" else "unchanged")
        every = self._quiet_every.pop(sid, None) if not _part(fetched.request) else None
        if every is not None:
            self._queue_quiet(fetched, outcome, every, now)
            return Outcome(sid, outcome)
        with self.store.session() as s:
            s.add(self._attempt(fetched, outcome))
            rec = s.get(SourceRecord, sid)
            self._success(s, rec, fetched, now)
        return Outcome(sid, outcome, part=_part(fetched.request))

    def _queue_quiet(self, fetched: Fetched, outcome: str, every: float, now: datetime) -> None:
        """What `_success` writes for a healthy source, queued: written with the next batch (at most
        QUIET_BATCH rows or QUIET_SECONDS old, and at the end of the cycle). A crash loses at most
        that batch's bookkeeping: those sources are simply checked again; no version is involved."""
        update_row = dict(id=fetched.request.source_id, last_attempt_at=now, last_success_at=now, lease_owner="",
                          lease_until=None, last_status=fetched.status, health="ok", last_error="",
                          next_due_at=_due_after(every, 0, _aware(fetched.started_at)), **_validators(fetched))
        with self._quiet_lock:
            if not self._quiet_rows:
                self._quiet_since = time.monotonic()
            self._quiet_rows.append((self._attempt_row(fetched, outcome), update_row))
        if len(self._quiet_rows) >= QUIET_BATCH:
            self.flush_quiet()

    def flush_quiet(self, *, older_than: float = 0.0) -> None:
        """Write the queued quiet outcomes (all, or only once the oldest has waited `older_than`
        seconds): one INSERT of the attempts, one bulk UPDATE by key, rows in key order (the
        same order as any other update of these rows takes its locks in: no deadlock)."""
        with self._quiet_lock:
            if not self._quiet_rows or time.monotonic() - self._quiet_since < older_than:
                return
            rows, self._quiet_rows = self._quiet_rows, []
            try:
                with self.store.session() as s:
                    s.execute(insert(FetchAttemptRecord), [a for a, _ in rows])
                    bulk_update(s, SourceRecord, sorted((u for _, u in rows), key=lambda u: u["id"]))
            except GovwatchError as e:  # the database is unwell: say so; these sources are simply due again
                logger.error("could not record %d unchanged fetch(es) (%s); those sources will be checked again", len(rows), e)

    def abandon(self) -> None:
        """The reactor gave up on in-flight work (a signal and stop_timeout): write what was queued,
        then give back the leases."""
        self.flush_quiet()
        self.release_leases()

    def _snapshot(self, s: Session, fetched: Fetched, digest: str, text: str, title: str, note: str = "",
                  item_key: str | None = None, item_keys: list[str] | None = None) -> SnapshotRecord:
        self.store.put_blob(s, fetched.body, digest)
        tb = text.encode("utf-8")
        text_sha = self.store.put_blob(s, tb)
        snap = SnapshotRecord(
            source_id=fetched.request.source_id,
            url=fetched.url,
            item_key=fetched.request.item_key if item_key is None else item_key,
            fetched_at=fetched.started_at,
            status=fetched.status,
            content_type=fetched.content_type[:200],
            headers_json=json.dumps(fetched.headers, sort_keys=True),
            body_sha256=digest,
            text_sha256=text_sha,
            text_chars=len(text),
            title=title[:500],
            note=note,
            item_keys_json=json.dumps(item_keys) if item_keys is not None else "",
        )
        s.add(snap)
        s.flush()
        return snap

    def _classify(self, sid: str, added: str, removed: str = ""):
        return classify_mod.classify(added, self._topics_for[sid], removed=removed)

    def _record_change(self, s: Session, change: ChangeRecord, matches) -> ChangeRecord:
        """The change, its matches and its outbox rows: same transaction as the snapshot."""
        if len(change.added_text) > classify_mod.MAX_TEXT_CHARS:
            # the classifier reads a bounded prefix: an analyst must know the rest was not read
            cut = f"only the first {classify_mod.MAX_TEXT_CHARS:,} of {len(change.added_text):,} characters added were classified"
            change.note = f"{change.note}; {cut}" if change.note else cut
            logger.warning("source %s: %s", change.source_id, cut)
        change.matched = bool(matches)
        change.topics = ",".join(m.topic for m in matches)
        change.severity = max((m.severity for m in matches), key=classify_mod.SEVERITIES.index, default="")
        s.add(change)
        s.flush()
        for m in matches:
            d = m.to_dict()
            payload = {"evidence": d.get("evidence", []), "definition_changes": d.get("definition_changes", [])}
            s.add(TopicMatchRecord(change_id=change.id, topic=m.topic, score=m.score, severity=m.severity,
                                   evidence_json=json.dumps(payload, ensure_ascii=False)))
        for target in self.config.notify:
            wanted = [m for m in matches
                      if (target.topics is None or m.topic in target.topics)
                      and classify_mod.severity_at_least(m.severity, target.min_severity)]
            if wanted:
                s.add(DeliveryRecord(change_id=change.id, target=target.name, next_try_at=self.clock()))
        return change

    def _record_removed(self, fetched: Fetched, src: SourceConfig, reason: str, last: SnapshotRecord | None) -> Outcome:
        """The page is gone (404/410, a redirect home, a 'not found' page): a `removed` change once;
        the removal of a watched definition is itself classified (the classifier sees what was removed)."""
        sid = src.id
        part = _part(fetched.request)
        now = self.clock()
        if last is not None and last.note.startswith("removed"):
            return self._unchanged(fetched, "unchanged")  # still gone: recorded already
        prev_text = self.store.get_text(last.text_sha256) if last else ""
        matches = self._classify(sid, "", removed=prev_text) if prev_text else []
        with self.store.session() as s:
            rec = s.get(SourceRecord, sid)
            snap = self._snapshot(s, fetched, sha256(fetched.body), "", last.title if last else "", note=f"removed: {reason}")
            if not part:
                rec.last_snapshot_id = snap.id
                rec.last_change_at = now
            self._record_change(s, ChangeRecord(
                source_id=sid, url=fetched.request.url, detected_at=now, kind="removed", title=(last.title if last else "")[:500],
                prev_snapshot_id=last.id if last else None, new_snapshot_id=snap.id, removed_text=prev_text,
                diff_text="\n".join("- " + line for line in prev_text.splitlines()), note=f"removed: {reason}",
            ), matches)
            s.add(self._attempt(fetched, "removed", reason))
            self._success(s, rec, fetched, now)
        logger.warning("source %s: removed (%s)", sid, reason)
        return Outcome(sid, "removed", changes=1, matched=int(bool(matches)), part=part)

    def _shrunk(self, fetched: Fetched, doc: _Doc, last: SnapshotRecord | None, digest: str) -> str:
        """A reason when the text suddenly lost most of its size (and this is not yet accepted)."""
        if last is None or last.note.startswith("removed") or last.text_chars < MIN_TEXT_FOR_SHRINK:
            return ""
        if len(doc.text) >= last.text_chars * (1 - self.config.health.shrink_ratio):
            return ""
        marker = f"body {digest[:12]}"
        reason = f"text shrank from {last.text_chars} to {len(doc.text)} characters ({marker})"
        with self.store.session() as s:
            recent = list(s.scalars(select(FetchAttemptRecord.error)
                                    .where(FetchAttemptRecord.source_id == fetched.request.source_id,
                                           FetchAttemptRecord.url == fetched.url)
                                    .order_by(FetchAttemptRecord.id.desc()).limit(SHRINK_ACCEPT_AFTER - 1)))
        if len(recent) == SHRINK_ACCEPT_AFTER - 1 and all(marker in (e or "") for e in recent):
            return ""  # the same smaller page every time: it is the page now
        return reason

    def _previous_text(self, fetched: Fetched, src: SourceConfig, last: SnapshotRecord, new_text: str) -> str:
        """The last version's text as this extraction reads it. When the new text differs from the
        stored one, the old raw body is read again, so a new govwatch (or trafilatura) release, or
        an edited `select` or `ignore`, is never reported as a change of every page; the stored
        text serves when the old body cannot be read again."""
        stored = self.store.get_text(last.text_sha256)
        if stored == new_text or last.note.startswith("removed"):
            return stored
        body = self.store.get_blob(last.body_sha256)
        if not body:
            return stored
        try:
            old = replace(fetched, url=last.url, body=body, headers=json.loads(last.headers_json or "{}"))
            parsed = self._kinds[src.id].parse(old, src)
            if parsed.document is None or parsed.items is not None:
                return stored
            return self._extract(old, src, parsed).text
        except (GovwatchError, ValueError) as e:
            logger.debug("source %s: previous version not re-extracted (%s); using its stored text", src.id, e)
            return stored

    def _process_document(self, fetched: Fetched, src: SourceConfig, doc: _Doc, digest: str,
                          last: SnapshotRecord | None) -> Outcome:
        sid = src.id
        part = _part(fetched.request)
        shrunk = self._shrunk(fetched, doc, last, digest)
        if shrunk:
            return self._record_block(fetched, shrunk)
        now = self.clock()
        prev_text = self._previous_text(fetched, src, last, doc.text) if last else ""
        d = diff(prev_text, doc.text) if last is not None else None
        matches = self._classify(sid, d.added_text, d.removed_text) if d is not None and d.changed else []
        replaced_pdf = (last is not None and not (d and d.changed) and doc.note and last.body_sha256 != digest)
        with self.store.session() as s:
            rec = s.get(SourceRecord, sid)
            snap = self._snapshot(s, fetched, digest, doc.text, doc.title, doc.note)
            if not part:
                rec.last_snapshot_id = snap.id
            if last is None:
                outcome = "baseline"
            elif d.changed or replaced_pdf:
                outcome = "changed"
                note = "the PDF was replaced; neither version has a text layer" if replaced_pdf else doc.note
                self._record_change(s, ChangeRecord(
                    source_id=sid, url=fetched.url, detected_at=now, kind="changed", title=doc.title[:500],
                    prev_snapshot_id=last.id, new_snapshot_id=snap.id, added_text=d.added_text,
                    removed_text=d.removed_text, diff_text=d.unified(), note=note,
                ), matches)
                rec.last_change_at = now
            else:
                outcome = "unchanged"  # a cosmetic change: the new bytes are kept as evidence only
            s.add(self._attempt(fetched, outcome))
            self._success(s, rec, fetched, now)
        self._log_outcome(sid, outcome, matches)
        return Outcome(sid, outcome, changes=int(outcome == "changed"), matched=int(bool(matches)), part=part)

    # -- items: feeds, listings, APIs -----------------------------------------------------
    def _max_follow(self, src: SourceConfig) -> int:
        return int(getattr(src.options, "max_follow", 20) or 0) if src.options is not None else 20

    def _pending_docs(self, src: SourceConfig) -> list[FetchRequest]:
        """New items waiting for their document: at most max_follow per run, oldest first; the rest
        stay pending in the database for the next run (never dropped)."""
        if not getattr(self._kinds[src.id], "has_items", True):
            return []
        limit = self._max_follow(src)
        requested = self._requested
        asked = sum(1 for (sid, _k) in requested if sid == src.id)
        if limit - asked <= 0:
            return []
        with self.store.session() as s:
            rows = list(s.scalars(select(ItemRecord)
                                  .where(ItemRecord.source_id == src.id, ItemRecord.doc_status == "pending")
                                  .order_by(ItemRecord.first_seen_at, ItemRecord.id).limit(limit - asked + len(requested))))
        out = []
        for r in rows:
            if (src.id, r.key) in requested or len(out) >= limit - asked:
                continue
            requested.add((src.id, r.key))
            out.append(FetchRequest(source_id=src.id, url=r.doc_url, item_key=r.key))
        return out

    def _next_page(self, src: SourceConfig, fetched: Fetched, parsed: Parsed) -> list[FetchRequest]:
        page_no = _page_no(fetched.request.item_key)
        max_pages = int(getattr(src.options, "max_pages", 1) or 1) if src.options is not None else 1
        if page_no >= max_pages or not parsed.next_pages:
            return []
        key = f"#page-{page_no + 1}"
        with self.store.session() as s:
            last = self.store.latest_snapshot(s, src.id, key)
        validators = json.loads(last.headers_json) if last is not None else {}
        return [FetchRequest(source_id=src.id, url=parsed.next_pages[0], item_key=key, headers=self._headers(src),
                             etag=validators.get("etag", ""), last_modified=validators.get("last-modified", ""))]

    def _process_items(self, fetched: Fetched, src: SourceConfig, parsed: Parsed, digest: str,
                       last: SnapshotRecord | None) -> Outcome:
        sid = src.id
        part = _part(fetched.request)
        now = self.clock()
        items = parsed.items or []
        for it in items:
            it.key = item_key(it.key)
        prev_keys = json.loads(last.item_keys_json or "[]") if last is not None else []
        if not items and prev_keys:
            # a redesign that leaves the region but loses the items must be loud, not "unchanged"
            what = f"item selector '{getattr(src.options, 'items', '')}' matched nothing" if src.kind == "listing" else "no items any more"
            raise ExtractError(f"{what} (the last fetch had {len(prev_keys)} items)", source_id=sid, url=fetched.url)
        cur_keys = [it.key for it in items]
        with self.store.session() as s:
            known = {r.key: r for r in s.scalars(select(ItemRecord).where(ItemRecord.source_id == sid))}
        baseline = last is None
        new_items = [it for it in items if it.key not in known]
        follow = self._max_follow(src) > 0
        immediate = [] if baseline else [(it, self._item_text(it), None) for it in new_items if not (follow and it.doc_url)]
        immediate = [(it, text, self._classify(sid, text)) for it, text, _ in immediate]
        removed_keys = [] if baseline or not getattr(self._kinds[sid], "tracks_removals", False) else \
            _removed_keys(prev_keys, cur_keys)
        n_changes = n_matched = 0
        with self.store.session() as s:
            rec = s.get(SourceRecord, sid)
            snap = self._snapshot(s, fetched, digest, items_text(items), parsed.title, item_keys=cur_keys)
            if not part:
                rec.last_snapshot_id = snap.id
            seen_again = []
            for it in items:
                row = known.get(it.key)
                if row is None:
                    pending = not baseline and follow and bool(it.doc_url)
                    s.add(ItemRecord(source_id=sid, key=it.key, url=it.url, title=it.title[:1000], published=it.published[:100],
                                     summary=it.summary, first_seen_at=now, last_seen_at=now, doc_url=it.doc_url if pending else "",
                                     doc_status="pending" if pending else "", extra_json=json.dumps(it.extra, ensure_ascii=False)))
                    known[it.key] = None  # a key twice on one page is one item
                else:
                    seen_again.append(it.key)
            for i in range(0, len(seen_again), 500):  # one UPDATE per 500 known items, not one merge each
                s.execute(update(ItemRecord).where(ItemRecord.source_id == sid, ItemRecord.key.in_(seen_again[i:i + 500]))
                          .values(last_seen_at=now, removed_at=None))
            for it, text, matches in immediate:
                self._record_change(s, ChangeRecord(
                    source_id=sid, url=it.url or fetched.url, detected_at=now, kind="new_item", title=it.title[:500],
                    item_key=it.key, item_published=it.published[:100], prev_snapshot_id=last.id,
                    new_snapshot_id=snap.id, added_text=text, diff_text="\n".join("+ " + line for line in text.splitlines()),
                    meta_json=json.dumps(it.extra, ensure_ascii=False),
                ), matches)
                n_changes += 1
                n_matched += bool(matches)
            for key in removed_keys:
                row = known.get(key)
                if row is None:
                    continue
                row = s.merge(row)
                if row.removed_at is not None or row.last_seen_at >= self._cycle_started:
                    continue  # already recorded, or it moved to another page of this listing in this run
                row.removed_at = now
                self._record_change(s, ChangeRecord(
                    source_id=sid, url=row.url or fetched.url, detected_at=now, kind="removed", title=row.title[:500],
                    item_key=key, item_published=row.published, prev_snapshot_id=last.id, new_snapshot_id=snap.id,
                    removed_text=row.title, diff_text=f"- {row.title}\n- {row.url}", note="the item was removed from the listing",
                ), [])
                n_changes += 1
            if n_changes:
                rec.last_change_at = now
            if new_items and not baseline:
                rec.last_new_item_at = now
            outcome = "baseline" if baseline else ("changed" if (n_changes or new_items) else "unchanged")
            s.add(self._attempt(fetched, outcome))
            self._success(s, rec, fetched, now)
        pending = 0 if baseline else len(new_items) - len(immediate)
        self._log_outcome(sid, outcome, [], n_changes, n_matched, pending)
        return Outcome(sid, outcome, changes=n_changes, matched=n_matched, part=part)

    @staticmethod
    def _item_text(it: Item | ItemRecord, body: str = "") -> str:
        return "\n\n".join(x for x in (it.title, it.summary, body) if x)

    def _process_item_doc(self, fetched: Fetched, src: SourceConfig) -> Outcome:
        """A new item's document (HTML or PDF): stored as its own snapshot, classified in full, and
        recorded as the item's `new_item` change with its title, date and link."""
        sid, key = src.id, fetched.request.item_key
        with self.store.session() as s:
            item = s.scalars(select(ItemRecord).where(ItemRecord.source_id == sid, ItemRecord.key == key)).first()
        if item is None or item.doc_status != "pending":
            return Outcome(sid, "unchanged", part="document")
        error = fetched.error
        if not error:
            verdict = judge(fetched, seen_before=False)
            if verdict is not None:
                error = verdict.reason
            elif fetched.status is not None and fetched.status >= 400:
                error = f"HTTP {fetched.status}"
        if error:
            return self._doc_failed(fetched, error)
        doc = self._extract(fetched, src, Parsed(document=fetched.body, content_type=fetched.content_type), select=False)
        text = self._item_text(item, doc.text)
        matches = self._classify(sid, text)
        now = self.clock()
        with self.store.session() as s:
            item = s.merge(item)
            snap = self._snapshot(s, fetched, sha256(fetched.body), doc.text, doc.title, doc.note)
            last_listing = self.store.latest_snapshot(s, sid, "")
            self._record_change(s, ChangeRecord(
                source_id=sid, url=item.url or fetched.url, detected_at=now, kind="new_item", title=(item.title or doc.title)[:500],
                item_key=key, item_published=item.published, prev_snapshot_id=last_listing.id if last_listing else None,
                new_snapshot_id=snap.id, added_text=text, diff_text="\n".join("+ " + line for line in text.splitlines()),
                note=doc.note + ("; classified on the title and summary only" if doc.note else ""), meta_json=item.extra_json,
            ), matches)
            item.doc_status, item.snapshot_id, item.doc_error = "fetched", snap.id, ""
            item.doc_attempts += 1
            s.add(self._attempt(fetched, "changed"))
            rec = s.get(SourceRecord, sid)
            rec.last_change_at = now
        logger.info("source %s: new document %s (%s)", sid, fetched.url, ", ".join(m.topic for m in matches) or "no topic matched")
        return Outcome(sid, "changed", changes=1, matched=int(bool(matches)), part="document")

    def _doc_failed(self, fetched: Fetched, reason: str) -> Outcome:
        """A new item's document could not be fetched: retried on later runs, then recorded from
        what the listing said (never dropped)."""
        sid, key = fetched.request.source_id, fetched.request.item_key
        now = self.clock()
        logger.warning("source %s: document %s: %s", sid, fetched.url, reason)
        with self.store.session() as s:
            item = s.scalars(select(ItemRecord).where(ItemRecord.source_id == sid, ItemRecord.key == key)).first()
            s.add(self._attempt(fetched, "error", reason))
            if item is None or item.doc_status != "pending":
                return Outcome(sid, "error", error=reason, part="document")
            item.doc_attempts += 1
            item.doc_error = reason[:500]
            if item.doc_attempts < DOC_ATTEMPTS:
                return Outcome(sid, "error", error=reason, part="document")
            item.doc_status = "failed"
            text = self._item_text(item)
            matches = self._classify(sid, text)
            self._record_change(s, ChangeRecord(
                source_id=sid, url=item.url or fetched.url, detected_at=now, kind="new_item", title=item.title[:500], item_key=key,
                item_published=item.published, added_text=text, diff_text="\n".join("+ " + line for line in text.splitlines()),
                note=f"the document could not be fetched after {item.doc_attempts} attempts ({reason[:200]}); "
                     "classified on the listing's title and summary", meta_json=item.extra_json,
            ), matches)
        return Outcome(sid, "error", changes=1, matched=int(bool(matches)), error=reason, part="document")

    @staticmethod
    def _log_outcome(sid: str, outcome: str, matches, n: int | None = None, n_matched: int | None = None, pending: int = 0) -> None:
        if outcome == "changed":
            topics = ", ".join(m.topic for m in matches)
            if n is not None:
                extra = f"{n} change(s), {n_matched} matched" + (f", {pending} document(s) to fetch" if pending else "")
            else:
                extra = f"matched {topics}" if topics else "no topic matched"
            logger.info("source %s: changed (%s)", sid, extra)
        else:
            logger.info("source %s: %s", sid, outcome)


MAX_KEY = 2000


def item_key(key: str) -> str:
    """An item key as stored: a very long id (some feeds use whole URLs with state) is cut and
    made unique with its hash, the same way every time, so it is never "new" twice."""
    if len(key) <= MAX_KEY:
        return key
    return key[: MAX_KEY - 65] + "#" + sha256(key.encode("utf-8"))


def _part(req: FetchRequest) -> str:
    if not req.item_key:
        return ""
    return "page" if req.item_key.startswith("#page-") else "document"


def _page_no(item_key: str) -> int:
    return int(item_key[6:]) if item_key.startswith("#page-") else 1


def _removed_keys(prev: list[str], cur: list[str]) -> list[str]:
    """Items gone from a listing, except those that merely rolled off its end (a newest-first
    listing pushes old items out as new ones arrive: that is not a removal)."""
    cur_set = set(cur)
    present = [i for i, k in enumerate(prev) if k in cur_set]
    last_present = present[-1] if present else -1
    return [k for i, k in enumerate(prev) if k not in cur_set and i < last_present]


def _aware(dt: datetime) -> datetime:
    """The interval runs from when the fetch started, not from when its processing ended: a busy
    writer must not push every source's next check later and later."""
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _due_after(every: float, bad: int, start: datetime) -> datetime:
    """When to check again: `every` after the fetch started, doubled per failure or block in a row
    (capped), with jitter (±10%, at most 10 minutes) so one host's sources are not hit in bursts."""
    if bad:
        factor = min(2 ** (bad - 1), FAILURE_BACKOFF_CAP)
        every = min(every * factor, every + 86400)
    jitter = min(every * 0.1, 600.0)
    return start + timedelta(seconds=every + random.uniform(-jitter, jitter))


def _validators(fetched: Fetched) -> dict[str, str]:
    """The validators to store from a response: none from a 304 (the stored ones stay); from
    another URL than asked (a redirect) empty ones, since sent to the old URL and followed to the
    new one, a 304 there would hide the change."""
    if fetched.status == 304:
        return {}
    same = fetched.url == fetched.request.url
    return {"etag": fetched.headers.get("etag", "") if same else "",
            "last_modified": fetched.headers.get("last-modified", "") if same else ""}


def _healthy(rec: SourceRecord) -> bool:
    """Nothing for a success to reset or announce (no failures, blocks or health alert open)."""
    return (not rec.consecutive_failures and not rec.consecutive_blocks and rec.health in ("ok", "")
            and not rec.health_alerted)
