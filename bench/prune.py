"""Retention benchmark (run by hand, not in the test suite): a store with N old routine fetch
attempts and M old captures that are no evidence (each with its own body and text blob), pruned by
state/retention.prune; prints the time of the dry run and of the prune, the number of transactions
and the longest one (what the scheduler may wait for on SQLite).

Usage: .venv/bin/python bench/prune.py [--attempts 100000] [--captures 5000] [--database URL]
Without --database: a new SQLite file in a temporary folder. With PostgreSQL, give an empty schema
(e.g. `postgresql+psycopg://postgres@127.0.0.1/test?options=-csearch_path%3Dbench`).
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, insert  # noqa: E402

from state import custody  # noqa: E402
from state.models import FetchAttemptRecord, SnapshotRecord, SourceRecord  # noqa: E402
from state.retention import prune  # noqa: E402
from state.store import Store  # noqa: E402

OLD = datetime(2026, 1, 1, tzinfo=timezone.utc)
CUTOFF = datetime(2026, 2, 1, tzinfo=timezone.utc)


def build(store: Store, attempts: int, captures: int) -> None:
    rng = random.Random(1)
    with store.session() as s:
        s.add(SourceRecord(id="p", url="https://example.gov/p"))
        s.flush()
        for k in range(0, attempts, 10_000):
            s.execute(insert(FetchAttemptRecord), [{"source_id": "p", "url": f"https://example.gov/p{i % 50}", "started_at": OLD,
                                                    "outcome": ("unchanged", "not_modified")[i % 2]}
                                                   for i in range(k, min(k + 10_000, attempts))])
    with store.session() as s:
        for _ in range(captures + 1):  # the last one is the source's latest: kept
            body = rng.randbytes(1500).hex().encode()
            snap = SnapshotRecord(source_id="p", url="https://example.gov/p", fetched_at=OLD, status=200,
                                  body_sha256=store.put_blob(s, body), text_sha256=store.put_blob(s, body.upper()))
            s.add(snap)
            s.flush()
            custody.append(s, snap)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attempts", type=int, default=100_000)
    ap.add_argument("--captures", type=int, default=5_000)
    ap.add_argument("--database", default="")
    a = ap.parse_args()
    url = a.database or f"sqlite:///{tempfile.mkdtemp(prefix='govwatch-prune-')}/govwatch.db"
    store = Store(url)
    t0 = time.monotonic()
    build(store, a.attempts, a.captures)
    print(f"built {a.attempts:,} attempts and {a.captures + 1:,} captures in {time.monotonic() - t0:.1f}s ({store.dialect})")
    spans, begun = [], {}
    event.listen(store.engine, "begin", lambda conn: begun.__setitem__(id(conn), time.monotonic()))
    event.listen(store.engine, "commit", lambda conn: spans.append(time.monotonic() - begun.pop(id(conn), time.monotonic())))
    for dry in (True, False):
        spans.clear()
        t0 = time.monotonic()
        r = prune(store, CUTOFF, dry_run=dry)
        print(f"{'dry run' if dry else 'prune  '}: {time.monotonic() - t0:.1f}s; {r.attempts:,} attempts, {r.snapshots:,} snapshots, "
              f"{r.blobs:,} blobs, {r.bytes_freed:,} bytes; {len(spans)} transactions, the longest {max(spans, default=0):.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
