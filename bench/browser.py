"""Browser benchmark (run by hand, not in the test suite): what rendering pages behind a JavaScript
wall costs, against the plain HTTP path on the same pages.

Usage: .venv/bin/python bench/browser.py [--pages 200] [--max-pages 2] [--restart-after 100]

A local site on 127.0.0.1 serves N pages whose main text a script writes (as ice.gov's pages do),
about 4 KB of HTML and 1,500 characters of text each, with 20 ms latency. Each run is a fresh
`govwatch check` (the real CLI, its own SQLite database) of N page sources: once with
`render: browser` (Debian's chromium through scrapy-playwright, at most --max-pages at once, the
browser restarted after --restart-after pages, screenshots on), once with `render: http`. Reported:
wall seconds, pages per second, CPU seconds (govwatch and every child: chromium's processes and
Playwright's driver), and the peak RSS sampled every 100 ms, of govwatch's own process and of the
whole process tree (govwatch + Playwright + chromium; proportional set size, shared pages counted
once). The HTTP run reads the same text served in the HTML (over HTTP the scripted pages read
nothing). Then a second check of the same pages with nothing changed (the steady state of a
watched site: the browser renders again, HTTP gets the same bytes).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
WORDS = ("allegation substantiated employee investigation office professional responsibility removal "
         "suspension reprimand referred misconduct report fiscal year agency review findings").split()


def page(i: int, scripted: bool = True) -> bytes:
    """Page i: its main text written by a script, or (for the HTTP path) the same text in the HTML."""
    sentences = [" ".join(WORDS[(i + k + j) % len(WORDS)] for j in range(14)).capitalize() + "." for k in range(12)]
    main = f"<h1>Bulletin {i}</h1>" + "".join(f"<p>{s}</p>" for s in sentences)
    body = (f"<main id='m'></main><script>document.getElementById('m').innerHTML = {json.dumps(main)};</script>"
            if scripted else f"<main id='m'>{main}</main>")
    return (f"<!doctype html><html><head><title>Page {i} | ICE</title><style>main{{font:16px serif}}</style></head>"
            f"<body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav>{body}"
            f"<footer>Last Reviewed/Updated: 11/01/2026</footer></body></html>").encode()


class Site:
    def __init__(self, n: int, latency: float):
        pages = {**{f"/p/{i}": page(i) for i in range(n)}, **{f"/s/{i}": page(i, scripted=False) for i in range(n)}}

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                time.sleep(latency)
                body = pages.get(self.path.split("?")[0], b"" if self.path == "/robots.txt" else None)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8" if body else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run_check(workdir: Path, args: list[str]) -> dict:
    """One `govwatch check`, its process tree sampled every 100 ms (proportional set size: the
    memory chromium's processes share is counted once, not once per process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVWATCH_")}
    # CPU: what the finished process tree used (each parent reaps its children, so the rusage of
    # our reaped children holds every descendant once); summing live per-process times counts twice
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    log = open(workdir / "check.log", "w+")  # a file, not a pipe: a full pipe would stop the check
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "check", *args], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    me = psutil.Process(proc.pid)
    peak_self = peak_tree = 0
    while proc.poll() is None:
        try:
            tree = [me] + me.children(recursive=True)
            rss = 0
            for p in tree:
                try:
                    rss += p.memory_full_info().pss
                except psutil.Error:
                    pass
            peak_self = max(peak_self, me.memory_info().rss)
            peak_tree = max(peak_tree, rss)
        except psutil.Error:
            pass
        time.sleep(0.1)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    out = proc.stdout.read()
    log.seek(0)
    err = log.read()
    log.close()
    errors = [line for line in err.splitlines() if "fetch failed" in line or "ERROR" in line][:3]
    return {"wall": wall, "cpu": cpu, "errors": errors, "self_mb": peak_self / 2**20, "tree_mb": peak_tree / 2**20,
            "summary": out.strip().splitlines()[0] if out.strip() else "", "rc": proc.returncode}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--max-pages", type=int, default=2, help="fetch.browser.max_pages")
    ap.add_argument("--restart-after", type=int, default=100, help="fetch.browser.restart_after")
    ap.add_argument("--latency", type=float, default=0.02)
    a = ap.parse_args()
    site = Site(a.pages, a.latency)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores; {a.pages} pages, latency {a.latency * 1000:.0f} ms")
    print(f"{'path':<8} {'run':<10} {'wall s':>7} {'pages/s':>8} {'CPU s':>7} {'govwatch MB':>12} {'tree MB':>8}  summary")
    for render in ("browser", "http"):
        with tempfile.TemporaryDirectory(prefix="gw-bench-browser-") as d:
            work = Path(d)
            cfg = {"database": f"sqlite:///{work / 'gw.db'}", "include_defaults": False,
                   "fetch": {"allow_private_networks": True, "per_host_delay": "0s", "per_host_concurrency": 8,
                             "timeout": "60s", "retries": 0,
                             "browser": {"max_pages": a.max_pages, "restart_after": a.restart_after}},
                   # the browser renders the scripted pages; plain HTTP reads the same text served in the HTML
                   "sources": [{"id": f"p{i}", "url": f"{site.base}/{'p' if render == 'browser' else 's'}/{i}", "render": render}
                               for i in range(a.pages)]}
            (work / "govwatch.yaml").write_text(yaml.safe_dump(cfg))
            for run in ("first", "unchanged"):
                r = run_check(work, ["--force"])
                print(f"{render:<8} {run:<10} {r['wall']:7.1f} {a.pages / r['wall']:8.2f} {r['cpu']:7.1f} "
                      f"{r['self_mb']:12.0f} {r['tree_mb']:8.0f}  {r['summary'][:90]}")
                for line in r["errors"]:
                    print(f"    {line[:200]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
