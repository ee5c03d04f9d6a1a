"""Retention through the real CLI, on SQLite and PostgreSQL: `govwatch prune` drops old routine
fetch attempts and the stored bytes of captures that are no evidence, never those of a matched,
alerted or triaged change nor a source's latest capture; a blob shared with a kept capture stays;
`--dry-run` changes nothing; `verify`, `show` and `export-warc` still work afterwards. And the race
with a scheduler storing a capture at the same moment, at the library level."""
from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from tests.e2e.test_monitor import RELEVANT, page

X = hashlib.sha256(b"version X of the page").hexdigest()
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request, workdir):
    return request.getfixturevalue("pg_url") if request.param == "postgres" else workdir.db


def version(n: int, *extra: str) -> str:
    """A page version: its own sentence (so each is a change) and 120 KB of its own bytes in a
    comment (so freeing them shows), plus any extra paragraphs."""
    pad = random.Random(n).randbytes(60_000).hex()
    sentence = f"<p>The office published its staffing notice number {n} for the {('north', 'south', 'east', 'west', 'central', 'river')[n % 6]} building.</p>"
    return page(extra=sentence + "".join(extra) + f"<!-- {pad} -->")


def rows(url: str, sql: str, **params) -> list[tuple]:
    from state.store import Store

    with Store(url, migrate=False).engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql), params)]


def table_counts(url: str) -> dict[str, int]:
    names = ("sources", "fetch_attempts", "blobs", "snapshots", "changes", "topic_matches", "deliveries", "custody_log",
             "triage_actions", "items", "prune_runs", "pruned_blobs")
    return {n: rows(url, f"SELECT count(*) FROM {n}")[0][0] for n in names}


def blob_digests(url: str) -> set[str]:
    return {r[0] for r in rows(url, "SELECT sha256 FROM blobs")}


def snapshot_ids(url: str, source: str) -> list[int]:
    return [r[0] for r in rows(url, "SELECT id FROM snapshots WHERE source_id = :s ORDER BY id", s=source)]


def shas_of(url: str, snapshot_id: int) -> set[str]:
    r = rows(url, "SELECT body_sha256, text_sha256 FROM snapshots WHERE id = :i", i=snapshot_id)[0]
    return {d for d in r if d}


def change_between(url: str, prev: int, new: int) -> int:
    return rows(url, "SELECT id FROM changes WHERE prev_snapshot_id = :p AND new_snapshot_id = :n", p=prev, n=new)[0][0]


def counts_of(out: str) -> tuple[int, int, int, int]:
    """(attempts, snapshots, blobs, bytes) from prune's first line."""
    m = re.search(r": ([\d,]+) routine fetch attempt\(s\); the stored bytes of ([\d,]+) snapshot\(s\) .*?; ([\d,]+) blob\(s\), "
                  r"(?:[\d.,]+ [KMGT]B \()?([\d,]+) bytes\)? freed", out)
    assert m, out
    return tuple(int(g.replace(",", "")) for g in m.groups())


def build_history(site, webhook, workdir, url: str, mid: list | None = None) -> dict:
    """Two pages, five versions each, through `govwatch check`, then four unchanged checks (304s):

    a: a1 -> a2 -> a3 (matched, alerted) -> a4 -> a5        kept: a2 a3 (the match), a5 (latest)
    b: b1 -> b2 -> b3 (b1's bytes again) -> b4 (reviewed) -> b5    kept: b3 b4 (triaged), b5 (latest)
    Without evidence: a1, a4 and b2 lose their bytes; b1 keeps them (b3 has the same).
    """
    workdir.write(sources=[{"id": "a", "url": site.url("/a")}, {"id": "b", "url": site.url("/b")}],
                  notify=[{"url": webhook.url(), "name": "hook"}], database=url)
    b1 = version(21)
    plan = [(version(1), b1), (version(2), version(22)), (version(3, RELEVANT), b1),
            (version(4, RELEVANT), version(24)), (version(5, RELEVANT), version(25))]
    for i, (a, b) in enumerate(plan):
        site.set("/a", a)
        site.set("/b", b)
        out = workdir.run("check", "--force").stdout
        assert ("2 baseline" if i == 0 else "2 changed") in out, out
        if i == 1 and mid is not None:
            time.sleep(0.05)
            mid.append(datetime.now(timezone.utc))  # between the second and the third version
            time.sleep(0.05)
    assert len(webhook.received) == 1  # a3's match
    for _ in range(4):
        assert "2 not modified" in workdir.run("check", "--force").stdout
    a, b = snapshot_ids(url, "a"), snapshot_ids(url, "b")
    assert len(a) == len(b) == 5
    assert shas_of(url, b[0]) == shas_of(url, b[2])  # the same bytes, one blob
    from state.store import Store
    from state.triage import record_action

    reviewed = change_between(url, b[2], b[3])
    with Store(url).session() as s:
        record_action(s, reviewed, "reviewed", "ana", "checked against the notice board")
    matched = change_between(url, a[1], a[2])
    assert rows(url, "SELECT topics FROM changes WHERE id = :i", i=matched) == [("opr-outcomes",)]
    return {"a": a, "b": b, "matched": matched, "reviewed": reviewed, "plain": change_between(url, a[0], a[1])}


def test_prune_keeps_evidence_and_drops_the_rest(db_url, site, webhook, workdir):
    mid: list[datetime] = []
    h = build_history(site, webhook, workdir, db_url, mid)
    a, b = h["a"], h["b"]
    dropped = [a[0], a[3], b[1]]
    kept = [a[1], a[2], a[4], b[0], b[2], b[3], b[4]]
    doomed = set().union(*(shas_of(db_url, i) for i in dropped))
    assert len(doomed) == 6 and not doomed & set().union(*(shas_of(db_url, i) for i in kept))
    want_bytes = sum(rows(db_url, "SELECT length(data) FROM blobs WHERE sha256 = :d", d=d)[0][0] for d in doomed)
    assert want_bytes > 6 * 20_000  # the padding is in there

    # a change detected after the cutoff keeps what it was computed from, whatever the age of that
    from state.retention import kept_snapshot_ids
    from state.store import Store

    with Store(db_url).session() as s:
        assert b[1] in kept_snapshot_ids(s, mid[0])  # b2 -> b3 came after `mid`
        assert b[1] not in kept_snapshot_ids(s, datetime.now(timezone.utc))

    time.sleep(1.2)  # everything above is now older than 1s
    before, digests = table_counts(db_url), blob_digests(db_url)
    dry = workdir.run("prune", "--older-than", "1s", "--dry-run").stdout
    assert dry.startswith("would prune (dry run: nothing changed)"), dry
    assert table_counts(db_url) == before and blob_digests(db_url) == digests
    assert counts_of(dry) == (2, 3, 6, want_bytes)
    assert "kept: 6 snapshot(s)" in dry  # a2 a3 a5 b3 b4 b5 (and b1 loses nothing: b3 has its bytes)

    out = workdir.run("prune", "--older-than", "1s").stdout
    assert out.startswith("pruned what is older than 1s"), out
    assert counts_of(out) == counts_of(dry)
    after = table_counts(db_url)
    assert after["fetch_attempts"] == before["fetch_attempts"] - 2
    assert after["blobs"] == before["blobs"] - 6 and blob_digests(db_url) == digests - doomed
    assert {k: v for k, v in after.items() if k not in ("fetch_attempts", "blobs", "prune_runs", "pruned_blobs")} == \
        {k: v for k, v in before.items() if k not in ("fetch_attempts", "blobs", "prune_runs", "pruned_blobs")}
    assert after["pruned_blobs"] == 6 and after["prune_runs"] == 1
    run = rows(db_url, "SELECT attempts_deleted, snapshots_pruned, blobs_deleted, bytes_freed, custody_seq, finished_at FROM prune_runs")[0]
    assert run[:5] == (2, 3, 6, want_bytes, 10) and run[5] is not None
    # the newest three attempts of each URL stay, whatever their age
    assert rows(db_url, "SELECT source_id, count(*) FROM fetch_attempts WHERE outcome = 'not_modified' GROUP BY source_id ORDER BY source_id") == \
        [("a", 3), ("b", 3)]
    if workdir.db == db_url:
        assert "the file (" in out and "shrinks only with `govwatch prune --vacuum`" in out
    else:
        assert "PostgreSQL reuses the freed space" in out

    # verify: the chain and every stored body still check; the pruned captures are named as such
    v = workdir.run("verify").stdout
    assert v.startswith("OK: chain of custody of 10 entries"), v
    assert "the raw bytes of 3 snapshot(s) were deleted by `govwatch prune`" in v
    # the evidence is whole: show, and the WARC of the matched and of the reviewed change
    for cid in (h["matched"], h["reviewed"]):
        shown = json.loads(workdir.run("show", str(cid), "--format", "json").stdout)
        assert shown["id"] == cid
        p = workdir.run("export-warc", "--change", str(cid), "-o", f"c{cid}.warc.gz")
        assert p.stdout.strip() == f"wrote 2 capture(s) of change {cid} to c{cid}.warc.gz"
        assert workdir.run("verify", f"c{cid}.warc.gz").stdout.startswith("OK: WARC")
    assert json.loads(workdir.run("show", str(h["matched"]), "--format", "json").stdout)["deliveries"][0]["status"] == "sent"
    # an old plain change keeps its record and its surviving capture; its first capture is gone
    assert workdir.run("export-warc", "--change", str(h["plain"]), "-o", "plain.warc").stdout.startswith("wrote 1 capture(s)")
    from monitor.evidence import EvidenceError, capture

    with pytest.raises(EvidenceError, match=r"deleted by `govwatch prune` on \d{4}-\d\d-\d\d"):
        capture(Store(db_url), a[0])
    # ... and the web change log says so, while the evidence pages stay whole
    from fastapi.testclient import TestClient

    from monitor.config import load_config
    from monitor.web import WebSettings, create_app

    web = TestClient(create_app(load_config(workdir.config, env={}), Store(db_url), settings=WebSettings()), base_url="http://127.0.0.1")
    r = web.get(f"/snapshots/{a[0]}")
    assert r.status_code == 404 and "deleted by `govwatch prune`" in r.text
    assert web.get(f"/snapshots/{a[2]}/raw").status_code == 200
    assert web.get(f"/changes/{h['matched']}").status_code == web.get(f"/changes/{h['plain']}").status_code == 200
    # the old plain change's first capture lost its text: no side-by-side made up against an empty
    # text, the recorded diff stays, and comparing with that capture says why it cannot
    plain = web.get(f"/changes/{h['plain']}").text
    assert "its text was deleted by <code>govwatch prune</code>" in plain and "<h2>Side by side</h2><p class=\"hint pruned\">" in plain
    assert "<h2>What changed</h2>" in plain and "No text difference was stored" not in plain
    r = web.get(f"/sources/a/compare", params={"a": a[0], "b": a[1]})
    assert r.status_code == 410 and "deleted by `govwatch prune`" in r.text, r.text[:500]
    again = workdir.run("prune", "--older-than", "1s").stdout
    assert counts_of(again)[1:] == (0, 0, 0), again

    # the monitor goes on from the kept latest versions: an unchanged page is still unchanged, and
    # a new version diffs against b5; b5 is then no longer the latest, and its change is plain
    assert "2 not modified" in workdir.run("check", "--force").stdout
    site.set("/b", version(26))
    assert "1 changed" in workdir.run("check", "--force").stdout
    assert json.loads(workdir.run("changes", "--source", "b", "--format", "json").stdout)[0]["added_text"].startswith(
        "The office published its staffing notice number 26")
    time.sleep(1.2)
    third = workdir.run("prune", "--older-than", "1s").stdout
    assert counts_of(third)[1:3] == (1, 2), third
    assert not shas_of(db_url, b[4]) & blob_digests(db_url)
    assert "the raw bytes of 4 snapshot(s) were deleted" in workdir.run("verify").stdout


def test_prune_vacuum_returns_the_space_to_the_disk(site, webhook, workdir):
    import os

    build_history(site, webhook, workdir, workdir.db)
    time.sleep(1.2)
    db = workdir.path / "state" / "govwatch.db"
    out = workdir.run("prune", "--older-than", "1s", "--vacuum").stdout
    m = re.search(r"VACUUM: \S+ went from .*?\(([\d,]+) bytes\) to .*?\(([\d,]+) bytes\)", out)
    assert m, out
    before, after = (int(g.replace(",", "")) for g in m.groups())
    freed = counts_of(out)[3]
    assert after < before and before - after >= freed * 0.8, (before, after, freed)
    assert os.path.getsize(db) == after
    print(f"prune --vacuum: {freed:,} bytes of blobs freed; file {before:,} -> {after:,} bytes")  # the README's measured numbers
    assert workdir.run("verify").stdout.startswith("OK:")


def test_prune_refuses_bad_input(workdir):
    workdir.write(sources=[])
    for args, msg in ((["--older-than", "180"], "give a unit, e.g. 180d"), (["--older-than", "soon"], "is not a duration"),
                      (["--older-than", "500ms"], "at least 1s"), (["--older-than", "99999999999d"], "at most 36,500d"),
                      (["--older-than", "1d", "--dry-run", "--vacuum"], "goes with a real prune")):
        p = workdir.run("prune", *args, check=False)
        assert p.returncode == 1 and p.stderr.startswith("Error: ") and msg in p.stderr and p.stderr.count("\n") == 1, p.stderr


# -- a scheduler storing a capture while prune deletes (library level) ----------------------------
def store_blobs(store, s, body: bytes) -> tuple[str, str]:
    """What the recorder does first: the raw bytes and the text, each stored once per SHA-256."""
    return store.put_blob(s, body), store.put_blob(s, body.upper())


def store_capture(store, s, source: str, body: bytes, at: datetime, digests: tuple[str, str] | None = None):
    """... then the snapshot row and its custody entry, in the same transaction."""
    from state import custody
    from state.models import SnapshotRecord

    body_sha, text_sha = digests or store_blobs(store, s, body)
    snap = SnapshotRecord(source_id=source, url=f"https://example.gov/{source}", fetched_at=at, status=200,
                          body_sha256=body_sha, text_sha256=text_sha, text_chars=len(body))
    s.add(snap)
    s.flush()
    custody.append(s, snap)
    return snap


@pytest.fixture
def two_versions(db_url):
    """Source `p`: an old version X and the latest Y, no change between them: X is prunable."""
    from state.models import SourceRecord
    from state.store import Store

    store = Store(db_url)
    with store.session() as s:
        s.add(SourceRecord(id="p", url="https://example.gov/p"))
        s.flush()
        old = store_capture(store, s, "p", b"version X of the page", datetime(2026, 1, 1, tzinfo=timezone.utc))
        store_capture(store, s, "p", b"version Y of the page", datetime(2026, 2, 1, tzinfo=timezone.utc))
    return store, old.id


def _during_delete(monkeypatch, action):
    """Run `action` in a thread just before prune deletes its first batch of blobs, and let prune
    go on as soon as the action says it is under way."""
    from state import retention

    real, threads = retention._delete_blob_batch, []

    def wrapped(*args, **kw):
        started = threading.Event()
        t = threading.Thread(target=action, args=(started,))
        t.start()
        threads.append(t)
        assert started.wait(30)
        return real(*args, **kw)

    monkeypatch.setattr(retention, "_delete_blob_batch", wrapped)
    return threads


def test_a_capture_stored_during_prune_keeps_its_bytes(two_versions, monkeypatch):
    """The page went back to X while prune runs: the new capture reuses X's blob (it was stored, so
    put_blob does not write it again); prune must not delete it under the capture's feet."""
    from state.custody import verify_store
    from state.retention import prune

    store, old = two_versions

    def scheduler(started):
        with store.session() as s:
            digests = store_blobs(store, s, b"version X of the page")  # found stored, so not written again
            started.set()
            time.sleep(0.5)  # prune's batch runs meanwhile (PostgreSQL) or waits for this commit (SQLite)
            store_capture(store, s, "p", b"version X of the page", datetime.now(timezone.utc), digests)

    threads = _during_delete(monkeypatch, scheduler)
    r = prune(store, datetime(2026, 3, 1, tzinfo=timezone.utc))
    for t in threads:
        t.join(30)
    assert len(threads) == 1
    assert store.get_blob(X) == b"version X of the page"
    with store.session() as s:
        check = verify_store(s)
    assert check.problems == [] and check.pruned == 0, check.problems
    assert (r.blobs, r.snapshots) == (0, 0)  # both of X's blobs are the new capture's too


def test_a_change_triaged_during_prune_keeps_its_captures(two_versions, monkeypatch):
    from state.models import ChangeRecord
    from state.retention import prune
    from state.triage import record_action

    store, old = two_versions
    with store.session() as s:
        c = ChangeRecord(source_id="p", kind="changed", prev_snapshot_id=old, new_snapshot_id=old + 1,
                         detected_at=datetime(2026, 2, 1, tzinfo=timezone.utc))
        s.add(c)
        s.flush()
        cid = c.id

    def analyst(started):
        with store.session() as s:
            record_action(s, cid, "significant", "ana")
        started.set()

    _during_delete(monkeypatch, analyst)
    r = prune(store, datetime(2026, 3, 1, tzinfo=timezone.utc))
    assert (r.blobs, r.snapshots) == (0, 0)
    assert store.get_blob(X) == b"version X of the page"


def test_prune_works_in_batches_of_its_own_transactions(db_url):
    """1,200 old routine attempts and 300 prunable captures, pruned in batches of 100: many short
    transactions, never more than a batch of values in one statement."""
    from sqlalchemy import event, insert

    from state.models import FetchAttemptRecord, SourceRecord
    from state.retention import prune
    from state.store import Store

    store = Store(db_url)
    old = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with store.session() as s:
        s.add(SourceRecord(id="p", url="https://example.gov/p"))
        s.flush()
        s.execute(insert(FetchAttemptRecord), [{"source_id": "p", "url": "https://example.gov/p", "started_at": old,
                                                "outcome": ("unchanged", "not_modified", "error")[i % 3]} for i in range(1200)])
        for i in range(301):
            store_capture(store, s, "p", f"version {i}".encode(), old)
    commits, widest = [], [0]

    @event.listens_for(store.engine, "commit")
    def on_commit(conn):
        commits.append(1)

    @event.listens_for(store.engine, "before_cursor_execute")
    def on_execute(conn, cursor, statement, parameters, context, executemany):
        if not executemany:
            widest[0] = max(widest[0], len(parameters or ()))

    r = prune(store, datetime(2026, 2, 1, tzinfo=timezone.utc), batch=100)
    assert (r.attempts, r.snapshots, r.blobs) == (800 - 2, 300, 600)  # the URL's newest three stay: two are routine
    assert len(commits) >= 8 + 6 and widest[0] <= 100 + 5, (len(commits), widest[0])
    from state.custody import verify_store

    with store.session() as s:
        check = verify_store(s)
    assert check.problems == [] and check.pruned == 300


def test_prune_keeps_the_listing_that_dates_a_matched_new_document(site, webhook, workdir):
    """A followed document's change names the listing that already shows it; the capture before,
    which shows the listing without it, dates its appearance and is kept with the evidence."""
    from tests.e2e.test_sources import LISTING_OPTIONS, OPR_REPORT, oig_listing
    from tests.pdfs import make_pdf

    old = {"num": "OIG-26-01", "href": "/r/oig-26-01.pdf", "title": "FEMA Grants Management", "summary": "Grants.", "date": "2026-10-01"}
    new = {"num": "OIG-26-07", "href": "/r/oig-26-07.pdf", "title": "Review of ICE OPR Investigations", "summary": "OPR.",
           "date": "2026-11-20"}
    site.set("/reports", oig_listing([old]))
    site.set("/r/oig-26-01.pdf", make_pdf([["FEMA grants report."]]), content_type="application/pdf")
    site.set("/r/oig-26-07.pdf", make_pdf(OPR_REPORT), content_type="application/pdf")
    workdir.write(sources=[{"id": "oig", "url": site.url("/reports"), "kind": "listing", **LISTING_OPTIONS}],
                  notify=[{"url": webhook.url(), "name": "team"}])
    workdir.run("check")
    site.set("/reports", oig_listing([new, old]))
    assert "alerts sent 1" in workdir.run("check", "--force").stdout
    listings = [i for (i,) in rows(workdir.db, "SELECT id FROM snapshots WHERE source_id = 'oig' AND item_key = '' ORDER BY id")]
    change = rows(workdir.db, "SELECT prev_snapshot_id, matched FROM changes WHERE kind = 'new_item'")
    assert len(listings) == 2 and change == [(listings[1], 1)], (listings, change)  # it names the second listing
    time.sleep(1.2)
    workdir.run("prune", "--older-than", "1s")
    for i in listings:  # the listing without the report, and the one with it, keep their bytes
        assert shas_of(workdir.db, i) <= blob_digests(workdir.db), i
