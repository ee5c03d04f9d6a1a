"""Web sessions in the database (issue 17 point 5): two `serve` processes of one database share
them (each app below has its own Store, engine and memory, as a process would), a restart keeps
users signed in, signing out and expiry hold everywhere, and the table never holds a cookie."""
from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from monitor.classify import builtin_topics
from monitor.web import User, WebSettings, create_app, hash_password
from state.models import utcnow
from state.store import Store
from state.websessions import WebSessionRecord

USERS = {"ana": User("ana", "analyst", hash_password("analyst-pass-1")),
         "vic": User("vic", "viewer", hash_password("viewer-pass-1"))}
COOKIE = "govwatch_session"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'gw.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def process(url: str) -> TestClient:
    """A `serve` process: its own store and app, sharing nothing with the others but the database."""
    cfg = SimpleNamespace(topics=builtin_topics(), sources=[], public_url="")
    return TestClient(create_app(cfg, Store(url), settings=WebSettings(users=USERS)), base_url="http://127.0.0.1")


def cookie_of(client: TestClient) -> str:
    return [c.value for c in client.cookies.jar if c.name == COOKIE][-1]


def use(client: TestClient, cookie: str) -> None:
    client.cookies.clear()
    client.cookies.set(COOKIE, cookie)


def csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client: TestClient, name: str, password: str) -> str:
    token = csrf(client.get("/login").text)
    r = client.post("/login", data={"name": name, "password": password, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return cookie_of(client)


def signed_in_as(url: str, cookie: str) -> str | None:
    """Who the cookie signs in, asked of a brand-new process."""
    c = process(url)
    use(c, cookie)
    r = c.get("/sources", headers={"accept": "text/html"}, follow_redirects=False)
    if r.status_code != 200:
        return None
    m = re.search(r'title="role: \w+">(\w+) · ', r.text)
    return m.group(1) if m else None


def test_sessions_are_shared_by_processes_and_survive_a_restart(db_url):
    a, b = process(db_url), process(db_url)
    # an anonymous form from process A is accepted by process B (one CSRF key for the database)
    token = csrf(a.get("/login").text)
    use(b, cookie_of(a))
    r = b.post("/login", data={"name": "ana", "password": "analyst-pass-1", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    cookie = cookie_of(b)
    use(a, cookie)
    assert "ana · analyst" in a.get("/sources").text  # signed in on B, known to A
    del a, b  # "restart": nothing of those processes is left
    assert signed_in_as(db_url, cookie) == "ana"
    # the table holds the SHA-256 of the id, never the cookie
    store = Store(db_url)
    with store.session() as s:
        rows = list(s.scalars(select(WebSessionRecord)))
    assert len(rows) == 1 and rows[0].user == "ana" and cookie not in {rows[0].id_sha256, rows[0].csrf}


def test_signing_out_and_expiry_hold_in_every_process(db_url):
    a, b = process(db_url), process(db_url)
    cookie = sign_in(a, "ana", "analyst-pass-1")
    use(b, cookie)
    page = b.get("/sources").text
    assert b.post("/logout", data={"csrf_token": csrf(page)}, follow_redirects=False).status_code == 303
    assert signed_in_as(db_url, cookie) is None  # signed out on B: gone on A and on a new process too
    # expiry, decided by the database row, not by a process's memory
    cookie = sign_in(a, "vic", "viewer-pass-1")
    assert signed_in_as(db_url, cookie) == "vic"
    store = Store(db_url)
    with store.session() as s:
        s.execute(update(WebSessionRecord).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert signed_in_as(db_url, cookie) is None
    with store.session() as s:
        assert list(s.scalars(select(WebSessionRecord))) == []  # the expired row was dropped on sight


def test_sign_out_everywhere_ends_every_session_of_that_user_only(db_url):
    laptop, phone, other = process(db_url), process(db_url), process(db_url)
    c1, c2 = sign_in(laptop, "ana", "analyst-pass-1"), sign_in(phone, "ana", "analyst-pass-1")
    c3 = sign_in(other, "vic", "viewer-pass-1")
    page = laptop.get("/sources").text
    assert "everywhere" in page
    r = laptop.post("/logout", data={"csrf_token": csrf(page), "everywhere": "1"}, follow_redirects=False)
    assert r.status_code == 303
    assert signed_in_as(db_url, c1) is None and signed_in_as(db_url, c2) is None
    assert signed_in_as(db_url, c3) == "vic"


def test_a_session_has_the_role_the_users_file_gives_now(db_url):
    """A session keeps its user, not its role: demoted, the user has the new role at once (also
    after a restart); removed from the users file, the session signs nobody in. A new shared
    token ends the sessions the old one opened."""
    a = process(db_url)
    cookie = sign_in(a, "ana", "analyst-pass-1")
    cfg = SimpleNamespace(topics=builtin_topics(), sources=[], public_url="")

    def who(users=None, token=None) -> str:
        c = TestClient(create_app(cfg, Store(db_url), settings=WebSettings(users=users or {}, token=token)), base_url="http://127.0.0.1")
        use(c, cookie)
        r = c.get("/sources", headers={"accept": "text/html"}, follow_redirects=False)
        m = re.search(r'title="role: (\w+)">(\w+) · ', r.text) if r.status_code == 200 else None
        return f"{m.group(2)}:{m.group(1)}" if m else "nobody"

    assert who(USERS) == "ana:analyst"
    assert who({**USERS, "ana": User("ana", "viewer", USERS["ana"].password_hash)}) == "ana:viewer"
    assert who({"vic": USERS["vic"]}) == "nobody"
    # the shared token: a session it opened ends when the token changes
    c = TestClient(create_app(cfg, Store(db_url), settings=WebSettings(token="old-token-123456")), base_url="http://127.0.0.1")
    token = csrf(c.get("/login").text)
    assert c.post("/login", data={"password": "old-token-123456", "csrf_token": token}, follow_redirects=False).status_code == 303
    cookie = cookie_of(c)
    assert who(token="old-token-123456") == "token:admin"
    assert who(token="new-token-654321") == "nobody"
