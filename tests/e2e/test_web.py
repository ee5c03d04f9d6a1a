"""The web change log end to end: the real CLI checks a local site twice (so snapshots, changes and
topic matches exist), then the app answers through FastAPI's TestClient and the CLI exports."""
from __future__ import annotations

import argparse
import csv
import hashlib
import html
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import markupsafe
import pytest
import yaml

from tests.conftest import LOCAL_FETCH, run_cli
from tests.e2e.test_monitor import RELEVANT, feed, page
from tests.servers import Site

# Captured text that would run if it ever reached the page unescaped: each sets window.__pwned.
XSS_PARAGRAPH = ('<p>&lt;script&gt;window.__pwned=1&lt;/script&gt; The OPR investigation of the officer was '
                 'substantiated and the employee was removed from federal service; '
                 '&lt;img src=x onerror="window.__pwned=2"&gt; see '
                 '&lt;a href="javascript:window.__pwned=4"&gt;the report&lt;/a&gt;.</p>')
EVIL_NAME = "<script>window.__pwned=3</script>Evil <b>source</b>"
EVIL_TITLE = 'Domestic Terrorism: <img src=x onerror="window.__pwned=5"> DHS Should Define Domestic Violent Extremism Categories'
EVIL_SUMMARY = ("The Department of Homeland Security revised its definition of domestic violent extremism and added a "
                "new category of anti-government violent extremism to its strategy.")
JS_LINK = "javascript:window.__pwned=7"


def esc(s: str) -> str:
    """The escaping Jinja2's autoescape applies (markupsafe: quotes become &#34; and &#39;)."""
    return str(markupsafe.escape(s))
SECRET_HOOK = "json://127.0.0.1:9/hook-with-SECRET-TOKEN-abc123"


@dataclass
class World:
    path: Path
    config: Path
    cfg: object
    store: object
    changes: dict  # source id -> change id

    def client(self, **settings):
        from fastapi.testclient import TestClient

        from monitor.web import WebSettings, create_app

        return TestClient(create_app(self.cfg, self.store, settings=WebSettings(**settings)), base_url="http://127.0.0.1")


def build_world(path: Path) -> World:
    """Two real `govwatch check` runs against a local site: baseline, then relevant and hostile changes."""
    from monitor.config import load_config
    from state.store import Store

    site = Site().start()
    try:
        site.set("/opr", page())
        site.set("/evil", page())
        entries = [("Coast Guard: Cutter Acquisition", "GAO reviewed the acquisition of cutters.")]
        site.set("/rss.xml", feed(site.base, entries), content_type="application/rss+xml")
        cfg = {"database": f"sqlite:///{path / 'state' / 'govwatch.db'}", "include_defaults": False,
               "fetch": dict(LOCAL_FETCH), "notify": [{"url": SECRET_HOOK, "name": "team-hook"}],
               "sources": [
                   {"id": "ice-opr", "name": "ICE OPR", "agency": "ICE", "url": site.url("/opr"), "kind": "page"},
                   {"id": "evil", "name": EVIL_NAME, "agency": "DHS", "url": site.url("/evil"), "kind": "page"},
                   {"id": "gao", "name": "GAO reports", "agency": "GAO", "url": site.url("/rss.xml"), "kind": "feed"},
                   {"id": "missing", "url": site.url("/missing?q=<script>alert(1)</script>"), "kind": "page"},
               ]}
        config = path / "govwatch.yaml"
        config.write_text(yaml.safe_dump(cfg))
        run_cli("check", cwd=path)
        site.set("/opr", page(extra=RELEVANT))
        # a live script too: the capture is kept as fetched and must stay inert when previewed
        site.set("/evil", page(extra=XSS_PARAGRAPH + "<script>window.parent.__pwned=9; alert(9)</script>"))
        entries.append((html.escape(EVIL_TITLE), html.escape(EVIL_SUMMARY)))
        site.set("/rss.xml", feed(site.base, entries).replace(f"{site.base}/r/1", JS_LINK), content_type="application/rss+xml")
        run_cli("check", "--force", cwd=path)
    finally:
        site.stop()
    loaded = load_config(config)
    store = Store(loaded.database)
    changes = {c.source_id: c.id for c, _ in store.query_changes()}
    assert set(changes) == {"ice-opr", "evil", "gao"}, changes
    return World(path, config, loaded, store, changes)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return build_world(tmp_path_factory.mktemp("web"))


@pytest.fixture
def client(world):
    return world.client()


def csrf_of(page_html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page_html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def run_web_cli(capsys, *argv) -> tuple[int, str, str]:
    """`govwatch <argv>` in-process, with web_commands.register wired the way cli.build_parser will."""
    import monitor.cli as cli
    from monitor import web_commands

    original = cli.build_parser

    def build_parser():
        p = original()
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        if "serve" in sub.choices:  # already wired into cli.py
            return p

        def add(name, func, **kw):
            doc = (func.__doc__ or "").strip()
            sp = sub.add_parser(name, help=doc.splitlines()[0], description=doc, **kw)
            sp.set_defaults(func=func)
            sp.add_argument("-c", "--config")
            return sp

        web_commands.register(add)
        return p

    cli.build_parser = build_parser
    try:
        code = cli.main(list(argv))
    finally:
        cli.build_parser = original
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the change log ---------------------------------------------------------------------------
def titles_in(page_html: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'<a class="title" href="/changes/\d+">([^<]*)</a>', page_html)]


def test_change_log_newest_first_with_filters_and_topic_counts(world, client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    ids = [int(x) for x in re.findall(r'<a class="title" href="/changes/(\d+)"', r.text)]
    assert sorted(ids, reverse=True) == ids and len(ids) == 3
    assert "3 changes" in r.text
    counts = dict(re.findall(r'topic=([a-z-]+)">[^<]*</a> <span class="count">(\d+)</span>', r.text))
    assert counts == {"opr-outcomes": "2", "extremism-definitions": "1"}

    r = client.get("/?topic=opr-outcomes")
    got = {int(x) for x in re.findall(r'<a class="title" href="/changes/(\d+)"', r.text)}
    assert got == {world.changes["ice-opr"], world.changes["evil"]}
    # the counts ignore the topic filter itself, so the other topic stays reachable
    assert re.search(r'topic=extremism-definitions">[^<]*</a> <span class="count">1</span>', r.text)

    def ids_for(qs: str) -> set[int]:
        resp = client.get("/" + qs)
        assert resp.status_code == 200, resp.text
        return {int(x) for x in re.findall(r'<a class="title" href="/changes/(\d+)"', resp.text)}

    assert ids_for("?source=gao") == {world.changes["gao"]}
    assert ids_for("?agency=ICE") == {world.changes["ice-opr"]}
    high = {d["id"] for d in client.get("/changes.json").json() if d["severity"] == "high"}
    assert world.changes["gao"] in high and ids_for("?severity=high") == high
    assert ids_for("?q=white+supremacist") == {world.changes["ice-opr"]}
    assert ids_for("?q=%25+supremacist") == {world.changes["ice-opr"]}  # punctuation is no search syntax
    bad = client.get("/?q=%25")
    assert bad.status_code == 400 and "the search is empty" in bad.text
    assert ids_for("?since=2000-01-01&until=2000-12-31") == set()
    assert ids_for("?since=2000-01-01") == set(world.changes.values())
    assert ids_for("?matched=1") == set(world.changes.values())


def test_pagination_keeps_filters(world, client, monkeypatch):
    import monitor.web as web

    monkeypatch.setattr(web.changes, "PAGE_SIZE", 2)
    first = client.get("/?agency=&matched=1")
    assert "page 1 of 2" in first.text
    nxt = re.search(r'<a href="(/\?[^"]*page=2[^"]*)">Older', first.text).group(1)
    assert "matched=1" in html.unescape(nxt)
    second = client.get(html.unescape(nxt))
    ids = re.findall(r'<a class="title" href="/changes/(\d+)"', first.text) + re.findall(r'<a class="title" href="/changes/(\d+)"', second.text)
    assert sorted(map(int, ids)) == sorted(world.changes.values())
    assert client.get("/?page=0").status_code == 400


def test_change_page_shows_evidence_diff_texts_and_captures(world, client):
    cid = world.changes["ice-opr"]
    r = client.get(f"/changes/{cid}")
    assert r.status_code == 200
    t = r.text
    assert "ICE OPR" in t and "opr-outcomes" in t
    marks = re.findall(r'<mark class="hl">([^<]+)</mark>', t)
    assert marks and any("substantiated" in m.lower() or "opr" in m.lower() for m in marks), marks
    assert re.search(r'<li class="d-add"><span class="sign">\+</span><span class="txt">[^<]*white supremacist', t)
    assert '<table class="sbs">' in t and 'class="r-insert"' in t
    # both captures linked, with raw downloads, and their texts shown
    with world.store.session() as s:
        from state.models import ChangeRecord

        c = s.get(ChangeRecord, cid)
    assert f'href="/snapshots/{c.prev_snapshot_id}/raw"' in t and f'href="/snapshots/{c.new_snapshot_id}/raw"' in t
    assert t.count('<pre class="text">') == 2 and "upholds the agency" in t
    assert f'href="/changes/{cid}/warc"' in t
    # alert targets are named, their Apprise URLs (tokens) never shown
    assert "team-hook" in t and "SECRET-TOKEN" not in t
    assert client.get("/changes/999999").status_code == 404


def test_new_item_shows_title_date_and_no_javascript_link(world, client):
    cid = world.changes["gao"]
    t = client.get(f"/changes/{cid}").text
    assert esc(EVIL_TITLE) in t
    assert "Mon, 14 Sep 2026" in t or "2026-09-14" in t
    assert "javascript:" in t  # shown as text, for the analyst to see ...
    assert not re.search(r'href\s*=\s*"\s*javascript:', t, re.I)  # ... but never a link
    assert "<img src=x" not in t and "<script>window" not in t
    assert "Definition" in t or "definition" in t


def test_hostile_capture_source_name_and_error_are_escaped(world, client):
    pages = [client.get(p).text for p in ("/", f"/changes/{world.changes['evil']}", "/sources", "/sources/evil",
                                          "/sources/missing", "/?since=<script>alert(1)</script>")]
    for t in pages:
        assert "<script>window" not in t and "<script>alert" not in t
        assert "<img src=x" not in t and "<b>source</b>" not in t
        assert not re.search(r'href\s*=\s*"\s*javascript:', t, re.I)
        assert not re.search(r"<[^>]+\son\w+\s*=", t)  # no element carries an event handler
    assert "&lt;script&gt;window.__pwned=3&lt;/script&gt;Evil" in pages[2]
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in pages[1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[5]  # the error message echoes the value, escaped


def test_triage_is_audited_and_not_relevant_feedback_exports(world, capsys):
    client = world.client()
    cid = world.changes["evil"]
    t = client.get(f"/changes/{cid}").text
    token = csrf_of(t)
    assert client.post(f"/changes/{cid}/triage", data={"action": "reviewed", "note": "x"}).status_code == 403
    assert client.post(f"/changes/{cid}/triage", data={"action": "reviewed", "csrf_token": "forged"}).status_code == 403
    r = client.post(f"/changes/{cid}/triage", data={"action": "bogus", "csrf_token": token})
    assert r.status_code == 400
    note = 'Widget noise, not OPR <script>window.__pwned=8</script> "=cmd|calc"'
    r = client.post(f"/changes/{cid}/triage", data={"action": "not_relevant", "note": note, "csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/changes/{cid}#triage"
    t = client.get(f"/changes/{cid}").text
    assert '<strong class="actor">local</strong>' in t and "Not relevant" in t
    assert esc(note) in t and "<script>window.__pwned=8" not in t
    # filters by review state
    ids = {int(x) for x in re.findall(r'href="/changes/(\d+)"', client.get("/?state=not_relevant").text)}
    assert ids == {cid}
    assert cid not in {int(x) for x in re.findall(r'<a class="title" href="/changes/(\d+)"', client.get("/?state=unreviewed").text)}

    data = client.get("/feedback.json").json()
    assert [d["change_id"] for d in data] == [cid]
    assert data[0]["note"] == note and data[0]["topics"] == ["opr-outcomes"] and data[0]["evidence"]
    assert data[0]["marked_by"] == "local" and data[0]["marked_at"].endswith("Z")
    rows = list(csv.DictReader(io.StringIO(client.get("/feedback.csv").text)))
    assert rows[0]["change_id"] == str(cid) and rows[0]["note"] == note and "opr-outcomes" in rows[0]["topics"]

    code, out, _ = run_web_cli(capsys, "feedback", "--config", str(world.config), "--format", "json")
    assert code == 0 and json.loads(out)[0]["note"] == note
    code, out, _ = run_web_cli(capsys, "feedback", "--config", str(world.config), "--format", "csv")
    assert code == 0 and list(csv.DictReader(io.StringIO(out)))[0]["change_id"] == str(cid)

    # a later action changes the state; the trail keeps both
    token = csrf_of(t)
    client.post(f"/changes/{cid}/triage", data={"action": "significant", "note": "second look", "csrf_token": token})
    t = client.get(f"/changes/{cid}").text
    assert t.count('<strong class="actor">local</strong>') == 2
    assert client.get("/feedback.json").json() == []


def test_json_and_csv_exports_take_the_filters(world, client):
    data = client.get("/changes.json").json()
    assert [d["id"] for d in data] == sorted(world.changes.values(), reverse=True)
    for d in data:
        assert {"id", "source_id", "url", "detected_at", "kind", "title", "topics", "added_text", "evidence"} <= set(d)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", d["detected_at"])
    gao = next(d for d in data if d["source_id"] == "gao")
    assert gao["kind"] == "new_item" and gao["topics"] == ["extremism-definitions"] and gao["url"] == JS_LINK
    assert gao["evidence"] and all("sentence" in e and "topic" in e for e in gao["evidence"])
    only = client.get("/changes.json?topic=extremism-definitions").json()
    assert [d["id"] for d in only] == [world.changes["gao"]]

    r = client.get("/changes.csv?source=ice-opr")
    assert r.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(x["id"]) for x in rows] == [world.changes["ice-opr"]]
    assert "white supremacist" in rows[0]["added_text"]
    assert client.get("/changes.json?severity=urgent").status_code == 400


def test_atom_feed_has_stable_ids_and_per_topic_feeds(world, client):
    ns = {"a": "http://www.w3.org/2005/Atom"}
    r = client.get("/feed.atom")
    assert r.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(r.content)
    ids = [e.findtext("a:id", namespaces=ns) for e in root.findall("a:entry", ns)]
    assert sorted(ids) == sorted(f"tag:govwatch,2026:change:{i}" for i in world.changes.values())
    assert ids == [e.findtext("a:id", namespaces=ns) for e in ET.fromstring(client.get("/feed.atom").content).findall("a:entry", ns)]
    per = ET.fromstring(client.get("/feed.atom?topic=opr-outcomes").content)
    assert {e.findtext("a:id", namespaces=ns) for e in per.findall("a:entry", ns)} == {
        f"tag:govwatch,2026:change:{world.changes['ice-opr']}", f"tag:govwatch,2026:change:{world.changes['evil']}"}
    gao = next(e for e in root.findall("a:entry", ns) if e.findtext("a:id", namespaces=ns).endswith(f":{world.changes['gao']}"))
    assert EVIL_TITLE in gao.findtext("a:title", namespaces=ns)  # text, escaped as XML by construction
    assert gao.find("a:summary", ns).get("type") == "text"
    # no javascript: link: the change's page (relative without public_url) and the http(s) item
    assert all(link.get("href", "").startswith(("http", "/changes/")) for link in gao.findall("a:link", ns))
    assert b"<img" not in r.content  # markup in titles travels as &lt;img, never as an element
    assert client.get("/feed.atom?topic=<script>").status_code == 404


def test_sources_health_timeline_and_compare(world, client):
    t = client.get("/sources").text
    assert "ICE OPR" in t and "GAO reports" in t and "failing" in t and "HTTP 404" in t
    t = client.get("/sources/ice-opr").text
    snaps = [int(x) for x in re.findall(r'capture <a href="/snapshots/(\d+)">', t)]
    assert len(snaps) >= 2 and f'href="/changes/{world.changes["ice-opr"]}"' in t
    assert '<span class="badge health h-ok">ok</span>' in t
    r = client.get(f"/sources/ice-opr/compare?a={snaps[0]}&b={snaps[-1]}")  # newest first on the page: swapped back
    assert r.status_code == 200
    assert re.search(r'<li class="d-add">.*white supremacist', r.text)
    other = [int(x) for x in re.findall(r'capture <a href="/snapshots/(\d+)">', client.get("/sources/gao").text)]
    assert client.get(f"/sources/ice-opr/compare?a={snaps[0]}&b={other[0]}").status_code == 404
    assert client.get("/sources/nope").status_code == 404


def test_capture_download_headers_and_hash(world, client):
    t = client.get("/sources/ice-opr").text
    sid = int(re.findall(r'capture <a href="/snapshots/(\d+)">', t)[0])
    r = client.get(f"/snapshots/{sid}/raw")
    assert r.status_code == 200
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-govwatch-sha256"] == hashlib.sha256(r.content).hexdigest()
    assert b"white supremacist" in r.content
    h = client.get(f"/snapshots/{sid}/headers.json").json()
    assert h["sha256"] == r.headers["x-govwatch-sha256"] and h["sha256_verified"] is True
    assert h["headers"].get("etag") and "text/html" in h["headers"].get("content-type", "")
    page_html = client.get(f"/snapshots/{sid}").text
    assert h["sha256"] in page_html and "verified" in page_html
    assert re.search(r'<iframe class="preview" sandbox="" src="/snapshots/\d+/preview"', page_html)
    assert "allow-same-origin" not in page_html and "allow-scripts" not in page_html
    p = client.get(f"/snapshots/{sid}/preview")
    assert p.headers["content-security-policy"].startswith("sandbox")


def _read_warc(data: bytes) -> list:
    from warcio.archiveiterator import ArchiveIterator

    out = []
    for rec in ArchiveIterator(io.BytesIO(data), check_digests=True):
        body = rec.content_stream().read()
        out.append((rec.rec_type, rec.rec_headers, rec.http_headers, body))
    return out


def test_warc_export_web_and_cli_reads_back(world, client, capsys, tmp_path):
    import base64

    from monitor.evidence import warc_date
    from state.models import ChangeRecord, SnapshotRecord

    cid = world.changes["ice-opr"]
    r = client.get(f"/changes/{cid}/warc")
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    records = _read_warc(r.content)
    assert records[0][0] == "warcinfo"
    responses = [x for x in records if x[0] == "response"]
    with world.store.session() as s:
        c = s.get(ChangeRecord, cid)
        snaps = [s.get(SnapshotRecord, c.prev_snapshot_id), s.get(SnapshotRecord, c.new_snapshot_id)]
    assert len(responses) == 2
    for (_, wh, hh, body), snap in zip(responses, snaps):
        assert wh.get_header("WARC-Target-URI") == snap.url
        assert wh.get_header("WARC-Date") == warc_date(snap.fetched_at)
        digest = wh.get_header("WARC-Payload-Digest")
        assert digest == "sha256:" + base64.b32encode(hashlib.sha256(body).digest()).decode()
        assert hashlib.sha256(body).hexdigest() == snap.body_sha256
        assert hh.get_statuscode() == "200" and hh.get_header("ETag")
    assert b"white supremacist" in responses[1][3] and b"white supremacist" not in responses[0][3]

    out = tmp_path / "src.warc.gz"
    code, stdout, stderr = run_web_cli(capsys, "export-warc", "--config", str(world.config), "--source", "ice-opr", "-o", str(out))
    assert code == 0, stderr
    with world.store.session() as s:
        from sqlalchemy import func, select

        n = s.scalar(select(func.count()).select_from(SnapshotRecord).where(SnapshotRecord.source_id == "ice-opr"))
    assert f"wrote {n} capture(s)" in stdout
    assert len([x for x in _read_warc(out.read_bytes()) if x[0] == "response"]) == n
    code, _, stderr = run_web_cli(capsys, "export-warc", "--config", str(world.config), "--change", "999999", "-o", str(tmp_path / "x.warc.gz"))
    assert code == 1 and "no change with id 999999" in stderr and not (tmp_path / "x.warc.gz").exists()
    assert client.get("/sources/nope/warc").status_code == 404


def test_healthz_and_serve_refuses_public_bind_without_accounts(world, client, capsys, monkeypatch):
    assert client.get("/healthz").json() == {"status": "ok", "changes": 3, "schema": world.store.head_version()}  # the newest migration
    monkeypatch.delenv("GOVWATCH_WEB_TOKEN", raising=False)
    monkeypatch.delenv("GOVWATCH_WEB_USERS", raising=False)
    code, _, err = run_web_cli(capsys, "serve", "--config", str(world.config), "--host", "0.0.0.0", "--port", "1")
    assert code == 1 and "refusing to serve on 0.0.0.0 without accounts or a token" in err
    assert "GOVWATCH_WEB_TOKEN" in err and "GOVWATCH_WEB_USERS" in err


def test_hash_password_command_makes_a_hash_that_signs_in(world, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    code, out, _ = run_web_cli(capsys, "hash-password")
    assert code == 0 and out.startswith("scrypt$")
    users = tmp_path / "users.yaml"
    users.write_text(yaml.safe_dump({"users": [{"name": "ana", "role": "analyst", "password_hash": out.strip()}]}))
    from monitor.web import web_settings

    settings = web_settings({"GOVWATCH_WEB_USERS": str(users)})
    c = world.client(users=settings.users)
    login = c.get("/login")
    r = c.post("/login", data={"name": "ana", "password": "correct horse battery", "csrf_token": csrf_of(login.text),
                               "next": "/sources"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sources"
    assert "ana · analyst" in c.get("/sources").text


def test_an_analyst_sends_a_given_up_alert_again_from_the_change_page(world):
    """Issue 15.5: the web change page offers what `govwatch deliveries retry` does, audited."""
    from datetime import datetime, timezone

    from state.models import DeliveryRecord

    cid = world.changes["gao"]
    with world.store.session() as s:
        row = DeliveryRecord(change_id=cid, target="ops-mail", status="failed", attempts=8,
                             last_error="Failed to send: connection refused", next_try_at=datetime.now(timezone.utc))
        s.add(row)
        s.flush()
        did = row.id
    client = world.client()
    page_text = client.get(f"/changes/{cid}").text
    assert f'action="/changes/{cid}/deliveries/{did}/retry"' in page_text and "Failed to send: connection refused" in page_text
    assert client.post(f"/changes/{cid}/deliveries/{did}/retry", data={}).status_code == 403  # no CSRF token
    token = csrf_of(page_text)
    assert client.post(f"/changes/{cid + 1000}/deliveries/{did}/retry", data={"csrf_token": token}).status_code == 404
    r = client.post(f"/changes/{cid}/deliveries/{did}/retry", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/changes/{cid}#alerts"
    with world.store.session() as s:
        row = s.get(DeliveryRecord, did)
        assert (row.status, row.attempts) == ("pending", 0)
    after = client.get(f"/changes/{cid}").text
    assert "Alert queued again" in after and f'deliveries/{did}/retry"' not in after
    # only a failed delivery is queued again
    assert client.post(f"/changes/{cid}/deliveries/{did}/retry", data={"csrf_token": csrf_of(after)}).status_code == 400
