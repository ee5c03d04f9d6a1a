"""Security of the web change log without sockets: hostile records in a scratch SQLite store,
the app through TestClient. Escaping, CSP, CSRF, Host checks, accounts, tokens and downloads."""
from __future__ import annotations

import asyncio
import json
import logging
import re
from html.parser import HTMLParser
from datetime import datetime, timezone
from types import SimpleNamespace

import markupsafe
import pytest
from fastapi.testclient import TestClient

from monitor import web
from monitor.web import WebSettings, create_app, hash_password
from state.errors import GovwatchError
from state.models import ChangeRecord, SnapshotRecord, SourceRecord, TopicMatchRecord
from state.store import Store
from state.triage import record_action

XSS = '<script>window.__pwned=1</script><img src=x onerror="alert(1)"><a href="javascript:alert(2)">x</a>'
TOKEN = "t0ken-" + "s3cret" * 4


def esc(s: str) -> str:
    return str(markupsafe.escape(s))


@pytest.fixture
def hostile(tmp_path):
    """A store holding one source and one change whose every text field carries markup."""
    store = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    t = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
    with store.session() as s:
        s.add(SourceRecord(id="evil", name="Evil " + XSS, url="javascript:alert(3)", kind="page", agency="DHS " + XSS,
                           health="failing", last_error="HTTP 500 " + XSS, consecutive_failures=3))
        s.flush()
        body = b"<html><body><script>alert(4)</script>" + XSS.encode() + b"</body></html>"
        sha = store.put_blob(s, body)
        text_sha = store.put_blob(s, ("Old text.\n" + XSS).encode())
        snaps = []
        for i in range(2):
            snap = SnapshotRecord(source_id="evil", url="http://example.org/a", fetched_at=t, status=200,
                                  content_type="text/html", headers_json=json.dumps({"x-evil": XSS, "content-type": "text/html"}),
                                  body_sha256=sha, text_sha256=text_sha, title=XSS)
            s.add(snap)
            s.flush()
            snaps.append(snap.id)
        c = ChangeRecord(source_id="evil", url="javascript:alert(5)", detected_at=t, kind="new_item", title="Title " + XSS,
                         item_published=XSS, prev_snapshot_id=snaps[0], new_snapshot_id=snaps[1], added_text="Added " + XSS,
                         diff_text="- old " + XSS + "\n+ new " + XSS, topics="opr-outcomes", severity="high", matched=True)
        s.add(c)
        s.flush()
        ev = {"evidence": [{"rule": "r" + XSS, "sentence": XSS, "marked": "«" + XSS + "» and " + XSS, "terms": [XSS]}],
              "definition_changes": [{"term": XSS, "change": "reworded", "old": XSS, "new": XSS}]}
        s.add(TopicMatchRecord(change_id=c.id, topic="opr-outcomes", score=5, severity="high", evidence_json=json.dumps(ev)))
        record_action(s, c.id, "reviewed", "local", note="Note " + XSS)
        cid = c.id
    from monitor.classify import builtin_topics

    cfg = SimpleNamespace(topics=builtin_topics(), sources=[], public_url="")
    return SimpleNamespace(store=store, cfg=cfg, change_id=cid, snapshots=snaps)


def client_for(h, **settings) -> TestClient:
    return TestClient(create_app(h.cfg, h.store, settings=WebSettings(**settings)), base_url="http://127.0.0.1")


class _Elements(HTMLParser):
    """Every element and attribute as a browser's tokenizer sees them (quoted values stay values)."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def no_live_markup(page: str) -> None:
    for tag, attrs in _Elements(page).tags:
        assert tag not in ("script", "img", "object", "embed", "base"), tag
        for name, value in attrs:
            assert not name.startswith("on"), f"<{tag} {name}=...>"
            if name in ("href", "src", "action", "formaction"):
                assert (value or "").strip().lower().startswith(("/", "http://", "https://", "#", "?")), f"<{tag} {name}={value!r}>"


def test_templates_autoescape_and_never_mark_safe():
    env = web._templates()
    assert env.autoescape is True
    assert env.from_string("{{ x }}").render(x=XSS) == esc(XSS)
    for f in web.TEMPLATES.glob("*.html"):
        src = f.read_text()
        assert "|safe" not in src.replace(" ", "") and "autoescape false" not in src, f.name
        assert "<script" not in src and " on" + "click" not in src, f.name  # no JavaScript at all


@pytest.mark.parametrize("path", ["/", "/?q=x", "/sources", "/sources/evil", "/changes/{cid}", "/snapshots/{sid}",
                                  "/sources/evil/compare?a={sid}&b={sid2}", "/?since=" + XSS, "/?state=" + XSS,
                                  "/changes/999", "/nope/" + XSS])
def test_every_page_escapes_hostile_records(hostile, path):
    c = client_for(hostile)
    r = c.get(path.format(cid=hostile.change_id, sid=hostile.snapshots[0], sid2=hostile.snapshots[1]))
    assert r.headers["content-type"].startswith("text/html")
    no_live_markup(r.text)
    assert r.headers["content-security-policy"] == web.CSP
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


def test_change_page_shows_the_payloads_as_text(hostile):
    t = client_for(hostile).get(f"/changes/{hostile.change_id}").text
    assert esc("Title " + XSS) in t and esc("Note " + XSS) in t and esc(XSS) in t
    assert f'<mark class="hl">{esc(XSS)}</mark>' in t  # a highlighted term is escaped inside the mark
    assert '<span class="url-text">javascript:alert(5)</span>' in t


@pytest.mark.parametrize("url,ok", [
    ("https://www.ice.gov/about-ice/opr", True), ("http://example.org/a?b=c", True), ("javascript:alert(1)", False),
    ("JaVaScRiPt:alert(1)", False), (" javascript:alert(1)", False), ("java\nscript:alert(1)", False),
    ("data:text/html,<script>", False), ("vbscript:x", False), ("//evil.example/", False), ("http:///nohost", False),
    ("https://ok.example/\x00", False), ("", False), (None, False)],
    ids=["https", "http", "js", "js-case", "js-space", "js-newline", "data", "vbscript", "scheme-relative", "no-host", "nul", "empty", "none"])
def test_only_http_urls_become_links(url, ok):
    assert (web.safe_url(url) is not None) is ok and web.safe_url(url) in (None, url)


@pytest.mark.parametrize("marked,want", [
    ("a «b» c", [("a ", False), ("b", True), (" c", False)]),
    ("«x»«y»", [("x", True), ("y", True)]),
    ("no marks", [("no marks", False)]),
    ("broken «open", [("broken «open", False)]),
    ("", []),
], ids=["one", "adjacent", "none", "unclosed", "empty"])
def test_marked_segments(marked, want):
    assert web.marked_segments(marked) == want


@pytest.mark.parametrize("value,want", [("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1", "'+1"),
                                        ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"), ("plain", "plain"), (7, "7"), (None, "")],
                         ids=["eq", "plus", "minus", "at", "plain", "int", "none"])
def test_csv_cells_never_start_a_formula(value, want):
    assert web.csv_cell(value) == want


@pytest.mark.parametrize("nxt,want", [("/changes/3", "/changes/3"), ("//evil.example", "/"), ("https://evil.example", "/"),
                                      ("/\\evil.example", "/"), ("\\\\evil", "/"), ("/ok?x=1", "/ok?x=1")],
                         ids=["path", "scheme-relative", "absolute", "backslash", "unc", "query"])
def test_login_redirect_stays_on_site(nxt, want):
    assert web._safe_next(nxt) == want


def test_every_post_route_requires_the_csrf_token(hostile):
    c = client_for(hostile)
    c.get("/")  # a session exists, so only the token is missing
    # Every route of every router: FastAPI lists an included router as one entry in app.routes.
    posts = [path for path, ops in c.app.openapi()["paths"].items() if "post" in ops]
    assert set(posts) == {"/login", "/logout", "/changes/{change_id}/triage", "/changes/{change_id}/assign",
                          "/changes/{change_id}/deliveries/{delivery_id}/retry", "/subscriptions", "/subscriptions/{sub_id}",
                          "/subscriptions/{sub_id}/delete", "/sources", "/sources/{source_id}/{action}"}
    for p in posts:
        r = c.post(p.replace("{change_id}", str(hostile.change_id)).replace("{delivery_id}", "1").replace("{sub_id}", "1").replace("{source_id}", "evil").replace("{action}", "pause"),
                   data={"action": "reviewed", "note": "x"})
        assert r.status_code == 403 and "CSRF" in r.text, p
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get(f"/changes/{hostile.change_id}").text).group(1)
    r = c.post(f"/changes/{hostile.change_id}/triage", data={"action": "significant", "csrf_token": token},
               headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "cross-site" in r.text
    r = c.post(f"/changes/{hostile.change_id}/triage", data={"action": "significant", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    other = client_for(hostile)  # another browser's session cannot reuse this token
    other.get("/")
    assert other.post(f"/changes/{hostile.change_id}/triage", data={"action": "reviewed", "csrf_token": token}).status_code == 403


def test_session_cookie_is_httponly_and_samesite_strict(hostile):
    r = client_for(hostile).get("/")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_without_accounts_only_loopback_host_names_are_served(hostile):
    c = client_for(hostile)
    assert c.get("/", headers={"Host": "rebind.evil.example:8080"}).status_code == 421
    assert c.get("/", headers={"Host": "localhost:8080"}).status_code == 200
    assert c.get("/", headers={"Host": "[::1]:8080"}).status_code == 200


def test_token_guards_everything_but_health_and_never_reaches_logs(hostile, caplog):
    c = client_for(hostile, token=TOKEN)
    assert c.get("/healthz").status_code == 200
    assert c.get("/changes.json").status_code == 401
    r = c.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert c.get("/changes.json", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/changes.json", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    with caplog.at_level(logging.INFO, logger="monitor.web"):
        r = c.get(f"/feed.atom?token={TOKEN}")
    assert r.status_code == 200
    assert TOKEN not in caplog.text and "/feed.atom" in caplog.text
    assert TOKEN not in r.text
    # any other host name is fine once sign-in is required (e.g. behind a reverse proxy)
    assert c.get("/healthz", headers={"Host": "govwatch.example.org"}).status_code == 200


def test_accounts_roles_and_sign_in(hostile):
    users = {"vic": web.User("vic", "viewer", hash_password("viewer-pass-1")),
             "ana": web.User("ana", "analyst", hash_password("analyst-pass-1"))}
    c = client_for(hostile, users=users)
    login = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
    before = c.cookies.get(web.SESSION_COOKIE)
    r = c.post("/login", data={"name": "vic", "password": "nope", "csrf_token": token})
    assert r.status_code == 401 and "Wrong name or password" in r.text and "nope" not in r.text
    r = c.post("/login", data={"name": "vic", "password": "viewer-pass-1", "csrf_token": token, "next": "//evil.example"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert c.cookies.get(web.SESSION_COOKIE) != before  # a new session id: no fixation
    page = c.get(f"/changes/{hostile.change_id}").text
    assert "Viewers can read" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = c.post(f"/changes/{hostile.change_id}/triage", data={"action": "reviewed", "csrf_token": token})
    assert r.status_code == 403 and "analyst role" in r.text
    assert c.get("/feedback.json").status_code == 403

    a = client_for(hostile, users=users)
    t = re.search(r'name="csrf_token" value="([^"]+)"', a.get("/login").text).group(1)
    a.post("/login", data={"name": "ana", "password": "analyst-pass-1", "csrf_token": t})
    page = a.get(f"/changes/{hostile.change_id}").text
    t = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert a.post(f"/changes/{hostile.change_id}/triage", data={"action": "significant", "note": "n", "csrf_token": t},
                  follow_redirects=False).status_code == 303
    assert '<strong class="actor">ana</strong>' in a.get(f"/changes/{hostile.change_id}").text


def test_sign_in_failures_are_rate_limited(hostile, monkeypatch):
    monkeypatch.setattr(web.auth, "LOGIN_FAILURES_ALLOWED", 3)
    c = client_for(hostile, token=TOKEN)
    t = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
    codes = [c.post("/login", data={"password": f"wrong-{i}", "csrf_token": t}).status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert c.post("/login", data={"password": TOKEN, "csrf_token": t}).status_code == 429


def test_token_guesses_are_throttled_like_the_sign_in_form(hostile, monkeypatch):
    """Issue 16, point 2: `Authorization: Bearer` and `?token=` share the sign-in form's throttle,
    per client address; once throttled, even the right token is refused there."""
    monkeypatch.setattr(web.auth, "LOGIN_FAILURES_ALLOWED", 3)
    app = create_app(hostile.cfg, hostile.store, settings=WebSettings(token=TOKEN))
    guesser = TestClient(app, base_url="http://127.0.0.1", client=("203.0.113.7", 4000))
    other = TestClient(app, base_url="http://127.0.0.1", client=("198.51.100.9", 4000))
    codes = [guesser.get("/changes.json", headers={"Authorization": f"Bearer wrong-{i}"}).status_code for i in range(2)]
    codes.append(guesser.get("/feed.atom?token=wrong-2").status_code)
    assert codes == [401, 401, 401]
    r = guesser.get("/changes.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 429 and "too many failed sign-ins" in r.text and TOKEN not in r.text
    assert guesser.get(f"/feed.atom?token={TOKEN}").status_code == 429
    t = re.search(r'name="csrf_token" value="([^"]+)"', guesser.get("/login").text).group(1)
    assert guesser.post("/login", data={"password": TOKEN, "csrf_token": t}).status_code == 429
    # another address is not punished for the guesser
    assert other.get("/changes.json", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # and failures of the form count against the token paths of the same address
    t = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/login").text).group(1)
    assert [other.post("/login", data={"password": f"bad-{i}", "csrf_token": t}).status_code for i in range(3)] == [401] * 3
    assert other.get(f"/changes.json?token={TOKEN}").status_code == 429


def test_token_comparison_is_constant_time_in_content_and_length(monkeypatch):
    """The token is compared with hmac.compare_digest on SHA-256 digests (equal lengths, so the
    comparison time says nothing about the token's length either)."""
    seen = []
    real = web.auth.hmac.compare_digest
    monkeypatch.setattr(web.auth.hmac, "compare_digest", lambda a, b: seen.append((len(a), len(b))) or real(a, b))
    settings = WebSettings(token=TOKEN)
    assert web.auth.token_matches(TOKEN, settings) and not web.auth.token_matches("x", settings)
    assert not web.auth.token_matches(TOKEN + "x", settings)
    assert seen == [(32, 32)] * 3


def test_anonymous_requests_create_no_session_and_sign_nobody_out(hostile):
    """Issue 16, point 3: 10,000 cookieless requests (a health probe, a crawler, an attacker) used
    to fill the session table until it dropped its oldest entry: the signed-in analyst."""
    users = {"ana": web.User("ana", "analyst", hash_password("analyst-pass-1"))}
    app = create_app(hostile.cfg, hostile.store, settings=WebSettings(users=users))
    ana = TestClient(app, base_url="http://127.0.0.1")
    t = re.search(r'name="csrf_token" value="([^"]+)"', ana.get("/login").text).group(1)
    assert ana.post("/login", data={"name": "ana", "password": "analyst-pass-1", "csrf_token": t},
                    follow_redirects=False).status_code == 303
    stored = len(app.state.sessions)

    async def probe(n: int) -> set[int]:
        import httpx  # one event loop for all of them: TestClient's per-request portal is 3x slower

        codes = set()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            for _ in range(n):
                codes.add((await c.get("/healthz")).status_code)
                c.cookies.clear()  # cookieless, every time
        return codes

    assert asyncio.run(probe(10_000)) == {200}
    assert "ana · analyst" in ana.get("/sources").text
    assert len(app.state.sessions) == stored == 1  # neither the sign-in page nor the probes stored one
    browser = TestClient(app, base_url="http://127.0.0.1")
    # an anonymous browser's forms still carry a CSRF token that only its own cookie satisfies
    t = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text).group(1)
    other = TestClient(app, base_url="http://127.0.0.1")
    other.get("/login")
    assert other.post("/login", data={"name": "ana", "password": "analyst-pass-1", "csrf_token": t}).status_code == 403
    assert browser.post("/login", data={"name": "ana", "password": "analyst-pass-1", "csrf_token": t},
                      follow_redirects=False).status_code == 303
    assert len(app.state.sessions) == 2


def test_password_hashes_round_trip_and_pbkdf2_is_accepted():
    import base64
    import hashlib

    h = hash_password("correct horse")
    assert h.startswith("scrypt$") and web.verify_password("correct horse", h) and not web.verify_password("wrong", h)
    salt = b"0123456789abcdef"
    dk = hashlib.pbkdf2_hmac("sha256", b"pw-123456", salt, 1000)
    p = f"pbkdf2_sha256$1000${base64.b64encode(salt).decode()}${base64.b64encode(dk).decode()}"
    assert web.verify_password("pw-123456", p) and not web.verify_password("pw-1234567", p)
    assert not web.verify_password("x", "plain-text-password") and not web.verify_password("x", "scrypt$bad")


def test_users_file_problems_are_named(tmp_path):
    f = tmp_path / "users.yaml"
    f.write_text("users:\n  - {name: ana, role: boss, password_hash: plain}\n  - {role: viewer, password_hash: 'scrypt$1'}\n")
    with pytest.raises(GovwatchError) as e:
        web.web_settings({"GOVWATCH_WEB_USERS": str(f)})
    msg = str(e.value)
    assert "users[0]: role must be one of viewer, analyst, admin" in msg
    assert "users[0]: password_hash must come from `govwatch hash-password`" in msg
    assert "users[1]: name is required" in msg and "plain" not in msg.split("problem(s):")[1].replace("password_hash", "")
    with pytest.raises(GovwatchError, match="cannot read"):
        web.web_settings({"GOVWATCH_WEB_USERS": str(tmp_path / "missing.yaml")})
    with pytest.raises(GovwatchError, match="too short"):
        web.web_settings({"GOVWATCH_WEB_TOKEN": "short"})
    f.write_text(json.dumps([{"name": "ana", "role": "admin", "password_hash": hash_password("abcdefghij")}]))
    assert web.web_settings({"GOVWATCH_WEB_USERS": str(f)}).users["ana"].role == "admin"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_serve_refuses_a_public_address_without_accounts(hostile, host):
    with pytest.raises(GovwatchError, match=f"refusing to serve on {re.escape(host)} without accounts or a token"):
        web.serve(hostile.cfg, hostile.store, host=host, port=1, settings=WebSettings())


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("127.5.5.5", True), ("::1", True), ("localhost", True),
                                       ("0.0.0.0", False), ("10.0.0.1", False), ("localhost.evil.example", False)])
def test_loopback_detection(host, loop):
    assert web.is_loopback(host) is loop


def test_raw_capture_is_an_inert_attachment_and_preview_is_sandboxed(hostile):
    c = client_for(hostile)
    sid = hostile.snapshots[0]
    r = c.get(f"/snapshots/{sid}/raw")
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == f'attachment; filename="snapshot-{sid}-{r.headers["x-govwatch-sha256"][:12]}.html"'
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"].startswith("sandbox")
    p = c.get(f"/snapshots/{sid}/preview")
    assert p.headers["content-security-policy"] == web.PREVIEW_CSP and "script-src" not in web.PREVIEW_CSP
    t = c.get(f"/snapshots/{sid}/text")
    assert t.headers["content-type"].startswith("text/plain") and t.headers["content-security-policy"].startswith("sandbox")
    page = c.get(f"/snapshots/{sid}").text
    assert re.search(r'<iframe class="preview" sandbox="" ', page) and "allow-" not in page


@pytest.mark.parametrize("path", ["/static/../web.py", "/static/%2e%2e/web.py", "/static/style.css/../../web.py",
                                  "/static/..%2fweb.py", "/templates/base.html", "/static/base.html"])
def test_no_request_path_reaches_the_filesystem(hostile, path):
    r = client_for(hostile).get(path)
    assert r.status_code == 404 and "create_app" not in r.text and "{% block" not in r.text


def test_atom_feed_survives_control_characters_and_markup(hostile):
    import xml.etree.ElementTree as ET

    with hostile.store.session() as s:
        c = s.get(ChangeRecord, hostile.change_id)
        c.title = "bell\x07 and \x00 nul " + XSS
    r = client_for(hostile).get("/feed.atom")
    root = ET.fromstring(r.content)  # parses: the control characters were dropped
    title = root.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}title").text
    assert "bell and  nul" in title and XSS in title
    assert b"<script" not in r.content  # markup travels as escaped text
    links = [e.get("href") for e in root.iter("{http://www.w3.org/2005/Atom}link")]
    assert links and all(h.startswith("/") and not h.startswith("//") for h in links)  # the javascript: URL is not linked


@pytest.mark.parametrize("public_url", ["", "https://govwatch.example.org/gw"], ids=["relative", "public_url"])
def test_atom_links_never_come_from_the_host_header(hostile, public_url):
    """Issue 16, point 12: behind a token (any Host is served), a request with a hostile Host must
    not make the feed link to that host: links come from public_url, or are relative."""
    import xml.etree.ElementTree as ET

    cfg = SimpleNamespace(**{**vars(hostile.cfg), "public_url": public_url})
    c = TestClient(create_app(cfg, hostile.store, settings=WebSettings(token=TOKEN)), base_url="http://127.0.0.1")
    hostile_host = {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "Authorization": f"Bearer {TOKEN}"}
    for path in ("/feed.atom", "/feed.atom?topic=opr-outcomes"):
        r = c.get(path, headers=hostile_host)
        assert r.status_code == 200 and b"evil.example" not in r.content
        root = ET.fromstring(r.content)
        ns = "{http://www.w3.org/2005/Atom}"
        ours = [e.get("href") for e in root.iter(f"{ns}link") if e.get("rel") != "related"]
        assert len(ours) == 3  # the feed's self and alternate links, the entry's page
        assert all(h.startswith(public_url + "/") and not h.startswith("//") for h in ours), ours
        entry = root.find(f"{ns}entry/{ns}link[@rel='alternate']").get("href")
        assert entry == f"{public_url}/changes/{hostile.change_id}"
