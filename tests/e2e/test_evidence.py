"""Evidence through the real CLI: Save Page Now on a matched change against a local stand-in of the
SPN2 API (asked once, after the alert; down or 429 delays nothing and is retried), WACZ export and
`govwatch verify` of the store and of exported files."""
from __future__ import annotations

import json
import time

import pytest

from tests.e2e.test_monitor import RELEVANT, page
from tests.spn import SavePageNow

KEYS = {"TEST_SPN_ACCESS": "acc3ss-k3y-123", "TEST_SPN_SECRET": "s3cr3t-k3y-456"}


@pytest.fixture
def spn():
    s = SavePageNow()
    yield s
    s.stop()


def spn_config(spn, **over) -> dict:
    conf = {"enabled": True, "endpoint": spn.endpoint, "access_key_env": "TEST_SPN_ACCESS", "secret_key_env": "TEST_SPN_SECRET",
            "poll_every": "0.2s", "check_wait": "20s", "retry_base": "1s"}
    conf.update(over)
    return {"save_page_now": conf}


def matched_change(site, webhook, workdir, spn, **over) -> int:
    site.set("/p", page())
    workdir.write(sources=[{"id": "p", "url": site.url("/p")}], notify=[{"url": webhook.url(), "name": "hook"}],
                  archive=spn_config(spn, **over))
    workdir.run("check", env=KEYS)
    assert spn.requests == []  # a baseline is no change: nothing to capture
    site.set("/p", page(extra=RELEVANT))
    p = workdir.run("check", "--force", env=KEYS)
    assert "1 matched" in p.stdout, p.stdout
    for secret in KEYS.values():
        assert secret not in p.stdout + p.stderr
    changes = json.loads(workdir.run("changes", "--matched", "--format", "json").stdout)
    assert len(changes) == 1
    return changes[0]["id"]


def test_a_matched_change_is_captured_once_after_its_alert(site, webhook, workdir, spn):
    spn.probe = lambda: len(webhook.received)
    cid = matched_change(site, webhook, workdir, spn)
    posts = spn.submissions()
    assert [p["url"] for p in posts] == [site.url("/p")]
    assert posts[0]["probe"] == 1  # the alert was out before the archive was asked
    assert posts[0]["auth"] == "LOW acc3ss-k3y-123:s3cr3t-k3y-456"
    assert len(webhook.received) == 1
    shown = json.loads(workdir.run("show", str(cid), "--format", "json").stdout)
    assert shown["archive"] == [{
        "service": "wayback", "url": f"http://127.0.0.1:{spn.port}/web/20261201203005/{site.url('/p')}", "status": "success",
        "timestamp": "2026-12-01T20:30:05Z", "requested_url": site.url("/p"), "attempts": 0, "error": ""}]
    assert f"Archived: http://127.0.0.1:{spn.port}/web/20261201203005/" in workdir.run("show", str(cid)).stdout
    workdir.run("check", "--force", env=KEYS)  # unchanged: nothing new to capture
    assert len(spn.submissions()) == 1

    # the web change page shows the capture, and serves the change's WACZ
    from fastapi.testclient import TestClient

    from monitor.config import load_config
    from monitor.wacz import verify_file
    from monitor.web import WebSettings, create_app
    from state.store import Store

    cfg = load_config(workdir.config, env={})
    web = TestClient(create_app(cfg, Store(cfg.database), settings=WebSettings()), base_url="http://127.0.0.1")
    html = web.get(f"/changes/{cid}").text
    assert f'href="http://127.0.0.1:{spn.port}/web/20261201203005/{site.url("/p")}"' in html and "2026-12-01T20:30:05Z" in html
    r = web.get(f"/changes/{cid}/wacz")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/wacz")
    (workdir.path / "web.wacz").write_bytes(r.content)
    check = verify_file(str(workdir.path / "web.wacz"))
    assert check.problems == [] and check.captures == 2


def test_spn_down_then_rate_limited_delays_nothing_and_is_retried(site, webhook, workdir, spn):
    spn.down = True
    cid = matched_change(site, webhook, workdir, spn)
    assert len(webhook.received) == 1  # the alert went out, SPN down or not
    # one failed request, then the queue waits: check did not stay for the retry (due after
    # retry_base, 1 s, well within its check_wait of 20 s), nor hammer the archive
    assert len(spn.submissions()) == 1
    a = json.loads(workdir.run("show", str(cid), "--format", "json").stdout)["archive"]
    assert [(x["status"], x["attempts"], x["url"]) for x in a] == [("pending", 1, "")] and "503" in a[0]["error"]

    spn.down = False
    spn.limit_next, spn.retry_after = 1, "2"
    time.sleep(1.2)  # past retry_base: the failed capture is due again
    workdir.run("check", env=KEYS)
    posts = spn.submissions()
    assert len(posts) == 3
    assert posts[2]["at"] - posts[1]["at"] >= 1.9  # Retry-After: 2 honoured
    a = json.loads(workdir.run("show", str(cid), "--format", "json").stdout)["archive"]
    assert a[0]["status"] == "success" and a[0]["timestamp"] == "2026-12-01T20:30:05Z"
    assert len(webhook.received) == 1  # and the alert was never sent twice


def test_export_wacz_and_verify_the_store_and_the_file(site, webhook, workdir, spn):
    import sqlite3
    import zlib

    cid = matched_change(site, webhook, workdir, spn)
    p = workdir.run("export-wacz", "--change", str(cid), "-o", "c.wacz")
    assert p.stdout.strip() == f"wrote 2 capture(s) of change {cid} to c.wacz"
    p = workdir.run("verify", "c.wacz")
    assert p.stdout.startswith("OK: WACZ c.wacz: 6 member(s), 3 WARC record(s), 2 capture(s); custody head at export: 2 "), p.stdout
    import zipfile

    meta = json.loads(zipfile.ZipFile(workdir.path / "c.wacz").read("govwatch/metadata.json"))
    assert meta["changes"][0]["archive"][0]["status"] == "success" and meta["changes"][0]["topics"] == ["opr-outcomes"]
    workdir.run("export-wacz", "--source", "p", "--since", "2026-01-01", "-o", "p.wacz")
    assert workdir.run("verify", "p.wacz").stdout.startswith("OK: WACZ p.wacz")
    workdir.run("export-warc", "--source", "p", "-o", "p.warc.gz")
    assert workdir.run("verify", "p.warc.gz").stdout.startswith("OK: WARC p.warc.gz: 3 WARC record(s), 2 capture(s)")
    data = bytearray((workdir.path / "c.wacz").read_bytes())
    data[len(data) // 3] ^= 0x01
    (workdir.path / "bad.wacz").write_bytes(bytes(data))
    p = workdir.run("verify", "bad.wacz", check=False)
    assert p.returncode == 1 and p.stdout.startswith("MISMATCH: ") and "FAILED (" in p.stdout

    p = workdir.run("verify")
    assert p.returncode == 0 and p.stdout.startswith("OK: chain of custody of 2 entries (head #2 "), p.stdout
    # the stored bytes of the first capture changed behind govwatch's back
    db = sqlite3.connect(workdir.path / "state" / "govwatch.db")
    sha, = db.execute("select body_sha256 from snapshots where id = 1").fetchone()
    body = zlib.decompress(db.execute("select data from blobs where sha256 = ?", (sha,)).fetchone()[0])
    db.execute("update blobs set data = ? where sha256 = ?", (zlib.compress(body.replace(b"</body>", b"<p>x</p></body>")), sha))
    db.commit()
    db.close()
    p = workdir.run("verify", check=False)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"MISMATCH: blob {sha[:16]}…, the raw bytes of snapshot 1 ({site.url('/p')}, fetched ")
    assert lines[1].startswith("FAILED (1 mismatch(es)): chain of custody of 2 entries")


def test_an_alert_sent_after_the_capture_is_ready_links_it(site, webhook, workdir, spn):
    webhook.fail_next = 1  # the first delivery fails; the retry goes out after the capture exists
    cid = matched_change(site, webhook, workdir, spn)
    assert webhook.received == []
    workdir.run("check", env=KEYS)  # check retries the failed alert now
    assert len(webhook.received) == 1
    link = f"http://127.0.0.1:{spn.port}/web/20261201203005/{site.url('/p')}"
    assert f"Archived:** <{link}>" in webhook.received[0]["message"], webhook.received[0]["message"]  # links as <URL>, like the URL line
    assert len(spn.submissions()) == 1 and cid


def test_run_works_the_queue_and_gives_a_failing_capture_up_loudly(site, webhook, workdir, spn):
    spn.down = True
    site.set("/p", page())
    workdir.write(sources=[{"id": "p", "url": site.url("/p"), "every": "1s"}], notify=[{"url": webhook.url(), "name": "hook"}],
                  health_notify=[{"url": webhook.url("/ops"), "name": "ops"}],
                  archive=spn_config(spn, retry_base="0.2s", max_attempts=2, poll_every="0.2s"), scheduler={"tick": "1s"})
    workdir.run("check", env=KEYS)
    site.set("/p", page(extra=RELEVANT))
    p = workdir.run("run", "--max-cycles", "6", "--tick", "1", env=KEYS, timeout=180)
    workdir.run("check", env=KEYS)  # delivers the health alert if run's last delivery came before the give-up
    assert [m["_path"] for m in webhook.received] == ["/hook", "/ops"]
    assert webhook.received[1]["title"].startswith("govwatch: Wayback capture for change ")
    assert len(spn.submissions()) == 2  # max_attempts: 2, then given up
    assert "save page now: capture of " in p.stderr and "given up after 2 attempts" in p.stderr
    cid = json.loads(workdir.run("changes", "--matched", "--format", "json").stdout)[0]["id"]
    a = json.loads(workdir.run("show", str(cid), "--format", "json").stdout)["archive"]
    assert [(x["status"], x["attempts"]) for x in a] == [("failed", 2)] and "503" in a[0]["error"]


@pytest.mark.postgres
def test_concurrent_appenders_keep_one_chain_on_postgres(pg_url):
    """Four writers storing captures at once on PostgreSQL: one linear chain, nothing forked."""
    import threading
    from datetime import datetime, timezone

    from state import custody
    from state.models import SnapshotRecord, SourceRecord
    from state.store import Store

    store = Store(pg_url)
    with store.session() as s:
        s.add(SourceRecord(id="a", url="https://example.gov/a"))
    errors = []

    def writer(w: int) -> None:
        try:
            for i in range(25):
                with store.session() as s:
                    body = f"writer {w} capture {i}".encode()
                    snap = SnapshotRecord(source_id="a", url=f"https://example.gov/a/{w}", fetched_at=datetime.now(timezone.utc),
                                          body_sha256=Store.put_blob(s, body))
                    s.add(snap)
                    s.flush()
                    custody.append(s, snap)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.session() as s:
        r = custody.verify_store(s)
    assert r.problems == [] and r.entries == 100 and r.head.seq == 100


def test_the_days_chain_head_is_time_stamped_rfc3161(site, workdir, tmp_path):
    """Once a day the head is stamped by the authority; OpenSSL verifies the token; verify checks it
    stamps an entry of the chain, and names a token that no longer does."""
    import shutil
    import sqlite3

    from tests.tsa import TimeStampAuthority

    if not shutil.which("openssl"):
        pytest.skip("the local time stamping authority is OpenSSL's `ts -reply`: no openssl here")
    tsa = TimeStampAuthority(tmp_path / "tsa")
    try:
        tsa.down = True
        site.set("/p", page())
        workdir.write(sources=[{"id": "p", "url": site.url("/p")}], archive={"timestamp_url": tsa.url})
        p = workdir.run("check")
        assert tsa.requests == 1 and "custody time-stamp of head #1" in p.stderr and "failed, retried at the next pass" in p.stderr
        tsa.down = False
        site.set("/p", page(extra=RELEVANT))
        workdir.run("check", "--force")
        workdir.run("check", "--force")  # today is stamped already: not asked again
        assert tsa.requests == 2
        db = sqlite3.connect(workdir.path / "state" / "govwatch.db")
        (seq, entry, token), = db.execute("select seq, entry_hash, token from custody_timestamps").fetchall()
        assert seq == 2 and entry == db.execute("select entry_hash from custody_log where seq = 2").fetchone()[0]
        ok = tsa.verify(token, entry.encode())
        assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stdout + ok.stderr
        p = workdir.run("verify")
        assert p.stdout.startswith("OK: chain of custody of 2 entries") and "1 RFC 3161 time-stamp(s) of its head" in p.stdout
        db.execute("update custody_timestamps set entry_hash = (select entry_hash from custody_log where seq = 1), seq = 1")
        db.commit()
        db.close()
        p = workdir.run("verify", check=False)
        assert p.returncode == 1 and p.stdout.startswith("MISMATCH: time-stamp of ") and "the token stamps another hash" in p.stdout
    finally:
        tsa.stop()


def test_changes_every_captures_an_unmatched_change_too_and_matched_only_does_not(site, webhook, workdir, spn):
    """`save_page_now.changes`: `matched` (the default) leaves a change no topic matched alone;
    `every` asks for a capture of it as well."""
    for mode, expected in (("matched", 0), ("every", 1)):
        site.set("/q", page())
        workdir.write(sources=[{"id": "q", "url": site.url("/q")}], notify=[{"url": webhook.url(), "name": "hook"}],
                      archive=spn_config(spn, changes=mode))
        workdir.run("check", "--force", env=KEYS)
        before = len(spn.submissions())
        site.set("/q", page(extra=f"<p>The field office in Dallas moved to a new building ({mode}).</p>"))
        out = workdir.run("check", "--force", env=KEYS).stdout
        assert "1 changed" in out and "0 matched" in out, out
        assert len(spn.submissions()) - before == expected, (mode, spn.submissions())
