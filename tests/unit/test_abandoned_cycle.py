"""A crawl the reactor abandoned (a signal, then in-flight work past scheduler.stop_timeout) is a
coroutine left suspended in it; `on_abandon` writes what was queued and gives the leases
back. When that coroutine is closed later (garbage collection at interpreter exit), the crawl's
cleanup (Crawl.__aexit__) must not run again: it used to submit to the writer after the interpreter had shut its thread
pools down ("RuntimeError: cannot schedule new futures after ... shutdown", a traceback in the
log of a worker stopped on a loaded machine: the flaky tests/e2e/test_workers.py)."""
from __future__ import annotations

import asyncio
import concurrent.futures.thread as cf_thread

import pytest
import yaml

from monitor.config import load_config
from monitor.pipeline import Monitor
from state.models import SourceRecord
from state.store import Store


class HungFeed:
    """An open crawl whose in-flight request never finishes (the reactor will abandon it)."""

    def __init__(self, started: asyncio.Event):
        self.started = started
        self.done = asyncio.get_running_loop().create_future()

    def submit(self, requests) -> None:
        self.started.set()

    async def close(self) -> None:
        await self.done


class HungFetcher:
    def __init__(self):
        self.started = asyncio.Event()

    def open_feed(self, on_result) -> HungFeed:
        return HungFeed(self.started)

    async def stop(self):
        pass


@pytest.mark.parametrize("interpreter_exiting", [False, True], ids=["closed-by-gc", "closed-at-interpreter-exit"])
def test_a_closed_abandoned_cycle_does_no_second_cleanup(tmp_path, monkeypatch, interpreter_exiting):
    path = tmp_path / "govwatch.yaml"
    path.write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path}/g.db", "include_defaults": False,
                                    "fetch": {"allow_private_networks": True},
                                    "sources": [{"id": "a", "url": "http://127.0.0.1:9/a"}]}))
    cfg = load_config(path, env={})
    store = Store(cfg.database)
    mon = Monitor(cfg, store)
    loop = asyncio.new_event_loop()
    try:
        fetcher = HungFetcher()
        stop_event = asyncio.Event()
        coro = mon.run_cycle(fetcher, force=True, stop_event=stop_event)
        task = loop.create_task(coro)

        async def until_crawling():
            await fetcher.started.wait()
            stop_event.set()  # the signal: the cycle asks the crawl to stop, and waits for it
            await asyncio.sleep(0.1)

        loop.run_until_complete(until_crawling())
        assert not task.done()
        with store.session() as s:
            assert s.get(SourceRecord, "a").lease_owner == mon.worker
        # stop_timeout passed: the reactor stops with the cycle suspended, and on_abandon runs
        mon.abandon()
        with store.session() as s:
            assert s.get(SourceRecord, "a").lease_owner == ""
        if interpreter_exiting:
            monkeypatch.setattr(cf_thread, "_shutdown", True)  # what Python's exit does before collecting
        coro.close()  # what garbage collection does to the suspended coroutine: nothing may raise
        task._log_destroy_pending = False  # this test closed its coroutine itself
    finally:
        monkeypatch.setattr(cf_thread, "_shutdown", False)
        task.cancel() if not task.done() else None
        loop.close()
