"""Issue 14 end to end (real CLI, local site, webhook and SMTP receivers): a new document whose full
text cannot be fetched is alerted in the cycle that sees it and its full text attached later
without a repeat; a page, a listing item and a passage that disappear alert once as REMOVED; a
reworded sentence alerts once, old -> new."""
from __future__ import annotations

import json

from tests.e2e.test_monitor import db_rows, page
from tests.e2e.test_sources import FR_DOC, LISTING_OPTIONS, OPR_REPORT, fr_response, oig_listing
from tests.pdfs import make_pdf

PUBLIC = "https://govwatch.example.org"
API = "/api/v1/documents.json"

DEFINITION = {**FR_DOC, "document_number": "2026-21001",
              "abstract": "This memorandum revises the definition of domestic terrorism used by the Department of Homeland "
                          "Security and directs agencies to designate anti-government violent extremist groups."}
OPR_NOTICE = {**FR_DOC, "document_number": "2026-21002", "title": "Review of Workforce Extremism Investigations",
              "type": "Notice", "abstract": "This memorandum revises the definition of domestic terrorism used by the "
                                            "Department of Homeland Security for workforce vetting."}
OPR_FULL_TEXT = ("Findings. ICE OPR substantiated allegations that three employees were members of a militia extremist "
                 "group; two were removed from federal service and one resigned in lieu of removal.")


def changes(workdir) -> list[dict]:
    return json.loads(workdir.run("changes", "--format", "json").stdout)


def test_fr_document_whose_full_text_404s_is_alerted_at_once_and_its_full_text_attached_without_repeat(site, webhook, workdir):
    baseline = {**FR_DOC, "document_number": "2026-20000", "title": "Privacy Act of 1974; System of Records", "type": "Notice",
                "abstract": "DHS gives notice of a modified system of records."}
    site.set(API + "?*", fr_response(site.base, [baseline]), content_type="application/json")
    workdir.write(sources=[{"id": "fr-dhs", "name": "Federal Register: DHS", "url": site.url(API), "kind": "federal-register"}],
                  notify=[{"url": webhook.url(), "name": "team"}], public_url=PUBLIC)
    assert "1 baseline" in workdir.run("check").stdout

    # two new documents; their full texts answer 404 (no route yet): both alerted in THIS cycle
    site.set(API + "?*", fr_response(site.base, [DEFINITION, OPR_NOTICE, baseline]), content_type="application/json")
    out = workdir.run("check", "--force").stdout
    assert "alerts sent 2" in out, out
    assert len(site.hits("/raw/2026-21001.txt")) == 1
    titles = sorted(m["title"] for m in webhook.received)
    assert all("extremism-definitions" in t and "Federal Register: DHS (fr-dhs)" in t for t in titles), titles
    first = {c["title"]: c for c in changes(workdir)}
    assert len(first) == 2 and all(c["kind"] == "new_item" for c in first.values())
    note = first[DEFINITION["title"]]["note"]
    assert "full text pending" in note and "HTTP 404" in note, note
    assert "full text pending" in webhook.received[0]["message"] and "HTTP 404" in webhook.received[0]["message"]

    # the full texts arrive: attached to the same changes; the definition memo adds nothing (no
    # second alert), the notice's full text adds opr-outcomes: one update alert
    site.set("/raw/2026-21001.txt", "Sec. 2. Definitions. For purposes of this memorandum, the term \"domestic terrorism\" means "
             "activities that involve acts dangerous to human life intended to intimidate or coerce a civilian population.",
             content_type="text/plain")
    site.set("/raw/2026-21002.txt", OPR_FULL_TEXT, content_type="text/plain")
    out = workdir.run("check", "--force").stdout
    assert "alerts sent 1" in out, out
    assert len(webhook.received) == 3
    update = webhook.received[2]
    assert update["title"].startswith("HIGH UPDATE [") and "opr-outcomes" in update["title"], update["title"]
    assert OPR_NOTICE["title"] in update["title"] and "removed from federal service" in update["message"]
    after = {c["title"]: c for c in changes(workdir)}
    assert {c["id"] for c in after.values()} == {c["id"] for c in first.values()}  # the same changes, no new ones
    memo, notice = after[DEFINITION["title"]], after[OPR_NOTICE["title"]]
    assert "acts dangerous to human life" in memo["added_text"] and "full text attached" in memo["note"]
    assert "no second alert" in memo["note"], memo["note"]
    assert sorted(notice["topics"]) == ["extremism-definitions", "opr-outcomes"] and "adds opr-outcomes" in notice["note"]
    shown = json.loads(workdir.run("show", str(notice["id"]), "--format", "json").stdout)
    assert sorted((d["kind"], d["status"]) for d in shown["deliveries"]) == [("change", "sent"), ("update", "sent")]
    assert db_rows(workdir, "select count(*) from snapshots where item_key != ''") == [(2,)]

    # nothing new: nothing more
    workdir.run("check", "--force")
    assert len(webhook.received) == 3


def test_removed_page_that_disclosed_outcomes_alerts_once_as_removed(site, webhook, workdir):
    relevant = ("<p>In fiscal year 2025, ICE OPR substantiated allegations that two employees were members of a white "
                "supremacist extremist group; both employees were removed from federal service.</p>")
    site.set("/", "<html><body><main><p>Welcome to the agency home page.</p></main></body></html>")
    site.set("/about/opr", page(extra=relevant))
    workdir.write(sources=[{"id": "ice-opr", "name": "ICE OPR", "url": site.url("/about/opr")}],
                  notify=[{"url": webhook.url(), "name": "team"}], public_url=PUBLIC)
    workdir.run("check")
    site.redirect("/about/opr", site.url("/"))
    out = workdir.run("check", "--force").stdout
    assert "1 removed" in out and "alerts sent 1" in out, out
    msg = webhook.received[0]
    assert msg["title"].startswith("HIGH REMOVED [opr-outcomes] ICE OPR (ice-opr): page removed"), msg["title"]
    assert "removed from federal service" in msg["message"]
    last = db_rows(workdir, "select min(id) from snapshots")[0][0]
    assert f"{PUBLIC}/snapshots/{last}" in msg["message"]  # the last capture that still said it
    c = changes(workdir)
    assert [(x["kind"], x["topics"]) for x in c] == [("removed", ["opr-outcomes"])]
    workdir.run("check", "--force")  # still gone: recorded and alerted once
    assert len(webhook.received) == 1


def test_oig_report_taken_off_the_listing_alerts_once(site, webhook, workdir):
    rows = [{"num": "OIG-26-01", "href": "/reports/oig-26-01.pdf", "title": "FEMA Grants Management", "summary": "Grants.", "date": "2026-10-01"}]
    site.set("/reports", oig_listing(rows))
    workdir.write(sources=[{"id": "oig-ice", "name": "DHS OIG reports (ICE)", "url": site.url("/reports"), "kind": "listing", **LISTING_OPTIONS}],
                  notify=[{"url": webhook.url(), "name": "team"}], public_url=PUBLIC)
    workdir.run("check")
    report = {"num": "OIG-26-07", "href": "/reports/oig-26-07.pdf", "title": "Review of ICE OPR Investigations of Extremist Ties",
              "summary": "Review of ICE OPR.", "date": "2026-11-20"}
    site.set("/reports", oig_listing([report, *rows]))
    site.set("/reports/oig-26-07.pdf", make_pdf(OPR_REPORT, title="OIG-26-07"), content_type="application/pdf")
    assert "alerts sent 1" in workdir.run("check", "--force").stdout
    # the report is taken off the listing (the older one below it stays: not rolled off the end)
    site.set("/reports", oig_listing(rows))
    out = workdir.run("check", "--force").stdout
    assert "alerts sent 1" in out, out
    assert len(webhook.received) == 2
    msg = webhook.received[1]
    assert msg["title"].startswith("HIGH REMOVED [opr-outcomes] DHS OIG reports (ICE) (oig-ice): taken off the listing: "
                                   "Review of ICE OPR Investigations of Extremist Ties"), msg["title"]
    assert "removed from federal service" in msg["message"]  # the stored document's text is the evidence
    doc_snap = db_rows(workdir, "select id from snapshots where item_key != ''")[0][0]
    assert f"{PUBLIC}/snapshots/{doc_snap}" in msg["message"]
    removed = [c for c in changes(workdir) if c["kind"] == "removed"]
    assert [(c["title"], c["topics"]) for c in removed] == [(report["title"], ["opr-outcomes"])]
    workdir.run("check", "--force")
    assert len(webhook.received) == 2


STATS = ("<p>In fiscal year 2025, ICE OPR opened {n} investigations of employees alleged to have ties to extremist groups; "
         "{k} allegations were substantiated and 4 employees were removed from federal service.</p>")


def test_reworded_statistics_alert_once_old_to_new_then_their_deletion_as_removed(site, webhook, smtp, workdir):
    site.set("/opr", page(extra=STATS.format(n=31, k=9)))
    workdir.write(sources=[{"id": "ice-opr", "name": "ICE OPR", "url": site.url("/opr")}],
                  notify=[{"url": webhook.url(), "name": "team"}, {"url": smtp.url(), "name": "mail"}], public_url=PUBLIC)
    workdir.run("check")
    site.set("/opr", page(extra=STATS.format(n=33, k=11)))
    out = workdir.run("check", "--force").stdout
    assert "alerts sent 2" in out, out
    assert len(webhook.received) == 1 and len(smtp.messages) == 1
    msg = webhook.received[0]["message"]
    assert "REMOVED" not in webhook.received[0]["title"] and webhook.received[0]["title"].startswith("HIGH [opr-outcomes]")
    assert "now: In fiscal year 2025, **ICE OPR** opened 33 investigations" in msg, msg
    assert "was: In fiscal year 2025, ICE OPR opened 31 investigations" in msg
    assert msg.count("opened 33 investigations") == 1 and msg.count("opened 31 investigations") == 1  # one piece of evidence
    assert "removed: " not in msg
    text = next(p.get_content() for p in smtp.messages[0]["msg"].walk() if p.get_content_type() == "text/plain")
    assert site.url("/opr") in text and PUBLIC + "/changes/" in text  # the plain-text part keeps the links
    assert "Source: ICE OPR (ice-opr)" in text  # on one line
    c = changes(workdir)
    assert [(x["kind"], x["topics"]) for x in c] == [("changed", ["opr-outcomes"])]

    # the sentence is deleted from the page, which stays up: a REMOVED alert, once
    site.set("/opr", page())
    out = workdir.run("check", "--force").stdout
    assert "alerts sent 2" in out, out
    hook = webhook.received[1]
    assert hook["title"].startswith("HIGH REMOVED [opr-outcomes] ICE OPR (ice-opr): page changed"), hook["title"]
    assert "opened 33 investigations" in hook["message"]
    workdir.run("check", "--force")
    assert len(webhook.received) == 2 and len(smtp.messages) == 2


def test_alert_on_phrase_alerts_without_a_topic_file(site, webhook, workdir):
    site.set("/news", page())
    workdir.write(sources=[{"id": "ice-news", "name": "ICE news", "url": site.url("/news"), "alert_on": ["body-worn camera"]}],
                  notify=[{"url": webhook.url(), "name": "team", "topics": ["alert-on"]}])
    workdir.run("check")
    site.set("/news", page(extra="<p>ICE issued its new Body Worn Camera directive to officers this week.</p>"))
    out = workdir.run("check", "--force").stdout
    assert "alerts sent 1" in out, out
    msg = webhook.received[0]
    assert msg["title"] == "[alert-on] ICE news (ice-news): page changed", msg["title"]
    assert "ICE issued its new **Body Worn Camera** directive" in msg["message"]
    # the phrase going away is no alert: alert_on looks at added text only
    site.set("/news", page())
    workdir.run("check", "--force")
    assert len(webhook.received) == 1
