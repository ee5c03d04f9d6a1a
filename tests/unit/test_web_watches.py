"""Watches in the browser (issue 17 point 4): an admin adds a source with the YAML's validation
(every problem next to its field), pauses and resumes it, asks for a check now, removes it; all of
it audited; only admins may; the watch is listed with the rest and exported as YAML."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from monitor import cli
from monitor.config import load_config
from monitor.web import User, WebSettings, create_app, hash_password
from state.models import SourceRecord
from state.store import Store
from tests.webclient import csrf, signed_in
from state.watches import AdminActionRecord

USERS = {"ada": User("ada", "admin", hash_password("admin-pass-1")), "ana": User("ana", "analyst", hash_password("analyst-pass-1"))}


@pytest.fixture
def world(tmp_path):
    path = tmp_path / "govwatch.yaml"
    path.write_text(f"database: 'sqlite:///{tmp_path / 'gw.db'}'\ninclude_defaults: false\nsources:\n"
                    "  - {id: ice-opr, url: 'https://www.ice.gov/about-ice/opr', name: ICE OPR}\n")
    cfg = load_config(str(path))
    store = Store(cfg.database)
    return cfg, store, str(path)






def test_admin_adds_pauses_checks_and_removes_a_watch(world, capsys):
    cfg, store, path = world
    app = create_app(cfg, store, settings=WebSettings(users=USERS))
    ada = signed_in(app, "ada", "admin-pass-1")
    page = ada.get("/sources").text
    assert "Add a watch" in page
    bad = ada.post("/sources", data={"csrf_token": csrf(page), "id": "ice-opr", "url": "http://127.0.0.1:8/x", "kind": "listing",
                                     "select": "div[[[", "every": "soon", "ignore": "(unclosed"})
    assert bad.status_code == 400
    for field in ("id", "url", "select", "every", "ignore"):
        assert f'id="problem-{field}"' in bad.text, field
    assert "exists already" in bad.text and "allow_private_networks" in bad.text
    good = {"csrf_token": csrf(page), "id": "gao-reports", "name": "GAO reports", "url": "https://www.gao.gov/reports-testimonies",
            "kind": "listing", "select": "main", "items": ".views-row a", "every": "2h", "render": "auto", "ignore": "Updated .*"}
    r = ada.post("/sources", data=good, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sources/gao-reports"
    page = ada.get("/sources").text
    assert "GAO reports" in page and 'title="added in the web UI">web</span>' in page

    for action in ("pause", "check", "resume", "check"):
        page = ada.get("/sources/gao-reports").text
        assert ada.post(f"/sources/gao-reports/{action}", data={"csrf_token": csrf(page)}, follow_redirects=False).status_code == 303
        if action == "pause":
            # a paused source is not checked: the next sync keeps it disabled
            assert cli.main(["sources", "-c", path, "--format", "json"]) == 0
            listed = {d["id"]: d for d in json.loads(capsys.readouterr().out)}
            assert listed["gao-reports"]["paused"] and listed["gao-reports"]["disabled_reason"] == "paused in the web UI"
            assert listed["gao-reports"]["origin"] == "web" and listed["ice-opr"]["origin"] == "config"
    with store.session() as s:
        rec = s.get(SourceRecord, "gao-reports")
        assert not rec.paused and rec.next_due_at is not None
        trail = [(a.action, a.actor) for a in s.scalars(select(AdminActionRecord).order_by(AdminActionRecord.id))]
    assert trail == [("watch_added", "ada"), ("paused", "ada"), ("check_requested", "ada"), ("resumed", "ada"), ("check_requested", "ada")]
    assert "Admin audit trail" in ada.get("/sources/gao-reports").text

    # exported as the configuration file would hold it
    assert cli.main(["sources", "-c", path, "--format", "yaml"]) == 0
    out = capsys.readouterr().out
    assert "# added in the web UI\n- id: gao-reports\n  url: https://www.gao.gov/reports-testimonies\n  kind: listing" in out
    assert "items: .views-row a" in out and "ignore:\n  - Updated .*" in out and "- id: ice-opr" in out

    # an analyst can do none of it
    ana = signed_in(app, "ana", "analyst-pass-1")
    page = ana.get("/sources").text
    assert "Add a watch" not in page
    assert ana.post("/sources", data={**good, "csrf_token": csrf(page), "id": "x"}).status_code == 403
    assert ana.post("/sources/gao-reports/pause", data={"csrf_token": csrf(page)}).status_code == 403

    page = ada.get("/sources/gao-reports").text
    assert ada.post("/sources/gao-reports/remove", data={"csrf_token": csrf(page)}, follow_redirects=False).status_code == 303
    assert cli.main(["sources", "-c", path, "--format", "json"]) == 0
    assert "gao-reports" not in {d["id"] for d in json.loads(capsys.readouterr().out)}
    page = ada.get("/sources/ice-opr").text  # a configured source cannot be removed here
    assert "Remove this watch" not in page
    assert ada.post("/sources/ice-opr/remove", data={"csrf_token": csrf(page)}).status_code == 404
