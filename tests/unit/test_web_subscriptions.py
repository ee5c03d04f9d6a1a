"""Subscriptions in the web UI (issue 17 point 2): an analyst creates, edits and deletes their own,
validated as the configuration is (each problem next to its field), targets never shown again; a
subscription made there alerts on the next matching change, through the real pipeline."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from monitor.classify import builtin_topics
from monitor.web import User, WebSettings, create_app, hash_password
from state.models import SourceRecord
from state.store import Store
from tests.webclient import csrf, signed_in
from state.subscriptions import SubscriptionRecord, targets_of

USERS = {"ana": User("ana", "analyst", hash_password("analyst-pass-1")),
         "bob": User("bob", "analyst", hash_password("analyst-pass-2")),
         "vic": User("vic", "viewer", hash_password("viewer-pass-1"))}
SECRET_URL = "json://hooks.example.org/hook?token=s3cr3t-t0ken"


@pytest.fixture
def app(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    with store.session() as s:
        s.add(SourceRecord(id="ice-opr", name="ICE OPR", kind="page"))
    cfg = SimpleNamespace(topics=builtin_topics(), sources=[], public_url="", display_timezone="America/New_York",
                          notify=[], subscriptions=[])
    return SimpleNamespace(store=store, app=create_app(cfg, store, settings=WebSettings(users=USERS)))






def test_create_edit_delete_with_problems_next_to_their_fields(app):
    ana = signed_in(app.app, "ana", "analyst-pass-1")
    page = ana.get("/subscriptions").text
    assert "New subscription" in page and 'value="America/New_York"' in page
    bad = ana.post("/subscriptions", data={"csrf_token": csrf(page), "name": "", "query": "-x", "every": "hourly",
                                           "timezone": "Mars/Base", "sources": "nope", "notify": "json://:bad\nteam",
                                           "topic:zzz": "1"})
    assert bad.status_code == 400
    for field in ("name", "query", "every", "timezone", "sources", "topics", "notify"):
        assert f'id="problem-{field}"' in bad.text, field
    # an analyst's target may not point the server at its own or a private network (cloud metadata, the database)
    for url in ("json://169.254.169.254/latest/meta-data", "form://127.0.0.1:5432/x", "mailto://localhost/?to=a@b.org"):
        r = ana.post("/subscriptions", data={"csrf_token": csrf(page), "name": "x", "query": "x", "every": "instant", "notify": url})
        assert r.status_code == 400 and 'id="problem-notify"' in r.text and "private or loopback" in r.text, url
    # a URL may hold commas (several recipients); a bad line is never echoed in part
    r = ana.post("/subscriptions", data={"csrf_token": csrf(page), "name": "x", "query": "x", "every": "instant",
                                         "notify": "mailto://alerts:Pa,ssw0rdXYZ@smtp.example.com\nnotaurl:pw@x"})
    assert r.status_code == 400 and "ssw0rd" not in r.text and "notaurl" not in r.text
    good = {"csrf_token": csrf(page), "name": "DT definitions", "query": '"domestic terrorism" OR extremism', "every": "weekly@friday 16:00",
            "timezone": "America/New_York", "topic:extremism-definitions": "1", "sources": "ice-opr", "min_severity": "medium",
            "notify": SECRET_URL}
    r = ana.post("/subscriptions", data=good, follow_redirects=False)
    assert r.status_code == 303
    page = ana.get("/subscriptions").text
    assert "DT definitions" in page and "weekly@friday 16:00" in page and "json://" in page
    assert "s3cr3t" not in page  # the target's URL is never shown again
    with app.store.session() as s:
        rec = s.query(SubscriptionRecord).one()
        assert (rec.owner, rec.origin, rec.topics, rec.sources, rec.min_severity) == ("ana", "web", "extremism-definitions", "ice-opr", "medium")
        assert targets_of(rec) == [SECRET_URL] and rec.next_digest_at is not None
        sid = rec.id
    # a second one with the same name is refused, next to the name
    dup = ana.post("/subscriptions", data=good)
    assert dup.status_code == 400 and "exists already" in dup.text
    # edit: an empty target field keeps the saved targets
    page = ana.get(f"/subscriptions?edit={sid}").text
    assert "1 saved target(s) kept" in page and "s3cr3t" not in page
    r = ana.post(f"/subscriptions/{sid}", data={**good, "csrf_token": csrf(page), "every": "instant", "notify": ""}, follow_redirects=False)
    assert r.status_code == 303
    with app.store.session() as s:
        rec = s.get(SubscriptionRecord, sid)
        assert rec.every == "instant" and targets_of(rec) == [SECRET_URL]
    # another analyst sees neither it nor a way to change it; a viewer has no subscriptions page
    bob = signed_in(app.app, "bob", "analyst-pass-2")
    assert "DT definitions" not in bob.get("/subscriptions").text
    page = bob.get("/subscriptions").text
    assert bob.post(f"/subscriptions/{sid}/delete", data={"csrf_token": csrf(page)}).status_code == 403
    vic = signed_in(app.app, "vic", "viewer-pass-1")
    assert vic.get("/subscriptions").status_code == 403
    # delete
    page = ana.get("/subscriptions").text
    assert ana.post(f"/subscriptions/{sid}/delete", data={"csrf_token": csrf(page)}, follow_redirects=False).status_code == 303
    assert "DT definitions" not in ana.get("/subscriptions").text
