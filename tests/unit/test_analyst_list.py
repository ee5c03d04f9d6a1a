"""A list an analyst can scan (issue 17 point 6): severity shown, a page's change titled by its first
added sentence with the page title beside it, times in display_timezone with UTC in the tooltip,
and changes assigned to analysts (an "assigned to me" view, every assignment in the audit trail)."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from monitor.classify import builtin_topics
from monitor.web import User, WebSettings, create_app, hash_password
from state.models import ChangeRecord, SourceRecord, TopicMatchRecord
from state.store import Store
from tests.webclient import csrf, signed_in

USERS = {"ana": User("ana", "analyst", hash_password("analyst-pass-1")),
         "bob": User("bob", "analyst", hash_password("analyst-pass-2")),
         "vic": User("vic", "viewer", hash_password("viewer-pass-1"))}
NOON_UTC = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)  # 07:00 EST


@pytest.fixture
def world(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    with store.session() as s:
        s.add(SourceRecord(id="ice-opr", name="ICE OPR", kind="page"))
        s.flush()
        page = ChangeRecord(source_id="ice-opr", kind="changed", detected_at=NOON_UTC, title="Office of Professional Responsibility | ICE",
                            added_text="In FY2025 OPR substantiated 14 allegations of misconduct. Two employees were removed.\n\nOther text.",
                            matched=True, topics="opr-outcomes", severity="high")
        item = ChangeRecord(source_id="ice-opr", kind="new_item", item_key="k1", detected_at=NOON_UTC, title="OIG-26-01 report",
                            added_text="A report.")
        s.add_all([page, item])
        s.flush()
        s.add(TopicMatchRecord(change_id=page.id, topic="opr-outcomes", score=6, severity="high"))
        ids = SimpleNamespace(page=page.id, item=item.id)
    cfg = SimpleNamespace(topics=builtin_topics(), sources=[], public_url="", display_timezone="America/New_York")
    app = create_app(cfg, store, settings=WebSettings(users=USERS))
    return SimpleNamespace(store=store, app=app, ids=ids)






def titles(page: str) -> list[str]:
    return re.findall(r'<a class="title" href="/changes/\d+">([^<]*)</a>', page)


def test_severity_headline_and_local_time(world):
    page = signed_in(world.app, "vic", "viewer-pass-1").get("/").text
    assert '<span class="badge severity sev-high"' in page
    # the page's change by its first added sentence, the page title beside it; an item by its title
    assert titles(page) == ["OIG-26-01 report", "In FY2025 OPR substantiated 14 allegations of misconduct."]  # newest (id) first
    assert '<span class="page-title">Office of Professional Responsibility | ICE</span>' in page
    # 12:00 UTC shown as 07:00 EST, UTC in the tooltip, the instant in datetime
    assert '<time datetime="2026-11-02T12:00:00Z" title="2026-11-02 12:00:00 UTC">2026-11-02 07:00:00 EST</time>' in page
    detail = signed_in(world.app, "vic", "viewer-pass-1").get(f"/changes/{world.ids.page}").text
    assert "<h1>In FY2025 OPR substantiated 14 allegations of misconduct.</h1>" in detail
    assert "07:00:00 EST" in detail


def test_assignment_with_its_view_and_audit_trail(world):
    ana = signed_in(world.app, "ana", "analyst-pass-1")
    page = ana.get(f"/changes/{world.ids.page}").text
    assert '<option value="bob">bob</option>' in page and '<option value="vic">' not in page  # analysts and admins only
    r = ana.post(f"/changes/{world.ids.page}/assign", data={"assignee": "bob", "csrf_token": csrf(page)}, follow_redirects=False)
    assert r.status_code == 303
    bob = signed_in(world.app, "bob", "analyst-pass-2")
    mine = bob.get("/").text
    assert 'href="/?assignee=bob">Assigned to me</a>' in mine
    assert '→ bob</span>' in mine
    assert [t for t in titles(bob.get("/?assignee=bob").text)] == ["In FY2025 OPR substantiated 14 allegations of misconduct."]
    assert titles(bob.get("/?assignee=ana").text) == []
    # "assign to me", then nobody
    page = ana.get(f"/changes/{world.ids.page}").text
    ana.post(f"/changes/{world.ids.page}/assign", data={"me": "1", "csrf_token": csrf(page)})
    assert titles(ana.get("/?assignee=ana").text) == ["In FY2025 OPR substantiated 14 allegations of misconduct."]
    page = ana.get(f"/changes/{world.ids.page}").text
    ana.post(f"/changes/{world.ids.page}/assign", data={"assignee": "", "csrf_token": csrf(page)})
    trail = re.findall(r'<strong class="actor">(\w+)</strong> marked it <span class="badge state st-(\w+)">[^<]*</span>'
                       r'(?:<blockquote class="note">([^<]*)</blockquote>)?', ana.get(f"/changes/{world.ids.page}").text)
    assert trail == [("ana", "assigned", "to bob"), ("ana", "assigned", "to ana"), ("ana", "unassigned", "was assigned to ana")]
    assert titles(ana.get("/?assignee=ana").text) == []
    # only analysts assign, and only to an analyst or admin of the users file
    r = ana.post(f"/changes/{world.ids.page}/assign", data={"assignee": "mallory", "csrf_token": csrf(page)})
    assert r.status_code == 400 and "not an analyst or admin" in r.text
    vic = signed_in(world.app, "vic", "viewer-pass-1")
    page = vic.get(f"/changes/{world.ids.page}").text
    assert vic.post(f"/changes/{world.ids.page}/assign", data={"me": "1", "csrf_token": csrf(page)}).status_code == 403
