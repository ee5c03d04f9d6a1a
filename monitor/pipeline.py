"""The composition of one check: a cycle leases the due sources and crawls them, and each fetched
response is judged and handed to the step that owns it (health, documents, items). The steps:
`leases` (what is due, who holds it), `health` (attempts, failures, blocks, alerts), `documents`
(a page or PDF's new version), `items` (listings, feeds, APIs), `recorder` (snapshots, changes)."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Awaitable, Callable, Iterable

from sqlalchemy import select

from monitor import subscriptions, watches
from monitor.config import Config, SourceConfig
from monitor.crawl import Crawl
from monitor.context import Context, CycleReport, Outcome, logger, part_of, utcnow
from monitor.documents import Documents
from monitor.health import QUIET_SECONDS, Health, healthy
from monitor.items import Items
from monitor.leases import Leases
from monitor.recorder import Recorder
from spiders.blocks import judge
from spiders.kinds import FetchRequest, Fetched
from state.errors import BlindError, GovwatchError
from state.models import SourceRecord
from state.store import Store, chunks, sha256
from state.workers import worker_id

__all__ = ["Monitor", "CycleReport", "Outcome", "QUIET_SECONDS"]


_REQUEST_COLUMNS = tuple(getattr(SourceRecord, c) for c in (
    "id", "url", "etag", "last_modified", "health", "every_seconds", "last_snapshot_id", "needs_browser",
    "consecutive_failures", "consecutive_blocks", "health_alerted"))


class Monitor:
    """Composes the layers. `process()` is called for every fetched response (off the event loop,
    one at a time: SQLite has one writer)."""

    def __init__(self, config: Config, store: Store, *, clock: Callable[[], datetime] = utcnow, worker: str | None = None):
        watches.merge(config, store)  # the sources admins added in the web UI, beside the file's
        self.ctx = Context(config, store, clock, worker or worker_id())
        self.config, self.store, self.clock, self.worker = config, store, clock, self.ctx.worker
        self.leases = Leases(self.ctx)
        self.health = Health(self.ctx)
        self.recorder = Recorder(self.ctx)
        self.documents = Documents(self.ctx, self.health, self.recorder)
        self.items = Items(self.ctx, self.health, self.recorder, self.documents)
        self._first_time: set[str] = set()  # sources without a snapshot yet: nothing to look up
        self.tally: list[Outcome] = []  # `run`: outcomes since the scheduler last read them
        self.last_pass = (0, 0)  # `run`: (sources fed, sources in flight) at the last feed
        self._reread: set[str] = set()  # blind (`empty`) sources: parsed even when the bytes are the same

    # -- sources and leases (see monitor/leases.py) --------------------------------------
    def refresh_watches(self) -> int:
        """`run`: watches added in the web UI since the start join the crawl (their rows made)."""
        added = watches.merge(self.config, self.store)
        if added:
            self.ctx.add_sources(added)
            self.sync_sources()
            logger.info("%d watch(es) added in the web UI: %s", len(added), ", ".join(s.id for s in added))
        return len(added)

    def sync_sources(self) -> None:
        self.leases.sync_sources()
        subscriptions.sync_config(self.store, self.config.subscriptions, self.clock())

    def due_sources(self, *, force: bool = False, only: Iterable[str] | None = None,
                    exclude: Iterable[str] = ()) -> list[SourceConfig]:
        return self.leases.due_sources(force=force, only=only, exclude=exclude)

    def renew_leases(self) -> None:
        self.leases.renew()

    def release_leases(self) -> None:
        self.leases.release()

    def requests_for(self, sources: list[SourceConfig]) -> list[FetchRequest]:
        """The first request of each source, with its stored validators (one query for all)."""
        with self.store.session() as s:
            # the columns read below, not whole records (20,000 of them at a large watch list's start)
            recs = {r.id: r for part in chunks([src.id for src in sources]) for r in s.execute(
                select(*_REQUEST_COLUMNS).where(SourceRecord.id.in_(part)))}
        out = []
        for src in sources:
            kind, rec = self.ctx.kinds[src.id], recs.get(src.id)
            url = kind.request_url(src) if hasattr(kind, "request_url") else src.url
            same_url = rec is not None and rec.url == src.url
            etag, lm = (rec.etag, rec.last_modified) if same_url else ("", "")
            if rec is not None and rec.health == "empty":  # blind: read it again in full (the selectors may be fixed)
                etag, lm = "", ""
                self._reread.add(src.id)
            else:
                self._reread.discard(src.id)
            render = "browser" if self.ctx.renders(src, rec) else ""
            out.append(FetchRequest(source_id=src.id, url=url, etag=etag, last_modified=lm, headers=self.ctx.headers(src),
                                    render=render))
            # what this run may skip, decided afresh each time a source is fed
            if rec is not None and healthy(rec) and not src.expect_update_within:
                self.health.quiet_every[src.id] = float(rec.every_seconds)
            else:
                self.health.quiet_every.pop(src.id, None)
            if rec is None or rec.last_snapshot_id is None:
                self._first_time.add(src.id)
            else:
                self._first_time.discard(src.id)
            self.items.begin(src.id, self.clock())
        return out

    # -- crawls (see monitor/crawl.py) ---------------------------------------------------
    async def run_cycle(self, fetcher, *, force: bool = False, only: Iterable[str] | None = None,
                        stop_event: asyncio.Event | None = None, progress=None) -> CycleReport:
        """`govwatch check`: the due sources (all with `force`, or `only`) once, to the end."""
        report = CycleReport(started_at=self.clock())

        def on_outcome(outcome: Outcome) -> None:
            report.outcomes.append(outcome)
            if progress:
                progress.advance(outcome)

        async with Crawl(self, fetcher, on_outcome) as crawl:
            await crawl.feed_due(force=force, only=only, progress=progress)
            report.skipped = list(self.leases.skipped)
            await crawl.finish(stop_event)
        report.interrupted = crawl.interrupted
        report.finished_at = self.clock()
        return report

    async def run_continuously(self, fetcher, stop_event: asyncio.Event, on_tick: Callable[[Crawl], Awaitable[bool]]) -> None:
        """`govwatch run`: one crawl fed for as long as the scheduler runs. `on_tick` (the
        scheduler's clock) is awaited between feeds and says whether to feed again; a source is fed
        when it is due and not in flight here, so a slow one delays no other."""
        async with Crawl(self, fetcher, self.tally.append) as crawl:
            while not stop_event.is_set() and await on_tick(crawl):
                fed = await crawl.feed_due()
                self.last_pass = (fed, len(crawl.inflight))
            await crawl.finish(stop_event)

    def keep_up(self) -> None:
        self.flush_quiet(older_than=QUIET_SECONDS)
        self.leases.renew()

    def flush_quiet(self, *, older_than: float = 0.0) -> None:
        self.health.flush_quiet(older_than=older_than)

    def abandon(self) -> None:
        """The reactor gave up on in-flight work (a signal and stop_timeout): write what was queued,
        then give back the leases."""
        self.ctx.extractor.close()  # first: a database too sick to release the leases must not keep it alive
        try:
            self.flush_quiet()
        finally:
            self.release_leases()

    # -- pages behind a JavaScript wall (spiders/browser.py) ------------------------------
    def _render_instead(self, fetched: Fetched, src: SourceConfig) -> FetchRequest | None:
        """`render: auto`: a JavaScript challenge answered over plain HTTP is fetched again
        through the browser (None when it cannot be: no browser, render: http, or it was)."""
        req = fetched.request
        if not (self.ctx.browser and src.may_render(req.render)):
            return None
        logger.info("source %s: a JavaScript challenge over HTTP; rendering it in the browser", src.id)
        return replace(req, render="browser", etag="", last_modified="")

    def _remember_browser(self, src: SourceConfig) -> None:
        """A page the browser read for `render: auto` is rendered from now on (shown by `sources`)."""
        if src.render != "auto":
            return
        with self.store.session() as s:
            rec = s.get(SourceRecord, src.id)
            if rec is not None and not rec.needs_browser:
                rec.needs_browser = True
                logger.info("source %s: needs the browser (a JavaScript wall over plain HTTP); remembered", src.id)

    # -- one response -------------------------------------------------------------------
    def prepare(self, fetched: Fetched) -> None:
        """On the reactor thread, as a response arrives, before `process`: a page or document's
        extraction is started in the worker process (monitor/offload.py). Never raises."""
        try:
            src = self.config.source(fetched.request.source_id)
            self.documents.prepare(fetched, src)
        except Exception as e:  # the writer extracts it then, as without the worker
            logger.debug("source %s: not extracted ahead (%s)", fetched.request.source_id, e)

    def process(self, fetched: Fetched) -> tuple[Outcome, list[FetchRequest]]:
        """Store what one response means; returns the outcome and the follow-up requests."""
        try:
            return self._process_one(fetched)
        finally:
            self.ctx.extractor.drop(fetched.body)  # a job the response did not need (the same bytes...)
            self.flush_quiet(older_than=QUIET_SECONDS)  # queued outcomes wait at most ~QUIET_SECONDS

    def _process_one(self, fetched: Fetched) -> tuple[Outcome, list[FetchRequest]]:
        sid = fetched.request.source_id
        part = part_of(fetched.request)
        try:
            return self._route(fetched)
        except Exception as e:  # never let one source break the cycle; record it
            if not isinstance(e, GovwatchError):
                logger.exception("source %s: unexpected error", sid)
            reason = str(e) if isinstance(e, GovwatchError) else f"internal error: {type(e).__name__}: {e}"
            if part == "document":
                return self.items.doc_failed(fetched, reason), []
            self.health.record_failure(fetched, reason, blind=isinstance(e, BlindError))
            return Outcome(sid, "error", error=reason, part=part), []

    def _route(self, fetched: Fetched) -> tuple[Outcome, list[FetchRequest]]:
        """Judge a response and hand it to the step that owns it."""
        sid = fetched.request.source_id
        src = self.config.source(sid)
        part = part_of(fetched.request)
        health, items = self.health, self.items
        if part == "document":
            return items.process_doc(fetched, src), []
        if fetched.error:
            health.record_failure(fetched, fetched.error)
            return Outcome(sid, "error", error=fetched.error, part=part), []
        if fetched.status == 304 and judge(fetched, seen_before=True) is None:
            # the server says unchanged: nothing to read or compare
            return health.unchanged(fetched, "not_modified"), items.pending_docs(src)
        page_key = fetched.request.item_key
        if not page_key and sid in self._first_time:
            self._first_time.discard(sid)
            last = None
        else:
            with self.store.session() as s:
                last = self.store.latest_snapshot(s, sid, page_key)
        verdict = judge(fetched, seen_before=last is not None)
        if verdict is not None and verdict.kind == "blocked":
            if verdict.challenge and not part:
                again = self._render_instead(fetched, src)
                if again is not None:
                    return Outcome(sid, "render", part=part), [again]
                if src.may_render(fetched.request.render):  # no browser: say how to get one
                    return health.record_block(fetched, f"{verdict.reason}; {self.ctx.browser_hint}"), []
            return health.record_block(fetched, verdict.reason), []
        if fetched.request.render == "browser" and not part and verdict is None and (fetched.status or 0) < 400:
            self._remember_browser(src)  # the browser read the page itself: not an error, not a removal
        if verdict is not None and verdict.kind == "removed":
            return self.documents.removed(fetched, src, verdict.reason, last), []
        if fetched.status == 304:
            return health.unchanged(fetched, "not_modified"), items.pending_docs(src)
        if fetched.status is not None and fetched.status >= 400:
            reason = f"HTTP {fetched.status}"
            health.record_failure(fetched, reason)
            return Outcome(sid, "error", error=reason, part=part), []

        digest = sha256(fetched.body)
        if last is not None and last.body_sha256 == digest and sid not in self._reread:
            # the same bytes as last time: no parsing, no extraction
            return health.unchanged(fetched, "unchanged"), items.pending_docs(src)

        parsed = self.ctx.kinds[sid].parse(fetched, src)
        if parsed.items is not None:
            outcome = items.process(fetched, src, parsed, digest, last)
            return outcome, items.next_page(src, fetched, parsed) + items.pending_docs(src)
        doc = self.documents.extract(fetched, src, parsed)
        return self.documents.process(fetched, src, doc, digest, last), []
