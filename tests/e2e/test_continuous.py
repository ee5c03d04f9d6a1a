"""`govwatch run` feeds one long-lived crawl as sources fall due (a slow source delays no other),
and a SIGKILLed worker's leases are taken over at once on its host, so the next `check` misses
nothing (issue 15, points 1 and 2)."""
from __future__ import annotations

import random
import re
import signal
import time

from tests.e2e.test_crash import MARKER, recorded_versions, version_page
from tests.e2e.test_monitor import RELEVANT, page
from tests.e2e.test_operations import GovwatchProcess, hit_times, query, sqlite_consistency, sqlite_path, wait_until

FAST = 20
EVERY = 10.0
TICK = 1.0
SLOW_DELAY = 45


def test_a_slow_source_delays_no_other(site, webhook, workdir):
    """20 pages due every 10 s and one that takes 45 s to answer: every fast page is fetched in
    every 20 s window, a change to one is recorded within an interval plus the tick, `health`
    stays healthy while the slow fetch is in flight, and SIGTERM ends the run within the bound."""
    for i in range(FAST):
        site.set(f"/f{i}", page(extra=f"<p>Fast page {i} of the field office bulletins.</p>"))
    site.set("/slow", page(extra="<p>The slow page.</p>"), delay=SLOW_DELAY)
    stop_timeout = 3.0
    workdir.write(sources=[{"id": f"f{i}", "url": site.url(f"/f{i}"), "every": f"{EVERY:g}s"} for i in range(FAST)]
                  + [{"id": "slow", "url": site.url("/slow"), "every": f"{EVERY:g}s"}],
                  notify=[{"url": webhook.url(), "name": "hook"}],
                  fetch={"timeout": "60s", "retries": 0},
                  scheduler={"tick": f"{TICK:g}s", "delivery_every": "1s", "stop_timeout": f"{stop_timeout:g}s",
                             "health_max_age": "5s"})
    with GovwatchProcess("run", cwd=workdir.path) as run:
        wait_until(lambda: site.hits("/slow") and all(site.hits(f"/f{i}") for i in range(FAST)), 30,
                   what="a first request of every page")
        t0 = time.monotonic()
        healthy = []
        while time.monotonic() - t0 < 24:  # the slow response is in flight all along
            h = workdir.run("health", check=False)
            healthy.append(h.returncode == 0)
            time.sleep(2)
        site.set("/f3", page(extra="<p>Fast page 3 of the field office bulletins.</p>" + RELEVANT))
        changed_at = time.monotonic()
        wait_until(lambda: query(sqlite_path(workdir), "select count(*) from changes where source_id = 'f3'")[0][0], 30,
                   what="the change of the fast page")
        recorded_after = time.monotonic() - changed_at
        wait_until(lambda: webhook.received, 10, what="the alert")
        assert run.alive(), run.output()[-3000:]
        rc, took = run.signal(signal.SIGTERM, timeout=stop_timeout + 20)
        log = run.stderr()
    assert rc == 0, log[-3000:]
    assert took < stop_timeout + 4, f"SIGTERM took {took:.1f}s"
    assert all(healthy), (healthy, log[-2000:])
    assert recorded_after <= EVERY * 1.1 + TICK + 2, recorded_after
    assert len(webhook.received) == 1
    # in the 24 s while the slow response was outstanding, every fast page in every 20 s window
    for i in range(FAST):
        ts = [t for t in hit_times(site, f"/f{i}") if t0 - 2 <= t <= t0 + 26]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        assert len(ts) >= 2 and max(gaps) <= 20, (i, [round(g, 1) for g in gaps])
    assert len(site.hits("/slow")) == 1, "the slow source was fed again while still in flight"
    # every pass's tally is read (the crawl appends to the list the scheduler reads): the pass
    # that recorded f3's change says so, long after the first pass
    tallies = re.findall(r"pass (\d+): (\d+) source\(s\) checked, (\d+) change\(s\)", log)
    assert any(int(n) > 2 and int(c) == 1 for n, _, c in tallies), log[-3000:]
    assert sum(int(k) for _, k, _ in tallies) >= FAST * 3, tallies
    assert sqlite_consistency(sqlite_path(workdir)) == []


def test_check_after_sigkills_with_the_default_lease_misses_nothing(site, webhook, workdir):
    """20 SIGKILLs of `check` at random points while it holds its leases (the default 10-minute lease), the pages changing
    meanwhile; then two clean `check --force` runs: every change recorded once, every alert sent
    once (the killed checks' leases are taken over at once, not after ten minutes)."""
    rng = random.Random(1515)
    names = ["alpha", "bravo", "charlie"]
    published = {n: [] for n in names}
    # each page answers after PAGE_DELAY, so a check holds its leases for a while after taking them
    # (a local page answered at once let a check finish before a kill 0-0.6 s later: a CI run landed
    # only 12 of 20 kills while the leases were held)
    page_delay = 0.3
    for n in names:
        site.set(f"/{n}", version_page(n, 0), delay=page_delay)
    workdir.write(sources=[{"id": n, "url": site.url(f"/{n}"), "every": "1h"} for n in names],
                  notify=[{"url": webhook.url(), "name": "hook"}])
    db = sqlite_path(workdir)
    workdir.run("check")  # the baselines
    kills = kills_holding = 0
    # 20 kills that land while the check holds its leases (a check that ends before its kill, or
    # before it took a lease, does not count; at most 60 tries)
    while kills_holding < 20 and kills < 60:
        for n in names:
            if rng.random() < 0.4:
                v = (published[n][-1] if published[n] else 0) + 1
                site.set(f"/{n}", version_page(n, v), delay=page_delay)
                published[n].append(v)
        proc = GovwatchProcess("check", "--force", cwd=workdir.path, log_name="killed")
        # kill it at a random point once it holds its leases (start-up alone can take seconds)
        holding = wait_until(lambda: query(db, "select count(*) from sources where lease_owner like ?",
                                           (f"%:{proc.pid}:%",))[0][0] or not proc.alive(), 30, interval=0.02,
                             what="the check's leases")
        time.sleep(rng.uniform(0.0, 0.9))
        rc, _ = proc.signal(signal.SIGKILL, timeout=10)
        kills_holding += rc == -signal.SIGKILL and holding is not True
        kills += 1
    # deliveries a killed check had claimed wait for their claim (5 min): expire them, as the crash test does
    query(db, "update deliveries set claimed_until = '2000-01-01 00:00:00.000000' where status = 'sending'")
    first = workdir.run("check", "--force").stdout
    second = workdir.run("check", "--force").stdout
    assert "skipped" not in first + second, first + second
    total = 0
    for n in names:
        # each version that was up at some check is recorded once, in order; the last one surely
        versions = recorded_versions(db, n)
        assert versions == sorted(set(versions)), (n, versions)
        assert set(versions) <= set(published[n]) and (not published[n] or versions[-1] == published[n][-1]), (n, versions, published[n])
        total += len(versions)
    assert kills_holding >= 20, f"only {kills_holding} of {kills} kills landed while the check held its leases"
    rows = query(db, "select id, status from deliveries where change_id is not null")
    assert len(rows) == total and {r[1] for r in rows} == {"sent"}, rows
    keys = [m["_headers"].get("X-Govwatch-Delivery") for m in webhook.received]
    assert sorted(set(keys)) == sorted(str(r[0]) for r in rows)  # each alert arrived (repeats dropped by the key)
    assert all(MARKER.search(m["message"]) for m in webhook.received)
    assert query(db, "select count(*) from sources where lease_owner != ''") == [(0,)]
    assert sqlite_consistency(db) == []


def test_check_names_the_sources_a_live_worker_holds(site, workdir):
    """A source leased by a live `run` is skipped by `check --force`, which says so and until when."""
    site.set("/held", page(), delay=30)
    workdir.write(sources=[{"id": "held", "url": site.url("/held"), "every": "1h"}],
                  fetch={"timeout": "60s"}, scheduler={"tick": "1s", "stop_timeout": "1s"})
    with GovwatchProcess("run", cwd=workdir.path) as run:
        wait_until(lambda: site.hits("/held"), 30, what="the run's request")
        out = workdir.run("check", "--force").stdout
        run.signal(signal.SIGTERM, timeout=30)
    assert len(site.hits("/held")) == 1
    assert "skipped 1 source(s) that a running worker is checking" in out, out
    assert "held: held by worker" in out and " until 20" in out, out
