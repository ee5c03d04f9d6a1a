"""Pages behind a JavaScript wall, through Debian's chromium (issue 13): the real CLI against a local
site. A page whose text a script writes (render: browser); a challenge page that sets a cookie with
JavaScript and reloads to the real content, served only with the cookie (render: auto, remembered);
a page whose script and images call a private address that must be refused. Each yields its
change, matched and alerted once."""
from __future__ import annotations

import json

from monitor.config import load_config
from state.store import Store
from tests.e2e.test_monitor import RELEVANT, db_rows
from tests.servers import Route, Site

OUTCOME = RELEVANT.removeprefix("<p>").removesuffix("</p>")


def last_text(workdir, sid: str) -> str:
    """The text of the source's newest snapshot, as govwatch stored it."""
    cfg = load_config(workdir.config)
    store = Store(cfg.database)
    (digest,) = db_rows(workdir, f"select text_sha256 from snapshots where source_id = '{sid}' order by id desc limit 1")[0]
    return store.get_text(digest)


def scripted(sentences: list[str]) -> str:
    """A page whose <main> is empty in the HTML and filled by a script (as ice.gov's pages are)."""
    js = json.dumps("".join(f"<p>{s}</p>" for s in sentences))
    return (f"<!doctype html><html><head><title>Office of Professional Responsibility | ICE</title></head><body>"
            f"<nav><a href='/'>Home</a></nav><main id='main'></main>"
            f"<script>document.getElementById('main').innerHTML = '<h1>Office of Professional Responsibility</h1>' + {js};</script>"
            f"</body></html>")


def test_a_page_written_by_script_is_read_through_the_browser(chromium, site, webhook, workdir):
    text = ["The Office of Professional Responsibility investigates allegations of employee misconduct.",
            "Reports are published each fiscal year on this page."]
    site.set("/opr", scripted(text))
    workdir.write(sources=[{"id": "ice-opr", "name": "ICE OPR", "url": site.url("/opr"), "render": "browser"}],
                  notify=[{"url": webhook.url(), "name": "hook"}])
    assert "1 baseline" in workdir.run("check").stdout
    text_read = last_text(workdir, "ice-opr")
    assert "investigates allegations of employee misconduct" in text_read, text_read
    site.set("/opr", scripted(text + [OUTCOME]))
    out = workdir.run("check", "--force").stdout
    assert "1 changed" in out and "alerts sent 1" in out, out
    assert len(webhook.received) == 1 and "opr-outcomes" in webhook.received[0]["title"]
    assert "removed from federal service" in webhook.received[0]["message"]
    # every request of the browser carried govwatch's User-Agent
    assert all("govwatch/" in h.get("user-agent", "") for h in site.hits("/opr")), site.hits("/opr")
    # a full-page screenshot of each version: on the change page (before and after), in the WARC
    shots = db_rows(workdir, "select id, screenshot_sha256 from snapshots where source_id = 'ice-opr' order by id")
    assert len(shots) == 2 and all(len(d) == 64 for _, d in shots) and shots[0][1] != shots[1][1], shots
    change = json.loads(workdir.run("changes", "--format", "json").stdout)[0]
    from fastapi.testclient import TestClient

    from monitor.web import WebSettings, create_app

    cfg = load_config(workdir.config)
    client = TestClient(create_app(cfg, Store(cfg.database), settings=WebSettings()), base_url="http://127.0.0.1")
    html = client.get(f"/changes/{change['id']}").text
    for sid, _ in shots:
        assert f'src="/snapshots/{sid}/screenshot.png"' in html, html[:3000]
        png = client.get(f"/snapshots/{sid}/screenshot.png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG\r\n") and png.headers["content-type"] == "image/png"
    warc = workdir.path / "opr.warc.gz"
    workdir.run("export-warc", "--change", str(change["id"]), "-o", str(warc))
    from warcio.archiveiterator import ArchiveIterator

    with open(warc, "rb") as f:
        kinds = [(r.rec_type, r.rec_headers.get_header("WARC-Target-URI")) for r in ArchiveIterator(f)]
    assert kinds.count(("resource", f"urn:screenshot:{site.url('/opr')}")) == 2, kinds
    assert kinds.count(("resource", f"urn:server-html:{site.url('/opr')}")) == 2, kinds
    # the capture is the rendered DOM; the HTML the server sent is kept beside it
    new_id = shots[1][0]
    dom = client.get(f"/snapshots/{new_id}/raw").content
    server = client.get(f"/snapshots/{new_id}/server-html").content
    assert b"removed from federal service" in dom and b"<main id='main'></main>" in server and b"innerHTML" in server, server[:500]
    assert f'href="/snapshots/{new_id}/server-html"' in html
    checked = workdir.run("verify", str(warc), check=False)  # every digest, the resource records' too
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 unchanged" in workdir.run("check", "--force").stdout
    assert len(webhook.received) == 1


def test_a_javascript_challenge_is_passed_and_remembered_with_render_auto(chromium, site, webhook, workdir):
    content = {"html": ("<!doctype html><html><head><title>Newsroom | ICE</title></head><body><main>"
                        "<h1>Newsroom</h1><p>ICE announces the opening of a new field office in Dallas.</p></main></body></html>")}
    wall = ("<!doctype html><html><head><title>ice.gov</title></head><body>"
            "<noscript>Sorry, you need to enable JavaScript to visit this website.</noscript>"
            "<script>document.cookie = 'gw_js=1; path=/'; location.reload();</script></body></html>")

    def newsroom(headers):
        if "gw_js=1" in headers.get("cookie", ""):
            return Route(body=content["html"].encode(), etag=False)
        return Route(body=wall.encode(), etag=False)

    newsroom.wants_headers = True
    site.routes["/news"] = newsroom
    workdir.write(sources=[{"id": "ice-news", "name": "ICE newsroom", "url": site.url("/news")}],
                  notify=[{"url": webhook.url(), "name": "hook"}], health_notify=[{"url": webhook.url(), "name": "ops"}])
    out = workdir.run("check").stdout
    assert "1 baseline" in out and "blocked" not in out, out
    assert db_rows(workdir, "select needs_browser, health from sources where id = 'ice-news'") == [(1, "ok")]
    listed = workdir.run("sources").stdout
    assert "browser" in listed, listed
    text_read = last_text(workdir, "ice-news")
    assert "new field office in Dallas" in text_read and "enable JavaScript" not in text_read, text_read
    plain_hits = len(site.hits("/news"))
    content["html"] = content["html"].replace("</main>", RELEVANT + "</main>")
    out = workdir.run("check", "--force").stdout
    assert "1 changed" in out and "alerts sent 1" in out, out
    assert len(webhook.received) == 1 and "opr-outcomes" in webhook.received[0]["title"]
    # remembered: the second check went to the browser at once (the wall, then the reload with the cookie)
    assert len(site.hits("/news")) - plain_hits == 2, site.hits("/news")[plain_hits:]


def test_a_wall_without_a_browser_says_how_to_enable_it(site, workdir):
    wall = ("<!doctype html><html><head><title>ice.gov</title></head><body>"
            "<noscript>Sorry, you need to enable JavaScript to visit this website.</noscript></body></html>")
    site.set("/news", wall)
    workdir.write(sources=[{"id": "ice-news", "url": site.url("/news")}],
                  fetch={"browser": {"executable": "/nonexistent/chromium"}})
    out = workdir.run("check").stdout
    assert "1 blocked" in out, out
    (err,) = db_rows(workdir, "select last_error from sources where id = 'ice-news'")[0]
    assert "JavaScript challenge page" in err and "install Debian's chromium" in err, err


def test_the_browser_refuses_private_addresses_a_page_calls(chromium, site, webhook, workdir):
    inside = Site().start()  # an internal service on another port: never to be reached
    try:
        inside.set("/secret.js", "document.title = 'leaked';", content_type="application/javascript")
        inside.set("/api", '{"secret": "internal"}', content_type="application/json")
        inside.set("/pixel.png", b"\x89PNG", content_type="image/png")
        inside.set("/frame", "<p>internal admin page</p>")
        base = inside.url("")

        def leaky(extra: str = "") -> str:
            return ("<!doctype html><html><head><title>Leaky page</title>"
                    f"<script src='{base}/secret.js'></script></head><body><main>"
                    "<h1>Discipline overview</h1><p>Statistics are published each quarter.</p>" + extra +
                    f"<img src='{base}/pixel.png'><iframe src='{base}/frame'></iframe>"
                    f"<script>fetch('{base}/api').catch(() => null); new Image().src = '{base}/pixel.png?2';"
                    f"location.hash = 'x';</script></main></body></html>")

        site.set("/leaky", leaky())
        port = site.url("").rsplit(":", 1)[1].split("/")[0]
        workdir.write(sources=[{"id": "leaky", "url": site.url("/leaky"), "render": "browser"}],
                      notify=[{"url": webhook.url(), "name": "hook"}],
                      fetch={"allow_private_networks": [f"127.0.0.1:{port}"]})
        assert "1 baseline" in workdir.run("check").stdout
        site.set("/leaky", leaky(RELEVANT))
        out = workdir.run("check", "--force").stdout
        assert "1 changed" in out and "alerts sent 1" in out, out
        assert len(webhook.received) == 1
        assert inside.requests == [], inside.requests
        text_read = last_text(workdir, "leaky")
        assert "Statistics are published" in text_read and "internal admin page" not in text_read, text_read
    finally:
        inside.stop()


def test_doctor_reads_a_walled_page_through_the_browser(chromium, site, workdir):
    """`govwatch doctor` does what `check` would: a JavaScript wall (render: auto) is read through the
    browser and the page's text counted; without a browser the wall is named with the fix."""
    wall = ("<!doctype html><html><head><title>ice.gov</title></head><body>"
            "<noscript>Sorry, you need to enable JavaScript to visit this website.</noscript>"
            "<script>document.cookie = 'gw_js=1; path=/'; location.reload();</script></body></html>")

    def opr(headers):
        if "gw_js=1" in headers.get("cookie", ""):
            return Route(body=scripted([f"The Office of Professional Responsibility investigates allegations of "
                                        f"employee misconduct and publishes its findings for fiscal year {y}." for y in range(2015, 2026)]
                                       ).encode(), etag=False)
        return Route(body=wall.encode(), etag=False)

    opr.wants_headers = True
    site.routes["/opr"] = opr
    workdir.write(sources=[{"id": "ice-opr", "url": site.url("/opr")}])
    p = workdir.run("doctor", "--format", "json")
    (r,) = json.loads(p.stdout)
    assert r["outcome"] == "ok" and r["rendered"] and r["text_chars"] > 80, r
    assert "rendered by the browser" in workdir.run("doctor").stdout
    workdir.write(sources=[{"id": "ice-opr", "url": site.url("/opr")}], fetch={"browser": {"executable": "/nonexistent/chromium"}})
    p = workdir.run("doctor", check=False)
    assert p.returncode == 1 and "BLOCKED" in p.stdout and "install Debian's chromium" in p.stdout, p.stdout


def test_a_cloudflare_wall_answering_503_is_rendered_once_and_read(chromium, site, workdir):
    """A Cloudflare-style wall (503, `cf-mitigated: challenge`, a script that sets a cookie and
    reloads): over plain HTTP it is a challenge (retried as a 503, then rendered); in the browser
    the page shown at the end is judged, not the wall's first answer (no retry of the rendered
    page, no 'blocked' from the wall's header)."""
    wall = ("<!doctype html><html><head><title>Just a moment...</title></head><body>"
            "<script>document.cookie = 'cf_clearance=1; path=/'; location.reload();</script></body></html>")

    def page(headers):
        if "cf_clearance=1" in headers.get("cookie", ""):
            return Route(body=scripted(["Statement on the Office of Professional Responsibility's annual report.",
                                        "The report covers fiscal year 2025 and is published in full."]).encode(), etag=False)
        return Route(body=wall.encode(), status=503, etag=False, headers={"cf-mitigated": "challenge"})

    page.wants_headers = True
    site.routes["/cf"] = page
    workdir.write(sources=[{"id": "cf", "url": site.url("/cf")}])
    out = workdir.run("check").stdout
    assert "1 baseline" in out and "blocked" not in out, out
    assert db_rows(workdir, "select needs_browser, health from sources where id = 'cf'") == [(1, "ok")]
    assert "annual report" in last_text(workdir, "cf")
    # over HTTP: the 503 and its one retry (retries: 1); in the browser: the wall, then the page
    cookies = [h.get("cookie", "") for h in site.hits("/cf")]
    assert len(cookies) == 4 and cookies.count("cf_clearance=1") == 1, site.hits("/cf")


def test_the_browser_is_restarted_after_restart_after_pages_and_reads_every_page(chromium, site, workdir):
    for i in range(5):
        site.set(f"/r{i}", scripted([f"Bulletin {i} of the Office of Professional Responsibility, fiscal year 2025."]))
    workdir.write(sources=[{"id": f"r{i}", "url": site.url(f"/r{i}"), "render": "browser"} for i in range(5)],
                  fetch={"browser": {"restart_after": 2, "max_pages": 2}})
    p = workdir.run("check")
    assert "5 baseline" in p.stdout, p.stdout + p.stderr[-3000:]
    assert p.stderr.count("restarting the browser after 2 pages") >= 1, p.stderr[-3000:]
    assert all(f"Bulletin {i} " in last_text(workdir, f"r{i}") for i in range(5))
