"""Side-by-side benchmark (issue 7, run by hand): govwatch against its peers urlwatch and
changedetection.io and a bare Scrapy crawl, on the same local site in one run; prints a table per
phase, govwatch/peer ratios and the issue's targets with PASS/MISS.

Usage:
  .venv/bin/python bench/compare.py [--pages 1000] [--feeds 10] [--latency-ms 50] [--runs 3]
      [--tools govwatch,urlwatch,cdio,scrapy] [--quick] [--skip-defaults] [--json PATH]
      [--peers-dir /tmp/gw-peers] [--urlwatch-workers 32] [--cdio-workers 32]
  --quick is --pages 100 --runs 1 --skip-defaults (explicit options still win).

The site is ../shared/bench-site/site.py (N article pages of 40-120 KB, M RSS feeds and a listing
/index.html, so N+M+1 URLs; 5% of the pages change in content and 20% only cosmetically from
generation 0 to 1). Every tool run gets a fresh site process at generation 0 and a fresh state,
then three phases: baseline (first check of everything), changed (site switched to generation 1,
check again), unchanged (check again; nothing changed, so conditional GET can answer). Tools
alternate run by run (A B C D A B C D ...). Phases are 1.5 s apart, not timed: urlwatch keys its
cache and changedetection.io its history by whole seconds, and a monitor never checks twice within
a second (back to back, urlwatch loads the older of two same-second entries, sends a stale ETag
and reports the page changed again). After the comparison, unless --skip-defaults, one more
govwatch run uses its default politeness (2 requests at a time, 1 s apart per host): what being
polite costs on one host.

Measured per tool and phase: wall seconds; CPU seconds (user+sys of the tool's process and its
children: from wait4 for one-shot commands, from psutil deltas of the server's process tree for
changedetection.io); CPU ms per URL; peak RSS (the process tree sampled every 50 ms with psutil,
and the kernel's max RSS of a one-shot command); the site's 200/304 counts; and which URLs the
tool reported as changed against the site's /__control/expected?from=0&to=1: expected = content
pages + feeds. The listing gets its own column: its rows carry per-page "updated" dates, so it
changes with cosmetic edits too and counts neither as false nor as missed in the changed phase.
A one-shot command's wall and CPU include its start-up (interpreter, imports, opening its state);
changedetection.io's server is started before its first phase and its start-up is not counted.

How each tool runs:
  govwatch   `govwatch check -c <config> --force` per phase (GOVWATCH_LOG_LEVEL=WARNING), a SQLite
             database in the work dir; fetch.per_host_concurrency 32 and per_host_delay 0s for the one
             local host, allow_private_networks true, everything else default. Changes are read from
             the database: a page's `changed` row, a feed's `new_item` rows, the listing's rows.
  urlwatch   one urlwatch command per phase (--urls/--config/--cache/--hooks in the work dir, HOME
             there too), one job per URL, no filters (raw HTML compared), report on stdout parsed.
             urlwatch has no setting for its thread pool (urlwatch.worker.MAX_WORKERS = 10): hooks.py
             sets it to --urlwatch-workers (0 keeps urlwatch's 10).
  cdio       changedetection.io's server started once per run with a fresh datastore (its settings
             file seeded only with an API key), FETCH_WORKERS=--cdio-workers, plain HTTP fetcher
             (its default), ALLOW_IANA_RESTRICTED_ADDRESSES=true (else it refuses 127.0.0.1),
             DISABLE_VERSION_CHECK=true. Baseline: POST /api/v1/import; later phases: GET
             /api/v1/watch?recheck_all=1; done when the site has seen N+M+1 requests, /queue.json has
             nothing queued or running and every watch's last_checked is in the phase. Changed =
             the watch's last_changed moved. Wall is trigger to done (server startup excluded).
  scrapy     a bare Scrapy crawl of the N+M+1 URLs (32 at a time, no delay, robots off, a callback
             doing nothing), keeping ETags in a JSON file so later phases send If-None-Match. It
             detects nothing: the ceiling for a Scrapy-based fetcher.

Ratios are govwatch's run i over the peer's run i (run i of every tool is in the same round of the
alternation), shown as min-median-max over the runs; the target checks use the median ratio, and
the largest peak RSS of any govwatch run and phase.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
SITE = REPO.parent / "shared" / "bench-site" / "site.py"
VENV_PY = REPO / ".venv" / "bin" / "python"
GOVWATCH = REPO / ".venv" / "bin" / "govwatch"
PHASES = ("baseline", "changed", "unchanged")
TOOLS = ("govwatch", "urlwatch", "cdio", "scrapy")
LABELS = {"govwatch": "govwatch", "urlwatch": "urlwatch", "cdio": "changedetection.io", "scrapy": "scrapy (bare)",
          "govwatch-defaults": "govwatch, default politeness"}
MB = 1024 * 1024
LISTING = "/index.html"

# The bare Scrapy crawl, run with the project's virtualenv: argv = urls.json etags.json.
CEILING_SPIDER = '''\
import json, sys
from pathlib import Path
import scrapy
from scrapy.crawler import CrawlerProcess

urls = json.loads(Path(sys.argv[1]).read_text())
etag_file = Path(sys.argv[2])
etags = json.loads(etag_file.read_text()) if etag_file.exists() else {}
counts = {"ok": 0, "errors": 0}


class Ceiling(scrapy.Spider):
    name = "ceiling"
    handle_httpstatus_list = [304]

    async def start(self):
        for url in urls:
            headers = {"If-None-Match": etags[url]} if url in etags else {}
            yield scrapy.Request(url, headers=headers, callback=self.parse, errback=self.failed, dont_filter=True)

    def parse(self, response):
        if response.headers.get(b"ETag"):
            etags[response.url] = response.headers[b"ETag"].decode()
        counts["ok"] += 1

    def failed(self, failure):
        counts["errors"] += 1


process = CrawlerProcess({"CONCURRENT_REQUESTS": 32, "CONCURRENT_REQUESTS_PER_DOMAIN": 32, "DOWNLOAD_DELAY": 0,
                          "ROBOTSTXT_OBEY": False, "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False})
process.crawl(Ceiling)
process.start()
etag_file.write_text(json.dumps(etags))
print(json.dumps(counts))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, *, data: bytes | None = None, headers: dict | None = None, timeout: float = 60):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


# -- measurement ---------------------------------------------------------------------------------
class Meter:
    """A process tree: its RSS sampled every 50 ms in a thread while in `with` (peak kept), and
    its CPU seconds so far (the process, its reaped children, its live descendants)."""

    def __init__(self, pid: int, interval: float = 0.05):
        try:
            self.proc: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:  # already gone: a one-shot command faster than us
            self.proc = None
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0  # proportional set size of the tree: shared pages counted once (a worker process's libraries)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _tree(self) -> list[psutil.Process]:
        if self.proc is None:
            return []
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        total = 0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def pss(self) -> int:
        total = 0
        for p in self._tree():
            with contextlib.suppress(psutil.Error, AttributeError):
                total += p.memory_full_info().pss
        return total

    def cpu(self) -> float:
        total = 0.0
        for p in self._tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system + (t.children_user + t.children_system if p is self.proc else 0.0)
        return total

    def _sample(self) -> None:
        tick = 0
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            if tick % 10 == 0:  # PSS reads /proc/<pid>/smaps_rollup (~1 ms a process): every 10th sample
                self.peak_pss = max(self.peak_pss, self.pss())
            tick += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Meter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measured:
    """One phase of one tool: what the tool cost, and what it reported."""
    wall_s: float
    cpu_s: float
    rss_mb: float
    reported: list[str] | None = None  # site paths reported as changed; None: the tool detects nothing
    errors: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Oneshot:
    wall_s: float
    cpu_s: float
    rss_mb: float
    stdout: str
    pss_mb: float = 0.0


def run_oneshot(cmd: list, *, cwd: Path, env: dict, log: Path, timeout: float) -> Oneshot:
    """Run a command to completion: wall time, CPU (user+sys of it and its waited-for children, from
    wait4), peak RSS (max of the kernel's max RSS and the sampled tree). Raises on a non-zero exit
    or after `timeout` seconds (its process group is killed)."""
    out_path, err_path = log.with_suffix(".out"), log.with_suffix(".err")
    timed_out = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True)

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        with Meter(proc.pid) as meter:
            _, status, ru = os.wait4(proc.pid, 0)
        timer.cancel()
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = out_path.read_text(errors="replace"), err_path.read_text(errors="replace")
    if timed_out.is_set():
        raise RuntimeError(f"{Path(cmd[0]).name} timed out after {timeout:.0f}s")
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} exited {proc.returncode}: {(stderr or stdout).strip()[-600:]}")
    return Oneshot(wall, ru.ru_utime + ru.ru_stime, max(meter.peak, ru.ru_maxrss * 1024) / MB, stdout, meter.peak_pss / MB)


# -- the site ------------------------------------------------------------------------------------

def terminate(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

class Site:
    """The shared benchmark site in its own process, at generation 0."""

    def __init__(self, pages: int, feeds: int, latency_ms: float):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, str(SITE), "serve", "--pages", str(pages), "--feeds", str(feeds),
                                      "--port", str(self.port), "--latency-ms", str(latency_ms)],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("serving"):
            self.stop()
            raise SystemExit(f"bench site did not start: {line!r}")
        self.banner = line.strip()
        self.urls: list[str] = self.control("urls")
        self.expected: dict = self.control("expected?from=0&to=1")

    def control(self, what: str):
        return http_json(f"{self.base}/__control/{what}", timeout=120)

    def path(self, url: str) -> str:
        return urllib.parse.urlsplit(url).path

    def stop(self) -> None:
        terminate(self.proc, 10)
        self.proc.stdout.close()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- tool runners: start() once per run, phase() per phase, stop() --------------------------------
class Runner:
    name = ""

    def __init__(self, opts: argparse.Namespace, site: Site, work: Path):
        self.opts, self.site, self.work = opts, site, work
        self.timeout = 300 + 3 * len(site.urls)  # the default-politeness run fetches ~1 URL/s

    def start(self) -> None:
        pass

    def phase(self, phase: str) -> Measured:
        raise NotImplementedError

    def stop(self) -> None:
        pass


class GovwatchRunner(Runner):
    name = "govwatch"
    fetch = {"allow_private_networks": True, "per_host_concurrency": 32, "per_host_delay": "0s"}

    def start(self) -> None:
        self.db = self.work / "gw.db"
        sources = []
        for url in self.site.urls:
            path = self.site.path(url)
            if path.startswith("/news/"):
                sources.append({"id": Path(path).stem, "url": url})
            elif path.startswith("/feeds/"):
                sources.append({"id": "feed-" + Path(path).stem.rsplit("-", 1)[1], "url": url, "kind": "feed"})
            else:
                sources.append({"id": "listing", "url": url, "kind": "listing", "max_follow": 0})
        self.config = self.work / "govwatch.yaml"
        self.config.write_text(yaml.safe_dump({"database": f"sqlite:///{self.db}", "include_defaults": False,
                                               "fetch": self.fetch, "sources": sources}, sort_keys=False))
        self.last_change_id = 0

    def phase(self, phase: str) -> Measured:
        env = {**os.environ, "GOVWATCH_LOG_LEVEL": "WARNING"}
        r = run_oneshot([GOVWATCH, "check", "-c", self.config, "--force"], cwd=self.work, env=env,
                        log=self.work / f"govwatch-{phase}", timeout=self.timeout)
        summary = r.stdout.strip().splitlines()[0] if r.stdout.strip() else ""
        errors = int(m.group(1)) if (m := re.search(r"(\d+) error", summary)) else 0
        reported, notes = self._reported()
        notes.append(f"govwatch: peak RSS {r.rss_mb:.0f} MB summed over its processes, peak PSS {r.pss_mb:.0f} MB "
                     "(shared pages counted once)")
        return Measured(r.wall_s, r.cpu_s, r.rss_mb, sorted(reported), errors, [f"govwatch: {summary}", *notes])

    def _reported(self) -> tuple[set[str], list[str]]:
        """Site paths with changes recorded since the last phase; feed items checked against the
        content-changed pages (a new item's key is the page URL + '#update-1')."""
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            rows = db.execute("select c.id, c.kind, c.item_key, s.kind, s.url from changes c "
                              "join sources s on s.id = c.source_id where c.id > ?", (self.last_change_id,)).fetchall()
        self.last_change_id = max([self.last_change_id, *(r[0] for r in rows)])
        content = set(self.site.expected["content_pages"])
        reported, items, stray = set(), 0, []
        for _, kind, item_key, source_kind, source_url in rows:
            reported.add(self.site.path(source_url))
            if source_kind == "feed" and kind == "new_item":
                items += 1
                if self.site.path(item_key.split("#")[0]) not in content:
                    stray.append(item_key)
        notes = []
        if items:
            notes.append(f"govwatch: {items} new feed item(s)" + (f", {len(stray)} not pointing at a content-changed page: "
                                                                    f"{stray[:5]}" if stray else ", all pointing at content-changed pages"))
        return reported, notes


class GovwatchDefaultsRunner(GovwatchRunner):
    name = "govwatch-defaults"
    fetch = {"allow_private_networks": True}


class UrlwatchRunner(Runner):
    name = "urlwatch"
    SUMMARY = re.compile(r"^\d+\. (NEW|CHANGED|ERROR|UNCHANGED): (.+)$")

    def start(self) -> None:
        self.exe = Path(self.opts.peers_dir) / "urlwatch" / "bin" / "urlwatch"
        jobs = [{"name": self.site.path(u), "url": u} for u in self.site.urls]
        (self.work / "urls.yaml").write_text(yaml.safe_dump_all(jobs, sort_keys=False))
        (self.work / "urlwatch.yaml").write_text(yaml.safe_dump({"report": {
            "stdout": {"enabled": True, "color": False},
            "text": {"details": True, "footer": False, "line_length": 75, "minimal": False}}}))
        hooks = ""
        if self.opts.urlwatch_workers:
            hooks = ("# bench/compare.py: urlwatch has no setting for its thread pool size\n"
                     f"import urlwatch.worker\nurlwatch.worker.MAX_WORKERS = {self.opts.urlwatch_workers}\n")
        (self.work / "hooks.py").write_text(hooks)

    def phase(self, phase: str) -> Measured:
        cmd = [self.exe, "--urls", "urls.yaml", "--config", "urlwatch.yaml", "--cache", "cache.db", "--hooks", "hooks.py"]
        r = run_oneshot(cmd, cwd=self.work, env={**os.environ, "HOME": str(self.work)},
                        log=self.work / f"urlwatch-{phase}", timeout=self.timeout)
        verbs: dict[str, list[str]] = {}
        for line in r.stdout.splitlines():
            if m := self.SUMMARY.match(line):
                verbs.setdefault(m.group(1), []).append(m.group(2))
        notes = ["urlwatch: " + ", ".join(f"{len(v)} {k}" for k, v in sorted(verbs.items()))] if verbs else []
        return Measured(r.wall_s, r.cpu_s, r.rss_mb, sorted(verbs.get("CHANGED", [])), len(verbs.get("ERROR", [])), notes)


class CdioRunner(Runner):
    name = "cdio"
    API_KEY = "0123456789abcdef0123456789abcdef"
    proc: subprocess.Popen | None = None
    log = None

    def start(self) -> None:
        venv = Path(self.opts.peers_dir) / "cdio" / "bin"
        store = self.work / "datastore"
        store.mkdir()
        # Settings only; without this file a fresh datastore gets two demo watches on the Internet.
        (store / "changedetection.json").write_text(json.dumps(
            {"settings": {"application": {"api_access_token": self.API_KEY}}}))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HOME": str(self.work), "FETCH_WORKERS": str(self.opts.cdio_workers),
               "ALLOW_IANA_RESTRICTED_ADDRESSES": "true", "DISABLE_VERSION_CHECK": "true", "LOGGER_LEVEL": "WARNING"}
        self.log = open(self.work / "cdio.log", "wb")
        self.proc = subprocess.Popen([venv / "python", venv / "changedetection.py", "-d", store, "-h", "127.0.0.1",
                                      "-p", str(self.port)], cwd=self.work, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"changedetection.io exited {self.proc.returncode} at startup: {self._log_tail()}")
            with contextlib.suppress(OSError, ValueError):
                self.api("systeminfo")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"changedetection.io did not answer within 120s: {self._log_tail()}")
            time.sleep(0.3)
        self.watches: dict[str, dict] = {}

    def _log_tail(self) -> str:
        self.log.flush()
        return (self.work / "cdio.log").read_text(errors="replace").strip()[-600:]

    def api(self, what: str, data: bytes | None = None):
        headers = {"x-api-key": self.API_KEY, **({"Content-Type": "text/plain"} if data is not None else {})}
        return http_json(f"{self.base}/api/v1/{what}", data=data, headers=headers)

    def phase(self, phase: str) -> Measured:
        n = len(self.site.urls)
        before = self.watches
        with Meter(self.proc.pid) as meter:
            cpu0, t0, start = meter.cpu(), time.time(), time.perf_counter()
            if phase == "baseline":
                self.api("import", data="\n".join(self.site.urls).encode())
            else:
                self.api("watch?recheck_all=1")
            deadline = time.monotonic() + self.timeout
            while not self._done(n, 0 if phase == "baseline" else int(t0)):
                if self.proc.poll() is not None:
                    raise RuntimeError(f"changedetection.io exited {self.proc.returncode}: {self._log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{phase}: not all {n} watches checked within {self.timeout}s")
                time.sleep(0.2)
            wall, cpu = time.perf_counter() - start, meter.cpu() - cpu0
        reported = sorted(self.site.path(w["url"]) for uuid, w in self.watches.items()
                          if w["last_changed"] != before.get(uuid, {}).get("last_changed", 0))
        errors = sum(1 for w in self.watches.values() if w.get("last_error"))
        return Measured(wall, cpu, meter.peak / MB, reported, errors)

    def _done(self, n: int, checked_since: int) -> bool:
        """Every URL requested from the site in this phase, nothing queued or running, and every
        watch checked in this phase (last_checked is set when a check starts)."""
        if self.site.control("stats")["requests"] < n:
            return False
        queue = http_json(f"{self.base}/queue.json")
        if queue["queued_count"] or queue["running_count"]:
            return False
        self.watches = self.api("watch")
        return len(self.watches) >= n and all(w["last_checked"] and w["last_checked"] >= checked_since
                                              for w in self.watches.values())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc, 30)
        if self.log is not None:
            self.log.close()


class ScrapyRunner(Runner):
    name = "scrapy"

    def start(self) -> None:
        (self.work / "urls.json").write_text(json.dumps(self.site.urls))
        (self.work / "ceiling.py").write_text(CEILING_SPIDER)

    def phase(self, phase: str) -> Measured:
        r = run_oneshot([VENV_PY, "ceiling.py", "urls.json", "etags.json"], cwd=self.work, env=dict(os.environ),
                        log=self.work / f"scrapy-{phase}", timeout=self.timeout)
        counts = json.loads(r.stdout.strip().splitlines()[-1])
        return Measured(r.wall_s, r.cpu_s, r.rss_mb, None, counts["errors"])


RUNNERS = {r.name: r for r in (GovwatchRunner, GovwatchDefaultsRunner, UrlwatchRunner, CdioRunner, ScrapyRunner)}


@dataclass
class PhaseResult:
    tool: str
    run: int
    phase: str
    wall_s: float
    cpu_s: float
    cpu_ms_per_url: float
    rss_mb: float
    http: dict
    reported: list[str] | None
    errors: int
    notes: list[str]


def run_tool(tool: str, run: int, opts: argparse.Namespace, results: list[PhaseResult], not_run: list[dict]) -> dict:
    """One run of one tool: a fresh site at generation 0, a fresh work dir, the three phases.
    Returns the site's expected changes 0->1 (the same for every run)."""
    with Site(opts.pages, opts.feeds, opts.latency_ms) as site, tempfile.TemporaryDirectory(prefix=f"gw-compare-{tool}-") as tmp:
        runner = RUNNERS[tool](opts, site, Path(tmp))
        done = []
        try:
            runner.start()
            for phase in PHASES:
                if phase != "baseline":
                    time.sleep(1.5)  # urlwatch and changedetection.io key their history by whole seconds
                if phase == "changed":
                    site.control("generation/1")
                site.control("reset-stats")
                m = runner.phase(phase)
                stats = site.control("stats")
                done.append(PhaseResult(tool, run, phase, round(m.wall_s, 3), round(m.cpu_s, 3),
                                        round(1000 * m.cpu_s / len(site.urls), 3), round(m.rss_mb, 1),
                                        {"requests": stats["requests"], **stats["status"]}, m.reported, m.errors, m.notes))
        except Exception as e:  # a tool that fails is reported as not run (its logs kept); the others go on
            kept = tempfile.mkdtemp(prefix=f"gw-compare-failed-{tool}-run{run}-")
            shutil.copytree(tmp, kept, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.db", "*.db-*", "datastore"))
            reason = f"{type(e).__name__}: {e}\n    (its work dir without databases is kept in {kept})"
            not_run.append({"tool": tool, "run": run, "reason": reason})
            print(f"  {LABELS[tool]} run {run}: not run: {reason}", flush=True)
            return site.expected
        finally:
            runner.stop()
    results.extend(done)
    print(f"  {LABELS[tool]} run {run}: " + ", ".join(f"{r.phase} {r.wall_s:.1f}s" for r in done)
          + f"  (load average {os.getloadavg()[0]:.1f})", flush=True)
    return site.expected


# -- peers and versions --------------------------------------------------------------------------
def ensure_peer(peers_dir: Path, venv: str, package: str, exe: str) -> Path:
    """The peer's virtualenv under peers_dir, created with pip install when missing."""
    path = peers_dir / venv / "bin" / exe
    if not path.exists():
        print(f"installing {package} into {peers_dir / venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(peers_dir / venv)], check=True)
        subprocess.run([str(peers_dir / venv / "bin" / "pip"), "install", "-q", package], check=True)
    return path


def command_output(cmd: list) -> str:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120)
    lines = (r.stdout or r.stderr).strip().splitlines()
    return lines[-1] if lines else "?"


def versions(opts: argparse.Namespace) -> dict:
    v = {"govwatch": command_output([VENV_PY, "-c", "import importlib.metadata as m; print(m.version('govwatch'))"]),
         "govwatch_commit": command_output(["git", "-C", REPO, "describe", "--always", "--dirty"]),
         "scrapy": command_output([VENV_PY, "-c", "import scrapy; print(scrapy.__version__)"])}
    peers = Path(opts.peers_dir)
    if "urlwatch" in opts.tools:
        v["urlwatch"] = command_output([ensure_peer(peers, "urlwatch", "urlwatch==2.29", "urlwatch"), "--version"]).split()[-1]
    if "cdio" in opts.tools:
        cdio = ensure_peer(peers, "cdio", "changedetection.io", "changedetection.py")
        v["changedetection.io"] = command_output([cdio.parent / "python", cdio, "--version"]).split()[-1]
    return v


# -- report --------------------------------------------------------------------------------------
def runs_of(results: list[PhaseResult], tool: str, phase: str) -> list[PhaseResult]:
    return sorted((r for r in results if r.tool == tool and r.phase == phase), key=lambda r: r.run)


def span(values: list, fmt: str = "{:.2f}") -> str:
    """median (min-max), or one value."""
    if not values:
        return "-"
    med = fmt.format(statistics.median(values))
    return med if len(values) == 1 else f"{med} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def one_or_range(values: list[int]) -> str:
    return str(values[0]) if min(values) == max(values) else f"{min(values)}-{max(values)}"


def classify(r: PhaseResult, expected: dict) -> dict:
    """Reported paths against the expected changes of the phase (only the changed phase has any)."""
    want = set(expected["content_pages"] + expected["feeds"]) if r.phase == "changed" else set()
    listing_changed = r.phase == "changed" and bool(expected["listing"])
    got = set(r.reported or ())
    false = got - want - ({LISTING} if listing_changed else set())
    return {"reported": len(got), "false": sorted(false), "missed": sorted(want - got), "listing": LISTING in got,
            "false_cosmetic": len(false & set(expected["cosmetic_pages"]))}


def paired(results, tool: str, peer: str, phase: str, key) -> list[float]:
    mine = {r.run: r for r in runs_of(results, tool, phase)}
    return [key(mine[p.run]) / key(p) for p in runs_of(results, peer, phase) if p.run in mine and key(p) > 0]


def ratio_text(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.2f}-{statistics.median(values):.2f}-{max(values):.2f}"


def print_phase_table(results, phase: str, tools: list[str], expected: dict, n_urls: int) -> None:
    header = (f"{'tool':<30} {'runs':>4} {'wall s median (min-max)':>24} {'CPU s':>7} {'CPU ms/URL':>10} "
              f"{'peak RSS MB':>11} {'HTTP 200/304':>13} {'reported':>8} {'false':>6} {'missed':>6} {'listing':>7} {'errors':>6}")
    print(header)
    print("-" * len(header))
    for tool in tools:
        rs = runs_of(results, tool, phase)
        if not rs:
            print(f"{LABELS[tool]:<30} {'0':>4}  not run (see below)")
            continue
        cpu = statistics.median(r.cpu_s for r in rs)
        http = f"{one_or_range([r.http.get('200', 0) for r in rs])}/{one_or_range([r.http.get('304', 0) for r in rs])}"
        if rs[0].reported is None:
            rep = false = missed = listing = "n/a"
        else:
            cs = [classify(r, expected) for r in rs]
            rep = one_or_range([c["reported"] for c in cs])
            false = one_or_range([len(c["false"]) for c in cs])
            missed = one_or_range([len(c["missed"]) for c in cs])
            listing = "/".join(sorted({"yes" if c["listing"] else "no" for c in cs}))
        print(f"{LABELS[tool]:<30} {len(rs):>4} {span([r.wall_s for r in rs]):>24} {cpu:>7.2f} {1000 * cpu / n_urls:>10.2f} "
              f"{max(r.rss_mb for r in rs):>11.0f} {http:>13} {rep:>8} {false:>6} {missed:>6} {listing:>7} "
              f"{one_or_range([r.errors for r in rs]):>6}")


def print_notes(results, phase: str, tools: list[str], expected: dict) -> None:
    for tool in tools:
        rs = runs_of(results, tool, phase)
        if not rs or rs[0].reported is None:
            continue
        c = classify(rs[0], expected)
        if c["false"]:
            other = len(c["false"]) - c["false_cosmetic"]
            print(f"  run {rs[0].run}, {LABELS[tool]}: false changes {len(c['false'])} = {c['false_cosmetic']} cosmetic-only "
                  f"page(s)" + (f" + {other} other: {c['false'][:5]}" if other else ""))
        if c["missed"]:
            print(f"  run {rs[0].run}, {LABELS[tool]}: missed {c['missed'][:10]}")
        for note in rs[0].notes:
            print(f"  run {rs[0].run}, {note}")


def checks(results, tools: list[str], expected: dict) -> list[dict]:
    """The issues' targets (7: CPU per URL against urlwatch and bare Scrapy; 19: the walls against
    urlwatch), on median paired ratios, and the largest govwatch peak RSS."""
    out = []

    def add(name: str, values: list[float], limit: float, text: str) -> None:
        if not values:
            out.append({"check": name, "value": None, "limit": limit, "pass": None, "detail": "not measured (see 'not run')"})
            return
        med = statistics.median(values)
        out.append({"check": name, "value": med, "limit": limit, "pass": med <= limit,
                    "detail": f"{text} {ratio_text(values)} (min-median-max), limit {limit:g}"})

    wall, cpu = (lambda r: r.wall_s), (lambda r: r.cpu_s)
    if "urlwatch" in tools:
        add("baseline wall <= 1.0x urlwatch", paired(results, "govwatch", "urlwatch", "baseline", wall), 1.0, "wall ratio")
        add("changed wall <= 0.6x urlwatch", paired(results, "govwatch", "urlwatch", "changed", wall), 0.6, "wall ratio")
        add("unchanged wall <= 0.5x urlwatch", paired(results, "govwatch", "urlwatch", "unchanged", wall), 0.5, "wall ratio")
    for phase in PHASES:
        if "cdio" in tools:
            add(f"{phase}: >= 8x faster than changedetection.io", paired(results, "govwatch", "cdio", phase, wall), 1 / 8,
                "wall ratio")
        if "urlwatch" in tools:
            add(f"{phase}: CPU/URL <= urlwatch", paired(results, "govwatch", "urlwatch", phase, cpu), 1.0, "CPU ratio")
        if "scrapy" in tools:
            add(f"{phase}: CPU/URL <= 1.5x bare Scrapy", paired(results, "govwatch", "scrapy", phase, cpu), 1.5, "CPU ratio")
    gw = [r for r in results if r.tool == "govwatch"]
    if gw:
        peak = max(r.rss_mb for r in gw)
        out.append({"check": "peak RSS <= 150 MB", "value": peak, "limit": 150, "pass": peak <= 150,
                    "detail": f"largest govwatch peak {peak:.0f} MB over {len(gw)} phase runs"})
        bad = [f"run {r.run} {r.phase}: reported {c['reported']}, false {len(c['false'])}, missed {len(c['missed'])}"
               for r in gw if (c := classify(r, expected))["false"] or c["missed"]]
        out.append({"check": "exact change set", "value": len(bad), "limit": 0, "pass": not bad,
                    "detail": "; ".join(bad) or f"every run: changed phase = {len(expected['content_pages'])} content "
                                                  f"pages + {len(expected['feeds'])} feeds, nothing else in any phase"})
    return out


def report(results, not_run, defaults, opts, n_urls: int, expected: dict) -> list[dict]:
    tools = [t for t in TOOLS if t in opts.tools]
    titles = {"baseline": "baseline: first check of everything (generation 0)",
              "changed": "changed: site switched to generation 1, check again",
              "unchanged": "unchanged: check again, nothing changed (conditional GET can answer)"}
    for phase in PHASES:
        print(f"\n=== {titles[phase]} ===")
        print_phase_table(results, phase, tools, expected, n_urls)
        print_notes(results, phase, tools, expected)
    print(f"\nExpected changes 0->1: {len(expected['content_pages'])} content pages + {len(expected['feeds'])} feeds; "
          f"{len(expected['cosmetic_pages'])} pages change only cosmetically (footer stamp, header link); the listing "
          f"changes too (its rows carry each page's 'updated' date, cosmetic edits included), so it is shown in its own "
          f"column and counted neither false nor missed in the changed phase (in the other phases it would be false).")

    peers = [t for t in tools if t != "govwatch"]
    if "govwatch" in tools and peers:
        print("\n=== ratios govwatch / peer (run i over run i, min-median-max) ===")
        print(f"{'peer':<20} {'phase':<10} {'wall':>17} {'CPU/URL':>17} {'peak RSS':>17}")
        for peer in peers:
            for phase in PHASES:
                row = [ratio_text(paired(results, "govwatch", peer, phase, key))
                       for key in ((lambda r: r.wall_s), (lambda r: r.cpu_s), (lambda r: r.rss_mb))]
                print(f"{LABELS[peer]:<20} {phase:<10} {row[0]:>17} {row[1]:>17} {row[2]:>17}")

    if defaults:
        tuned = {p: statistics.median(r.wall_s for r in runs_of(results, "govwatch", p)) for p in PHASES
                 if runs_of(results, "govwatch", p)}
        print("\n=== govwatch with its default politeness (per_host_concurrency 2, per_host_delay 1s; only "
              "allow_private_networks set), one run ===")
        for r in defaults:
            vs = f"  ({r.wall_s / tuned[r.phase]:.1f}x the tuned median {tuned[r.phase]:.1f}s)" if r.phase in tuned else ""
            print(f"  {r.phase:<10} wall {r.wall_s:8.1f}s ({1000 * r.wall_s / n_urls:.0f} ms/URL)  CPU {r.cpu_s:6.2f}s  "
                  f"peak RSS {r.rss_mb:4.0f} MB{vs}")

    if not_run:
        print("\n=== not run ===")
        for n in not_run:
            print(f"  {LABELS[n['tool']]} run {n['run']}: {n['reason']}")

    result = checks(results, tools, expected)
    if result:
        print("\n=== targets (issues 7 and 19) ===")
        for c in result:
            verdict = "n/a " if c["pass"] is None else "PASS" if c["pass"] else "MISS"
            print(f"  {verdict}  {c['check']:<48} {c['detail']}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, help="article pages (default 1000; --quick 100)")
    ap.add_argument("--feeds", type=int, default=10)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--runs", type=int, help="runs per tool (default 3; --quick 1)")
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS))
    ap.add_argument("--quick", action="store_true", help="--pages 100 --runs 1 --skip-defaults")
    ap.add_argument("--skip-defaults", action="store_true", help="no extra govwatch run with default politeness")
    ap.add_argument("--peers-dir", default="/tmp/gw-peers", help="virtualenvs of urlwatch and changedetection.io")
    ap.add_argument("--urlwatch-workers", type=int, default=32, help="urlwatch threads, set through hooks.py (0: its own 10)")
    ap.add_argument("--cdio-workers", type=int, default=32, help="changedetection.io FETCH_WORKERS")
    ap.add_argument("--json", metavar="PATH", help="write every raw number here")
    opts = ap.parse_args(argv)
    opts.pages = opts.pages or (100 if opts.quick else 1000)
    opts.runs = opts.runs or (1 if opts.quick else 3)
    opts.skip_defaults = opts.skip_defaults or opts.quick
    opts.tools = [t.strip() for t in opts.tools.split(",") if t.strip()]
    if unknown := set(opts.tools) - set(TOOLS):
        ap.error(f"unknown tool(s) {sorted(unknown)}; known: {', '.join(TOOLS)}")

    v = versions(opts)
    n_urls = opts.pages + opts.feeds + 1
    print(f"compare: {opts.pages} pages + {opts.feeds} feeds + listing = {n_urls} URLs, latency {opts.latency_ms:g} ms, "
          f"{opts.runs} run(s) per tool, tools alternating {' '.join(opts.tools)}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print("settings: govwatch fetch.per_host_concurrency raised to 32 and per_host_delay to 0s for the one local host "
          "(allow_private_networks true), everything else default; "
          f"urlwatch threads {opts.urlwatch_workers or 10}"
          f"{' (set in hooks.py; its own is 10)' if opts.urlwatch_workers else ' (its own)'}, no filters; "
          f"changedetection.io FETCH_WORKERS={opts.cdio_workers}, plain HTTP fetcher; "
          "bare Scrapy 32 concurrent, no delay, robots off", flush=True)

    results: list[PhaseResult] = []
    not_run: list[dict] = []
    for run in range(1, opts.runs + 1):
        print(f"run {run}/{opts.runs}", flush=True)
        for tool in opts.tools:
            expected = run_tool(tool, run, opts, results, not_run)
    defaults: list[PhaseResult] = []
    if "govwatch" in opts.tools and not opts.skip_defaults:
        print("govwatch with default politeness (one run)", flush=True)
        run_tool("govwatch-defaults", 1, opts, defaults, not_run)
    result = report(results, not_run, defaults, opts, n_urls, expected)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (other work on this machine skews wall times)")
    if opts.json:
        Path(opts.json).write_text(json.dumps({
            "options": {k: val for k, val in vars(opts).items()}, "versions": v, "urls": n_urls, "expected": expected,
            "results": [asdict(r) for r in results], "defaults_run": [asdict(r) for r in defaults],
            "not_run": not_run, "checks": result}, indent=1))
        print(f"\nraw numbers: {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
