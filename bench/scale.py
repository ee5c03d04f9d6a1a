"""Scale benchmark (run by hand, not in the test suite): what one very large document, a growing
store and a change log of 100,000 changes cost.

Usage: .venv/bin/python bench/scale.py [--only page,pdf,store,changelog,sources] [--pages 200]
           [--generations 10] [--changes 100000] [--sources 20000] [--postgres URL | --no-postgres]
       .venv/bin/python bench/scale.py --only run [--sources 20000] [--hosts 200] [--duration 3600]
           [--every 600] [--tick 30] [--keep]

page       a deterministic 5 MB government-style HTML page (nav, footer, inline scripts, thousands of
           paragraphs in <main>): monitor.extract.extract of two versions, monitor.diff.diff (+ the
           unified diff the pipeline stores) where the second version rewords, adds and drops a few
           paragraphs, and monitor.classify.classify with the built-in topics of the added text (as
           the pipeline does) and of the whole text (as for a new document; the classifier reads
           the first MAX_TEXT_CHARS only). Time is the median of 3 runs; "py peak" is tracemalloc's
           peak (Python objects only) in a 4th run; "RSS peak" is the process RSS above the step's
           start, sampled every 5 ms (includes lxml's C memory).
pdf        the same for a ~5 MB PDF (reportlab, uncompressed text pages).
store      the real pipeline: `govwatch check --force` in a new process against
           ../shared/bench-site/site.py (5% of pages change in content, 20% cosmetically per
           generation): a baseline, a re-fetch answered 304, a re-fetch of the same bodies (stored
           validators cleared), then N generations. Database bytes after VACUUM + WAL checkpoint.
changelog  N changes bulk-inserted (with topic matches, deliveries, triage, snapshots) into a
           migrated SQLite database and, when reachable, a PostgreSQL schema that is dropped
           afterwards; then `govwatch changes` (cold: a new process; warm: in this process) and the
           web change log (cold: the first request of a new app; warm: the next ones), each with
           the number of SQL statements it ran and the plan of its slowest one.
sources    --sources N (default 20,000) sources on 200 hosts and 20,000 changes: the web change
           log's first page, a search and a source filter (warm, median of 5), both databases.
run        (only when named) `govwatch run` against --sources page sources on --hosts loopback
           hosts for --duration seconds, each every --every seconds: whether every source is
           checked within its interval, RSS over time, database growth per day, then the web
           change log on the result (bench/scale_run.py).
Timings are medians of 3 unless marked "(1 run)"; other processes on the machine make them noisy.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import io
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import event, insert, text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from bench.soak import SharedSite  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MB = 2**20
SEED = 20261128
DEFAULT_PG = os.environ.get("GOVWATCH_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# -- shared helpers --------------------------------------------------------------------------
def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def fmt_mb(n: float) -> str:
    return f"{n / MB:,.1f} MB"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def median_time(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Median wall time of `repeat` calls, and the last call's result."""
    runs = [timed(fn) for _ in range(repeat)]
    return statistics.median(t for t, _ in runs), runs[-1][1]


class RssPeak:
    """Peak RSS above the value at entry, sampled every 5 ms by a thread."""

    def __enter__(self) -> "RssPeak":
        self._proc = psutil.Process()
        self.start = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def delta(self) -> int:
        return self.peak - self.start


@dataclass
class Cost:
    seconds: float
    py_peak: int
    rss_peak: int
    result: Any


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so the next RSS peak starts low."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc only


def measure(fn: Callable[[], Any], repeat: int = 3) -> Cost:
    """Median time of `repeat` runs (the first one also gives the RSS peak), then one more run
    under tracemalloc for the peak of Python allocations."""
    release_memory()
    with RssPeak() as rss:
        first, result = timed(fn)
    seconds = statistics.median([first] + [timed(fn)[0] for _ in range(repeat - 1)])
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, py_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return Cost(seconds, py_peak, rss.delta, result)


def print_cost(label: str, cost: Cost, note: str = "") -> None:
    print(f"  {label:<44} {fmt_s(cost.seconds):>10} {fmt_mb(cost.py_peak):>10} {'+' + fmt_mb(cost.rss_peak):>11}  {note}")


def govwatch(*args: str) -> tuple[float, float, int]:
    """`govwatch ARGS` in a new process running this checkout's code: seconds to the first byte
    of output, seconds in all, and bytes printed."""
    env = dict(os.environ, PYTHONPATH=str(REPO), GOVWATCH_LOG_LEVEL="WARNING")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "monitor", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.read1(65536)
    t_first = time.perf_counter() - t
    n = len(first) + len(proc.stdout.read())
    err = proc.stderr.read().decode("utf-8", "replace")
    if proc.wait() != 0:
        raise SystemExit(f"govwatch {' '.join(args)} failed ({proc.returncode}):\n{err}")
    return t_first, time.perf_counter() - t, n


def write_config(folder: Path, database: str, sources: list[dict], **extra) -> Path:
    path = folder / "govwatch.yaml"
    path.write_text(yaml.safe_dump({"database": database, "include_defaults": False, "sources": sources, **extra}))
    return path


# -- deterministic government-style text ----------------------------------------------------
AGENCIES = ["The Department of Homeland Security", "U.S. Citizenship and Immigration Services", "The Coast Guard",
            "The Federal Emergency Management Agency", "The Transportation Security Administration",
            "The Cybersecurity and Infrastructure Security Agency", "The Science and Technology Directorate"]
VERBS = ["announced", "published", "extended", "updated", "awarded", "released", "finalized", "expanded", "opened"]
ADJECTIVES = ["new", "revised", "regional", "interim", "multi-year", "supplemental", "national", "voluntary", "updated"]
NOUNS = ["grant funding", "guidance", "preparedness resources", "training materials", "a public comment period",
         "a pilot program", "technical assistance", "a data dashboard", "outreach events", "a strategic plan"]
BENEFICIARIES = ["state and local partners", "small businesses", "tribal governments", "port operators", "hospitals",
                 "school districts", "emergency managers", "airport operators", "community organizations"]
STATES = ["Texas", "Florida", "Louisiana", "California", "Arizona", "New Mexico", "Georgia", "Alabama", "Oregon",
          "Washington", "Michigan", "Ohio", "Pennsylvania", "New York", "Maine", "Alaska", "Hawaii", "Puerto Rico"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# Sentences the built-in topics match (opr-outcomes, extremism-definitions), checked by hand.
OPR_OUTCOME = ("In fiscal year {year}, ICE OPR substantiated allegations that {n} employees were members of a white "
               "supremacist extremist group; all {n} were removed from federal service.")
RELEVANT = [
    OPR_OUTCOME,
    "CBP Office of Professional Responsibility closed {n}0 investigations of employee misconduct; {n} allegations "
    "were substantiated and {n} employees were suspended in fiscal year {year}.",
    "DHS OIG found that ICE did not consistently track disciplinary outcomes for {n} employees who engaged in "
    "misconduct in fiscal year {year}.",
    "The Department of Homeland Security revised its definition of domestic terrorism in {year}: domestic violent "
    "extremism is defined as violence committed by individuals based in the United States.",
]


def sentence(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.45:
        return (f"{rng.choice(AGENCIES)} {rng.choice(VERBS)} {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} for "
                f"{rng.choice(BENEFICIARIES)} in {rng.choice(STATES)}.")
    if r < 0.75:
        return (f"The {rng.choice(ADJECTIVES)} program will provide ${rng.randint(2, 950)}.{rng.randint(0, 9)} million "
                f"to {rng.randint(3, 400)} {rng.choice(BENEFICIARIES)} through {rng.choice(MONTHS)} {rng.randint(2026, 2031)}.")
    return (f"Applications from {rng.choice(BENEFICIARIES)} are due on {rng.choice(MONTHS)} {rng.randint(1, 28)}, "
            f"and the program office will hold {rng.randint(2, 12)} webinars on the {rng.choice(ADJECTIVES)} requirements.")


def paragraph(rng: random.Random, lo: int = 3, hi: int = 7) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(lo, hi)))


def relevant(rng: random.Random, which: int) -> str:
    return RELEVANT[which].format(year=rng.randint(2019, 2026), n=rng.randint(2, 40))


# -- 1. one 5 MB page / PDF ---------------------------------------------------------------------
ANALYTICS = "(function(){var q=[];" + 'q.push(["track",1]);' * 500 + "})();"


def render_page(blocks: list[tuple[str, str]], updated: str) -> bytes:
    """A government CMS page: settings JSON and analytics scripts, a big nav, <main>, a big footer."""
    rng = random.Random(SEED)  # the chrome is the same in every version
    settings = json.dumps({"menu": [{"id": i, "label": f"Topic {i}", "path": f"/topics/{i}", "weight": rng.random()}
                                    for i in range(300)]})
    nav = "".join(f'<li><a href="/topics/{i}">{rng.choice(NOUNS).capitalize()} {i}</a></li>' for i in range(400))
    body = "".join(f"<{tag}>{content}</{tag}>" for tag, content in blocks)
    footer = "".join(f'<li><a href="/about/{i}">{rng.choice(BENEFICIARIES).capitalize()}</a></li>' for i in range(150))
    html = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Annual Preparedness Report | "
            f"Homeland Security</title><style>{'.usa-nav a{color:#005ea2} ' * 200}</style>"
            f"<script>window.drupalSettings = {settings};</script></head><body>"
            f"<header><nav aria-label=\"Primary\"><ul>{nav}</ul></nav></header>"
            f"<main id=\"main-content\"><nav class=\"breadcrumb\"><a href=\"/\">Home</a> / Reports</nav>"
            f"<h1>Annual Preparedness Report</h1>{body}<aside><h2>Related</h2><ul>{nav[:4000]}</ul></aside></main>"
            f"<footer><ul>{footer}</ul><p>Page last updated: {updated}</p></footer>"
            f"<script>{ANALYTICS}</script></body></html>")
    return html.encode("utf-8")


@dataclass
class LargePage:
    v1: bytes
    v2: bytes
    planted: list[str]  # relevant sentences spread through version 1 (10%, 50%, 90% of <main>)
    edits: str


def large_page(size: int = 5 * MB) -> LargePage:
    rng = random.Random(SEED)
    chrome = len(render_page([], "1 March 2026"))
    blocks: list[tuple[str, str]] = []
    total = chrome
    while total < size:
        block = ("h2", f"Section {len(blocks) + 1}: {rng.choice(NOUNS).capitalize()}") if len(blocks) % 25 == 0 \
            else ("p", paragraph(rng))
        blocks.append(block)
        total += len(block[1]) + 9
    planted = []
    for k, frac in enumerate((0.1, 0.5, 0.9)):
        i = int(len(blocks) * frac) | 1
        sent = OPR_OUTCOME.format(year=2020 + k, n=11 * (k + 1))
        blocks[i] = ("p", blocks[i][1] + " " + sent)
        planted.append(sent)
    v2 = list(blocks)
    for frac in (0.2, 0.6, 0.95):  # reword the first sentence
        i = int(len(v2) * frac) | 1
        v2[i] = ("p", v2[i][1].replace(". ", ", as amended. ", 1))
    del v2[int(len(v2) * 0.7) | 1]
    v2.insert(int(len(v2) * 0.3), ("p", RELEVANT[1].format(year=2026, n=37)))
    v2.insert(int(len(v2) * 0.8), ("p", paragraph(rng)))
    return LargePage(render_page(blocks, "1 March 2026"), render_page(v2, "2 March 2026"), planted,
                     "3 paragraphs reworded, 2 added (1 relevant), 1 removed")


PDF_PLANTED = OPR_OUTCOME.format(year=2024, n=44)


def pdf_pages(pages: int) -> bytes:
    """`pages` text pages (reportlab, streams uncompressed); one relevant line at 90% of them."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    rng = random.Random(SEED)
    words = " ".join(paragraph(rng, 40, 40) for _ in range(20)).split()
    per_page = 46 * 14  # 46 lines of 14 words
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, pageCompression=0)
    for p in range(pages):
        c.drawString(54, 760, f"DHS Annual Preparedness Report    Page {p + 1} of {pages}")
        start = (p * per_page) % (len(words) - per_page)
        for line in range(46):
            chunk = " ".join(words[start + line * 14:start + line * 14 + 14])
            if p == pages * 9 // 10 and line == 20:
                chunk = PDF_PLANTED  # one long line: the text layer keeps it whole
            c.drawString(54, 740 - 15 * line, chunk)
        c.showPage()
    c.save()
    return buf.getvalue()


def large_pdf(size: int = 5 * MB) -> bytes:
    return pdf_pages(round(size / (len(pdf_pages(50)) / 50)))


def found(planted: str, matches) -> bool:
    """Whether a planted OPR_OUTCOME sentence is among the evidence (by its "that N employees")."""
    marker = planted.split(" were members")[0][-30:]
    return any(marker in ev.sentence for m in matches for ev in m.evidence)


def measure_large_page() -> None:
    from monitor.classify import MAX_TEXT_CHARS, builtin_topics, classify
    from monitor.diff import diff
    from monitor.extract import extract

    page = large_page()
    topics = builtin_topics()
    print(f"\n1. One {fmt_mb(len(page.v1))} HTML page: {page.v1.count(b'<p>'):,} paragraphs in <main>, a 400-link nav, "
          f"footer, inline scripts\n   version 2: {page.edits}")
    print(f"  {'step':<44} {'time':>10} {'py peak':>10} {'RSS peak':>11}  result")
    x1 = measure(lambda: extract(page.v1, content_type="text/html", url="https://www.dhs.gov/report"))
    print_cost("extract version 1", x1, f"{len(x1.result.text):,} chars of text")
    x2 = measure(lambda: extract(page.v2, content_type="text/html", url="https://www.dhs.gov/report"))
    print_cost("extract version 2", x2, f"{len(x2.result.text):,} chars of text")
    t1, t2 = x1.result.text, x2.result.text

    def diff_and_unified():
        d = diff(t1, t2)
        return d, d.unified()

    dc = measure(diff_and_unified)
    d, unified = dc.result
    print_cost("diff + unified diff (as stored)", dc,
               f"{len(d.added)} units added, {len(d.removed)} removed, {len(d.replaced)} reworded; diff {len(unified):,} chars")
    ca = measure(lambda: classify(d.added_text, topics, removed=d.removed_text))
    print_cost(f"classify the added text ({len(d.added_text):,} chars)", ca,
               ", ".join(f"{m.topic} ({m.severity})" for m in ca.result) or "no match")
    cw = measure(lambda: classify(t2, topics))
    print_cost(f"classify the whole text ({len(t2):,} chars)", cw,
               ", ".join(f"{m.topic} ({m.severity}, {len(m.evidence)} evidence)" for m in cw.result) or "no match")
    print(f"  pipeline cost of this change (extract + diff + classify added): {fmt_s(x2.seconds + dc.seconds + ca.seconds)}")
    offsets = [t2.find(p) for p in page.planted]
    seen = [found(p, cw.result) for p in page.planted]
    print(f"  classifier cap: MAX_TEXT_CHARS = {MAX_TEXT_CHARS:,}; the text has {len(t2):,} chars, so the last "
          f"{max(0, len(t2) - MAX_TEXT_CHARS):,} are not classified (no error, no note).\n"
          f"  relevant sentences planted at chars " + ", ".join(f"{o:,}" for o in offsets) + ": "
          + ", ".join("found" if s else "NOT found" for s in seen) + " in the whole-text evidence.")


def measure_large_pdf() -> None:
    from monitor.classify import builtin_topics, classify
    from monitor.extract import MAX_PDF_PAGES, extract

    t = time.perf_counter()
    body = large_pdf()
    made = time.perf_counter() - t
    print(f"\n1b. One {fmt_mb(len(body))} PDF (made by reportlab in {fmt_s(made)}; text pages, streams uncompressed)")
    print(f"  {'step':<44} {'time':>10} {'py peak':>10} {'RSS peak':>11}  result")
    x = measure(lambda: extract(body, content_type="application/pdf", url="https://www.dhs.gov/report.pdf"))
    print_cost("extract (pypdf)", x, f"{x.result.pages:,} pages (cap {MAX_PDF_PAGES:,}), {len(x.result.text):,} chars")
    c = measure(lambda: classify(x.result.text, builtin_topics()))
    print_cost(f"classify the whole text ({len(x.result.text):,} chars)", c,
               ", ".join(f"{m.topic} ({m.severity})" for m in c.result) or "no match")
    print(f"  a relevant sentence planted at char {x.result.text.find(PDF_PLANTED[:60]):,} (90% of the pages): "
          f"{'found' if found(PDF_PLANTED, c.result) else 'NOT found'} in the whole-text evidence")


# -- 2. bytes on disk per 1,000 snapshots ---------------------------------------------------------
def sqlite_bytes(path: Path) -> int:
    """The database's size after VACUUM and a truncating WAL checkpoint (database + -wal)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as c:
        c.execute("VACUUM")
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def db_counts(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as c:
        out = {t: c.execute(f"select count(*) from {t}").fetchone()[0] for t in ("snapshots", "fetch_attempts", "changes", "blobs")}
        out.update(dict(c.execute("select outcome, count(*) from fetch_attempts group by outcome")))
    return out


def measure_store(pages: int, generations: int) -> None:
    print(f"\n2. Store size: the real pipeline (`govwatch check --force`, a new process each) on {pages} pages "
          "of the shared bench site")
    site = SharedSite(pages, feeds=1)  # site.py fails with --feeds 0; the one feed is not watched
    try:
        with tempfile.TemporaryDirectory(prefix="govwatch-scale-") as tmp:
            db = Path(tmp) / "gw.db"
            sources = [{"id": f"page-{i + 1:05d}", "url": site.base + p} for i, p in enumerate(site.paths)]
            cfg = write_config(Path(tmp), f"sqlite:///{db}", sources,
                               fetch={"allow_private_networks": True, "per_host_concurrency": 32, "per_host_delay": "0s"})
            steps = pipeline_steps(site, db, cfg, generations)
            print_growth(steps, sqlite_bytes(db))
            store_report(db)
    finally:
        site.stop()


def pipeline_steps(site: SharedSite, db: Path, cfg: Path, generations: int) -> list[dict]:
    """Run the checks; for each: its label, seconds, rows added by table and outcome, DB growth."""
    steps: list[dict] = []
    before, size = {}, 0

    def check(label: str) -> None:
        nonlocal before, size
        _, seconds, _ = govwatch("check", "-c", str(cfg), "--force")
        now, new_size = db_counts(db), sqlite_bytes(db)
        steps.append({k: now.get(k, 0) - before.get(k, 0) for k in now} | {"label": label, "seconds": seconds, "bytes": new_size - size})
        before, size = now, new_size

    check("baseline (first fetch)")
    check("re-fetch, answered 304")
    with contextlib.closing(sqlite3.connect(db)) as c, c:
        c.execute("update sources set etag = '', last_modified = ''")  # as for a server without validators
    check("re-fetch, same body (validators cleared)")
    for g in range(1, generations + 1):
        site.next_generation(g)
        check(f"generation {g}")
    return steps


def print_growth(steps: list[dict], total: int) -> None:
    print(f"  {'step':<42} {'time':>8} {'attempts':>9} {'snapshots':>10} {'changes':>8} {'DB growth':>12}   outcomes")
    for r in steps:
        outcomes = ", ".join(f"{r[k]} {k}" for k in ("baseline", "changed", "unchanged", "not_modified", "error") if r.get(k))
        print(f"  {r['label']:<42} {fmt_s(r['seconds']):>8} {r['fetch_attempts']:>9,} {r['snapshots']:>10,} "
              f"{r['changes']:>8,} {r['bytes']:>12,}   {outcomes}")
    base, not_modified, unchanged, gens = steps[0], steps[1], steps[2], steps[3:]
    per_304 = not_modified["bytes"] / not_modified["fetch_attempts"]
    per_same = unchanged["bytes"] / unchanged["fetch_attempts"]
    print(f"  per 1,000 (DB bytes after VACUUM, database + WAL; {total:,} bytes in all):")
    print(f"    baseline snapshots (first version of a page):       {fmt_mb(base['bytes'] / base['snapshots'] * 1000):>10}")
    print(f"    re-fetches answered 304 (a fetch_attempts row):     {fmt_mb(per_304 * 1000):>10}  ({per_304:,.0f} bytes each)")
    print(f"    re-fetches of the same body (skipped by its hash):  {fmt_mb(per_same * 1000):>10}  ({per_same:,.0f} bytes each)")
    snaps = sum(r["snapshots"] for r in gens)
    if snaps:
        others = sum(r["fetch_attempts"] - r["snapshots"] for r in gens)
        own = (sum(r["bytes"] for r in gens) - others * per_304) / snaps
        print(f"    new versions (content or cosmetic change):          {fmt_mb(own * 1000):>10}  ({snaps} snapshots in "
              f"{len(gens)} generations, with their attempt and change rows; the {others} 304s taken out)")


def store_report(db: Path) -> None:
    """Raw versus stored bytes of snapshot bodies and texts, and the bytes of each table."""
    with contextlib.closing(sqlite3.connect(db)) as c:
        for what, col in (("bodies (HTML)", "body_sha256"), ("texts", "text_sha256")):
            n, raw = c.execute(f"select count(*), sum(b.size) from snapshots s join blobs b on b.sha256 = s.{col}").fetchone()
            blobs, size, stored = c.execute(f"select count(*), sum(size), sum(length(data)) from blobs "
                                            f"where sha256 in (select {col} from snapshots)").fetchone()
            print(f"  {what:<14} {n:,} snapshots hold {fmt_mb(raw)} raw; {blobs:,} distinct blobs of {fmt_mb(size)} "
                  f"stored zlib-compressed in {fmt_mb(stored)} (compression {size / stored:.1f}x, "
                  f"with de-duplication {raw / stored:.1f}x; {stored / n / 1024:,.1f} KB a snapshot)")
        tables = c.execute("select coalesce(m.tbl_name, d.name), sum(d.pgsize) from dbstat d "
                           "left join sqlite_schema m on m.name = d.name group by 1 order by 2 desc").fetchall()
    print("  bytes by table (with its indexes): " + ", ".join(f"{t} {fmt_mb(b)}" for t, b in tables if b >= 64 * 1024))


# -- 3. the change log with 100,000 changes -----------------------------------------------------------
SOURCE_KINDS = [("ice", "ICE", "page"), ("cbp", "CBP", "page"), ("oig", "DHS OIG", "feed"), ("gao", "GAO", "feed"),
                ("tsa", "TSA", "page"), ("fr", "Federal Register", "feed"), ("cis", "USCIS", "page"), ("dhs", "DHS", "page")]


@dataclass
class ChangeLog:
    """What the timings look for in the filled database."""

    total: int
    busy_source: str
    detail_id: int
    topic: str = "opr-outcomes"


def log_sources() -> list[dict]:
    return [{"id": f"{slug}-{k:02d}", "name": f"{agency} {kind} {k}", "url": f"https://www.example.gov/{slug}/{k}",
             "kind": kind, "agency": agency}
            for k in range(5) for slug, agency, kind in SOURCE_KINDS]


def fill_changes(store, n: int) -> ChangeLog:
    """n changes over ~14 months from 40 sources (a few busy ones, a long tail): ~8% matched, with
    topic matches and deliveries, ~3% triaged. Page changes point at a before/after snapshot pair
    of their source with real ~40 KB texts, so the change detail page has a real diff to show."""
    from state.models import ChangeRecord, DeliveryRecord, SnapshotRecord, SourceRecord, TopicMatchRecord
    from state.store import Store, sha256
    from state.triage import TriageActionRecord, TriageStateRecord

    rng = random.Random(SEED)
    sources = log_sources()
    start = datetime(2025, 9, 1, tzinfo=timezone.utc)
    snaps = []
    with store.session() as s:
        s.execute(insert(SourceRecord), [{**src, "health": "ok"} for src in sources])
        for i, src in enumerate(sources):
            before = "\n\n".join(paragraph(rng) for _ in range(60))
            for k, body in enumerate((before, before + "\n\n" + relevant(rng, 0))):
                digest = Store.put_blob(s, body.encode(), sha256(body.encode()))
                snaps.append({"id": 2 * i + k + 1, "source_id": src["id"], "url": src["url"], "fetched_at": start,
                              "status": 200, "content_type": "text/html", "body_sha256": digest, "text_sha256": digest,
                              "text_chars": len(body), "title": src["name"]})
        s.execute(insert(SnapshotRecord), snaps)
    rows = change_rows(rng, n, sources, start)
    with store.session() as s:
        for model in (ChangeRecord, TopicMatchRecord, DeliveryRecord, TriageActionRecord, TriageStateRecord):
            batch = rows[model.__tablename__]
            for k in range(0, len(batch), 5000):
                s.execute(insert(model), batch[k:k + 5000])
    changes = rows["changes"]
    return ChangeLog(total=n, busy_source=Counter(r["source_id"] for r in changes).most_common(1)[0][0],
                     detail_id=next(r["id"] for r in changes if r["matched"] and r["kind"] == "changed"))


def change_rows(rng: random.Random, n: int, sources: list[dict], start: datetime) -> dict[str, list[dict]]:
    """The rows of changes, topic_matches, deliveries, triage_actions and triage_states."""
    out: dict[str, list[dict]] = {t: [] for t in ("changes", "topic_matches", "deliveries", "triage_actions", "triage_states")}
    weights = [1 / (i + 1) for i in range(len(sources))]
    for cid in range(1, n + 1):
        si = rng.choices(range(len(sources)), weights)[0]
        src = sources[si]
        matched = rng.random() < 0.08
        topics = rng.choice([["opr-outcomes"]] * 7 + [["extremism-definitions"]] * 2 + [["opr-outcomes", "extremism-definitions"]])
        severity = rng.choices(["low", "medium", "high"], [50, 35, 15])[0] if matched else ""
        added = paragraph(rng, 1, 4)
        if matched:
            added += "\n\n" + relevant(rng, 3 if topics == ["extremism-definitions"] else 0)
        when = start + timedelta(minutes=6 * cid + rng.randint(0, 5))
        row = {"id": cid, "source_id": src["id"], "url": src["url"], "detected_at": when, "matched": matched,
               "topics": ",".join(topics) if matched else "", "severity": severity, "added_text": added}
        if src["kind"] == "page":
            removed = paragraph(rng, 1, 2) if rng.random() < 0.5 else ""
            diff = ["  " + sentence(rng)] + [f"- {x}" for x in removed.split(". ") if removed] + [f"+ {x}" for x in added.split("\n\n")]
            row.update(kind="changed", title=f"{src['name']} - Newsroom", prev_snapshot_id=2 * si + 1,
                       new_snapshot_id=2 * si + 2, removed_text=removed, diff_text="\n".join(diff))
        else:
            row.update(kind="new_item", title=f"{rng.choice(NOUNS).capitalize()} for {rng.choice(BENEFICIARIES)}",
                       item_key=f"{src['url']}/items/{cid}", item_published=when.strftime("%a, %d %b %Y"), diff_text="+ " + added)
        out["changes"].append(row)
        if matched:
            evidence = added.split("\n\n")[-1]
            for t in topics:
                ev = {"rule": "outcome" if t == "opr-outcomes" else "definition", "sentence": evidence,
                      "marked": evidence.replace("substantiated", "«substantiated»"), "terms": ["substantiated"]}
                out["topic_matches"].append({"change_id": cid, "topic": t, "score": rng.randint(2, 9), "severity": severity,
                                             "evidence_json": json.dumps({"evidence": [ev], "definition_changes": []})})
            out["deliveries"] += [{"change_id": cid, "target": t, "status": "sent", "attempts": 1, "sent_at": when,
                                   "next_try_at": when, "created_at": when}
                                  for t in ["analysts"] + (["on-call"] if severity == "high" else [])]
        if rng.random() < 0.03:
            action = rng.choices(["reviewed", "significant", "not_relevant"], [60, 15, 25])[0]
            aid = len(out["triage_actions"]) + 1
            out["triage_actions"].append({"id": aid, "change_id": cid, "action": action, "actor": "analyst", "created_at": when})
            out["triage_states"].append({"change_id": cid, "state": action, "actor": "analyst", "updated_at": when, "action_id": aid})
    return out


class SqlLog:
    """The SQL statements this process runs while capturing, with their durations."""

    def __init__(self):
        self.statements: list[tuple[float, str, Any]] = []
        self._on = False
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        if self._on:
            self.statements.append((time.perf_counter() - conn.info.pop("bench_t0"), statement, parameters))

    @contextlib.contextmanager
    def capture(self):
        self.statements = []
        self._on = True
        try:
            yield self
        finally:
            self._on = False

    def summary(self, store) -> str:
        """How many statements ran and for how long, and the slowest one on the data with its plan
        (the schema check every Store does on opening is left out)."""
        ours = [x for x in self.statements if "alembic_version" not in x[1] and "pg_catalog" not in x[1]]
        secs, stmt, params = max(ours, key=lambda x: x[0])
        flat = " ".join(stmt.split())
        return (f"      {len(self.statements):,} SQL statements, {fmt_s(sum(x[0] for x in self.statements))} in all; slowest "
                f"{fmt_s(secs)}: {flat[:100]}{'...' if len(flat) > 100 else ''}\n"
                f"      plan: {query_plan(store, stmt, params)}")


def query_plan(store, statement: str, params: Any) -> str:
    """EXPLAIN QUERY PLAN (SQLite) or EXPLAIN (PostgreSQL), on one line."""
    with store.engine.connect() as c:
        if store.dialect == "sqlite":
            return "; ".join(r[-1] for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params))
        lines = [r[0].strip().lstrip("-> ").strip() for r in c.exec_driver_sql("EXPLAIN (COSTS OFF) " + statement, params)]
        return "; ".join(ln for ln in lines if not ln.startswith(("Index Cond", "Filter", "Hash Cond", "SubPlan")))


def cli_cases(log: ChangeLog) -> list[tuple[str, list[str], int]]:
    """(label, arguments, runs): the listings of every change or every matched one run once."""
    return [("changes (default: every change, table)", ["changes"], 1),
            ("changes --limit 50", ["changes", "--limit", "50"], 3),
            ("changes --matched", ["changes", "--matched"], 1),
            ("changes --matched --limit 50", ["changes", "--matched", "--limit", "50"], 3),
            (f"changes --topic {log.topic} --limit 50", ["changes", "--topic", log.topic, "--limit", "50"], 3),
            (f"changes --source {log.busy_source} --limit 50", ["changes", "--source", log.busy_source, "--limit", "50"], 3),
            ("changes --format csv --limit 5000", ["changes", "--format", "csv", "--limit", "5000"], 3),
            *((f"search {q} (first 20)", ["search", q], 3) for q in SEARCHES)]


# Full-text searches (issue: the first page <= 50 ms at 100,000 changes): a rare word, a common
# word, a phrase, OR with an exclusion.
SEARCHES = ["substantiated", "program", '"domestic terrorism"', "webinars OR substantiated -Texas"]


def web_cases(log: ChangeLog) -> list[tuple[str, str]]:
    return [("change log, first page", "/"),
            (f"change log, last page (offset {log.total - 50:,})", f"/?page={-(-log.total // 50)}"),
            ("matched only", "/?matched=1"),
            (f"topic {log.topic}", f"/?topic={log.topic}"),
            ("severity high", "/?severity=high"),
            (f"source {log.busy_source}", f"/?source={log.busy_source}"),
            ("unreviewed", "/?state=unreviewed"),
            *((f"search q={q}", "/?" + urlencode({"q": q})) for q in SEARCHES),
            (f"change detail /changes/{log.detail_id}", f"/changes/{log.detail_id}"),
            ("CSV export (5,000 rows)", "/changes.csv"),
            ("Atom feed (100 matched)", "/feed.atom")]


def time_cli(label: str, store, cfg: Path, log: ChangeLog, sql: SqlLog) -> None:
    from monitor import cli

    print(f"\n  {label}: `govwatch changes` and `search` (cold: a new process, to its first output and in all; warm: in this process)")
    print(f"  {'command':<46} {'cold first':>11} {'cold total':>11} {'warm':>10} {'output':>10}")
    for name, args, repeat in cli_cases(log):
        cold = [govwatch(args[0], "-c", str(cfg), *args[1:]) for _ in range(repeat)]

        def run() -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                cli.main([args[0], "-c", str(cfg), *args[1:]])

        warm, _ = median_time(run, repeat)
        with sql.capture():
            run()
        print(f"  {name:<46} {fmt_s(statistics.median(c[0] for c in cold)):>11} "
              f"{fmt_s(statistics.median(c[1] for c in cold)):>11} {fmt_s(warm):>10} {fmt_mb(cold[0][2]):>10}"
              + ("  (1 run)" if repeat == 1 else ""))
        print(sql.summary(store))


def time_web(label: str, store, cfg: Path, log: ChangeLog, sql: SqlLog) -> None:
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

    from monitor.config import load_config
    from monitor.web import create_app
    from state.store import Store

    config = load_config(str(cfg))
    print(f"\n  {label}: the web change log (the FastAPI app in this process; cold: the first request of a new app)")
    print(f"  {'page':<46} {'cold':>11} {'warm':>11} {'bytes':>10}")
    for name, path in web_cases(log):
        colds, stores = [], []
        for _ in range(3):
            stores.append(Store(config.database))
            client = TestClient(create_app(config, stores[-1]), base_url="http://127.0.0.1")
            seconds, r = timed(lambda: client.get(path))
            if r.status_code != 200:
                raise SystemExit(f"GET {path}: HTTP {r.status_code}: {r.text[:300]}")
            colds.append(seconds)
        warm, r = median_time(lambda: client.get(path))
        with sql.capture():
            client.get(path)
        for st in stores:
            st.engine.dispose()
        print(f"  {name:<46} {fmt_s(statistics.median(colds)):>11} {fmt_s(warm):>11} {len(r.content):>10,}")
        print(sql.summary(store))
    with store.engine.connect() as c:
        seconds, _ = median_time(lambda: c.execute(text("select count(*) from changes")).scalar())
    print(f"  the total for pagination, count(*) of every change: {fmt_s(seconds)}; plan: "
          f"{query_plan(store, 'select count(*) from changes', None)}")


def measure_changelog(n: int, pg_url: str | None) -> None:
    from state.store import Store

    sql = SqlLog()
    print(f"\n3. The change log with {n:,} changes (bulk-inserted into the migrated schema)")
    with tempfile.TemporaryDirectory(prefix="govwatch-scale-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'gw.db'}"
        store = Store(url)
        t = time.perf_counter()
        log = fill_changes(store, n)
        print(f"  SQLite: filled in {fmt_s(time.perf_counter() - t)}, {sqlite_bytes(work / 'gw.db'):,} bytes "
              "(no ANALYZE: govwatch never runs it, so the planner has no statistics)")
        cfg = write_config(work, url, log_sources())
        time_cli("SQLite", store, cfg, log, sql)
        time_web("SQLite", store, cfg, log, sql)
        store.engine.dispose()
        if pg_url:
            measure_changelog_postgres(n, pg_url, work, sql)


def measure_changelog_postgres(n: int, pg_url: str, work: Path, sql: SqlLog) -> None:
    from state.store import Store

    with postgres_schema(pg_url) as url:
        if url is None:
            return
        store = Store(url)
        t = time.perf_counter()
        log = fill_changes(store, n)
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("vacuum analyze")  # what autovacuum does soon after a bulk load
        print(f"\n  PostgreSQL (schema {url.rsplit('%3D', 1)[-1]}): filled and VACUUM ANALYZEd in {fmt_s(time.perf_counter() - t)}")
        cfg = write_config(work, url, log_sources())
        time_cli("PostgreSQL", store, cfg, log, sql)
        time_web("PostgreSQL", store, cfg, log, sql)
        store.engine.dispose()


def measure_many_sources(n_sources: int, n_changes: int, pg_url: str | None) -> None:
    """The web change log with a watch list of `n_sources` sources on 200 hosts (issue 19: its
    first page and a search's under 100 ms at 20,000 sources): the sources' rows, `n_changes`
    changes among them (the change log part above measures a long log), warm requests."""
    from state.models import ChangeRecord, SourceRecord
    from state.store import Store

    print(f"\n4. The web change log with {n_sources:,} sources on 200 hosts and {n_changes:,} changes")
    rng = random.Random(SEED)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    sources = [dict(id=f"src-{i:05d}", name=f"{rng.choice(AGENCIES)} page {i}", url=f"https://h{i % 200}.example.gov/p/{i}",
                    kind="page", agency=rng.choice(AGENCIES), health="ok") for i in range(n_sources)]
    changes = [dict(source_id=sources[rng.randrange(n_sources)]["id"], url="https://h.example.gov/p", kind="changed",
                    detected_at=start + timedelta(minutes=7 * i), title=f"Page {i}", added_text=paragraph(rng, 1, 3))
               for i in range(n_changes)]
    cases = [("first page", "/"), ("search q=grant", "/?q=grant"), ("source filter", f"/?source={sources[7]['id']}")]

    def run(label: str, url: str, work: Path) -> None:
        store = Store(url)
        with store.session() as s:
            for k in range(0, n_sources, 5000):
                s.execute(insert(SourceRecord), sources[k:k + 5000])
            for k in range(0, n_changes, 5000):
                s.execute(insert(ChangeRecord), changes[k:k + 5000])
        if store.dialect == "postgresql":
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("vacuum analyze")  # what autovacuum does soon after a bulk load
        time_pages(label, store, write_config(work, url, []), cases)
        store.engine.dispose()

    with tempfile.TemporaryDirectory(prefix="govwatch-sources-") as tmp:
        run("SQLite", f"sqlite:///{Path(tmp) / 'gw.db'}", Path(tmp))
        if pg_url:
            with postgres_schema(pg_url) as url:
                if url:
                    run("PostgreSQL", url, Path(tmp))


def time_pages(label: str, store, cfg: Path, cases: list[tuple[str, str]]) -> None:
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

    from monitor.config import load_config
    from monitor.web import create_app

    client = TestClient(create_app(load_config(str(cfg)), store), base_url="http://127.0.0.1")
    print(f"  {label}: {'page':<22} {'warm (median of 5)':>20} {'bytes':>10}")
    for name, path in cases:
        r = client.get(path)
        if r.status_code != 200:
            raise SystemExit(f"GET {path}: HTTP {r.status_code}: {r.text[:300]}")
        warm, r = median_time(lambda: client.get(path), 5)
        print(f"  {'':<{len(label) + 1}} {name:<22} {fmt_s(warm):>20} {len(r.content):>10,}")


@contextlib.contextmanager
def postgres_schema(pg_url: str):
    """A PostgreSQL URL on a new schema, dropped afterwards; None when the server is not reachable."""
    import psycopg

    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as e:
        print(f"  PostgreSQL at {dsn.split('@')[-1]} not reachable ({str(e).splitlines()[0]}): skipped")
        yield None
        return
    schema = "gw_scale_" + uuid.uuid4().hex[:8]
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"create schema {schema}")
    try:
        yield f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f"drop schema {schema} cascade")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="page,pdf,store,changelog,sources", help="comma-separated: page, pdf, store, changelog, sources, run (not by default: an hour)")
    ap.add_argument("--sources", type=int, default=20_000, help="sources for the web change log at scale (section 4)")
    ap.add_argument("--pages", type=int, default=200, help="bench-site pages for the store measurement")
    ap.add_argument("--generations", type=int, default=10, help="site generations after the baseline")
    ap.add_argument("--changes", type=int, default=100_000)
    ap.add_argument("--postgres", default=DEFAULT_PG, help="PostgreSQL URL for the change log (a schema is made and dropped)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--hosts", type=int, default=200, help="hosts of the sources in section 5 (run)")
    ap.add_argument("--duration", type=float, default=3600, help="seconds of `govwatch run` in section 5")
    ap.add_argument("--every", type=float, default=600, help="every source's interval in section 5, seconds")
    ap.add_argument("--tick", type=float, default=30, help="the scheduler's tick in section 5, seconds")
    ap.add_argument("--keep", action="store_true", help="keep section 5's database and log")
    args = ap.parse_args()
    only = set(args.only.split(","))
    os.environ["GOVWATCH_LOG_LEVEL"] = "WARNING"
    print(f"govwatch scale benchmark: Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    if "page" in only:
        measure_large_page()
    if "pdf" in only:
        measure_large_pdf()
    if "store" in only:
        measure_store(args.pages, args.generations)
    if "changelog" in only:
        measure_changelog(args.changes, None if args.no_postgres else args.postgres)
    if "sources" in only:
        measure_many_sources(args.sources, 20_000, None if args.no_postgres else args.postgres)
    if "run" in only:
        from bench.scale_run import measure_run

        measure_run(args.sources, args.hosts, args.duration, args.every, args.tick, 1000, 50.0, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
