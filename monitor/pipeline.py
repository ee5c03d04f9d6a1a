"""One check of one source, end to end: fetched bytes -> snapshot -> diff -> classify -> change
log -> outbox, all written in one transaction; plus the cycle that runs every due source."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

from sqlalchemy import select
from sqlmodel import Session

from monitor import classify as classify_mod
from monitor.config import Config, SourceConfig
from monitor.diff import diff
from monitor.extract import compile_ignore, extract
from spiders import source_kinds
from spiders.kinds import FetchRequest, Fetched, Item, Parsed
from state.errors import GovwatchError, SourceError
from state.models import (
    ChangeRecord,
    DeliveryRecord,
    FetchAttemptRecord,
    ItemRecord,
    SnapshotRecord,
    SourceRecord,
    TopicMatchRecord,
)
from state.store import Store, sha256

logger = logging.getLogger(__name__)

FAILURE_BACKOFF_CAP = 8  # a failing source waits at most 8x its interval (and at most a day more)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Outcome:
    source_id: str
    outcome: str  # changed | unchanged | not_modified | baseline | error | blocked | removed
    changes: int = 0
    matched: int = 0
    error: str = ""


@dataclass
class CycleReport:
    started_at: datetime
    finished_at: datetime | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    sent: int = 0
    retrying: int = 0
    failed_deliveries: int = 0
    interrupted: bool = False

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)

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

    def __init__(self, config: Config, store: Store, *, clock: Callable[[], datetime] = utcnow):
        self.config = config
        self.store = store
        self.clock = clock
        self._ignore = {s.id: compile_ignore(s.ignore) for s in config.sources}
        self._kinds = {s.id: source_kinds.get(s.kind)() for s in config.sources}
        self._topics_for: dict[str, list] = {}
        for s in config.sources:
            self._topics_for[s.id] = [t for t in config.topics if s.topics is None or t.id in s.topics]

    # -- sources ------------------------------------------------------------------------
    def sync_sources(self) -> None:
        """Make the sources table match the configuration (history of removed sources is kept)."""
        with self.store.session() as s:
            for src in self.config.sources:
                rec = s.get(SourceRecord, src.id)
                if rec is None:
                    rec = SourceRecord(id=src.id)
                    s.add(rec)
                if rec.url and rec.url != src.url:
                    # a new URL is a new baseline: validators of the old URL must not be sent
                    rec.etag, rec.last_modified = "", ""
                rec.name, rec.url, rec.kind, rec.agency = src.display_name, src.url, src.kind, src.agency
                rec.every_seconds = int(src.every)
                rec.enabled = src.enabled
                rec.disabled_reason = "" if src.enabled else "disabled in the configuration"

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
            if not src.enabled and not only:
                continue
            if force or only or rec is None or rec.next_due_at is None or rec.next_due_at <= now:
                due.append(src)
        return due

    def request_for(self, src: SourceConfig) -> FetchRequest:
        with self.store.session() as s:
            rec = s.get(SourceRecord, src.id)
            etag, lm = (rec.etag, rec.last_modified) if rec else ("", "")
        return FetchRequest(source_id=src.id, url=src.url, etag=etag, last_modified=lm)

    # -- the cycle ----------------------------------------------------------------------
    async def run_cycle(self, fetcher, *, force: bool = False, only: Iterable[str] | None = None,
                        stop_event: asyncio.Event | None = None, progress=None) -> CycleReport:
        report = CycleReport(started_at=self.clock())
        await asyncio.to_thread(self.sync_sources)
        due = await asyncio.to_thread(self.due_sources, force=force, only=only)
        requests = [await asyncio.to_thread(self.request_for, s) for s in due]
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
            if waiter:
                waiter.cancel()
            writer.shutdown(wait=True)
        report.finished_at = self.clock()
        return report

    # -- one response -------------------------------------------------------------------
    def process(self, fetched: Fetched) -> tuple[Outcome, list[FetchRequest]]:
        sid = fetched.request.source_id
        try:
            return self._process(fetched), []
        except Exception as e:  # never let one source break the cycle; record it
            if not isinstance(e, GovwatchError):
                logger.exception("source %s: unexpected error", sid)
            reason = str(e) if isinstance(e, GovwatchError) else f"internal error: {type(e).__name__}: {e}"
            self._record_failure(fetched, reason)
            return Outcome(sid, "error", error=reason), []

    def _attempt(self, fetched: Fetched, outcome: str, error: str = "") -> FetchAttemptRecord:
        h = fetched.headers
        return FetchAttemptRecord(
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
        every = rec.every_seconds
        if rec.consecutive_failures:
            factor = min(2 ** (rec.consecutive_failures - 1), FAILURE_BACKOFF_CAP)
            every = min(every * factor, every + 86400)
        return now + timedelta(seconds=every)

    def _record_failure(self, fetched: Fetched, reason: str) -> None:
        sid = fetched.request.source_id
        logger.warning("source %s: fetch failed: %s", sid, reason)
        now = self.clock()
        with self.store.session() as s:
            s.add(self._attempt(fetched, "error", reason))
            rec = s.get(SourceRecord, sid)
            if rec is None:
                return
            rec.last_attempt_at = now
            rec.consecutive_failures += 1
            rec.last_error = reason[:2000]
            rec.last_status = fetched.status
            rec.health = "failing"
            rec.next_due_at = self._next_due(rec, now)
            self._health_alert(s, rec, "failing", f"{rec.consecutive_failures} consecutive failures; last error: {reason[:300]}",
                               self.config.health.failures_before_alert <= rec.consecutive_failures)

    def _health_alert(self, s: Session, rec: SourceRecord, problem: str, detail: str, due: bool) -> None:
        """Queue a health alert once per problem, and a recovery message when it clears."""
        if not self.config.health_notify:
            rec.health_alerted = problem if due else rec.health_alerted
            return
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
        for t in self.config.health_notify:
            s.add(DeliveryRecord(kind="health", target=t.name, title=title, body=body, next_try_at=now))

    def _success(self, s: Session, rec: SourceRecord, fetched: Fetched, now: datetime) -> None:
        rec.last_attempt_at = now
        rec.last_success_at = now
        rec.last_status = fetched.status
        rec.consecutive_failures = 0
        rec.consecutive_blocks = 0
        rec.last_error = ""
        rec.health = "ok"
        if fetched.status != 304:
            rec.etag = fetched.headers.get("etag", "")
            rec.last_modified = fetched.headers.get("last-modified", "")
        rec.next_due_at = self._next_due(rec, now)
        self._health_alert(s, rec, "ok", "", False)

    def _process(self, fetched: Fetched) -> Outcome:
        sid = fetched.request.source_id
        src = self.config.source(sid)
        if fetched.error:
            self._record_failure(fetched, fetched.error)
            return Outcome(sid, "error", error=fetched.error)
        if fetched.status == 304:
            return self._unchanged(fetched, "not_modified")
        if fetched.status is not None and fetched.status >= 400:
            reason = f"HTTP {fetched.status}"
            self._record_failure(fetched, reason)
            return Outcome(sid, "error", error=reason)

        digest = sha256(fetched.body)
        with self.store.session() as s:
            last = self.store.latest_snapshot(s, sid)
            last_body = last.body_sha256 if last else None
        if last is not None and last_body == digest:
            # the same bytes as last time: no parsing, no extraction
            return self._unchanged(fetched, "unchanged")

        parsed = self._kinds[sid].parse(fetched, src)
        if parsed.items is not None:
            return self._process_items(fetched, src, parsed, digest, last)
        doc = self._extract(fetched, src, parsed)
        return self._process_document(fetched, src, doc, digest, last)

    def _extract(self, fetched: Fetched, src: SourceConfig, parsed: Parsed) -> _Doc:
        try:
            ex = extract(parsed.document or b"", content_type=parsed.content_type or fetched.content_type,
                         url=fetched.url, select=src.select, ignore=self._ignore[src.id])
        except SourceError as e:
            e.source_id, e.url = src.id, fetched.url
            raise
        note = "PDF without a text layer" if ex.no_text_layer else ""
        return _Doc(text=ex.text, title=ex.title or parsed.title or "", note=note)

    def _unchanged(self, fetched: Fetched, outcome: str) -> Outcome:
        sid = fetched.request.source_id
        now = self.clock()
        with self.store.session() as s:
            s.add(self._attempt(fetched, outcome))
            rec = s.get(SourceRecord, sid)
            self._success(s, rec, fetched, now)
        logger.info("source %s: %s", sid, "not modified (304)" if outcome == "not_modified" else "unchanged")
        return Outcome(sid, outcome)

    def _snapshot(self, s: Session, fetched: Fetched, digest: str, text: str, title: str, note: str = "", item_key: str = "") -> SnapshotRecord:
        self.store.put_blob(s, fetched.body, digest)
        tb = text.encode("utf-8")
        text_sha = self.store.put_blob(s, tb)
        snap = SnapshotRecord(
            source_id=fetched.request.source_id,
            url=fetched.url,
            item_key=item_key,
            fetched_at=fetched.started_at,
            status=fetched.status,
            content_type=fetched.content_type[:200],
            headers_json=json.dumps(fetched.headers, sort_keys=True),
            body_sha256=digest,
            text_sha256=text_sha,
            text_chars=len(text),
            title=title[:500],
            note=note,
        )
        s.add(snap)
        s.flush()
        return snap

    def _classify(self, sid: str, added: str, removed: str = ""):
        return classify_mod.classify(added, self._topics_for[sid], removed=removed)

    def _record_change(self, s: Session, change: ChangeRecord, matches) -> ChangeRecord:
        """The change, its matches and its outbox rows: same transaction as the snapshot."""
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

    def _process_document(self, fetched: Fetched, src: SourceConfig, doc: _Doc, digest: str,
                          last: SnapshotRecord | None) -> Outcome:
        sid = src.id
        now = self.clock()
        prev_text = self.store.get_text(last.text_sha256) if last else ""
        d = diff(prev_text, doc.text) if last is not None else None
        matches = self._classify(sid, d.added_text, d.removed_text) if d is not None and d.changed else []
        with self.store.session() as s:
            rec = s.get(SourceRecord, sid)
            snap = self._snapshot(s, fetched, digest, doc.text, doc.title, doc.note)
            rec.last_snapshot_id = snap.id
            if last is None:
                outcome = "baseline"
            elif not d.changed:
                outcome = "unchanged"  # a cosmetic change: the new bytes are kept as evidence only
            else:
                outcome = "changed"
                self._record_change(s, ChangeRecord(
                    source_id=sid, url=fetched.url, detected_at=now, kind="changed", title=doc.title[:500],
                    prev_snapshot_id=last.id, new_snapshot_id=snap.id, added_text=d.added_text,
                    removed_text=d.removed_text, diff_text=d.unified(),
                ), matches)
                rec.last_change_at = now
            s.add(self._attempt(fetched, outcome))
            self._success(s, rec, fetched, now)
        self._log_outcome(sid, outcome, matches)
        return Outcome(sid, outcome, changes=int(outcome == "changed"), matched=int(bool(matches)))

    def _process_items(self, fetched: Fetched, src: SourceConfig, parsed: Parsed, digest: str,
                       last: SnapshotRecord | None) -> Outcome:
        sid = src.id
        now = self.clock()
        items = parsed.items or []
        with self.store.session() as s:
            known = {r.key: r for r in s.scalars(select(ItemRecord).where(ItemRecord.source_id == sid))}
        new_items = [it for it in items if it.key not in known]
        classified = []
        if last is not None:
            for it in new_items:
                text = "\n\n".join(x for x in (it.title, it.summary) if x)
                classified.append((it, text, self._classify(sid, text)))
        n_changes = n_matched = 0
        with self.store.session() as s:
            rec = s.get(SourceRecord, sid)
            snap = self._snapshot(s, fetched, digest, items_text(items), parsed.title)
            rec.last_snapshot_id = snap.id
            for it in items:
                row = known.get(it.key)
                if row is None:
                    s.add(ItemRecord(source_id=sid, key=it.key[:2000], url=it.url, title=it.title[:1000],
                                     published=it.published[:100], summary=it.summary, first_seen_at=now, last_seen_at=now))
                else:
                    row = s.merge(row)
                    row.last_seen_at, row.removed_at = now, None
            for it, text, matches in classified:
                self._record_change(s, ChangeRecord(
                    source_id=sid, url=it.url or fetched.url, detected_at=now, kind="new_item", title=it.title[:500],
                    item_key=it.key[:2000], item_published=it.published[:100], prev_snapshot_id=last.id,
                    new_snapshot_id=snap.id, added_text=text, diff_text="\n".join("+ " + line for line in text.splitlines()),
                ), matches)
                n_changes += 1
                n_matched += bool(matches)
            if n_changes:
                rec.last_change_at = now
                rec.last_new_item_at = now
            outcome = "baseline" if last is None else ("changed" if n_changes else "unchanged")
            s.add(self._attempt(fetched, outcome))
            self._success(s, rec, fetched, now)
        self._log_outcome(sid, outcome, [], n_changes, n_matched)
        return Outcome(sid, outcome, changes=n_changes, matched=n_matched)

    @staticmethod
    def _log_outcome(sid: str, outcome: str, matches, n: int | None = None, n_matched: int | None = None) -> None:
        if outcome == "changed":
            topics = ", ".join(m.topic for m in matches)
            extra = f"{n} new item(s), {n_matched} matched" if n is not None else (f"matched {topics}" if topics else "no topic matched")
            logger.info("source %s: changed (%s)", sid, extra)
        else:
            logger.info("source %s: %s", sid, outcome)
