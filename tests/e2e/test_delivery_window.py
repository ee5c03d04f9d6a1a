"""A crash repeats at most the one alert in flight (issue 16.10): each delivery is marked sent in
its own commit as soon as its target accepts it, and a process has one delivery in flight at a
time (delivery passes of one process used to send side by side: the cycle's and the delivery
job's before issue 15, the final pass of `run --max-cycles` and the kicked one after it, so a
SIGKILL could leave two accepted-but-unrecorded messages to be sent again)."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler

from tests.e2e.test_monitor import RELEVANT, page
from tests.e2e.test_operations import GovwatchProcess, query, sqlite_path, wait_until
from tests.servers import _Server

SOURCES = 4
TARGETS = 3                     # 12 outbox rows: more than one claim batch (alerts/outbox.py CLAIM_BATCH)


class SlowReceiver:
    """A json:// receiver that takes `delay` seconds to answer, counts the POSTs in flight at once,
    and can SIGKILL the sender when the k-th POST arrives (after recording it: accepted, unanswered)."""

    def __init__(self, delay: float):
        self.received: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.kill_at: tuple[int, int] | None = None          # (k, pid)
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.lock:
                    hook.in_flight += 1
                    hook.max_in_flight = max(hook.max_in_flight, hook.in_flight)
                    hook.received.append({"key": self.headers.get("X-Govwatch-Delivery"), **json.loads(raw)})
                    if hook.kill_at and len(hook.received) == hook.kill_at[0]:
                        os.kill(hook.kill_at[1], signal.SIGKILL)
                time.sleep(delay)
                with hook.lock:
                    hook.in_flight -= 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_sigkill_mid_delivery_repeats_at_most_the_message_in_flight(site, workdir):
    hook = SlowReceiver(delay=0.6)
    try:
        for i in range(SOURCES):
            site.set(f"/p{i}", page())
        workdir.write(sources=[{"id": f"p{i}", "url": site.url(f"/p{i}"), "every": "1s"} for i in range(SOURCES)],
                      notify=[{"url": hook.url(f"/t{j}"), "name": f"t{j}"} for j in range(TARGETS)],
                      scheduler={"tick": "0.5s", "delivery_every": "0.2s", "delivery_claim": "60s", "stop_timeout": "3s"})
        workdir.run("check")                                    # baselines
        for i in range(SOURCES):
            site.set(f"/p{i}", page(extra=f"<p>{RELEVANT} (case {i})</p>"))
        db = sqlite_path(workdir)

        run = GovwatchProcess("run", cwd=workdir.path, log_name="window")
        hook.kill_at = (5, run.pid)                             # killed with the 5th POST accepted, unanswered
        try:
            rc = run.proc.wait(timeout=60)
        finally:
            run.kill()
        assert rc == -signal.SIGKILL, run.output()[-2000:]
        assert query(db, "select count(*) from deliveries")[0][0] == SOURCES * TARGETS
        first_life = len(hook.received)

        # the killed worker's claims expire (here at once), and a new scheduler sends the rest
        query(db, "update deliveries set claimed_until = '2000-01-01 00:00:00.000000' where status = 'sending'")
        with GovwatchProcess("run", cwd=workdir.path, log_name="window-after") as after:
            wait_until(lambda: query(db, "select count(*) from deliveries where status != 'sent'")[0][0] == 0, 60,
                       interval=0.2, what="every alert delivered")
            after.signal(signal.SIGTERM, timeout=20)
    finally:
        hook.stop()

    keys = Counter(m["key"] for m in hook.received)
    assert set(keys) == {str(i) for (i,) in query(db, "select id from deliveries")}
    repeats = sum(n - 1 for n in keys.values())
    assert hook.max_in_flight == 1, f"{hook.max_in_flight} alerts were in flight at once from one process"
    assert repeats <= 1, f"{repeats} alerts sent twice after one SIGKILL ({first_life} POSTs before the kill)"


def test_delivery_passes_of_one_process_take_turns(site, workdir):
    """`run --max-cycles` ends with a delivery pass of its own while the pass kicked by the changes
    may still be sending: the two must not have two alerts in flight (a kill would repeat both)."""
    hook = SlowReceiver(delay=0.4)
    try:
        for i in range(SOURCES):
            site.set(f"/p{i}", page())
        workdir.write(sources=[{"id": f"p{i}", "url": site.url(f"/p{i}"), "every": "1s"} for i in range(SOURCES)],
                      notify=[{"url": hook.url(f"/t{j}"), "name": f"t{j}"} for j in range(TARGETS)],
                      scheduler={"tick": "0.5s", "delivery_every": "1h", "stop_timeout": "3s"})
        workdir.run("check")
        for i in range(SOURCES):
            site.set(f"/p{i}", page(extra=f"<p>{RELEVANT} (case {i})</p>"))
        workdir.run("run", "--max-cycles", "3", timeout=120)
    finally:
        hook.stop()
    assert len(hook.received) == SOURCES * TARGETS
    assert hook.max_in_flight == 1, f"{hook.max_in_flight} alerts were in flight at once from one process"
