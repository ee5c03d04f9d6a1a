"""The end-to-end monitor through the real CLI: a local site that changes between runs, a real
webhook receiver (Apprise json://) and a real SMTP server (Apprise mailto://)."""
from __future__ import annotations

import json
import sqlite3

import pytest

from tests.pdfs import make_pdf

PAGE = """<!doctype html><html><head><title>Office of Professional Responsibility | ICE</title></head>
<body>
<header><nav><a href="/">Home</a> <a href="/news?utm_source=x">News</a> <span class="rotating">{widget}</span></nav></header>
<main>
<h1>Office of Professional Responsibility</h1>
<p>The Office of Professional Responsibility upholds the agency's standards for integrity and professionalism.</p>
<p>OPR investigates allegations of misconduct involving employees and contractors.</p>
{extra}
<p>Last Reviewed/Updated: {stamp}</p>
</main>
<footer><p>Was this page helpful?</p><p>Page generated {stamp}</p></footer>
</body></html>"""

RELEVANT = ("<p>In fiscal year 2025, ICE OPR substantiated allegations that two employees were members of a "
            "white supremacist extremist group; both employees were removed from federal service.</p>")


def page(extra: str = "", stamp: str = "11/01/2026", widget: str = "Featured: hurricane season", spaces: str = " ") -> str:
    return PAGE.format(extra=extra, stamp=stamp, widget=widget).replace(" upholds", spaces + "upholds")


def db_rows(workdir, sql: str) -> list[tuple]:
    con = sqlite3.connect(workdir.path / "state" / "govwatch.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def configured(site, webhook, smtp, workdir):
    site.set("/opr", page())
    workdir.write(
        sources=[{"id": "ice-opr", "name": "ICE OPR", "url": site.url("/opr"), "kind": "page", "every": "1h"}],
        notify=[{"url": webhook.url("/hook"), "name": "team-webhook"}, {"url": smtp.url(), "name": "team-email"}],
    )
    return workdir


def test_baseline_change_alert_once_then_quiet(configured, site, webhook, smtp):
    w = configured
    out = w.run("check").stdout
    assert "1 baseline" in out
    assert webhook.received == [] and smtp.messages == []

    # a relevant paragraph added: one alert per target, with the topic
    site.set("/opr", page(extra=RELEVANT))
    out = w.run("check", "--force").stdout
    assert "1 changed" in out and "alerts sent 2" in out, out
    assert len(webhook.received) == 1 and len(smtp.messages) == 1
    hook = webhook.received[0]
    assert "opr-outcomes" in hook["title"] and "ICE OPR" in hook["title"] and "ice-opr" in hook["title"]
    assert site.url("/opr") in hook["message"]
    assert "white supremacist" in hook["message"]
    mail = smtp.messages[0]
    assert mail["to"] == ["analyst@example.org"]
    assert "opr-outcomes" in mail["msg"]["Subject"]
    assert "removed from federal service" in smtp.text_of(mail)

    # the same page again: 304 (ETag), nothing new
    out = w.run("check", "--force").stdout
    assert "1 not modified" in out
    assert len(webhook.received) == 1 and len(smtp.messages) == 1
    assert db_rows(w, "select outcome, status from fetch_attempts order by id desc limit 1") == [("not_modified", 304)]

    # only a date stamp, a rotating widget and whitespace change: no change, no alert
    site.set("/opr", page(extra=RELEVANT, stamp="11/28/2026", widget="Featured: winter storms", spaces="   \n  "))
    out = w.run("check", "--force").stdout
    assert "1 unchanged" in out and "0 change(s)" in out, out
    assert len(webhook.received) == 1 and len(smtp.messages) == 1

    changes = json.loads(w.run("changes", "--format", "json").stdout)
    assert len(changes) == 1
    c = changes[0]
    assert c["kind"] == "changed" and c["source_id"] == "ice-opr" and c["topics"] == ["opr-outcomes"]
    assert c["detected_at"].endswith("Z") and "white supremacist" in c["added_text"]
    assert c["evidence"] and all("sentence" in e for e in c["evidence"])
    shown = json.loads(w.run("show", str(c["id"]), "--format", "json").stdout)
    assert "+ " in shown["diff"] and {d["status"] for d in shown["deliveries"]} == {"sent"}
    text = w.run("show", str(c["id"])).stdout
    assert "opr-outcomes" in text and "team-webhook: sent" in text
    csv_out = w.run("changes", "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("id,detected_at,source_id") and len(csv_out) == 2


def test_failing_target_is_retried_next_run_and_delivered_once(configured, site, webhook, smtp):
    w = configured
    w.run("check")
    webhook.fail_next = 1
    site.set("/opr", page(extra=RELEVANT))
    out = w.run("check", "--force").stdout
    assert "alerts sent 1" in out and "retrying 1" in out, out
    assert webhook.received == [] and len(smtp.messages) == 1
    out = w.run("check").stdout  # nothing due; the retry is delivered
    assert "alerts sent 1" in out, out
    assert len(webhook.received) == 1 and len(smtp.messages) == 1
    w.run("check", "--force")
    assert len(webhook.received) == 1 and len(smtp.messages) == 1
    assert db_rows(w, "select target, status, attempts from deliveries order by target") == [
        ("team-email", "sent", 1), ("team-webhook", "sent", 2)]


FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Reports</title><link>{base}/</link><description>d</description>
{items}
</channel></rss>"""
ITEM = "<item><title>{title}</title><link>{base}/r/{n}</link><guid isPermaLink=\"false\">/products/r-{n}</guid><pubDate>Mon, 14 Sep 2026 10:00:00 -0400</pubDate><description>{desc}</description></item>"


def feed(base: str, entries: list[tuple[str, str]]) -> str:
    return FEED.format(base=base, items="\n".join(ITEM.format(base=base, n=i, title=t, desc=d) for i, (t, d) in enumerate(entries)))


def test_feed_new_entry_is_new_item_and_alerts(site, webhook, workdir):
    entries = [("Coast Guard: Cutter Acquisition", "GAO reviewed the acquisition of cutters.")]
    site.set("/rss.xml", feed(site.base, entries), content_type="application/rss+xml")
    workdir.write(sources=[{"id": "gao", "url": site.url("/rss.xml"), "kind": "feed"}], notify=[{"url": webhook.url()}])
    assert "1 baseline" in workdir.run("check").stdout
    # a new entry with a short summary: its linked page is fetched and classified in full
    entries.append(("Domestic Terrorism: Further Actions Needed", "GAO reviewed DHS and FBI collaboration."))
    site.set("/rss.xml", feed(site.base, entries), content_type="application/rss+xml")
    site.set("/r/1", "<html><head><title>GAO-23-104720</title></head><body><main><h1>Domestic Terrorism</h1>"
             "<p>The Department of Homeland Security revised its definition of domestic violent extremism "
             "and added a new category of anti-government violent extremism to its strategy.</p></main></body></html>")
    out = workdir.run("check", "--force").stdout
    assert "1 changed" in out and "1 new document(s) fetched" in out and "1 change(s), 1 matched" in out, out
    changes = json.loads(workdir.run("changes", "--format", "json").stdout)
    assert [c["kind"] for c in changes] == ["new_item"]
    c = changes[0]
    assert c["url"] == site.url("/r/1") and c["topics"] == ["extremism-definitions"]
    assert c["title"] == "Domestic Terrorism: Further Actions Needed" and "anti-government violent extremism" in c["added_text"]
    assert len(webhook.received) == 1 and "Domestic Terrorism" in webhook.received[0]["title"]
    assert "1 not modified" in workdir.run("check", "--force").stdout
    assert len(webhook.received) == 1


def test_bad_inputs_are_recorded_failures_and_others_go_on(site, workdir):
    import gzip as _gzip

    site.set("/good", page())
    site.set("/notxml", "this is not a feed at all", content_type="text/plain")
    site.set("/xxe", '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss version="2.0"><channel><title>&x;</title>'
             "<item><title>a</title><link>http://e/a</link></item></channel></rss>", content_type="application/rss+xml")
    site.set("/bomb", '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
             "<rss version=\"2.0\"><channel><title>&lol2;</title><item><title>&lol2;</title></item></channel></rss>", content_type="application/rss+xml")
    site.set("/broken", "<html><body><main><p>Unclosed <b>bold <p>para <div>div</main></span></html", content_type="text/html")
    site.set("/empty", b"", content_type="text/html")
    site.set("/huge", b"<html><body>" + b"x" * (10 * 2**20) + b"</body></html>")
    site.set("/gzbomb", b"<html><body>" + b"A" * (8 * 2**20) + b"</body></html>", gzip=True)
    site.set("/slow", page(), delay=4)
    srcs = [{"id": i, "url": site.url("/" + p), "kind": k} for i, p, k in [
        ("good", "good", "page"), ("notxml", "notxml", "feed"), ("xxe", "xxe", "feed"), ("bomb", "bomb", "feed"),
        ("broken", "broken", "page"), ("empty", "empty", "page"), ("huge", "huge", "page"), ("gzbomb", "gzbomb", "page"),
        ("missing", "missing", "page"), ("slow", "slow", "page")]]
    srcs.append({"id": "refused", "url": "http://127.0.0.1:9/nothing", "kind": "page"})
    workdir.write(sources=srcs, fetch={"max_bytes": "5MB", "timeout": "1s", "retries": 0})
    p = workdir.run("check")
    assert p.returncode == 0
    sources = {s["id"]: s for s in json.loads(workdir.run("sources", "--format", "json").stdout)}
    assert sources["good"]["health"] == "ok" and sources["broken"]["health"] == "ok"
    expect = {
        "notxml": "not a feed",
        "xxe": "entit",
        "bomb": "entit",
        "empty": "empty",
        "huge": "size cap",
        "gzbomb": "size",
        "missing": "HTTP 404",
        "slow": "timed out",
        "refused": "connection refused",
    }
    for sid, words in expect.items():
        s = sources[sid]
        assert s["consecutive_failures"] == 1, (sid, s)
        assert words in s["last_error"].lower() or words in s["last_error"], (sid, s["last_error"])
        assert f"{sid}: error:" in p.stdout
    attempts = db_rows(workdir, "select source_id, outcome from fetch_attempts")
    assert len(attempts) == len(srcs)


def test_no_config_uses_builtin_catalogue(tmp_path):
    from tests.conftest import run_cli

    p = run_cli("sources", "--format", "json", cwd=tmp_path)
    ids = {s["id"] for s in json.loads(p.stdout)}
    assert {"ice-opr", "gao-reports"} <= ids
    assert (tmp_path / "state" / "govwatch.db").exists()


def test_a_url_scrapy_cannot_request_is_one_failed_fetch_not_the_end_of_the_crawl(site, workdir):
    """A listed document at a port out of range (Scrapy refuses to make the request at all) is that
    document's failure; the listing, its other document and the next source are read, no traceback.
    The same URL as a source is refused by validation, before any check."""
    site.set("/reports", "<html><body><main><ul><li><a href='/r/good.pdf'>OIG-26-01 Good report</a></li>"
             "<li><a href='http://127.0.0.1:99999/r/bad.pdf'>OIG-26-02 Bad port</a></li></ul></main></body></html>")
    site.set("/r/good.pdf", make_pdf([["A good report."]]), content_type="application/pdf")
    site.set("/other", page())
    workdir.write(sources=[{"id": "reports", "url": site.url("/reports"), "kind": "listing", "items": "main li a"},
                           {"id": "other", "url": site.url("/other")}])
    p = workdir.run("check")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "2 baseline" in p.stdout, p.stdout
    assert "invalid URL: Port out of range" in p.stdout, p.stdout
    assert len(site.hits("/r/good.pdf")) == 1 and len(site.hits("/other")) == 1
    docs = dict(db_rows(workdir, "select url, doc_status from items"))
    assert docs[site.url("/r/good.pdf")] in ("archived", "fetched", "backfill") and len(docs) == 2, docs

    workdir.write(sources=[{"id": "bad", "url": "http://127.0.0.1:99999/x"}, {"id": "other", "url": site.url("/other")}])
    v = workdir.run("validate", check=False)
    assert v.returncode == 2 and "sources[0].url: 'http://127.0.0.1:99999/x' is not a valid URL: Port out of range" in v.stderr
