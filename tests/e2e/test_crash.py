"""Crash safety of `govwatch run`: SIGKILL at seeded random points, again and again, while the
site's pages change; afterwards every published version is in the change log exactly once, and
every alert reached the receiver exactly once once repeats are dropped by X-Govwatch-Delivery."""
from __future__ import annotations

import random
import re
import signal
import socket
import time
from collections import Counter, defaultdict

from tests.e2e.test_monitor import page
from tests.e2e.test_operations import GovwatchProcess, query, sqlite_consistency, sqlite_path, wait_until

PAGES = ["alpha", "bravo", "charlie", "delta"]
KILLS = 22
SEED = 20261128


def version_page(name: str, version: int) -> str:
    """Version v of a page: v relevant paragraphs, each with its own case marker."""
    paras = "".join(
        f"<p>Update {v}: in fiscal year {2000 + v}, ICE OPR substantiated allegations that an employee was a member "
        f"of a white supremacist extremist group; the employee was removed from federal service (case GW-{name}-{v}).</p>"
        for v in range(1, version + 1))
    return page(extra=paras)


MARKER = re.compile(r"GW-([a-z]+)-(\d+)")


def recorded_versions(db, name: str) -> list[int]:
    """The versions of a page in the change log, in the order they were recorded."""
    out = []
    for (added,) in query(db, "select added_text from changes where source_id = ? and kind = 'changed' order by id", (name,)):
        found = sorted({int(v) for p, v in MARKER.findall(added) if p == name})
        out.append(found[-1] if found else -1)
    return out


def test_sigkill_at_random_points_loses_no_change_and_sends_no_alert_twice(site, webhook, workdir):
    rng = random.Random(SEED)
    for name in PAGES:
        site.set(f"/{name}", version_page(name, 0))
    workdir.write(
        sources=[{"id": name, "url": site.url(f"/{name}"), "every": "1s"} for name in PAGES],
        notify=[{"url": webhook.url(), "name": "hook"}],
        scheduler={"tick": "0.5s", "delivery_every": "0.5s", "lease": "2s", "stop_timeout": "3s"},
    )
    db = sqlite_path(workdir)
    published: dict[str, list[int]] = {name: [] for name in PAGES}  # versions put up, in order

    def current(name: str) -> int:
        return published[name][-1] if published[name] else 0

    def seen(name: str) -> bool:
        """The page's current version is in the store (baseline snapshot, or its change)."""
        if not db.exists():
            return False
        # a kill during the first start-up can leave the file without tables (the migration is one
        # transaction: rolled back, done again on the next start)
        if not query(db, "select name from sqlite_master where type = 'table' and name = 'changes'"):
            return False
        if current(name) == 0:
            return query(db, "select count(*) from snapshots where source_id = ?", (name,))[0][0] > 0
        versions = recorded_versions(db, name)
        return bool(versions) and versions[-1] == current(name)

    def publish_what_was_seen() -> None:
        for name in PAGES:
            if seen(name) and rng.random() < 0.7:
                v = current(name) + 1
                site.set(f"/{name}", version_page(name, v))
                published[name].append(v)

    started = time.monotonic()
    kills = 0
    procs: list[GovwatchProcess] = []
    try:
        while kills < KILLS:
            run = GovwatchProcess("run", cwd=workdir.path, log_name="crash")
            procs.append(run)
            if rng.random() < 0.25:  # a kill in start-up (migrations, the first feed)
                life = rng.uniform(0.2, 1.2)
                publish_at = rng.uniform(0.0, life)
            else:
                # the rest in cycles: timed from the moment the scheduler has started, not from the
                # spawn, so a loaded machine (a slow start-up) does not turn them all into start-up kills
                wait_until(lambda: "started:" in run.stderr() or not run.alive(), 60, interval=0.05,
                           what="the scheduler's start")
                life = rng.uniform(0.3, 2.2)
                publish_at = rng.uniform(0.0, life)
            time.sleep(publish_at)
            publish_what_was_seen()
            time.sleep(life - publish_at)
            rc, _ = run.signal(signal.SIGKILL, timeout=10)
            assert rc == -signal.SIGKILL, run.output()[-2000:]
            kills += 1
        crash_phase = time.monotonic() - started

        # A row claimed for sending by a killed worker is retried when its claim expires
        # (alerts/outbox.py CLAIM_SECONDS, 300 s). Expire those claims instead of waiting 5 minutes.
        stuck = query(db, "select id from deliveries where status = 'sending'")
        if stuck:
            query(db, "update deliveries set claimed_until = '2000-01-01 00:00:00.000000' where status = 'sending'")

        # a last scheduler runs undisturbed until everything published is recorded and delivered
        with GovwatchProcess("run", cwd=workdir.path, log_name="final") as final:
            me = f"{socket.gethostname()}:{final.pid}:%"  # worker ids are host:pid:process start
            wait_until(lambda: query(db, "select cycles from workers where id like ? and cycles > 1", (me,)), 30,
                       interval=0.2, what="the last scheduler's cycles")
            wait_until(lambda: all(seen(n) for n in PAGES), 30, interval=0.2, what="every version recorded")
            wait_until(lambda: query(db, "select count(*) from deliveries where status != 'sent'")[0][0] == 0, 20,
                       interval=0.2, what="every alert delivered")
            rc, _ = final.signal(signal.SIGTERM, timeout=20)
            assert rc == 0, final.output()[-3000:]
        out = workdir.run("check", "--force").stdout
        assert "failed 0" in out, out
    finally:
        for p in procs:
            p.kill()

    # every published version recorded exactly once, in order (nothing lost, nothing doubled)
    total = sum(len(v) for v in published.values())
    assert total >= 8, f"only {total} versions published: the schedule did not exercise the monitor"
    for name in PAGES:
        assert recorded_versions(db, name) == published[name], (name, recorded_versions(db, name), published[name])
    assert query(db, "select count(*) from changes where kind != 'changed'") == [(0,)]
    assert query(db, "select count(*) from changes where topics != 'opr-outcomes'") == [(0,)]
    assert sqlite_consistency(db) == []

    # every alert: one outbox row per change, sent; the receiver, deduplicated by the header,
    # got each exactly once, with the right content
    rows = query(db, "select d.id, d.status, c.added_text from deliveries d join changes c on c.id = d.change_id")
    assert len(rows) == total and {r[1] for r in rows} == {"sent"}
    assert query(db, "select count(*) from deliveries where change_id is null") == [(0,)]
    by_key: dict[str, list[dict]] = defaultdict(list)
    for m in webhook.received:
        key = m["_headers"].get("X-Govwatch-Delivery")
        assert key, m["_headers"]
        by_key[key].append(m)
    assert set(by_key) == {str(r[0]) for r in rows}, (sorted(by_key), sorted(r[0] for r in rows))
    for did, _status, added in rows:
        name, v = max(((p, int(n)) for p, n in MARKER.findall(added)), key=lambda x: x[1])
        for m in by_key[str(did)]:
            assert f"GW-{name}-{v}" in m["message"] and f"({name})" in m["title"], (did, m["title"])
    raw_duplicates = len(webhook.received) - len(by_key)
    # a row sent twice by a live process is counted twice in `attempts` (see
    # test_operations.test_overlapping_deliveries_in_one_scheduler_send_each_alert_once); a repeat
    # after a kill between the send and the commit is not
    live_repeats = query(db, "select count(*) from deliveries where status = 'sent' and attempts > 1")[0][0]
    per_page = Counter(k for k in published for _ in published[k])
    print(f"\ncrash test: {kills} SIGKILLs in {crash_phase:.0f}s, {total} versions published {dict(per_page)}, "
          f"{len(webhook.received)} webhook posts, {raw_duplicates} raw duplicate(s) dropped by X-Govwatch-Delivery "
          f"({live_repeats} of them sent twice by a live process), "
          f"{len(stuck)} alert claim(s) left 'sending' by a killed worker")
