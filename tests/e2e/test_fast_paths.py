"""The shortcuts the cycle takes for speed must not change what it records: quiet outcomes written
in batches, and a previous version read again with today's extraction when the text differs."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
import sqlite3
import zlib

from tests.e2e.test_monitor import RELEVANT, db_rows, page


def _db(workdir) -> sqlite3.Connection:
    return sqlite3.connect(workdir.path / "state" / "govwatch.db")


def test_an_older_extraction_of_the_stored_version_is_not_a_change(site, workdir):
    """An upgrade (of govwatch, trafilatura) or an edited selector reads pages a little differently:
    the stored text of the last version then differs from today's reading of the same page. The
    old raw body is read again, so only what the page itself changed is reported."""
    site.set("/opr", page())
    workdir.write(sources=[{"id": "ice-opr", "url": site.url("/opr"), "every": "1h"}])
    assert "1 baseline" in workdir.run("check").stdout

    # what an older extractor made of the same page: one more line of page furniture
    (snap_id, text_sha), = db_rows(workdir, "select id, text_sha256 from snapshots")
    con = _db(workdir)
    old = con.execute("select data from blobs where sha256 = ?", (text_sha,)).fetchone()[0]
    older = zlib.decompress(old).decode() + "\n\nShare this page: Facebook, X, LinkedIn, Email."
    digest = hashlib.sha256(older.encode()).hexdigest()
    with con:
        con.execute("insert into blobs (sha256, size, codec, data, created_at) values (?, ?, 'zlib', ?, datetime('now'))",
                    (digest, len(older.encode()), zlib.compress(older.encode())))
        # ... under that extractor's key (monitor/documents.extraction_key): not today's reading
        con.execute("update snapshots set text_sha256 = ?, extraction = 'an-older-one' where id = ?", (digest, snap_id))
    con.close()

    site.set("/opr", page(stamp="11/29/2026"))  # new bytes, same article
    out = workdir.run("check", "--force").stdout
    assert "1 unchanged" in out and "0 change(s)" in out, out

    site.set("/opr", page(extra=RELEVANT, stamp="11/30/2026"))
    out = workdir.run("check", "--force").stdout
    assert "1 changed" in out, out
    (added, removed), = db_rows(workdir, "select added_text, removed_text from changes")
    assert "white supremacist extremist group" in added and removed == ""


def test_a_text_stored_by_todays_extraction_is_not_read_again(tmp_path, monkeypatch):
    """Each stored text keeps the key of the extraction that read it. A new version is compared with
    the stored text as it is when the key is today's: the old raw body is not extracted again (a
    scanned PDF is not OCR-read twice). Another key (an edited `ignore` here; an upgrade alike), or
    none (a version stored before keys were kept), and the old body is read again."""
    from datetime import timezone

    import yaml

    from monitor import documents
    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from spiders.kinds import Fetched
    from state.store import Store

    from monitor.health import Health

    calls, judged = [], []
    real = documents.extract
    monkeypatch.setattr(documents, "extract", lambda body, **kw: calls.append(body) or real(body, **kw))
    real_success = Health.success
    monkeypatch.setattr(Health, "success", lambda self, s, rec, *a, **kw: judged.append(rec.id) or real_success(self, s, rec, *a, **kw))

    def monitor(ignore: list[str]) -> Monitor:
        cfg_path = tmp_path / "gw.yaml"
        cfg_path.write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path / 'gw.db'}", "include_defaults": False,
                                            "fetch": {"extract_processes": 0},
                                            "sources": [{"id": "a", "url": "https://example.gov/a", "every": "1h", "ignore": ignore}]}))
        cfg = load_config(str(cfg_path))
        return Monitor(cfg, Store(cfg.database), worker="w1")

    def check(mon: Monitor, body: bytes) -> str:
        mon.sync_sources()
        (req,) = mon.requests_for(mon.due_sources(force=True))
        out = mon.process(Fetched(request=req, url=req.url, status=200, headers={"content-type": "text/html"}, body=body,
                                  started_at=datetime.now(timezone.utc), duration_ms=5))[0].outcome
        mon.release_leases()
        return out

    def page_of(*paras: str) -> bytes:
        return ("<html><head><title>Rules</title></head><body><main>"
                + "".join(f"<p>{p} of the detention standards, with enough words to be read as text.</p>" for p in paras)
                + "</main></body></html>").encode()

    mon = monitor(["Last reviewed"])
    v1, v2, v3 = page_of("One", "Two"), page_of("One", "Two", "Three"), page_of("One", "Two", "Three", "Four")
    assert check(mon, v1) == "baseline"
    keys = mon.store.engine.connect().exec_driver_sql("select extraction from snapshots").scalars().all()
    assert len(keys) == 1 and len(keys[0]) == 16, keys
    calls.clear()
    assert check(mon, v2) == "changed"
    assert calls == [v2]                    # the new version only: the stored text is today's reading of v1
    # a healthy source's books, written without loading its record (Health.write_success), as success() would
    with mon.store.engine.connect() as c:
        (health, owner, failures, snap, last_snap, changed_at, success_at, due, attempts), = c.exec_driver_sql(
            "select health, lease_owner, consecutive_failures, last_snapshot_id, (select max(id) from snapshots), "
            "last_change_at, last_success_at, next_due_at, (select count(*) from fetch_attempts) from sources").fetchall()
    assert (health, owner, failures, snap, attempts) == ("ok", "", 0, last_snap, 2) and changed_at is not None
    gap = datetime.fromisoformat(due) - datetime.fromisoformat(success_at)
    assert timedelta(minutes=53) < gap < timedelta(minutes=67), gap
    assert judged == []                     # ... without loading its record into Health.success

    mon = monitor(["Last reviewed", "Share this page"])  # an edited ignore list: another extraction
    with mon.store.engine.begin() as c:     # and a failure to reset: this success is judged in full
        c.exec_driver_sql("update sources set consecutive_failures = 1, health = 'failing'")
    calls.clear()
    assert check(mon, v3) == "changed"
    assert calls == [v3, v2]                # the old body read again with today's extraction
    assert judged == ["a"] and mon.store.engine.connect().exec_driver_sql(
        "select health, consecutive_failures from sources").fetchall() == [("ok", 0)]
    with mon.store.engine.begin() as c:     # a version stored before keys were kept
        c.exec_driver_sql("update snapshots set extraction = ''")
    calls.clear()
    assert check(mon, page_of("One")) == "changed"
    assert calls == [page_of("One"), v3]


def test_quiet_outcomes_are_recorded_and_a_failing_source_still_recovers(site, workdir):
    for p in ("/a", "/b", "/c"):
        site.set(p, page(extra=f"<p>Bulletin {p}.</p>"))
    workdir.write(sources=[{"id": f"s{p[1]}", "url": site.url(p), "every": "1h"} for p in ("/a", "/b", "/c")])
    assert "3 baseline" in workdir.run("check").stdout

    # /b fails once: its failure is recorded the usual way
    site.set("/b", "down", status=503)
    out = workdir.run("check", "--force").stdout
    assert "2 not modified" in out and "1 error" in out, out
    assert db_rows(workdir, "select consecutive_failures, health from sources where id = 'sb'") == [(1, "failing")]

    # then everything answers 304: the healthy ones go through the batch, /b through the full path
    site.set("/b", page(extra="<p>Bulletin /b.</p>"))
    out = workdir.run("check", "--force").stdout
    assert "3 not modified" in out, out
    rows = db_rows(workdir, "select source_id, outcome, status from fetch_attempts order by id")
    assert len(rows) == 9
    assert sorted(rows[-3:]) == [("sa", "not_modified", 304), ("sb", "not_modified", 304), ("sc", "not_modified", 304)]
    for sid, due, owner, health, failures, success in db_rows(
            workdir, "select id, next_due_at, lease_owner, health, consecutive_failures, last_success_at from sources"):
        gap = datetime.fromisoformat(due) - datetime.fromisoformat(success)
        assert timedelta(minutes=53) < gap < timedelta(minutes=67), (sid, gap)   # 1 h ± 10% from this fetch
        assert owner == "" and health == "ok" and failures == 0 and success is not None, sid


def test_meta_refresh_is_still_followed(site, workdir):
    """Meta refresh is looked for in the raw bytes first (no decoding of every page); a page that
    has one is still followed, and one that mentions it only in its text is not."""
    site.set("/moved", '<html><head><META HTTP-EQUIV="Refresh" CONTENT="0; URL=/opr"></head><body>Moved.</body></html>')
    site.set("/opr", page())
    site.set("/talks", page(extra="<p>Set http-equiv refresh to redirect old pages, the guide says.</p>"))
    workdir.write(sources=[{"id": "moved", "url": site.url("/moved"), "every": "1h"},
                           {"id": "talks", "url": site.url("/talks"), "every": "1h"}])
    assert "2 baseline" in workdir.run("check").stdout
    assert dict(db_rows(workdir, "select source_id, url from snapshots")) == {
        "moved": site.url("/opr"), "talks": site.url("/talks")}


def test_added_text_beyond_the_classifier_bound_is_noted(site, workdir):
    """The classifier reads at most MAX_TEXT_CHARS of what was added; a change that adds more says
    so in its note (and the log), so nobody takes "no topic" for "read and found nothing"."""
    from monitor.classify import MAX_TEXT_CHARS

    site.set("/big", page())
    workdir.write(sources=[{"id": "big", "url": site.url("/big"), "every": "1h"}])
    workdir.run("check")
    para = "<p>Bulletin {n} lists the inspection schedule for regional offices in the coming quarter.</p>"
    bulk = "".join(para.format(n=n) for n in range(MAX_TEXT_CHARS // 80 + 2000))
    site.set("/big", page(extra=bulk))
    p = workdir.run("check", "--force", timeout=300)
    assert "1 changed" in p.stdout, p.stdout
    (note, added), = db_rows(workdir, "select note, length(added_text) from changes")
    assert added > MAX_TEXT_CHARS
    assert note == f"only the first {MAX_TEXT_CHARS:,} of {added:,} characters added were classified"
    assert "characters added were classified" in p.stderr


def test_sources_are_synced_only_where_the_configuration_changed(site, workdir):
    """sync_sources writes only what differs; a source given a new URL drops the old URL's
    validators, so its first fetch is a full one, not a 304 borrowed from the old address."""
    site.set("/one", page())
    site.set("/two", page())                        # same bytes, so the same ETag
    workdir.write(sources=[{"id": "a", "url": site.url("/one"), "every": "1h"},
                           {"id": "b", "url": site.url("/two"), "every": "2h", "name": "B"}])
    workdir.run("check")
    assert db_rows(workdir, "select id, url, every_seconds, name from sources order by id") == [
        ("a", site.url("/one"), 3600, "a"), ("b", site.url("/two"), 7200, "B")]
    workdir.write(sources=[{"id": "a", "url": site.url("/two"), "every": "3h"},
                           {"id": "b", "url": site.url("/two"), "every": "2h", "name": "B"}])
    hits_before = len(site.hits("/two"))
    out = workdir.run("check", "--force").stdout
    assert db_rows(workdir, "select id, url, every_seconds from sources order by id") == [
        ("a", site.url("/two"), 10800), ("b", site.url("/two"), 7200)]
    new = site.hits("/two")[hits_before:]
    assert len(new) == 2
    assert sorted("if-none-match" in h for h in new) == [False, True]   # a: no validator of /one; b: its own
    assert "1 unchanged" in out and "1 not modified" in out, out


def test_queued_quiet_outcomes_are_written_within_a_second_and_on_abandon(tmp_path):
    """A queued 304 does not wait for the next quiet outcome to be written, and an abandoned cycle
    (a signal, then stop_timeout) writes what was queued before it gives back the leases."""
    import time as _time
    from datetime import timezone

    import yaml

    from monitor.config import load_config
    from monitor.pipeline import QUIET_SECONDS, Monitor
    from spiders.kinds import Fetched
    from state.store import Store

    cfg_path = tmp_path / "gw.yaml"
    cfg_path.write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path / 'gw.db'}", "include_defaults": False,
                                        "sources": [{"id": s, "url": f"https://example.gov/{s}", "every": "1h"} for s in "abc"]}))
    cfg = load_config(str(cfg_path))
    mon = Monitor(cfg, Store(cfg.database), worker="w1")
    body = b"<html><head><title>T</title></head><body><main><p>" + b"Rule text sentence. " * 30 + b"</p></main></body></html>"

    def fetched(reqs, sid, status, data=b""):
        r = next(q for q in reqs if q.source_id == sid)
        return Fetched(request=r, url=r.url, status=status, headers={"content-type": "text/html", "etag": '"e1"'}, body=data,
                       started_at=datetime.now(timezone.utc), duration_ms=5)

    def cycle_start():  # what a crawl does when it feeds the due sources
        mon.sync_sources()
        return mon.requests_for(mon.due_sources(force=True))

    reqs = cycle_start()
    for sid in "abc":
        assert mon.process(fetched(reqs, sid, 200, body))[0].outcome == "baseline"
    mon.release_leases()

    reqs = cycle_start()
    assert mon.process(fetched(reqs, "a", 304))[0].outcome == "not_modified"
    _time.sleep(QUIET_SECONDS + 0.2)
    assert mon.process(fetched(reqs, "b", 200, body.replace(b"Rule", b"New rule")))[0].outcome == "changed"
    attempts = lambda: mon.store.engine.connect().exec_driver_sql(  # noqa: E731
        "select source_id, outcome from fetch_attempts where outcome = 'not_modified' order by id").fetchall()
    assert attempts() == [("a", "not_modified")]          # written with b's response, not at the cycle's end

    assert mon.process(fetched(reqs, "c", 304))[0].outcome == "not_modified"
    mon.abandon()                                          # the reactor gave up: queued rows first, then leases
    assert attempts() == [("a", "not_modified"), ("c", "not_modified")]
    with mon.store.engine.connect() as c:
        assert c.exec_driver_sql("select count(*) from sources where lease_owner != '' or last_status != 304 and id != 'b'").scalar() == 0


def test_extraction_in_the_worker_process_records_what_the_writer_would(site, workdir):
    """`fetch.extract_processes` (monitor/offload.py) changes where pages are extracted and
    compressed, never what is stored: the same pages checked with the worker and without it give
    the same snapshots, texts, blobs and changes, at the baseline and after a change. (The worker
    starts at a run's 16th page; the pages answer slowly enough for it to be up before the end.)"""
    import re

    from tests.pdfs import make_pdf

    paths = [f"/p{i}" for i in range(60)]
    filler = "".join(f"<p>Paragraph {k} of the detention standards, with enough words to be read as text.</p>" for k in range(300))
    pdf = make_pdf([["Report of investigation", "OPR"], ["Second page"]])  # once: its bytes carry a time

    def serve(changed: bool) -> None:
        for k, p in enumerate(paths):  # ten pages change, the others only in their date stamp
            extra = RELEVANT if changed and k % 6 == 0 else ""
            site.set(p, page(extra=f"<p>Notice {p}.</p>{extra}{filler}", stamp="11/30/2026" if changed else "11/01/2026"),
                     delay=0.1)
        site.set("/r.pdf", pdf, content_type="application/pdf", delay=0.1)

    sources = [{"id": f"s{p[2:]}", "url": site.url(p), "every": "1h"} for p in paths]
    sources.append({"id": "report", "url": site.url("/r.pdf"), "kind": "pdf", "every": "1h"})

    def stored(db: str) -> tuple:
        con = sqlite3.connect(workdir.path / "state" / db)
        try:
            snaps = sorted(con.execute("select source_id, body_sha256, text_sha256, title, text_chars, note from snapshots"))
            changes = sorted(con.execute("select source_id, kind, added_text, removed_text, matched from changes"))
            blobs = {h: zlib.decompress(d) for h, d in con.execute("select sha256, data from blobs")}
        finally:
            con.close()
        assert all(hashlib.sha256(data).hexdigest() == h for h, data in blobs.items())
        return snaps, changes, blobs

    results, used = [], []
    for n, db in ((0, "here.db"), (1, "worker.db")):
        serve(changed=False)
        workdir.write(sources=sources, database=f"sqlite:///{workdir.path / 'state' / db}", fetch={"extract_processes": n})
        runs = [workdir.run("check")]
        assert "61 baseline" in runs[0].stdout
        serve(changed=True)
        runs.append(workdir.run("check", "--force"))
        assert "10 changed, 50 unchanged, 1 not modified" in runs[1].stdout, runs[1].stdout
        results.append(stored(db))
        used.append([int(m.group(1)) for r in runs for m in re.finditer(r"extraction worker: (\d+) of", r.stderr)])
    here, worker = results
    assert len(here[0]) >= 120 and len(here[1]) == 10
    assert here == worker
    assert used[0] == [] and len(used[1]) == 2 and all(u > 0 for u in used[1]), used  # the worker did extract


def test_a_watch_list_longer_than_sqlites_bound_values_is_synced_leased_and_fed(tmp_path):
    """20,000 sources once stopped `govwatch run` at its first cycle ("too many SQL variables"):
    the sources' sync, leases and stored validators were each one statement binding every id.
    Here SQLite is held to its old limit of 999 values a statement and 1,200 sources are synced,
    leased, fed and released."""
    import sqlite3 as _sqlite3

    import yaml
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from state.store import Store

    def old_limit(dbapi_conn, _record):
        if isinstance(dbapi_conn, _sqlite3.Connection):
            dbapi_conn.setlimit(_sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    n = 1200
    cfg_path = tmp_path / "gw.yaml"
    cfg_path.write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path / 'gw.db'}", "include_defaults": False,
                                        "sources": [{"id": f"s{i:04d}", "url": f"https://h{i % 50}.example.gov/{i}", "every": "1h"}
                                                    for i in range(n)]}))
    cfg = load_config(str(cfg_path))
    event.listen(Engine, "connect", old_limit)
    try:
        mon = Monitor(cfg, Store(cfg.database), worker="w1")
        with mon.store.engine.connect() as c:  # the limit holds: one IN of every id fails here
            try:
                c.exec_driver_sql(f"select count(*) from sources where id in ({','.join('?' * n)})", tuple(range(n)))
                raise AssertionError("the lowered limit did not hold")
            except Exception as e:  # noqa: BLE001
                assert "too many SQL variables" in str(e)
        mon.sync_sources()
        due = mon.due_sources()
        reqs = mon.requests_for(due)
        assert len(due) == len(reqs) == n and {r.source_id for r in reqs} == {f"s{i:04d}" for i in range(n)}
        with mon.store.engine.connect() as c:
            assert c.exec_driver_sql("select count(*) from sources where lease_owner = 'w1'").scalar() == n
        assert mon.due_sources(exclude=[r.source_id for r in reqs[:10]]) == due[10:]  # still held by w1, still due
        mon.release_leases()
        with mon.store.engine.connect() as c:
            assert c.exec_driver_sql("select count(*) from sources where lease_owner != ''").scalar() == 0
        with mon.store.session() as s:  # a healthy source (its columns read as the record's were): quiet outcomes batched
            s.connection().exec_driver_sql("update sources set health = 'ok', consecutive_failures = 0, consecutive_blocks = 0, "
                              "health_alerted = '', every_seconds = 3600, etag = '\"e\"' where id = 's0007'")
            s.connection().exec_driver_sql("update sources set consecutive_failures = 1 where id != 's0007'")  # the others failing
        mon.health.quiet_every.clear()
        reqs = mon.requests_for(mon.due_sources(force=True))
        assert mon.health.quiet_every == {"s0007": 3600.0}
        assert next(r for r in reqs if r.source_id == "s0007").etag == '"e"'
        mon.release_leases()
    finally:
        event.remove(Engine, "connect", old_limit)
