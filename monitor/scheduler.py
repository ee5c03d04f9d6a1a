"""`govwatch run`: the scheduler loop, a coroutine on the one reactor/asyncio loop.

The `schedule` library drives the jobs: a check of due sources every tick (each source's own
`every`, with jitter and failure backoff, is kept in the database, so restarts and several
workers agree), alert delivery retries on their own cadence, and a heartbeat that
`govwatch health` reads. Jobs only start tasks, with an overlap guard, and every job is
wrapped: an exception in a job must not end the loop.
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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def heartbeat(store, worker: str, *, tick: float, cycle_done: bool = False, stopped: bool = False) -> None:
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
    from monitor.delivery import deliver
    from monitor.pipeline import Monitor
    from spiders.fetch import Fetcher, run_in_reactor

    sc = cfg.scheduler
    memory.limit_arenas()
    mon = Monitor(cfg, store)

    def abandoned() -> None:
        mon.abandon()
        heartbeat(store, mon.worker, tick=sc.tick, stopped=True)

    async def main(stop_event: asyncio.Event) -> int:
        fetcher = Fetcher(cfg.fetch)
        sched = schedule.Scheduler()
        running: dict[str, asyncio.Task | None] = {"cycle": None, "deliver": None}
        cycles = {"n": 0}
        await asyncio.to_thread(heartbeat, store, mon.worker, tick=sc.tick)

        async def cycle() -> None:
            report = await mon.run_cycle(fetcher, stop_event=stop_event)
            if report.interrupted:
                return
            cycles["n"] += 1
            await asyncio.to_thread(heartbeat, store, mon.worker, tick=sc.tick, cycle_done=True)
            if report.outcomes:
                logger.info("cycle %d: %d source(s) checked, %d change(s), %d matched", cycles["n"], len(report.sources),
                            report.changes, report.matched)
            await asyncio.to_thread(deliver, cfg, store)
            memory.trim()

        async def delivery() -> None:
            await asyncio.to_thread(deliver, cfg, store)

        async def beat() -> None:
            await asyncio.to_thread(heartbeat, store, mon.worker, tick=sc.tick)

        def kick(name: str, factory) -> None:
            if name == "cycle" and max_cycles is not None and cycles["n"] >= max_cycles:
                return  # --max-cycles: no cycle after the last one
            task = running.get(name)
            if task is not None and not task.done():
                return  # overlap guard: the previous one is still running
            running[name] = asyncio.ensure_future(_guarded(name, factory))

        sched.every(sc.tick).seconds.do(kick, "cycle", cycle)
        sched.every(sc.delivery_every).seconds.do(kick, "deliver", delivery)
        sched.every(max(sc.tick, 10)).seconds.do(kick, "beat", beat)
        kick("cycle", cycle)  # start at once, not after the first tick
        logger.info("scheduler %s started: %d source(s), tick %gs", mon.worker, len(cfg.sources), sc.tick)
        while not stop_event.is_set():
            try:
                sched.run_pending()
            except Exception:  # a job that raises must not end the scheduler
                logger.exception("scheduler job failed")
            if max_cycles is not None and cycles["n"] >= max_cycles:
                break
            try:
                await asyncio.wait_for(stop_event.wait(), timeout=min(1.0, max(sched.idle_seconds or 1.0, 0.05)))
            except asyncio.TimeoutError:
                pass
        for task in running.values():
            if task is not None and not task.done():
                await task  # the cycle ends its crawl itself on the stop event; nothing half-written
        await asyncio.to_thread(mon.release_leases)
        await asyncio.to_thread(heartbeat, store, mon.worker, tick=sc.tick, stopped=True)
        logger.info("scheduler %s stopped after %d cycle(s)", mon.worker, cycles["n"])
        return 0

    return run_in_reactor(main, stop_timeout=sc.stop_timeout, on_abandon=abandoned)


async def _guarded(name: str, factory) -> None:
    try:
        await factory()
    except Exception:
        logger.exception("%s failed", name)
