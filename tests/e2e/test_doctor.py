"""`govwatch doctor` on a local copy of real captures: the right counts where the catalogue reads
them right, exit 1 naming the problem where a source is blind, walled or failing; nothing stored."""
from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_blind import OLD_OIG, ROW, oig_page
from tests.e2e.test_monitor import RELEVANT, page

REAL = Path(__file__).resolve().parents[1] / "data" / "catalogue" / "real" / "snippets"
OIG_NOW = {"select": "#content-area", "item_row": "tbody tr", "items": "td.views-field-title a[href]", "item_date": "time[datetime]"}


def test_doctor_reports_what_each_source_reads_and_fails_on_the_blind(site, workdir):
    ice = (REAL / "ice-newsroom--listing.html").read_text(encoding="utf-8")  # a real fragment, served in a page of ours
    site.set("/oig", oig_page(ROW))
    site.set("/ice", f"<html><head><title>Newsroom | ICE</title></head><body><main>{ice}</main></body></html>")
    site.set("/opr", page(extra=RELEVANT))
    site.set("/wall", "<html><body><noscript>Sorry, you need to enable JavaScript to visit this website.</noscript></body></html>")
    site.set("/labels", "<html><body><main><table>" + "".join(
        f"<tr><td>Report {i}</td><td><a href='/files/r{i}.pdf'>View Report</a></td></tr>" for i in range(4)) + "</table></main></body></html>")
    ok_sources = [
        {"id": "oig", "url": site.url("/oig"), "kind": "listing", **OIG_NOW},
        {"id": "ice", "url": site.url("/ice"), "kind": "listing", "item_row": "div.views-row", "items": "div.news-title a[href]",
         "item_date": "div.news-date"},
        {"id": "opr", "url": site.url("/opr"), "kind": "page"},
    ]
    workdir.write(sources=ok_sources)
    good = workdir.run("doctor", "--format", "json", check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    by_id = {r["source_id"]: r for r in json.loads(good.stdout)}
    assert by_id["oig"]["outcome"] == "ok" and by_id["oig"]["items"] == 1, by_id["oig"]
    assert by_id["oig"]["titles"][0].startswith("ICE")  # the report title a reader sees, not "View Report"
    assert by_id["ice"]["outcome"] == "ok" and by_id["ice"]["items"] >= 2 and len(set(by_id["ice"]["titles"])) == len(by_id["ice"]["titles"])
    assert by_id["opr"]["outcome"] == "ok" and by_id["opr"]["text_chars"] > 200

    workdir.write(sources=ok_sources + [
        {"id": "oig-old", "url": site.url("/oig"), "kind": "listing", **OLD_OIG},
        {"id": "walled", "url": site.url("/wall"), "kind": "page"},
        {"id": "labels", "url": site.url("/labels"), "kind": "listing", "items": "a[href]"},
        {"id": "gone", "url": site.url("/missing"), "kind": "page"},
    ])
    bad = workdir.run("doctor", check=False)
    out = bad.stdout
    assert bad.returncode == 1, out + bad.stderr
    assert "oig-old: BLIND" in out and "the configured selectors are blind" in out and "fallback used: 1 of 1 item(s)" in out, out
    assert "walled: BLOCKED" in out and "JavaScript challenge page" in out, out
    assert "labels: BLIND" in out and "all 4 items share one title ('View Report')" in out, out
    assert "gone: ERROR" in out and "HTTP 404" in out, out
    assert "oig: ok (HTTP 200; 1 item(s))" in out, out
    assert "7 source(s): 3 read right, 4 blind, blocked or failing" in out, out
    one = workdir.run("doctor", "--source", "opr", check=False)
    assert one.returncode == 0 and one.stdout.startswith("opr: ok"), one.stdout
    # nothing was recorded: no snapshot, no change, no source row written by doctor
    db = workdir.path / "state" / "govwatch.db"
    if db.exists():
        import sqlite3
        with sqlite3.connect(db) as c:
            tables = {r[0] for r in c.execute("select name from sqlite_master where type='table'")}
            if "snapshots" in tables:
                assert c.execute("select count(*) from snapshots").fetchone()[0] == 0
