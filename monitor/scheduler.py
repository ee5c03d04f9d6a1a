"""`govwatch run`: the scheduler loop, a coroutine on the one reactor/asyncio loop.

One crawl stays open for the life of the process. The `schedule` library is the clock: every tick
the sources that are due (each source's own `every`, with jitter and failure backoff, is kept in
the database, so restarts and several workers agree) and not already in flight here are leased
and fed to the crawl, so a slow or hung source delays no other by more than the tick. Alert
delivery retries run on their own cadence (and right after a pass that found changes; the Save
Page Now queue is worked after each delivery and on its own cadence), and a
heartbeat that `govwatch health` reads is written every pass, also while work is in flight. Jobs
only start tasks, with an overlap guard, and every job is wrapped: an exception in a job must not
end the loop.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

import schedule
from sqlalchemy import select

from monitor import memory
from state.models import WorkerRecord

logger = logging.getLogger(__name__)
DIGEST_POLL = 30.0  # seconds between looks for due digests (a digest goes out this late at most)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def heartbeat(store, worker: str, *, tick: float, cycle_done: bool = False, stopped: bool = False) -> None:
    """A scheduler is alive (`last_beat_at`); `cycle_done`: it completed a pass, i.e. fed its crawl
    what was due (`last_cycle_at`, judged by `govwatch health`, and `cycles`)."""
    with store.session() as s:
        w = s.get(WorkerRecord, worker)
        if w is None:
            w = WorkerRecord(id=worker, tick_seconds=tick)
            s.add(w)
        now = _now()
        w.last_beat_at = now
        if cycle_done:
            w.last_cycle_at = now
            w.cycles += 1
        if stopped:
            w.stopped_at = now


def health_status(store, max_age: float) -> tuple[bool, list[str]]:
    """(healthy, lines): healthy when a running scheduler completed a cycle within `max_age` s."""
    now = _now()
    with store.session() as s:
        workers = list(s.scalars(select(WorkerRecord).order_by(WorkerRecord.last_beat_at.desc())))
    live = [w for w in workers if w.stopped_at is None and w.last_beat_at >= now - timedelta(seconds=max_age)]
    lines = []
    healthy = False
    for w in live:
        age = (now - w.last_cycle_at).total_seconds() if w.last_cycle_at else None
        ok = age is not None and age <= max_age
        healthy |= ok
        lines.append(f"worker {w.id}: {w.cycles} cycle(s), last completed "
                     + (f"{age:.0f}s ago" if age is not None else "never") + ("" if ok else f" (limit {max_age:.0f}s)"))
    if not live:
        lines.append("no scheduler is running (no heartbeat within "
                     f"{max_age:.0f}s; `govwatch run` starts one)")
    return healthy, lines


def run_forever(cfg, store, *, max_cycles: int | None = None) -> int:
    from monitor import archive, subscriptions, timestamp
    from monitor.delivery import deliver
    from monitor.pipeline import Monitor
    from spiders.fetch import Fetcher, run_in_reactor

    sc = cfg.scheduler
    memory.tune_heap()
    mon = Monitor(cfg, store)
    memory.trim()  # what reading a long watch list freed (20,000 sources: ~10 MB) goes back at once

    def abandoned() -> None:
        mon.abandon()
        heartbeat(store, mon.worker, tick=sc.tick, stopped=True)

    async def main(stop_event: asyncio.Event) -> int:
        fetcher = Fetcher(cfg.fetch)
        sched = schedule.Scheduler()
        running: dict[str, asyncio.Task | None] = {"deliver": None, "beat": None, "archive": None, "stamp": None,
                                                   "digests": None, "watches": None}  # delivery kicks archive
        tick = asyncio.Event()
        tick.set()  # feed at once, not after the first tick
        passes = {"n": 0}
        await asyncio.to_thread(heartbeat, store, mon.worker, tick=sc.tick)

        async def delivery() -> None:
            await asyncio.to_thread(deliver, cfg, store)
            kick("archive", archiving)  # Save Page Now after the alerts, never before them

        async def archiving() -> None:
            await asyncio.to_thread(archive.work, cfg, store, stop=stop_event.is_set)

        async def stamping() -> None:
            await asyncio.to_thread(timestamp.stamp_day, cfg, store)

        async def digests() -> None:
            """Subscriptions' digests that are due: queued, then delivered at once."""
            queued = await asyncio.to_thread(subscriptions.send_due_digests, store, cfg)
            if queued:
                kick("deliver", delivery)

        async def refresh() -> None:
            await asyncio.to_thread(mon.refresh_watches)

        async def beat() -> None:
            await asyncio.to_thread(heartbeat, store, mon.worker, tick=sc.tick)

        def kick(name: str, factory) -> None:
            task = running.get(name)
            if task is not None and not task.done():
                return  # overlap guard: the previous one is still running
            running[name] = asyncio.ensure_future(_guarded(name, factory))

        async def on_tick(crawl) -> bool:
            """Between two feeds of the crawl: the heartbeat of a pass (written while work is in
            flight, so a slow source never makes a live scheduler look dead), what came back since
            the last pass, then the wait for the next tick. With --max-cycles (tests and soak runs)
            a pass also waits for the work of the one before, like a cycle."""
            if passes["n"]:
                if max_cycles is not None:
                    await _first(crawl.idle(), stop_event.wait())
                fed, inflight = mon.last_pass
                await asyncio.to_thread(heartbeat, store, mon.worker, tick=sc.tick, cycle_done=True)
                # emptied in place: the crawl appends to this very list (a new one left every
                # later outcome in the old list, unread and kept for good: 20,000 sources every
                # 5 minutes grew the process ~1 MB a minute, and no pass was logged or alerted at once)
                outcomes = list(mon.tally)
                mon.tally.clear()
                if outcomes:
                    checked = sum(1 for o in outcomes if not o.part)
                    logger.info("pass %d: %d source(s) checked, %d change(s), %d matched; %d in flight", passes["n"], checked,
                                sum(o.changes for o in outcomes), sum(o.matched for o in outcomes), inflight)
                    if any(o.changes for o in outcomes):
                        kick("deliver", delivery)  # alert now, not at the next delivery tick
                    memory.trim()
            if max_cycles is not None and passes["n"] >= max_cycles:
                return False  # --max-cycles: no feed after the last one
            await _first(tick.wait(), stop_event.wait())
            tick.clear()
            passes["n"] += 1
            return not stop_event.is_set()

        async def clock() -> None:
            while not stop_event.is_set():
                try:
                    sched.run_pending()
                except Exception:  # a job that raises must not end the scheduler
                    logger.exception("scheduler job failed")
                try:
                    await asyncio.wait_for(stop_event.wait(), timeout=min(1.0, max(sched.idle_seconds or 1.0, 0.05)))
                except asyncio.TimeoutError:
                    pass

        sched.every(sc.tick).seconds.do(tick.set)
        sched.every(sc.delivery_every).seconds.do(kick, "deliver", delivery)
        sched.every(max(sc.tick, 10)).seconds.do(kick, "beat", beat)
        sched.every(min(sc.tick, DIGEST_POLL)).seconds.do(kick, "digests", digests)
        sched.every(min(sc.tick, DIGEST_POLL)).seconds.do(kick, "watches", refresh)  # sources added in the web UI
        if cfg.archive.save_page_now.enabled:
            sched.every(max(cfg.archive.save_page_now.poll_every, 1.0)).seconds.do(kick, "archive", archiving)
        if cfg.archive.timestamp_url:
            sched.every(1).hours.do(kick, "stamp", stamping)  # the day's chain head, once a UTC day
        clock_task = asyncio.ensure_future(clock())
        logger.info("scheduler %s started: %d source(s), tick %gs", mon.worker, len(cfg.sources), sc.tick)
        try:
            await mon.run_continuously(fetcher, stop_event, on_tick)
        finally:
            clock_task.cancel()
        if not stop_event.is_set():
            await delivery()  # --max-cycles: what the last feeds found is delivered before the exit
        for task in running.values():
            if task is not None and not task.done():
                await task
        await asyncio.to_thread(mon.release_leases)
        await asyncio.to_thread(heartbeat, store, mon.worker, tick=sc.tick, stopped=True)
        logger.info("scheduler %s stopped after %d cycle(s)", mon.worker, passes["n"])
        return 0

    return run_in_reactor(main, stop_timeout=sc.stop_timeout, on_abandon=abandoned)


async def _first(*aws) -> None:
    """Until the first of the awaitables is done (the others are cancelled)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _guarded(name: str, factory) -> None:
    try:
        await factory()
    except Exception:
        logger.exception("%s failed", name)
