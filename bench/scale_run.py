"""Section 5 of bench/scale.py: `govwatch run` (the real CLI, its own process, SQLite) against a
watch list of N page sources on H hosts for a fixed time. See bench/scale.py --help.

The site is bench/hosts_site.py (the shared benchmark site's 40-120 KB pages, each source a copy
of its own on one of the hosts 127.0.0.1 ... 127.0.0.H, 50 ms latency, a new generation every
interval: 5% of the pages change in content, 20% cosmetically; 1,000 distinct pages). govwatch runs with its default
politeness (2 requests at a time and 1 s apart per host, 64 in all), each source `every` the
interval, `select: main`.

Measured:
- whether every source is checked within its interval: from `fetch_attempts`, the gaps between
  a source's consecutive checks (the scheduler makes a source due `every` after its last check,
  and looks for due sources every tick), their median, 99th percentile and maximum, and how many
  gaps exceeded the interval by more than one tick plus 10%;
- the first check of all sources (the baselines): how long until every source had one;
- RSS of govwatch and its children (the extraction worker, multiprocessing's resource tracker),
  summed, every 5 s: the peak, and the median of the first and the last tenth of the run after
  the baselines (flat means no growth between them);
- the database (its pages in use, read from SQLite) after the baselines and at the end, and its growth per day for
  20,000 sources at this rate of change;
- then the web change log's first page, a search and a source filter on the resulting database
  (warm, median of 5).
It fails (exit 1) when a source was never checked, no check read a page, or no change was
recorded after two generations.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EVERY = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _db_bytes(db: Path) -> int:
    """The database's size in pages in use (what its file holds once the WAL is checkpointed),
    read the same way during the run and after it."""
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
            pages, free, size = (c.execute(f"pragma {p}").fetchone()[0] for p in ("page_count", "freelist_count", "page_size"))
    except sqlite3.Error:
        return 0
    return (pages - free) * size


def _tree_rss(proc: psutil.Process) -> tuple[int, list[int]]:
    """RSS of the process and its children, summed, and each one's (the process first)."""
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, []
    each = []
    for p in procs:
        try:
            each.append(p.memory_info().rss)
        except psutil.NoSuchProcess:
            pass
    return sum(each), each


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure_run(n_sources: int, n_hosts: int, duration: float, every: float, tick: float, pages: int,
                latency_ms: float, keep: bool = False) -> None:
    from bench.scale import time_pages, write_config  # noqa: PLC0415 (bench/scale.py imports this module)
    from state.store import Store

    print(f"\n5. `govwatch run` with {n_sources:,} page sources on {n_hosts} hosts for {duration / 60:g} min, "
          f"each every {every / 60:g} min (tick {tick:g}s)")
    work = Path(tempfile.mkdtemp(prefix="govwatch-run-"))
    port = _free_port()
    site = subprocess.Popen([sys.executable, str(REPO / "bench" / "hosts_site.py"), "--hosts", str(n_hosts),
                             "--pages", str(pages), "--port", str(port), "--latency-ms", str(latency_ms),
                             "--change-every", str(every)], stdout=subprocess.PIPE, text=True)
    line = site.stdout.readline()
    if not line.startswith("serving"):
        site.kill()
        raise SystemExit(f"the hosts site did not start: {line!r}")
    site_log: list[str] = []
    threading.Thread(target=lambda: site_log.extend(iter(site.stdout.readline, "")), daemon=True).start()
    db = work / "govwatch.db"
    url = f"sqlite:///{db}"
    sources = [{"id": f"p{k:05d}", "url": f"http://127.0.0.{1 + k % n_hosts}:{port}/news/page-{k % pages + 1:05d}.html"
                                         f"?copy={k // pages}",
                "every": f"{every:g}s", "select": "main"} for k in range(n_sources)]
    cfg = write_config(work, url, sources, fetch={"allow_private_networks": True},
                       scheduler={"tick": f"{tick:g}s"})
    log = open(work / "govwatch.log", "wb")
    env = dict(os.environ, PYTHONPATH=str(REPO), GOVWATCH_LOG_LEVEL="INFO")
    t0 = time.monotonic()
    wall0 = time.time()
    gw = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                          env=env)
    proc = psutil.Process(gw.pid)
    samples: list[tuple[float, int, int, int]] = []  # (seconds since start, RSS summed, processes, database bytes)
    peak_each: list[int] = []
    try:
        next_print = 300.0
        while time.monotonic() - t0 < duration:
            if gw.poll() is not None:
                raise SystemExit(f"govwatch run exited {gw.returncode} after {time.monotonic() - t0:.0f}s; "
                                 f"log: {work / 'govwatch.log'}")
            rss, each = _tree_rss(proc)
            t = time.monotonic() - t0
            samples.append((t, rss, len(each), _db_bytes(db)))
            if rss >= sum(peak_each):
                peak_each = each
            if t >= next_print:
                print(f"  {t / 60:5.1f} min: RSS {rss / 2**20:.0f} MB ({' + '.join(f'{x / 2**20:.0f}' for x in each)}), database "
                      f"{samples[-1][3] / 2**20:.0f} MB, load {os.getloadavg()[0]:.2f}", flush=True)
                next_print += 300.0
            time.sleep(SAMPLE_EVERY)
    finally:
        stopped = time.monotonic() - t0  # the end of the measured time (not of the shutdown)
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(timeout=180)
        except subprocess.TimeoutExpired:
            gw.kill()
        site.terminate()
        site.wait(timeout=10)
        log.close()

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
        rows = c.execute("select source_id, started_at from fetch_attempts order by source_id, started_at").fetchall()
        outcomes = dict(c.execute("select outcome, count(*) from fetch_attempts group by outcome").fetchall())
        changes = c.execute("select count(*) from changes").fetchone()[0]
    checks: dict[str, list[float]] = {}
    for sid, at in rows:
        when = datetime.fromisoformat(at)
        checks.setdefault(sid, []).append(when.replace(tzinfo=when.tzinfo or timezone.utc).timestamp() - wall0)
    never = n_sources - len(checks)
    first_all = max((ts[0] for ts in checks.values()), default=float("nan"))
    gaps = [b - a for ts in checks.values() for a, b in zip(ts, ts[1:])]
    # a source is also late when its last check is older than an interval at the end
    tails = [stopped - ts[-1] for ts in checks.values()]
    limit = every * 1.1 + tick
    late = sum(1 for g in gaps if g > limit) + sum(1 for t in tails if t > limit)
    n_checks = [len(ts) for ts in checks.values()]

    after = [s for s in samples if s[0] >= first_all] or samples
    tenth = max(1, len(after) // 10)
    peak = max(s[1] for s in samples)
    db_first = next((s[3] for s in samples if s[0] >= first_all), samples[-1][3])
    db_end = _db_bytes(db)
    span = stopped - first_all
    per_day = (db_end - db_first) / span * 86400 * 20_000 / n_sources if span > 60 else float("nan")
    per_generation = (db_end - db_first) / (span / every) * 20_000 / n_sources if span > 60 else float("nan")

    print(f"\n  checks: {len(rows):,} ({', '.join(f'{k} {v:,}' for k, v in sorted(outcomes.items()))}); "
          f"changes recorded {changes:,}; sources never checked {never}")
    if never:
        print(f"  {never:,} of {n_sources:,} sources never checked")
    else:
        print(f"  first check of all {n_sources:,} sources done after {first_all / 60:.1f} min")
    print(f"  checks per source: min {min(n_checks, default=0)}, median {statistics.median(n_checks) if n_checks else 0:g}, "
          f"max {max(n_checks, default=0)} in {stopped / 60:.1f} min")
    print(f"  gap between a source's checks (interval {every:g}s): median {_pct(gaps, .5):.0f}s, p99 {_pct(gaps, .99):.0f}s, "
          f"max {max(gaps, default=float('nan')):.0f}s; {late:,} of {len(gaps) + len(tails):,} "
          f"over {limit:.0f}s (interval + 10% + a tick)")
    print(f"  RSS (govwatch and children, every {SAMPLE_EVERY:g}s): peak {peak / 2**20:.0f} MB "
          f"({' + '.join(f'{x / 2**20:.0f}' for x in peak_each)}: govwatch, then its children); after the baselines, "
          f"median of the first tenth {statistics.median(s[1] for s in after[:tenth]) / 2**20:.0f} MB, "
          f"of the last tenth {statistics.median(s[1] for s in after[-tenth:]) / 2**20:.0f} MB")
    print(f"  database: {db_first / 2**20:.0f} MB after the baselines, {db_end / 2**20:.0f} MB at the end; "
          f"growth for 20,000 sources per day at this rate of change (a new generation every interval): "
          f"{per_day / 2**20:,.0f} MB; per generation (5% of the pages reworded, 20% restyled), "
          f"so per day if the sites changed that much once a day: {per_generation / 2**20:,.0f} MB")
    print(f"  site: {site_log[-1].strip() if site_log else 'no generation'}")
    read = sum(outcomes.get(k, 0) for k in ("baseline", "unchanged", "not_modified", "changed"))
    if never or not read or (stopped > first_all + 2 * every and not changes):
        raise SystemExit(f"govwatch did not read the site: {never:,} sources never checked, {read:,} checks read a "
                         f"page, {changes:,} changes; log: {work / 'govwatch.log'}")
    cases = [("first page", "/"), ("search q=update", "/?q=update"), ("source filter", "/?source=p00007")]
    store = Store(url)
    time_pages("SQLite", store, cfg, cases)
    store.engine.dispose()
    if keep:
        print(f"  state kept in {work}")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
