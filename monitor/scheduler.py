"""`govwatch run`: the scheduler loop, a coroutine on the one reactor/asyncio loop.

The `schedule` library drives two jobs: a check of due sources every tick (each source's own
`every`, with jitter and failure backoff, is kept in the database so restarts and several
workers agree) and alert delivery retries on their own cadence. Jobs only start tasks, with an
overlap guard, and every job is wrapped: an exception in a job must not end the loop.
"""
from __future__ import annotations

import asyncio
import logging

import schedule

logger = logging.getLogger(__name__)


def run_forever(cfg, store, *, tick: float = 30.0, delivery_every: float = 30.0, max_cycles: int | None = None) -> int:
    from monitor.cli import deliver
    from monitor.pipeline import Monitor
    from spiders.fetch import Fetcher, run_in_reactor

    async def main(stop_event: asyncio.Event) -> int:
        mon = Monitor(cfg, store)
        fetcher = Fetcher(cfg.fetch)
        sched = schedule.Scheduler()
        running: dict[str, asyncio.Task | None] = {"cycle": None, "deliver": None}
        cycles = {"n": 0}

        async def cycle() -> None:
            report = await mon.run_cycle(fetcher, stop_event=stop_event)
            cycles["n"] += 1
            if report.outcomes:
                logger.info("cycle %d: %d source(s) checked, %d change(s), %d matched", cycles["n"], len(report.outcomes),
                            report.changes, report.matched)
            if not stop_event.is_set():
                await asyncio.to_thread(deliver, cfg, store)

        async def delivery() -> None:
            await asyncio.to_thread(deliver, cfg, store)

        def kick(name: str, factory) -> None:
            task = running[name]
            if task is not None and not task.done():
                return  # overlap guard: the previous one is still running
            running[name] = asyncio.ensure_future(_guarded(name, factory))

        sched.every(tick).seconds.do(kick, "cycle", cycle)
        sched.every(delivery_every).seconds.do(kick, "deliver", delivery)
        kick("cycle", cycle)  # start at once, not after the first tick
        logger.info("scheduler started: %d source(s), tick %gs", len(cfg.sources), tick)
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
        logger.info("scheduler stopped")
        return 0

    return run_in_reactor(main)


async def _guarded(name: str, factory) -> None:
    try:
        await factory()
    except Exception:
        logger.exception("%s failed", name)
