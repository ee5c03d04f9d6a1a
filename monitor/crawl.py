"""A crawl of due sources: one long-lived Scrapy crawl fed with sources as they fall due, the one
writer thread that stores every response in order, and this worker's leases kept while work is in
flight. `govwatch check` feeds it once and waits; `govwatch run` feeds it every tick."""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from monitor.context import Outcome, logger, part_of
from spiders.kinds import Fetched
from state.errors import GovwatchError


class Crawl:
    """Use as `async with Crawl(monitor, fetcher, on_outcome) as crawl:` then `await crawl.feed_due()`
    as often as wanted and `await crawl.finish(stop_event)` at the end."""

    def __init__(self, mon, fetcher, on_outcome: Callable[[Outcome], None]):
        """`mon`: the Monitor (monitor/pipeline.py) whose steps store each response."""
        self.mon = mon
        self.fetcher = fetcher
        self.on_outcome = on_outcome
        self.inflight: dict[str, float] = {}  # source id -> when its own request was fed (monotonic)
        self.outstanding = 0  # requests fed or followed whose result has not been stored yet
        self._idle = asyncio.Event()
        self.interrupted = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="govwatch-writer")
        self._closed = False
        self._feed = None
        self._renewer: asyncio.Task | None = None

    async def __aenter__(self) -> "Crawl":
        self._loop = asyncio.get_running_loop()
        self._feed = self.fetcher.open_feed(self._on_result)
        self._renewer = asyncio.ensure_future(self._keep_leases())
        return self

    async def __aexit__(self, exc_type, *exc) -> None:
        if exc_type is GeneratorExit:
            # Closed while suspended: garbage collection (often at interpreter exit) of a crawl the
            # reactor abandoned (a signal, then stop_timeout), after on_abandon wrote the queued
            # outcomes and gave back the leases. A closed coroutine cannot await, and at exit the
            # writer pool refuses work ("cannot schedule new futures after ... shutdown"): stop here.
            self._closed = True
            return
        self._renewer.cancel()
        try:
            await self._renewer
        except asyncio.CancelledError:
            pass
        if not self._feed.done.done():  # an exception left the crawl running: end it
            await self.fetcher.stop()
            await asyncio.gather(self._feed.done, return_exceptions=True)
        self._closed = True  # from here on nothing is handed to the writer
        await self._on_writer(self.mon.flush_quiet)
        self._writer.shutdown(wait=True)
        await asyncio.to_thread(self.mon.ctx.extractor.close)
        await asyncio.to_thread(self.mon.release_leases)  # e.g. a source whose response never came

    async def _on_writer(self, fn, *args, **kw):
        return await self._loop.run_in_executor(self._writer, lambda: fn(*args, **kw))

    # -- feeding ------------------------------------------------------------------------
    async def feed_due(self, *, force: bool = False, only: Iterable[str] | None = None,
                       progress=None) -> int:
        """Lease the sources due now that are not in flight here, and feed their first requests."""
        mon = self.mon
        await self._on_writer(mon.sync_sources)
        stale = [sid for sid, t in self.inflight.items() if time.monotonic() - t > mon.leases.seconds]
        for sid in stale:  # its response never came back (its lease has run out too): due again
            logger.warning("source %s: no response within the lease (%gs); it is due again", sid, mon.leases.seconds)
            del self.inflight[sid]
        exclude = set(self.inflight)

        def due_now() -> list:
            # One writer job: the quiet outcomes queued so far are written (their next due time and
            # the lease given back) and only then is the database asked what is due. A response
            # stored after `exclude` was taken is written by this flush; one stored before this job
            # ran is in `exclude`. As two jobs, a response stored between the flush and the query
            # left its source due (and leased to us) in the database: it was fetched twice.
            mon.flush_quiet()
            return mon.due_sources(force=force, only=only, exclude=exclude)

        due = await self._on_writer(due_now)
        requests = await self._on_writer(mon.requests_for, due)
        if progress:
            progress.start(len(requests))
        now = time.monotonic()
        for r in requests:
            self.inflight[r.source_id] = now
        self._count(len(requests))
        self._feed.submit(requests)
        return len(requests)

    def _count(self, n: int) -> None:
        self.outstanding += n
        if self.outstanding <= 0:
            self._idle.set()
        else:
            self._idle.clear()

    async def idle(self) -> None:
        """Until every request fed so far, and every follow-up, has been stored."""
        if self.outstanding > 0:
            await self._idle.wait()

    async def finish(self, stop_event: asyncio.Event | None = None) -> None:
        """Feed nothing more and wait for what is in flight (and its follow-ups); on the stop event,
        end the crawl: in-flight responses finish and are stored, nothing half-written."""
        closing = asyncio.ensure_future(self._feed.close())
        waiter = asyncio.ensure_future(stop_event.wait()) if stop_event else None
        try:
            done, _ = await asyncio.wait([f for f in (closing, waiter) if f], return_when=asyncio.FIRST_COMPLETED)
            if waiter and waiter in done and not closing.done():
                self.interrupted = True
                await self.fetcher.stop()
                await closing
            else:
                closing.result()
        finally:
            if waiter:
                waiter.cancel()

    # -- results ------------------------------------------------------------------------
    async def _on_result(self, fetched: Fetched):
        if self._closed:  # abandoned: its lease is given back, it is simply fetched again
            return []
        self.mon.prepare(fetched)  # a page's extraction starts in the worker process while it waits its turn
        try:
            outcome, follow = await self._on_writer(self.mon.process, fetched)
        except BaseException:
            self._count(-1)
            raise
        if outcome.outcome == "render":  # handed on to the browser: its answer is the source's outcome
            self._count(len(follow) - 1)
            return follow
        if not part_of(fetched.request):
            self.inflight.pop(fetched.request.source_id, None)
        self.on_outcome(outcome)
        self._count(len(follow) - 1)
        return follow

    async def _keep_leases(self) -> None:
        # On the writer thread: serialised with the writes of this worker (a renewal beside a
        # batch update of the same rows could deadlock on PostgreSQL); it also writes queued
        # quiet outcomes when no response has come for a while.
        while True:
            await asyncio.sleep(max(self.mon.leases.seconds / 3, 0.2))
            try:
                await self._on_writer(self.mon.keep_up)
            except GovwatchError as e:
                logger.error("could not renew this worker's leases (%s); trying again", e)
