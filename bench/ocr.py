"""OCR benchmark (run by hand, not in the test suite): what reading a scanned PDF costs.

Usage: .venv/bin/python bench/ocr.py [--pages 1,5,20,40] [--dpi 300] [--runs 3]

Each document is generated here: US-letter pages of typed text (about 30 lines, 1,800 characters
a page, drawn with Pillow at 200 dpi and saved as an image-only PDF, as a scanner writes it). Each
run is a fresh process calling monitor.extract.extract (pypdf finds no text layer, then
monitor.ocr renders every page with pdftoppm and reads it with Tesseract: at most 20 pages, the
time limits raised so that a busy machine still measures). Reported: wall seconds a document and
per page read (median of the runs), CPU seconds per page (the process and its children,
including Python's start: steadier than wall time on a shared machine), the mean word
confidence, the share of the typed words found in the text, and the peak RSS (sampled every
50 ms) of the Python process and of its largest child (pdftoppm or tesseract).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO))

WORDS = ("allegation allegations substantiated unsubstantiated employee employees investigation office "
         "professional responsibility removal suspension reprimand referred declined closed case cases "
         "misconduct report fiscal year agency review findings recommendation policy records release").split()

CHILD = r"""
import json, resource, sys, threading, time
import psutil
sys.path.insert(0, sys.argv[1])
from monitor.config import OcrSettings
from monitor.extract import extract
# RSS is sampled (every 50 ms): ru_maxrss survives exec, so it would report the parent's peak
me, peak = psutil.Process(), {"self": 0, "child": 0}
def sample():
    while True:
        try:
            peak["self"] = max(peak["self"], me.memory_info().rss)
            for c in me.children(recursive=True):
                peak["child"] = max(peak["child"], c.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
body = open(sys.argv[2], "rb").read()
t = time.monotonic()
ex = extract(body, url="bench.pdf", ocr=OcrSettings(dpi=int(sys.argv[3]), timeout=3600, page_timeout=600))
wall = time.monotonic() - t
ru_self, ru_kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru_self.ru_utime + ru_self.ru_stime + ru_kids.ru_utime + ru_kids.ru_stime
print(json.dumps({"wall": wall, "cpu": cpu, "text": ex.text, "confidence": ex.ocr_confidence, "note": ex.note,
                  "self_kb": peak["self"] // 1024, "child_kb": peak["child"] // 1024}))
"""


def page_lines(rng: random.Random, n: int = 30) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(7, 10))).capitalize() + "." for _ in range(n)]


def make_doc(pages: int, seed: int) -> tuple[bytes, list[list[str]]]:
    from tests.pdfs import make_image_pdf

    rng = random.Random(seed)
    text = [page_lines(rng) for _ in range(pages)]
    return make_image_pdf(text, dpi=200, font_size=30), text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", default="1,5,20,40")
    ap.add_argument("--dpi", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from monitor.ocr import unavailable

    missing = unavailable()
    if missing:
        print(f"OCR is not available: {missing}", file=sys.stderr)
        return 1
    print(f"{'pages':>5} {'read':>4} {'PDF KB':>7} {'s/doc':>6} {'s/page':>6} {'CPU s/page':>10} {'conf %':>6} {'words found':>11} "
          f"{'py RSS MB':>9} {'child RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(x) for x in args.pages.split(",")]:
            body, typed = make_doc(n, seed=n)
            path = os.path.join(tmp, f"scan-{n}.pdf")
            Path(path).write_bytes(body)
            runs = []
            for _ in range(args.runs):
                out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), path, str(args.dpi)],
                                     capture_output=True, text=True, check=True)
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            wall = statistics.median(r["wall"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            read = min(n, 20)
            got = runs[0]["text"].lower().split()
            want = [w.strip(".").lower() for lines in typed[:read] for ln in lines for w in ln.split()]
            found = sum(1 for w in want if w in set(x.strip(".,;") for x in got)) / max(len(want), 1)
            print(f"{n:>5} {read:>4} {len(body) // 1024:>7} {wall:>6.2f} {wall / read:>6.2f} {cpu / read:>10.2f} "
                  f"{runs[0]['confidence'] or 0:>6.1f} {found:>10.1%} {max(r['self_kb'] for r in runs) / 1024:>9.0f} "
                  f"{max(r['child_kb'] for r in runs) / 1024:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
