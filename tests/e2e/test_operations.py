"""Operating govwatch: the long-running `govwatch run` (intervals, alerts, bounded SIGTERM shutdown),
`govwatch health`, health alerts, delivery states (given up, X-Govwatch-Delivery) and secret-free
logs, all through the real CLI against a local site, webhook and SMTP server on 127.0.0.1."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_monitor import RELEVANT, page

FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Reports</title><link>{base}/</link><description>d</description>
<item><title>Annual report</title><link>{base}/r/1</link><guid isPermaLink="false">r-1</guid>
<pubDate>Mon, 14 Sep 2026 10:00:00 -0400</pubDate><description>The annual report.</description></item>
</channel></rss>"""


# -- helpers shared by the other operations tests -------------------------------------------
def cli_env(extra: dict | None = None) -> dict:
    """The environment of a CLI subprocess: ours without GOVWATCH_* (as run_cli does), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVWATCH_")}
    env.update(extra or {})
    return env


def wait_until(pred, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `pred` until it returns a truthy value (returned) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class GovwatchProcess:
    """A `govwatch ...` subprocess (normally `run`) with its output in files (a long run under -v
    would fill a pipe and block), stopped by signal with the time it took measured."""

    def __init__(self, *args: str, cwd: Path, env: dict | None = None, argv: list[str] | None = None,
                 log_name: str = "run"):
        self.cwd = Path(cwd)
        n = 0
        while (self.cwd / f"{log_name}-{n}.out").exists():
            n += 1
        self.out_path = self.cwd / f"{log_name}-{n}.out"
        self.err_path = self.cwd / f"{log_name}-{n}.err"
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        cmd = argv if argv is not None else [sys.executable, "-m", "monitor", *args]
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env if env is not None else cli_env(), stdout=self._out,
                                     stderr=self._err)
        self.pid = self.proc.pid
        self.started = time.monotonic()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> tuple[int, float]:
        """Send `sig`, wait (bounded) for the exit; returns (exit code, seconds it took)."""
        t0 = time.monotonic()
        if self.alive():
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"govwatch did not exit within {timeout:g}s of signal {sig}\n{self.output()[-3000:]}")
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
        self._close()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"govwatch did not exit within {timeout:g}s\n{self.output()[-3000:]}")

    def _close(self) -> None:
        for f in (self._out, self._err):
            if not f.closed:
                f.close()

    def stdout(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        if not self._err.closed:
            self._err.flush()
        return self.err_path.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def __enter__(self) -> "GovwatchProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def sqlite_path(workdir) -> Path:
    return workdir.path / "state" / "govwatch.db"


def query(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute(sql, args).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def consistency_problems(rows) -> list[str]:
    """Referential consistency of the store through a `rows(sql)` function (SQLite or PostgreSQL):
    every snapshot's blobs exist, every change's snapshots exist, every match and delivery its change."""
    checks = {
        "snapshot without its body blob": "select s.id from snapshots s left join blobs b on b.sha256 = s.body_sha256 where b.sha256 is null",
        "snapshot without its text blob": "select s.id from snapshots s left join blobs b on b.sha256 = s.text_sha256 where b.sha256 is null",
        "change without its new snapshot": "select c.id from changes c left join snapshots s on s.id = c.new_snapshot_id "
                                           "where c.new_snapshot_id is not null and s.id is null",
        "change without its previous snapshot": "select c.id from changes c left join snapshots s on s.id = c.prev_snapshot_id "
                                                "where c.prev_snapshot_id is not null and s.id is null",
        "page change without a snapshot": "select id from changes where kind = 'changed' and new_snapshot_id is null",
        "topic match without its change": "select m.id from topic_matches m left join changes c on c.id = m.change_id where c.id is null",
        "delivery without its change": "select d.id from deliveries d left join changes c on c.id = d.change_id "
                                       "where d.change_id is not null and c.id is null",
        "matched change without a match row": "select c.id from changes c where c.matched and not exists "
                                              "(select 1 from topic_matches m where m.change_id = c.id)",
        "source pointing at a missing snapshot": "select r.id from sources r left join snapshots s on s.id = r.last_snapshot_id "
                                                 "where r.last_snapshot_id is not null and s.id is null",
    }
    out = []
    for what, sql in checks.items():
        bad = rows(sql)
        if bad:
            out.append(f"{what}: {[r[0] for r in bad][:10]}")
    return out


def sqlite_consistency(db: Path) -> list[str]:
    problems = [] if query(db, "pragma integrity_check") == [("ok",)] else ["sqlite integrity_check failed"]
    return problems + consistency_problems(lambda sql: query(db, sql))


def hit_times(site, path: str) -> list[float]:
    with site._lock:
        return [t for (_m, p, _h), t in zip(site.requests, site.times) if p == path]


SCHED = {"tick": "1s", "delivery_every": "1s", "stop_timeout": "5s"}
STOP_TIMEOUT = 5.0


# -- govwatch run ----------------------------------------------------------------------------
def test_run_checks_each_source_at_its_interval_alerts_and_stops_on_sigterm(site, webhook, workdir):
    site.set("/fast", page())
    site.set("/hourly", page())
    workdir.write(sources=[{"id": "fast", "name": "Fast page", "url": site.url("/fast"), "every": "2s"},
                           {"id": "hourly", "url": site.url("/hourly"), "every": "1h"}],
                  notify=[{"url": webhook.url(), "name": "hook"}], scheduler=SCHED)
    with GovwatchProcess("run", cwd=workdir.path) as run:
        wait_until(lambda: len(site.hits("/fast")) >= 2, 20, what="two checks of the 2s source")
        site.set("/fast", page(extra=RELEVANT))
        changed_at = time.monotonic()
        wait_until(lambda: webhook.received, 15, what="the alert of the relevant change")
        alert_after = time.monotonic() - changed_at
        wait_until(lambda: len(site.hits("/fast")) >= 5, 20, what="five checks of the 2s source")
        assert run.alive(), run.output()[-3000:]
        rc, took = run.signal(signal.SIGTERM, timeout=STOP_TIMEOUT + 15)
        log = run.stderr()
    assert rc == 0, log[-3000:]
    assert took < STOP_TIMEOUT + 3, f"SIGTERM took {took:.1f}s"

    # each source at its own interval: the 2 s page repeatedly, never twice within ~one interval
    fast = hit_times(site, "/fast")
    gaps = [b - a for a, b in zip(fast, fast[1:])]
    assert len(fast) >= 5 and min(gaps) >= 2 * 0.9 - 0.2, gaps
    assert max(gaps) <= 2 * 1.1 + 1 + 2.5, gaps  # interval + jitter + tick + a cycle's duration
    assert len(site.hits("/hourly")) == 1
    # the relevant change was alerted once, within an interval (plus delivery cadence)
    assert len(webhook.received) == 1, webhook.received
    assert "opr-outcomes" in webhook.received[0]["title"] and "fast" in webhook.received[0]["title"]
    assert alert_after < 2 * 1.1 + 1 + 1 + 3, alert_after
    db = sqlite_path(workdir)
    assert query(db, "select kind, topics from changes") == [("changed", "opr-outcomes")]
    # the heartbeat says it stopped, and it gave back its leases
    workers = query(db, "select cycles, stopped_at is not null, last_cycle_at is not null from workers")
    assert len(workers) == 1 and workers[0][0] >= 3 and workers[0][1:] == (1, 1), workers
    assert query(db, "select count(*) from sources where lease_owner != '' or lease_until is not null") == [(0,)]
    assert "stopped after" in log
    assert sqlite_consistency(db) == []


def test_sigterm_with_a_slow_page_in_flight_finishes_it_within_the_bound(site, workdir):
    """A response that arrives within stop_timeout is stored; the exit is bounded either way."""
    site.set("/quick", page())
    site.set("/slow", page(extra=RELEVANT), delay=3)
    workdir.write(sources=[{"id": "quick", "url": site.url("/quick"), "every": "1h"},
                           {"id": "slow", "url": site.url("/slow"), "every": "1h"}], scheduler=SCHED)
    with GovwatchProcess("run", cwd=workdir.path) as run:
        wait_until(lambda: site.hits("/slow"), 20, interval=0.02, what="the slow request in flight")
        rc, took = run.signal(signal.SIGTERM, timeout=STOP_TIMEOUT + 15)
        log = run.stderr()
    assert rc == 0, log[-3000:]
    assert took < min(3 + 2.5, STOP_TIMEOUT + 3), f"SIGTERM took {took:.1f}s"
    db = sqlite_path(workdir)
    # the in-flight response was finished and stored, not dropped
    assert sorted(query(db, "select source_id, outcome from fetch_attempts")) == [("quick", "baseline"), ("slow", "baseline")]
    assert query(db, "select count(*) from workers where stopped_at is not null") == [(1,)]
    assert query(db, "select count(*) from sources where lease_owner != ''") == [(0,)]
    assert sqlite_consistency(db) == []


def test_sigterm_with_a_page_slower_than_stop_timeout_abandons_it_cleanly(site, workdir):
    """A response slower than stop_timeout is abandoned: exit 0 within the bound, nothing
    half-written, the heartbeat marked stopped and the lease given back (a restart must not
    wait for the lease to expire before checking that source again)."""
    site.set("/quick", page())
    site.set("/stuck", page(extra=RELEVANT), delay=20)
    workdir.write(sources=[{"id": "quick", "url": site.url("/quick"), "every": "1h"},
                           {"id": "stuck", "url": site.url("/stuck"), "every": "1h"}],
                  scheduler={**SCHED, "stop_timeout": "2s"}, fetch={"timeout": "30s"})
    with GovwatchProcess("run", cwd=workdir.path) as run:
        wait_until(lambda: site.hits("/stuck"), 20, interval=0.02, what="the stuck request in flight")
        time.sleep(0.3)
        rc, took = run.signal(signal.SIGTERM, timeout=20)
        log = run.stderr()
    assert rc == 0, log[-3000:]
    assert took < 2 + 3, f"SIGTERM took {took:.1f}s"
    assert "abandoned" in log
    db = sqlite_path(workdir)
    assert sqlite_consistency(db) == []
    assert query(db, "select source_id from fetch_attempts") == [("quick",)]
    assert query(db, "select count(*) from snapshots where source_id = 'stuck'") == [(0,)]
    # what a restarted container sees
    assert query(db, "select count(*) from workers where stopped_at is null") == [(0,)], "heartbeat not marked stopped"
    assert query(db, "select id from sources where lease_owner != ''") == [], "lease of the abandoned source kept"


def test_run_max_cycles_stops_after_exactly_that_many_cycles(site, workdir):
    """`run --tick S --max-cycles N` (tests and soak runs): N completed cycles, then exit 0."""
    site.set("/p", page())
    workdir.write(sources=[{"id": "p", "url": site.url("/p"), "every": "1ms"}], scheduler=SCHED)
    p = workdir.run("run", "--tick", "0.05", "--max-cycles", "3", timeout=60)  # a tick shorter than a cycle
    assert "stopped after 3 cycle(s)" in p.stderr, p.stderr[-2000:]
    assert query(sqlite_path(workdir), "select cycles, stopped_at is not null from workers") == [(3, 1)]
    assert len(site.hits("/p")) == 3


# -- govwatch health -------------------------------------------------------------------------
def test_health_follows_the_scheduler(site, workdir):
    site.set("/p", page())
    workdir.write(sources=[{"id": "p", "url": site.url("/p"), "every": "1h"}], scheduler=SCHED)
    before = workdir.run("health", check=False)
    assert before.returncode == 1 and "UNHEALTHY" in before.stdout and "no scheduler is running" in before.stdout
    db = sqlite_path(workdir)
    with GovwatchProcess("run", cwd=workdir.path) as run:
        wait_until(lambda: query(db, "select cycles from workers where cycles > 0"), 20, what="a completed cycle")
        during = workdir.run("health", check=False)
        assert during.returncode == 0 and during.stdout.startswith("healthy: worker "), during.stdout
        rc, _ = run.signal(signal.SIGTERM, timeout=20)
        assert rc == 0
    after = workdir.run("health", check=False)
    assert after.returncode == 1 and "no scheduler is running" in after.stdout, after.stdout

    # a scheduler killed without a chance to say so: unhealthy once its heartbeat is older than --max-age
    with GovwatchProcess("run", cwd=workdir.path) as run:
        wait_until(lambda: query(db, "select count(*) from workers where cycles > 0 and stopped_at is null")[0][0], 20,
                   what="the second scheduler's cycle")
        assert workdir.run("health", "--max-age", "30s", check=False).returncode == 0
        run.signal(signal.SIGKILL, timeout=10)
    time.sleep(1.5)
    stale = workdir.run("health", "--max-age", "1s", check=False)
    assert stale.returncode == 1 and "UNHEALTHY" in stale.stdout, stale.stdout


# -- health alerts ---------------------------------------------------------------------------
def test_health_alerts_failures_empty_selector_silence_and_recovery(site, webhook, workdir):
    from tests.servers import Webhook

    ops = Webhook()
    try:
        site.set("/flaky", "gone", status=404)
        site.set("/redesign", page())  # no #watched region
        site.set("/feed.xml", FEED.format(base=site.base), content_type="application/rss+xml")
        workdir.write(
            sources=[{"id": "flaky", "url": site.url("/flaky"), "every": "1h"},
                     {"id": "redesign", "url": site.url("/redesign"), "select": "#watched", "every": "1h"},
                     {"id": "quiet-feed", "url": site.url("/feed.xml"), "kind": "feed", "every": "1h",
                      "expect_update_within": "1s"}],
            notify=[{"url": webhook.url(), "name": "team"}],
            health_notify=[{"url": ops.url("/ops"), "name": "operator"}],
            health={"failures_before_alert": 2},
        )

        def titles() -> list[str]:
            return [m["title"] for m in ops.received]

        def problems() -> dict[str, list[str]]:
            """source id -> the problems the health messages so far said it has"""
            out: dict[str, list[str]] = {}
            for m in ops.received:
                for line in m["message"].splitlines():
                    hit = re.search(r"\(`([\w-]+)`, [^)]*\) is \*\*(\w+)\*\*", line)
                    if hit:
                        out.setdefault(hit.group(1), []).append(hit.group(2))
            return out

        workdir.run("check", "--force")
        # one failure is not yet loud; an empty selector is loud at once
        assert problems().get("redesign") == ["empty"] and "flaky" not in problems(), problems()
        first = len(ops.received)
        assert first == 1, titles()  # what one pass found: one message
        time.sleep(1.2)  # longer than the feed's expect_update_within
        workdir.run("check", "--force")
        assert problems() == {"redesign": ["empty"], "flaky": ["failing"], "quiet-feed": ["silent"]}, problems()
        assert len(ops.received) == 2, titles()  # one message per pass
        assert any(t.startswith("govwatch health: 2 sources need attention") or t == "govwatch health: flaky (flaky) is failing"
                   for t in titles()[1:]), titles()
        failing = next(line for m in ops.received for line in m["message"].splitlines() if "`flaky`" in line)
        assert "2 consecutive failure(s)" in failing and "HTTP 404" in failing, failing
        n = len(ops.received)
        workdir.run("check", "--force")  # still broken: no repeat of the same health alert
        assert len(ops.received) == n, titles()[n:]

        site.set("/flaky", page())
        site.set("/redesign", page(extra='<div id="watched"><p>Back with the region we watch.</p></div>'))
        workdir.run("check", "--force")
        assert titles()[n:] == ["govwatch health: 2 sources recovered"]
        lines = ops.received[n]["message"].splitlines()
        assert sorted(ln for ln in lines if "recovered (was" in ln) == [
            f"- **flaky** (`flaky`, {site.url('/flaky')}) recovered (was failing).",
            f"- **redesign** (`redesign`, {site.url('/redesign')}) recovered (was empty)."]
        assert webhook.received == [], "health alerts went to the team's change target"
        assert all(m["_headers"].get("X-Govwatch-Delivery") for m in ops.received)
        sources = {s["id"]: s for s in json.loads(workdir.run("sources", "--format", "json").stdout)}
        assert (sources["flaky"]["health"], sources["redesign"]["health"], sources["quiet-feed"]["health"]) == ("ok", "ok", "silent")
    finally:
        ops.stop()


def test_seven_failing_sources_are_one_health_message_naming_each(site, workdir):
    """Problems found in one pass reach the health channel as one message (the rows stay one per
    source and target, each marked sent), and so do the recoveries."""
    from tests.servers import Webhook

    ops = Webhook()
    names = {f"s{i}": f"Field office {i} bulletins" for i in range(7)}
    try:
        for sid in names:
            site.set(f"/{sid}", "gone", status=404)
        workdir.write(sources=[{"id": sid, "name": name, "url": site.url(f"/{sid}"), "every": "1h"} for sid, name in names.items()],
                      health_notify=[{"url": ops.url("/ops"), "name": "operator"}], health={"failures_before_alert": 1},
                      fetch={"retries": 0})
        workdir.run("check", "--force")
        assert [m["title"] for m in ops.received] == ["govwatch health: 7 sources failing"]
        body = ops.received[0]["message"]
        for sid, name in names.items():
            line = next(ln for ln in body.splitlines() if f"`{sid}`" in ln)
            assert f"**{name}**" in line and "is **failing**" in line and "HTTP 404" in line, line
        rows = query(sqlite_path(workdir), "select status, attempts from deliveries where kind = 'health'")
        assert rows == [("sent", 1)] * 7

        for sid in names:
            site.set(f"/{sid}", page())
        workdir.run("check", "--force")
        assert [m["title"] for m in ops.received][1:] == ["govwatch health: 7 sources recovered"]
        assert all(f"**{name}** (`{sid}`" in ops.received[1]["message"] for sid, name in names.items())
        assert len({m["_headers"].get("X-Govwatch-Delivery") for m in ops.received}) == 2
    finally:
        ops.stop()


# -- delivery states -------------------------------------------------------------------------
def test_a_target_that_always_fails_ends_failed_and_the_operator_hears_of_it(site, webhook, workdir):
    from tests.servers import Webhook

    broken, ops = Webhook(), Webhook()
    broken.fail_next, broken.fail_status = 10**6, 500
    try:
        site.set("/opr", page())
        workdir.write(sources=[{"id": "ice-opr", "url": site.url("/opr")}],
                      notify=[{"url": broken.url("/broken"), "name": "broken", "max_attempts": 2},
                              {"url": webhook.url("/good"), "name": "good"}],
                      health_notify=[{"url": ops.url("/ops"), "name": "operator"}])
        workdir.run("check")
        site.set("/opr", page(extra=RELEVANT))
        out = workdir.run("check", "--force").stdout
        assert "alerts sent 1, retrying 1, failed 0" in out, out
        out = workdir.run("check").stdout  # the operator's check makes retries due now
        assert "failed 1" in out, out
        change_id = json.loads(workdir.run("changes", "--format", "json").stdout)[0]["id"]
        shown = json.loads(workdir.run("show", str(change_id), "--format", "json").stdout)
        states = {d["target"]: (d["status"], d["attempts"]) for d in shown["deliveries"]}
        assert states == {"broken": ("failed", 2), "good": ("sent", 1)}, shown["deliveries"]
        failed = next(d for d in shown["deliveries"] if d["target"] == "broken")
        assert failed["last_error"] and str(broken.port) not in failed["last_error"]
        text = workdir.run("show", str(change_id)).stdout
        assert "broken: failed after 2 attempt(s)" in text
        # given up loudly: the operator's channel has the message, once
        assert [m["title"] for m in ops.received] == [f"govwatch: alert for change {change_id} to broken given up"]
        assert "broken" in ops.received[0]["message"]
        # idempotency key on every webhook delivery: the delivery row id
        assert len(webhook.received) == 1
        ids = query(sqlite_path(workdir), "select id from deliveries where target = 'good'")
        assert webhook.received[0]["_headers"].get("X-Govwatch-Delivery") == str(ids[0][0])
        assert ops.received[0]["_headers"].get("X-Govwatch-Delivery")
        workdir.run("check", "--force")
        assert len(ops.received) == 1 and len(webhook.received) == 1  # nothing repeated
    finally:
        broken.stop()
        ops.stop()


def test_overlapping_deliveries_in_one_scheduler_send_each_alert_once(webhook, workdir):
    """`govwatch run` delivers from two places that can overlap: the end of each cycle and the
    delivery job on its own cadence, each `monitor.delivery.deliver(cfg, store)` in its own thread with
    the same worker id. Together they must still send every outbox row once (real SQLite store,
    real Apprise, real webhook)."""
    import threading

    from monitor.delivery import deliver
    from monitor.config import load_config
    from state.models import DeliveryRecord
    from state.store import Store

    workdir.write(sources=[], notify=[{"url": webhook.url(), "name": "hook"}])
    cfg = load_config(workdir.config, env={})
    store = Store(cfg.database)
    with store.session() as s:
        for i in range(40):
            # rows sent one by one (health rows would go as one message): rows without a change
            s.add(DeliveryRecord(kind="change", target="hook", title=f"alert {i}", body=f"body {i}"))
    barrier = threading.Barrier(2)
    reports = []

    def delivery_thread() -> None:
        barrier.wait(timeout=10)
        reports.append(deliver(cfg, store))

    threads = [threading.Thread(target=delivery_thread) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    keys = [m["_headers"].get("X-Govwatch-Delivery") for m in webhook.received]
    twice = sorted({k for k in keys if keys.count(k) > 1}, key=int)
    assert len(set(keys)) == 40
    assert twice == [], f"{len(twice)} of 40 alerts sent twice: {twice[:10]}"
    assert sum(r.sent for r in reports) == 40
    assert query(sqlite_path(workdir), "select count(*) from deliveries where status = 'sent' and attempts = 1") == [(40,)]


# -- secrets stay out of logs, output and the database -------------------------------------
TOKEN, HEADER_SECRET, SMTP_PASSWORD = "TOKENabc123", "SECRETHEADER9", "SMTPpass777"


def test_no_secret_in_logs_output_or_database(site, webhook, smtp, workdir):
    hook_url = f"json://user:{TOKEN}@127.0.0.1:{webhook.port}/hook?+X-Token={HEADER_SECRET}"
    mail_url = (f"mailto://user:{SMTP_PASSWORD}@127.0.0.1:{smtp.port}?from=govwatch@example.org"
                "&to=analyst@example.org&mode=insecure")
    site.set("/opr", page())
    site.set("/missing", "no", status=404)
    workdir.write(sources=[{"id": "ice-opr", "name": "ICE OPR", "url": site.url("/opr"), "every": "1h"},
                           {"id": "missing", "url": site.url("/missing"), "every": "1h"}],
                  notify=[{"url": hook_url, "name": "hook"}, {"url": mail_url, "name": "mail", "max_attempts": 1}],
                  health_notify=[{"url": hook_url.replace("/hook", "/ops"), "name": "ops"}],
                  health={"failures_before_alert": 1})
    env = {"GOVWATCH_LOG_FORMAT": "json"}
    outputs: list[tuple[str, str]] = []
    json_lines: list[dict] = []

    def gw(*args, check=True, log=True):
        p = workdir.run("-v", *args, env=env, check=check)
        outputs.append((" ".join(args), p.stdout + p.stderr))
        if log:
            for line in p.stderr.splitlines():
                if line.strip():
                    json_lines.append(json.loads(line))  # every log line is one JSON object
        return p

    gw("validate")
    gw("notify-test", check=False)
    gw("check")
    attempts_before = query(sqlite_path(workdir), "select count(*) from fetch_attempts")[0][0]
    first_lines = len(json_lines)
    site.set("/opr", page(extra=RELEVANT))
    gw("check", "--force")
    changes = json.loads(gw("changes", "--format", "json").stdout)
    gw("changes")
    gw("changes", "--format", "csv")
    cid = str(changes[0]["id"])
    gw("show", cid)
    gw("show", cid, "--format", "json")
    gw("sources")
    gw("sources", "--format", "json")
    gw("health", check=False)

    # the secrets were really in use: the receiver got the header and the basic-auth user
    assert webhook.received and all(m["_headers"].get("X-Token") == HEADER_SECRET for m in webhook.received)
    assert any(m["_path"] == "/hook" and "opr-outcomes" in m["title"] for m in webhook.received)
    for name, text in outputs:
        for secret in (TOKEN, HEADER_SECRET, SMTP_PASSWORD):
            assert secret not in text, f"`govwatch {name}` printed a secret ({secret})"
    state = workdir.path / "state"
    for f in sorted(state.iterdir()):
        data = f.read_bytes()
        for secret in (TOKEN, HEADER_SECRET, SMTP_PASSWORD):
            assert secret.encode() not in data, f"{f.name} holds a secret ({secret})"
    assert any(f.name == "govwatch.db" for f in state.iterdir())

    # JSON logs: one line per fetch outcome ("source <id>: <outcome>" from the pipeline)
    assert all({"time", "level", "logger", "message"} <= set(d) for d in json_lines)

    def outcome_lines(lines):
        return [d for d in lines if d["logger"] == "monitor.pipeline" and d["message"].startswith("source ")]

    first = outcome_lines(json_lines[:first_lines])
    assert sorted(d["message"].split(":")[0].split(" (")[0] for d in first) == ["source ice-opr", "source missing"], first
    total_attempts = query(sqlite_path(workdir), "select count(*) from fetch_attempts")[0][0]
    assert len(first) == attempts_before == 2
    assert len(outcome_lines(json_lines)) == total_attempts == 4, outcome_lines(json_lines)
    assert any("changed (matched opr-outcomes)" in d["message"] for d in outcome_lines(json_lines))


def test_check_interrupted_past_stop_timeout_exits_with_a_message(site, workdir):
    """`govwatch check` stopped by SIGTERM while a response is still slower than
    scheduler.stop_timeout: a one-line error and exit 1, what was fetched is stored, no traceback."""
    site.set("/quick", page())
    site.set("/slow", page(), delay=30)
    workdir.write(sources=[{"id": "quick", "url": site.url("/quick"), "every": "1h"},
                           {"id": "slow", "url": site.url("/slow"), "every": "1h"}],
                  scheduler={"stop_timeout": "1s"}, fetch={"timeout": "60s"})
    with GovwatchProcess("check", cwd=workdir.path, log_name="check") as check:
        wait_until(lambda: site.hits("/slow"), 20, what="the slow request")
        time.sleep(0.5)
        rc, took = check.signal(signal.SIGTERM, timeout=20)
        err = check.stderr()
    assert rc == 1, err[-3000:]
    assert took < 6, f"exit took {took:.1f}s"
    assert "interrupted before it finished" in err and "Traceback" not in err, err[-3000:]
    db = sqlite_path(workdir)
    assert query(db, "select source_id from snapshots") == [("quick",)]
    assert query(db, "select count(*) from sources where lease_owner != ''") == [(0,)]
