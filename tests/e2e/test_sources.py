"""Real source kinds end to end: a listing that gains a PDF report, the Federal Register API,
pagination with a per-run follow cap, removals, blocks, PDFs replaced in place, robots.txt."""
from __future__ import annotations

import json

from tests.e2e.test_monitor import db_rows, page
from tests.pdfs import make_pdf, make_scanned_pdf

OIG_ROW = ('<tr><td>{num}</td><td><a href="{href}?utm_source=rss">{title}</a><div class="summary">{summary}</div></td>'
           '<td><time datetime="{date}">{date}</time></td><td>2026</td></tr>')


def oig_listing(rows: list[dict]) -> str:
    body = "".join(OIG_ROW.format(**r) for r in rows)
    return ("<html><head><title>Audits, Inspections, and Evaluations | Office of Inspector General</title></head><body>"
            "<nav><a href='/'>Home</a></nav><div id='content-area'><table><thead><tr><th>Number</th><th>Title</th>"
            f"<th>Issue Date</th><th>FY</th></tr></thead><tbody>{body}</tbody></table></div>"
            "<footer>Last Updated: 11/28/2026</footer></body></html>")


LISTING_OPTIONS = {"select": "#content-area table", "item_row": "tbody tr", "items": "td a", "item_date": "time"}

OPR_REPORT = [
    ["OIG-26-07 Review of ICE Office of Professional Responsibility Investigations",
     "We reviewed how ICE OPR handled allegations that employees were members of extremist groups.",
     "OPR substantiated allegations against three employees who were affiliated with a militia",
     "extremist group; two were removed from federal service and one resigned in lieu of removal."],
    ["Appendix: case dispositions by fiscal year."],
]


def test_listing_gains_pdf_report_one_alert_with_title_and_link(site, webhook, workdir):
    rows = [{"num": "OIG-26-01", "href": "/reports/2026/oig-26-01.pdf", "title": "FEMA Grants Management", "summary": "Grants.", "date": "2026-10-01"}]
    site.set("/reports", oig_listing(rows))
    site.set("/reports/2026/oig-26-01.pdf", make_pdf([["FEMA grants report."]]), content_type="application/pdf")
    workdir.write(sources=[{"id": "oig-ice", "name": "DHS OIG reports (ICE)", "url": site.url("/reports"), "kind": "listing", **LISTING_OPTIONS}],
                  notify=[{"url": webhook.url(), "name": "team"}])
    assert "1 baseline" in workdir.run("check").stdout
    # the baseline archives what is listed (issue 12.5), and alerts nothing
    assert len(site.hits("/reports/2026/oig-26-01.pdf")) == 1 and webhook.received == []

    rows.insert(0, {"num": "OIG-26-07", "href": "/reports/2026/oig-26-07.pdf", "title": "ICE Did Not Consistently Discipline Employees Tied to Extremist Groups",
                    "summary": "Review of ICE OPR.", "date": "2026-11-20"})
    site.set("/reports", oig_listing(rows))
    site.set("/reports/2026/oig-26-07.pdf", make_pdf(OPR_REPORT, title="OIG-26-07"), content_type="text/html")  # a PDF mislabelled as HTML
    out = workdir.run("check", "--force").stdout
    assert "1 new document(s) fetched" in out and "alerts sent 1" in out, out
    assert len(webhook.received) == 1
    msg = webhook.received[0]
    assert "ICE Did Not Consistently Discipline Employees Tied to Extremist Groups" in msg["title"] and "opr-outcomes" in msg["title"]
    assert site.url("/reports/2026/oig-26-07.pdf") in msg["message"]
    assert "removed from federal service" in msg["message"]
    changes = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert [(c["kind"], c["url"], c["topics"]) for c in changes] == [("new_item", site.url("/reports/2026/oig-26-07.pdf"), ["opr-outcomes"])]
    shown = json.loads(workdir.run("show", str(changes[0]["id"]), "--format", "json").stdout)
    assert shown["published"] == "2026-11-20" and shown["matches"][0]["severity"] == "high"
    # nothing new: nothing more
    workdir.run("check", "--force")
    assert len(webhook.received) == 1


FR_DOC = {
    "title": "Countering Domestic Terrorism and Organized Political Violence",
    "type": "Presidential Document", "subtype": "Memorandum", "document_number": "2026-21001",
    "publication_date": "2026-11-20", "citation": "91 FR 80001", "abstract": None,
    "agencies": [{"raw_name": "Executive Office of the President", "name": "Executive Office of the President", "id": 538}],
}


def fr_response(base: str, docs: list[dict], next_page: str | None = None) -> str:
    results = []
    for d in docs:
        n = d["document_number"]
        results.append({**d, "html_url": f"{base}/documents/{n}", "pdf_url": f"{base}/pdf/{n}.pdf", "raw_text_url": f"{base}/raw/{n}.txt"})
    out = {"count": len(results), "description": "Documents", "total_pages": 1, "results": results}
    if next_page:
        out["next_page_url"] = next_page
    return json.dumps(out)


def test_federal_register_new_definition_document_one_alert(site, webhook, workdir):
    old = {**FR_DOC, "document_number": "2026-20000", "title": "Privacy Act of 1974; System of Records",
           "type": "Notice", "abstract": "DHS gives notice of a modified system of records."}
    site.set("/api/v1/documents.json?*", fr_response(site.base, [old]), content_type="application/json")
    workdir.write(sources=[{"id": "fr-presdocs", "url": site.url("/api/v1/documents.json"), "kind": "federal-register",
                            "types": ["PRESDOCU"], "term": "domestic terrorism"}], notify=[{"url": webhook.url()}])
    assert "1 baseline" in workdir.run("check").stdout
    query = [path for _m, path, _h in site.requests if path.startswith("/api/")][-1]  # (then the listed document is archived)
    assert "conditions%5Btype%5D%5B%5D=PRESDOCU" in query and "conditions%5Bterm%5D=domestic+terrorism" in query
    site.set("/api/v1/documents.json?*", fr_response(site.base, [FR_DOC, old]), content_type="application/json")
    site.set("/raw/2026-21001.txt", ("Sec. 2. Definitions. For purposes of this memorandum, the term \"domestic terrorism\" means "
                                     "activities that involve acts dangerous to human life intended to intimidate or coerce a civilian "
                                     "population, including organized political violence.\n\nThe Attorney General and the Secretary of "
                                     "Homeland Security shall designate groups engaged in such violence."), content_type="text/plain")
    out = workdir.run("check", "--force").stdout
    assert "1 new document(s) fetched" in out and "alerts sent 1" in out, out
    assert len(webhook.received) == 1 and "extremism-definitions" in webhook.received[0]["title"]
    c = json.loads(workdir.run("changes", "--format", "json").stdout)[0]
    assert c["kind"] == "new_item" and c["title"] == FR_DOC["title"] and c["url"] == site.url("/documents/2026-21001")
    shown = json.loads(workdir.run("show", str(c["id"]), "--format", "json").stdout)
    assert shown["published"] == "2026-11-20"


def test_listing_pages_follow_cap_queue_and_removal(site, workdir):
    def rows(nums):
        return [{"num": f"OIG-26-{n:02d}", "href": f"/r/{n}", "title": f"Report {n}", "summary": "", "date": "2026-11-01"} for n in nums]

    def listing(nums, nxt=None):
        html = oig_listing(rows(nums))
        return html.replace("</table>", f"</table><a class='next' href='{nxt}'>Next</a>" if nxt else "</table>")

    site.set("/l", listing([5, 4, 3], "/l?page=1"))
    site.set("/l?page=1", listing([2, 1]))
    for n in range(1, 12):
        site.set(f"/r/{n}", f"<html><body><main><p>Report number {n} text about grants management.</p></main></body></html>")
    workdir.write(sources=[{"id": "oig", "url": site.url("/l"), "kind": "listing", "next_page": "a.next", "max_pages": 2,
                            "max_follow": 2, **LISTING_OPTIONS}])
    out = workdir.run("check").stdout
    assert "1 baseline" in out and len(site.hits("/l?page=1")) == 1
    # three new items; only two documents per run, the third waits for the next run
    site.set("/l", listing([10, 9, 8, 5, 4], "/l?page=1"))
    site.set("/l?page=1", listing([3, 2]))
    out = workdir.run("check", "--force").stdout
    assert "2 new document(s) fetched" in out, out
    assert db_rows(workdir, "select count(*) from items where doc_status='pending'") == [(1,)]
    # the third is recorded in this run on the listing's word; its document comes next run, to the same change
    assert db_rows(workdir, "select count(*) from changes where kind='new_item' and note like 'full text pending: more than max_follow%'") == [(1,)]
    out = workdir.run("check", "--force").stdout
    assert "1 new document(s) fetched" in out, out
    assert db_rows(workdir, "select count(*) from changes where kind='new_item' and note like '%full text attached%'") == [(1,)]
    titles = sorted(c["title"] for c in json.loads(workdir.run("changes", "--format", "json").stdout))
    assert titles == ["Report 10", "Report 8", "Report 9"]
    # item 9 disappears from the middle: removed; items 1 and 4 rolled off the ends of their pages
    # as new ones pushed them down: not removals
    site.set("/l", listing([10, 8, 5, 3], "/l?page=1"))
    site.set("/l?page=1", listing([2]))
    workdir.run("check", "--force")
    removed = [c for c in json.loads(workdir.run("changes", "--format", "json").stdout) if c["kind"] == "removed"]
    assert [c["title"] for c in removed] == ["Report 9"]


def test_block_page_is_no_change_and_health_alert(site, webhook, workdir):
    site.set("/p", page())
    workdir.write(sources=[{"id": "p", "url": site.url("/p")}], health_notify=[{"url": webhook.url("/ops"), "name": "ops"}],
                  health={"blocks_before_alert": 2})
    workdir.run("check")
    akamai = ("<HTML><HEAD><TITLE>Access Denied</TITLE></HEAD><BODY><H1>Access Denied</H1>You don't have permission to access "
              "this server.<P>Reference&#32;&#35;18&#46;2f3c1302&#46;1700000000&#46;1a2b3c4d</BODY></HTML>")
    site.set("/p", akamai, status=403)
    out = workdir.run("check", "--force").stdout
    assert "1 blocked" in out and "Akamai" in out, out
    assert webhook.received == []
    site.set("/p", "<html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>", status=200)
    out = workdir.run("check", "--force").stdout
    assert "1 blocked" in out, out
    assert len(webhook.received) == 1 and "blocked" in webhook.received[0]["title"] and webhook.received[0]["_path"] == "/ops"
    assert db_rows(workdir, "select count(*) from changes") == [(0,)]
    src = json.loads(workdir.run("sources", "--format", "json").stdout)[0]
    assert src["health"] == "blocked"
    # back to normal: the old snapshot is still the base (no change), and a recovery message
    site.set("/p", page())
    out = workdir.run("check", "--force").stdout
    assert "0 change(s)" in out, out
    assert len(webhook.received) == 2 and "recovered" in webhook.received[1]["title"]


def test_page_shrinking_to_a_fraction_is_held_back(site, workdir):
    long_extra = "".join(f"<p>Paragraph {i} of the policy on investigations of employee misconduct and discipline.</p>" for i in range(30))
    site.set("/p", page(extra=long_extra))
    workdir.write(sources=[{"id": "p", "url": site.url("/p")}])
    workdir.run("check")
    site.set("/p", page())
    out = workdir.run("check", "--force").stdout
    assert "1 blocked" in out and "shrank" in out, out
    assert db_rows(workdir, "select count(*) from changes") == [(0,)]
    # the same smaller page three times in a row is accepted as the page now
    workdir.run("check", "--force")
    out = workdir.run("check", "--force").stdout
    assert "1 changed" in out, out


def test_redirect_to_home_page_is_removed(site, workdir):
    site.set("/", "<html><body><main><p>Welcome to the agency home page.</p></main></body></html>")
    site.set("/about/opr", page())
    workdir.write(sources=[{"id": "opr", "url": site.url("/about/opr")}])
    workdir.run("check")
    site.redirect("/about/opr", site.url("/"))
    out = workdir.run("check", "--force").stdout
    assert "1 removed" in out, out
    c = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert [x["kind"] for x in c] == ["removed"]
    assert "1 unchanged" in workdir.run("check", "--force").stdout  # still gone: recorded once
    # 404 for a page seen before is a removal too (a 404 on the first fetch is an error: see test_monitor)
    site.set("/gone", page())
    workdir.write(sources=[{"id": "gone", "url": site.url("/gone")}])
    workdir.run("check")
    del site.routes["/gone"]
    assert "1 removed" in workdir.run("check", "--force").stdout


def test_pdf_source_silent_replacement_and_no_text_layer(site, workdir):
    site.set("/doc.pdf", make_pdf([["ICE OPR annual report.", "Cases opened: 120."]]), content_type="application/pdf")
    site.set("/scan.pdf", make_scanned_pdf(), content_type="application/pdf")
    workdir.write(sources=[{"id": "doc", "url": site.url("/doc.pdf"), "kind": "pdf"}, {"id": "scan", "url": site.url("/scan.pdf"), "kind": "pdf"}])
    workdir.run("check")
    site.set("/doc.pdf", make_pdf([["ICE OPR annual report.", "Cases opened: 135."]]), content_type="application/pdf")
    scan2 = make_scanned_pdf().replace(b"re f", b"re  f")
    site.set("/scan.pdf", scan2, content_type="application/pdf")
    out = workdir.run("check", "--force").stdout
    assert "2 changed" in out, out
    changes = {c["source_id"]: c for c in json.loads(workdir.run("changes", "--format", "json").stdout)}
    assert "Cases opened: 135." in changes["doc"]["added_text"]
    shown = json.loads(workdir.run("show", str(changes["scan"]["id"]), "--format", "json").stdout)
    assert shown["added_text"] == "" and shown["note"].startswith("the PDF was replaced; neither version has a text layer")
    assert "Note:     the PDF was replaced" in workdir.run("show", str(changes["scan"]["id"])).stdout


def test_robots_txt_is_obeyed(site, workdir):
    site.set("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    site.set("/private/p", page())
    workdir.write(sources=[{"id": "priv", "url": site.url("/private/p")}])
    out = workdir.run("check").stdout
    assert "robots.txt" in out, out
    assert site.hits("/private/p") == []
    ua = site.hits("/robots.txt")[0]["user-agent"]
    assert ua.startswith("govwatch/") and "tests@example.org" in ua


def test_robots_crawl_delay_is_applied(site, workdir):
    site.set("/robots.txt", "User-agent: *\nCrawl-delay: 1\n", content_type="text/plain")
    for i in range(3):
        site.set(f"/p{i}", page(extra=f"<p>Page {i}.</p>"))
    workdir.write(sources=[{"id": f"p{i}", "url": site.url(f"/p{i}")} for i in range(3)])
    import time as _t

    t0 = _t.monotonic()
    assert "3 baseline" in workdir.run("check").stdout
    # three pages on one host, one per second at most: the last starts >= ~2 s after the first
    times = [t for (_m, p, h), t in zip(site.requests, site.times) if p.startswith("/p")]
    assert len(times) == 3 and times[-1] - times[0] >= 1.5, times
    assert _t.monotonic() - t0 >= 1.5


def test_retry_after_is_honoured_and_a_long_one_is_not_waited_for(site, workdir):
    calls = {"n": 0}

    def flaky():
        from tests.servers import Route

        calls["n"] += 1
        if calls["n"] == 1:
            return Route(body=b"busy", status=503, headers={"Retry-After": "2"}, etag=False)
        return Route(body=page().encode())

    site.routes["/flaky"] = flaky
    site.set("/limited", b"slow down", status=429, headers={"Retry-After": "3600"}, etag=False)
    workdir.write(sources=[{"id": "flaky", "url": site.url("/flaky")}, {"id": "limited", "url": site.url("/limited")}],
                  fetch={"retries": 2})
    out = workdir.run("check").stdout
    assert "1 baseline" in out and "1 blocked" in out, out
    hits = [t for (_m, p, _h), t in zip(site.requests, site.times) if p == "/flaky"]
    assert len(hits) == 2 and hits[1] - hits[0] >= 1.9, hits  # waited the 2 s the server asked for
    assert len(site.hits("/limited")) == 1  # an hour's wait is not spent in the cycle: no retry now
    src = {s["id"]: s for s in json.loads(workdir.run("sources", "--format", "json").stdout)}
    assert src["limited"]["health"] == "blocked" and "429" in src["limited"]["last_error"]


def test_listing_whose_items_vanish_is_loud_and_a_very_long_key_is_one_item(site, webhook, workdir):
    from tests.e2e.test_monitor import feed

    rows = [{"num": f"OIG-26-{n:02d}", "href": f"/r/{n}", "title": f"Report {n}", "summary": "", "date": "2026-11-01"} for n in (2, 1)]
    site.set("/l", oig_listing(rows))
    long_guid = "https://example.gov/items?" + "&".join(f"k{i}=v{i}" for i in range(300))  # > 2000 characters
    entries = [("Entry with a very long id", "summary")]
    site.set("/f.xml", feed(site.base, entries).replace("<guid isPermaLink=\"false\">/products/r-0</guid>", f"<guid>{long_guid}</guid>"),
             content_type="application/rss+xml")
    workdir.write(sources=[{"id": "oig", "url": site.url("/l"), "kind": "listing", **LISTING_OPTIONS},
                           {"id": "f", "url": site.url("/f.xml"), "kind": "feed", "full_text": "never"}],
                  health_notify=[{"url": webhook.url("/ops"), "name": "ops"}])
    assert "2 baseline" in workdir.run("check").stdout
    # a redesign: the table is still there, the links now live elsewhere
    site.set("/l", oig_listing([]).replace("</table>", "</table><div class='cards'><a href='/r/3'>Report 3</a></div>"))
    entries.append(("A second entry", "summary two"))
    site.set("/f.xml", feed(site.base, entries).replace("<guid isPermaLink=\"false\">/products/r-0</guid>", f"<guid>{long_guid}</guid>"),
             content_type="application/rss+xml")
    out = workdir.run("check", "--force").stdout
    assert "oig: error: item selector 'td a' matched nothing (the last fetch had 2 items)" in out, out
    assert "f: error" not in out and "1 changed" in out, out
    assert [m["title"] for m in webhook.received] == ["govwatch health: oig (oig) is empty"]
    out = workdir.run("check", "--force").stdout
    assert "f: error" not in out, out
    changes = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert [c["title"] for c in changes] == ["A second entry"]


def test_deeply_nested_api_json_is_a_clear_failed_fetch_not_an_internal_error(site, workdir):
    """Issue 16.11: a 100,000-deep JSON answer was recorded as "internal error: RecursionError" with
    a traceback; it is a failed fetch of that source with a clear reason, and the others go on."""
    deep = '{"results": ' + "[" * 100_000 + "]" * 100_000 + "}"
    site.set("/api/v1/documents.json?*", deep, content_type="application/json")
    site.set("/v3/hearing/119?*", '{"hearings": ' + "[" * 100_000 + "]" * 100_000 + "}", content_type="application/json")
    site.set("/p", page())
    workdir.write(sources=[{"id": "fr", "url": site.url("/api/v1/documents.json"), "kind": "federal-register"},
                           {"id": "cg", "url": site.url("/v3"), "kind": "congress-gov"},
                           {"id": "p", "url": site.url("/p")}])
    p = workdir.run("check", env={"GOVWATCH_CONGRESS_API_KEY": "test-key"})
    assert "1 baseline" in p.stdout and "2 error" in p.stdout, p.stdout
    assert "Traceback" not in p.stdout + p.stderr and "RecursionError" not in p.stdout + p.stderr, p.stdout + p.stderr
    health = {s["id"]: s for s in json.loads(workdir.run("sources", "--format", "json").stdout)}
    assert health["fr"]["last_error"].startswith("Federal Register API: the JSON nests deeper than 64 levels"), health["fr"]
    assert health["cg"]["last_error"].startswith("Congress.gov API: the JSON nests deeper than 64 levels"), health["cg"]
