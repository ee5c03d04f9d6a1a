"""Every listed document archived from the first run (issue 12, point 5): the real CLI against a local
OIG-style listing. Documents already listed at the baseline are fetched too, a few per run (never
alerted), stored as snapshots and in the source's WARC; a later replacement of a listed document at
the same URL is a change of that document, matched and alerted once."""
from __future__ import annotations

import json

from warcio.archiveiterator import ArchiveIterator

from tests.e2e.test_monitor import db_rows
from tests.e2e.test_sources import LISTING_OPTIONS, OPR_REPORT, oig_listing
from tests.pdfs import make_pdf

ROWS = [{"num": f"OIG-26-0{i}", "href": f"/reports/oig-26-0{i}.pdf", "title": f"Report {i} on ICE detention standards",
         "summary": "Detention.", "date": f"2026-10-0{i}"} for i in (1, 2, 3)]
PLAIN = [["Review of detention standards at ICE facilities.", "We made four recommendations to improve oversight."]]


def test_listed_documents_are_archived_politely_and_a_replacement_alerts_once(site, webhook, workdir):
    site.set("/reports", oig_listing(ROWS))
    for r in ROWS:
        site.set(r["href"], make_pdf(PLAIN, title=r["num"]), content_type="application/pdf")
    workdir.write(sources=[{"id": "oig-ice", "name": "DHS OIG reports (ICE)", "url": site.url("/reports"), "kind": "listing",
                            "max_follow": 2, **LISTING_OPTIONS}],
                  notify=[{"url": webhook.url(), "name": "team"}])
    out = workdir.run("check").stdout
    assert "1 baseline" in out, out
    # the baseline archives two documents (the per-run budget, max_follow 2), the next run the third
    archived = db_rows(workdir, "select key, doc_status from items where doc_status = 'archived' order by key")
    assert len(archived) == 2, archived
    workdir.run("check", "--force")
    docs = db_rows(workdir, "select url from snapshots where item_key != '' order by url")
    assert [d[0] for d in docs] == [site.url(r["href"]) for r in ROWS], docs
    assert db_rows(workdir, "select count(*) from changes") == [(0,)] and webhook.received == []
    # three archived, and the second run's spare place checked one again, with its validators (a 304)
    hits = {r["href"]: site.hits(r["href"]) for r in ROWS}
    assert sorted(len(h) for h in hits.values()) == [1, 1, 2], hits
    again = [h[1] for h in hits.values() if len(h) == 2][0]
    assert again.get("if-none-match"), again
    # the 304 is recorded (queued with the quiet outcomes, written by the end of the run)
    rechecked = site.url([href for href, h in hits.items() if len(h) == 2][0])
    assert db_rows(workdir, f"select outcome from fetch_attempts where url = '{rechecked}' order by id") == \
        [("baseline",), ("not_modified",)]
    (first, last), = db_rows(workdir, f"select min(started_at), max(started_at) from fetch_attempts where url = '{rechecked}'")
    assert db_rows(workdir, f"select doc_checked_at > '{first}' from items where doc_url = '{rechecked}'") == [(1,)]
    # the source's WARC holds the documents' own records beside the listing's
    workdir.run("export-warc", "--source", "oig-ice", "-o", "oig.warc.gz")
    with open(workdir.path / "oig.warc.gz", "rb") as f:
        uris = [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(f) if r.rec_type == "response"]
    assert {site.url(r["href"]) for r in ROWS} <= set(uris), uris

    # the second report is replaced at the same URL by one that discloses OPR outcomes
    site.set(ROWS[1]["href"], make_pdf(OPR_REPORT, title=ROWS[1]["num"]), content_type="application/pdf")
    for _ in range(3):  # checked again in rotation: two documents a run, those checked longest ago first
        workdir.run("check", "--force")
        if webhook.received:
            break
    assert len(webhook.received) == 1, webhook.received
    msg = webhook.received[0]
    assert "opr-outcomes" in msg["title"] and "removed from federal service" in msg["message"], msg
    changes = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert [(c["kind"], c["url"], c["topics"]) for c in changes] == [("changed", site.url(ROWS[1]["href"]), ["opr-outcomes"])]
    assert "replaced at the same URL" in changes[0]["note"]
    # unchanged documents answer 304 (their validators were kept) and nothing is sent again
    for _ in range(2):
        workdir.run("check", "--force")
    assert len(webhook.received) == 1
    assert db_rows(workdir, "select count(*) from changes") == [(1,)]
