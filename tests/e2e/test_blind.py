"""Blind is loud, and the document is still caught (issue 12): a listing whose configured selector
matches nothing is `empty` from its first check, a new document link in its region is still
recorded (marked found without the configured selectors), and a Congress.gov entry's title is
the one its details route gives. The listing is the REAL DHS OIG row (tests/data/catalogue/real)
in a hand-made page, read with the selector the catalogue had before the real markup was known."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import yaml

from tests.e2e.test_monitor import db_rows
from tests.pdfs import make_pdf

REAL = Path(__file__).resolve().parents[1] / "data" / "catalogue" / "real"
ROW = (REAL / "snippets" / "dhs-oig-ice-reports--row.html").read_text(encoding="utf-8")
# the catalogue's selectors before the real markup was known: the title link was thought to go to /reports/
OLD_OIG = {"select": "#content-area", "item_row": "tbody tr", "items": "td a[href*='/reports/']", "item_date": "td:nth-child(3)"}
NEW_ROW = ('<tr><td class="views-field views-field-field-report-number">OIG-26-31</td>'
           '<td class="views-field views-field-title"><a href="/sites/default/files/assets/2026-10/OIG-26-31-Oct26.pdf">'
           'ICE Did Not Consistently Discipline Employees Tied to Extremist Groups</a></td>'
           '<td class="views-field views-field-field-issue-date"><time datetime="2026-10-20T12:00:00Z" class="datetime">10/20/2026</time></td>'
           '<td>2027</td></tr>')


def oig_page(rows: str) -> str:
    return ("<html><head><title>Audits, Inspections, and Evaluations | Office of Inspector General</title></head><body>"
            "<header><nav><a href='/reports/audits-inspections-and-evaluations'>Reports</a></nav></header>"
            f"<main><div id='content-area'>{rows}</div></main></body></html>")


def test_a_blind_listing_is_empty_from_its_first_check_and_still_records_a_new_pdf(site, webhook, workdir):
    site.set("/oig", oig_page(ROW))
    site.set("/sites/default/files/assets/2026-10/OIG-26-31-Oct26.pdf", make_pdf([[
        "OIG-26-31. ICE Office of Professional Responsibility substantiated allegations that two officers were members "
        "of an extremist militia group; both were removed from federal service."]]), content_type="application/pdf")
    workdir.write(sources=[{"id": "oig", "name": "DHS OIG reports on ICE", "url": site.url("/oig"), "kind": "listing", **OLD_OIG}],
                  notify=[{"url": webhook.url("/team"), "name": "team"}], health_notify=[{"url": webhook.url("/ops"), "name": "ops"}])
    workdir.run("check")
    (src,) = json.loads(workdir.run("sources", "--format", "json").stdout)
    assert src["health"] == "empty", src
    assert "matched nothing in '#content-area'; 1 document link(s) found without the configured selectors" in src["last_error"]
    assert [(m["_path"], m["title"]) for m in webhook.received] == [("/ops", "govwatch health: DHS OIG reports on ICE (oig) is empty")]
    # the baseline still knows the real row's PDF (found by the fallback): it is not "new" later
    assert db_rows(workdir, "select key, extra_json from items") == [
        ("http://127.0.0.1:%d/sites/default/files/assets/2026-07/OIG-26-18-Jul26.pdf" % site.port, '{"fallback": true}')]

    # the same bytes again: still empty, no second health alert
    workdir.run("check", "--force")
    assert json.loads(workdir.run("sources", "--format", "json").stdout)[0]["health"] == "empty"
    assert len(webhook.received) == 1

    # a new report: caught without the selector, its PDF fetched, classified, alerted
    site.set("/oig", oig_page(ROW.replace("<tbody>", "<tbody>" + NEW_ROW)))
    out = workdir.run("check", "--force").stdout
    assert "1 new document(s) fetched" in out, out
    changes = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert [(c["kind"], c["title"], c["url"], c["topics"]) for c in changes] == [
        ("new_item", "ICE Did Not Consistently Discipline Employees Tied to Extremist Groups",
         site.url("/sites/default/files/assets/2026-10/OIG-26-31-Oct26.pdf"), ["opr-outcomes"])]
    shown = json.loads(workdir.run("show", str(changes[0]["id"]), "--format", "json").stdout)
    assert "found without the configured selectors" in shown["note"]
    assert shown["published"] == "2026-10-20T12:00:00Z"
    team = [m for m in webhook.received if m["_path"] == "/team"]
    assert len(team) == 1 and "ICE Did Not Consistently Discipline" in team[0]["title"]
    assert json.loads(workdir.run("sources", "--format", "json").stdout)[0]["health"] == "empty"

    # the operator fixes the selector: healthy again, a recovery message, nothing re-alerted
    workdir.write(sources=[{"id": "oig", "name": "DHS OIG reports on ICE", "url": site.url("/oig"), "kind": "listing",
                            **{**OLD_OIG, "items": "td.views-field-title a[href]", "item_date": "time[datetime]"}}],
                  notify=[{"url": webhook.url("/team"), "name": "team"}], health_notify=[{"url": webhook.url("/ops"), "name": "ops"}])
    workdir.run("check", "--force")  # the same bytes as before: read again, since the source was blind
    (src,) = json.loads(workdir.run("sources", "--format", "json").stdout)
    assert src["health"] == "ok" and not src["last_error"], src
    assert webhook.received[-1]["title"] == "govwatch health: DHS OIG reports on ICE (oig) recovered"
    assert len([m for m in webhook.received if m["_path"] == "/team"]) == 1


def test_congress_new_entry_gets_its_title_and_committee_from_its_details(tmp_path):
    """The real hearing list, then a new entry: the Monitor asks for its details (the key in the
    header, to api.congress.gov only) and records the hearing under the details' title and
    committee. Responses are handed to Monitor.process as the fetcher would (no network)."""
    from monitor.config import load_config
    from monitor.pipeline import Monitor
    from state.store import Store

    key = "k3y-Th4t-Must-N0t-Leak-0123456789"
    cfg_path = tmp_path / "gw.yaml"
    cfg_path.write_text(yaml.safe_dump({"database": f"sqlite:///{tmp_path / 'gw.db'}", "include_defaults": False,
                                        "sources": [{"id": "hearings", "kind": "congress-gov", "url": "https://api.congress.gov/v3",
                                                     "endpoint": "hearing", "congress": 119, "max_pages": 1}]}))
    cfg = load_config(cfg_path, env={"GOVWATCH_CONGRESS_API_KEY": key})
    mon = Monitor(cfg, Store(cfg.database), worker="w1")
    real_list = json.loads((REAL / "congress-hearings.json").read_text())

    def answer(req, body: dict | bytes) -> "Fetched":
        from spiders.kinds import Fetched
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Fetched(request=req, url=req.url, status=200, headers={"content-type": "application/json"}, body=data,
                       started_at=datetime.now(timezone.utc), duration_ms=5)

    def cycle():  # what a crawl does when it feeds the due sources
        mon.sync_sources()
        return mon.requests_for(mon.due_sources(force=True))

    (req,) = cycle()
    assert req.headers["X-Api-Key"] == key and key not in req.url
    outcome, follow = mon.process(answer(req, real_list))
    assert outcome.outcome == "baseline" and [f for f in follow if f.item_key] == []  # the baseline follows nothing
    mon.release_leases()

    (req,) = cycle()
    newer = dict(real_list, hearings=[{"chamber": "House", "congress": 119, "jacketNumber": 64999, "updateDate": "2026-09-20T10:00:00Z",
                                       "url": "https://api.congress.gov/v3/hearing/119/house/64999"}] + real_list["hearings"])
    outcome, follow = mon.process(answer(req, newer))
    (details,) = [f for f in follow if f.item_key]
    assert details.url == "https://api.congress.gov/v3/hearing/119/house/64999?format=json"
    assert details.headers == {"X-Api-Key": key, "Accept": "application/json"}
    record = json.loads((Path(__file__).resolve().parents[1] / "data" / "congress" / "hearing-detail-64431.json").read_text())
    record["hearing"].update(jacketNumber=64999, title="Threats to ICE Officers and the Definition of Domestic Terrorism")
    outcome, _ = mon.process(answer(details, record))
    assert outcome.outcome == "changed"
    rows = mon.store.engine.connect().exec_driver_sql(
        "select kind, title, url, added_text, meta_json, note, item_published from changes").fetchall()
    ((kind, title, url, added, meta, note, published),) = rows
    assert published == "2026-03-04"  # the hearing's date from its details, not the list's updateDate
    assert (kind, title, url) == ("new_item", "Threats to ICE Officers and the Definition of Domestic Terrorism",
                                  "https://www.govinfo.gov/app/details/CHRG-119hhrg64999")
    assert "Committee: House Oversight and Government Reform (hsgo00)" in added
    assert json.loads(meta)["committees"] == ["hsgo00"] and note == ""
    assert key not in json.dumps([r for r in rows], default=str)
    item_title = mon.store.engine.connect().exec_driver_sql("select title from items where key like '%64999'").scalar()
    assert item_title == "Threats to ICE Officers and the Definition of Domestic Terrorism"


def test_a_feed_api_or_page_that_reads_nothing_is_empty_from_its_first_check(site, webhook, workdir):
    """Blind is loud for every kind: a feed with no entries, an API answer with no records and a
    page whose main text is empty are `empty` after their very first check, with one health alert."""
    site.set("/feed.xml", '<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>'
             '<link>https://example.gov/</link><description>d</description></channel></rss>', content_type="application/rss+xml")
    site.set("/api/v1/documents.json?*", json.dumps({"count": 0, "results": []}), content_type="application/json")
    site.set("/blank", "<html><head><title>T</title></head><body><main><div id='app'></div></main></body></html>")
    site.set("/fine", "<html><body><main><p>" + "A sentence of real text about the oversight office. " * 10 + "</p></main></body></html>")
    workdir.write(sources=[{"id": "feed", "url": site.url("/feed.xml"), "kind": "feed"},
                           {"id": "api", "url": site.url("/api/v1/documents.json"), "kind": "federal-register"},
                           {"id": "blank", "url": site.url("/blank"), "kind": "page"},
                           {"id": "fine", "url": site.url("/fine"), "kind": "page"}],
                  health_notify=[{"url": webhook.url("/ops"), "name": "ops"}])
    workdir.run("check")
    health = {s["id"]: (s["health"], s["last_error"]) for s in json.loads(workdir.run("sources", "--format", "json").stdout)}
    assert health["fine"] == ("ok", ""), health
    for sid, words in (("feed", "feed has no entries"), ("api", "API answered with no records"), ("blank", "no text: the page's main text is empty")):
        assert health[sid][0] == "empty" and words in health[sid][1], (sid, health[sid])
    # the problems of one pass go to the health channel as one message naming each source
    assert [m["title"] for m in webhook.received] == ["govwatch health: 3 sources empty"], webhook.received
    assert all(f"`{sid}`" in webhook.received[0]["message"] for sid in ("feed", "api", "blank")), webhook.received[0]["message"]
