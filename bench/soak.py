"""Soak benchmark (run by hand, not in the test suite): `govwatch run --max-cycles N` in this
process against a local site whose pages change every cycle; prints RSS, peak RSS, threads, open
files and cycle time at cycles 1, 10, ... N, so a leak or a slowdown over time shows.

Usage: .venv/bin/python bench/soak.py [--cycles 100] [--pages 50] [--feeds 2] [--site shared|builtin]
The default site is ../shared/bench-site/site.py (40-120 KB government-style pages, 5% of them
changing in content and 20% cosmetically per generation; the generation is bumped after every
cycle); `--site builtin` uses tests.servers.Site with small pages instead.
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_SITE = REPO.parent / "shared" / "bench-site" / "site.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SharedSite:
    """The shared benchmark site in its own process (its memory is not ours)."""

    def __init__(self, pages: int, feeds: int):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, str(SHARED_SITE), "serve", "--pages", str(pages), "--feeds", str(feeds),
                                      "--port", str(self.port)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("serving"):
            self.stop()
            raise SystemExit(f"bench site did not start: {line!r}")
        self.paths = [f"/news/page-{i + 1:05d}.html" for i in range(pages)]
        self.feeds = [f"/feeds/section-{f + 1:02d}.xml" for f in range(feeds)]

    def next_generation(self, g: int) -> None:
        urllib.request.urlopen(f"{self.base}/__control/generation/{g}", timeout=30).read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class BuiltinSite:
    """tests.servers.Site: small pages, a tenth of them get a new paragraph each cycle."""

    def __init__(self, pages: int, feeds: int):
        from tests.e2e.test_monitor import page
        from tests.servers import Site

        self._page = page
        self.site = Site().start()
        self.base = self.site.base
        self.paths = [f"/p/{i:03d}" for i in range(pages)]
        self.feeds: list[str] = []
        self.versions = [0] * pages
        for i, p in enumerate(self.paths):
            self.site.set(p, self._body(i))

    def _body(self, i: int) -> str:
        extra = "".join(f"<p>Update {v} to bulletin {i}: the office published revised guidance number {v}.</p>"
                        for v in range(1, self.versions[i] + 1))
        return self._page(extra=f"<p>Bulletin {i}.</p>{extra}")

    def next_generation(self, g: int) -> None:
        for i in range(len(self.paths)):
            if (i + g) % 10 == 0:
                self.versions[i] += 1
                self.site.set(self.paths[i], self._body(i))

    def stop(self) -> None:
        self.site.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--pages", type=int, default=50)
    ap.add_argument("--feeds", type=int, default=2)
    ap.add_argument("--site", choices=["shared", "builtin"], default="shared" if SHARED_SITE.exists() else "builtin")
    ap.add_argument("--tick", type=float, default=0.05)
    args = ap.parse_args()

    site = SharedSite(args.pages, args.feeds) if args.site == "shared" else BuiltinSite(args.pages, args.feeds)
    work = Path(tempfile.mkdtemp(prefix="govwatch-soak-"))
    sources = [{"id": f"page-{i:03d}", "url": site.base + p, "every": "1ms", "select": "main"} for i, p in enumerate(site.paths)]
    sources += [{"id": f"feed-{i:02d}", "url": site.base + p, "kind": "feed", "every": "1ms", "max_follow": 0}
                for i, p in enumerate(site.feeds)]
    config = work / "govwatch.yaml"
    config.write_text(yaml.safe_dump({
        "database": f"sqlite:///{work / 'govwatch.db'}", "include_defaults": False,
        "fetch": {"allow_private_networks": True, "per_host_delay": "0s", "per_host_concurrency": 16, "concurrency": 16,
                  "timeout": "30s", "retries": 0},
        "scheduler": {"delivery_every": "1h"},
        "sources": sources,
    }))
    os.environ["GOVWATCH_LOG_LEVEL"] = "WARNING"

    import monitor.scheduler as scheduler_mod
    from monitor import cli

    proc = psutil.Process()
    samples: list[dict] = []
    beat = scheduler_mod.heartbeat
    t_start = time.monotonic()

    def measured_heartbeat(store, worker, *, tick, cycle_done=False, stopped=False):
        beat(store, worker, tick=tick, cycle_done=cycle_done, stopped=stopped)
        if cycle_done:
            n = len(samples) + 1
            rss = proc.memory_info().rss
            peak = max([rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024] + [x["peak"] for x in samples[-1:]])
            samples.append({"cycle": n, "t": time.monotonic(), "rss": rss, "peak": peak,
                            "threads": threading.active_count(), "fds": proc.num_fds()})
            site.next_generation(n)  # what the next cycle sees has changed
            if n % 10 == 0:
                print(f"  cycle {n}: {samples[-1]['rss'] / 2**20:.1f} MB", file=sys.stderr, flush=True)

    scheduler_mod.heartbeat = measured_heartbeat
    try:
        code = cli.main(["run", "-c", str(config), "--tick", str(args.tick), "--max-cycles", str(args.cycles)])
    finally:
        scheduler_mod.heartbeat = beat
        site.stop()
    if code != 0 or not samples:
        print(f"govwatch run exited {code} after {len(samples)} cycle(s)")
        return 1

    from state.store import Store

    store = Store(f"sqlite:///{work / 'govwatch.db'}")
    with store.engine.connect() as c:
        changes = c.exec_driver_sql("select count(*) from changes").scalar()
        attempts = c.exec_driver_sql("select count(*) from fetch_attempts").scalar()
        by_outcome = dict(c.exec_driver_sql("select outcome, count(*) from fetch_attempts group by outcome").fetchall())
    durations = [samples[0]["t"] - t_start] + [b["t"] - a["t"] for a, b in zip(samples, samples[1:])]
    for s, d in zip(samples, durations):
        s["dt"] = d

    print(f"\ngovwatch soak: {len(samples)} cycles of {len(sources)} sources ({args.site} site, {args.pages} pages, "
          f"{args.feeds} feeds), tick {args.tick:g}s, Python {sys.version.split()[0]}")
    print(f"{'cycle':>6} {'cycle time s':>13} {'RSS MB':>8} {'peak RSS MB':>12} {'threads':>8} {'fds':>5}")
    marks = sorted({1, 2, 10, 25, 50, 75, 100, len(samples)} & set(range(1, len(samples) + 1)))
    for n in marks:
        s = samples[n - 1]
        print(f"{n:>6} {s['dt']:>13.2f} {s['rss'] / 2**20:>8.1f} {s['peak'] / 2**20:>12.1f} {s['threads']:>8} {s['fds']:>5}")
    steady = durations[1:] or durations
    q = statistics.quantiles(steady, n=10) if len(steady) >= 10 else [max(steady)] * 9
    print(f"cycle time after the first: median {statistics.median(steady):.2f}s, p90 {q[8]:.2f}s, max {max(steady):.2f}s")
    if len(samples) >= 10:
        growth = (samples[-1]["rss"] - samples[9]["rss"]) / 2**20
        print(f"RSS growth from cycle 10 to {len(samples)}: {growth:+.1f} MB")
    print(f"fetch attempts {attempts} {by_outcome}; changes recorded {changes}; state in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
