"""The change log in a real browser (Debian's chromium through Playwright): an analyst's walk from
the list to a triaged change, and hostile captured content that must not run. Screenshots go to
$GOVWATCH_TEST_OUTPUT or <repo>/test-output/."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_web import build_world

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed (pip install playwright; never `playwright install`)"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
]


def output_dir() -> Path:
    d = Path(os.environ.get("GOVWATCH_TEST_OUTPUT") or REPO / "test-output")
    d.mkdir(parents=True, exist_ok=True)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(app):
    """The app under uvicorn on a free loopback port, in a thread: its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real app under uvicorn on a free loopback port, in a thread."""
    from monitor.web import WebSettings, create_app

    world = build_world(tmp_path_factory.mktemp("browser"))
    with serving(create_app(world.cfg, world.store, settings=WebSettings())) as base:
        yield world, base


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1360, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    ctx.close()


def test_analyst_walk_filter_open_triage(served, page):
    world, base = served
    csp_violations: list[str] = []
    page.on("console", lambda m: csp_violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(base + "/")
    assert page.locator("li.change").count() == 3
    page.screenshot(path=str(output_dir() / "change-list.png"), full_page=True)

    page.select_option("select[name=topic]", "opr-outcomes")
    page.click("aside.filters button[type=submit]")
    page.wait_for_url("**/?*topic=opr-outcomes*")
    assert page.locator("li.change").count() == 2
    # a page's change is titled by its first added sentence, the page's title beside it
    page.locator("li.change").filter(has_text="Office of Professional Responsibility").first.locator("a.title").click()
    page.wait_for_url(f"**/changes/{world.changes['ice-opr']}")

    marks = page.locator("section.why mark.hl")
    assert marks.count() > 0 and marks.first.is_visible()
    assert page.locator("ol.diff-inline li.d-add").filter(has_text="white supremacist").count() == 1
    assert page.locator("table.sbs tr.r-insert").count() >= 1
    # the stylesheet loaded under the CSP: highlighted terms have a background colour
    bg = marks.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert bg not in ("rgba(0, 0, 0, 0)", "transparent"), bg
    page.screenshot(path=str(output_dir() / "change-detail.png"), full_page=True)

    page.fill("section.triage textarea[name=note]", "Confirmed: OPR outcome with extremist ties; forwarded to the team.")
    page.click("section.triage button[value=reviewed]")
    page.wait_for_url(f"**/changes/{world.changes['ice-opr']}#triage")
    trail = page.locator("ol.trail li")
    assert trail.count() == 1
    assert "local" in trail.first.inner_text() and "Reviewed" in trail.first.inner_text()
    assert "forwarded to the team" in trail.first.inner_text()
    page.screenshot(path=str(output_dir() / "change-triaged.png"), full_page=True)
    assert csp_violations == []


def test_hostile_capture_runs_no_script(served, page):
    world, base = served
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path in (f"/changes/{world.changes['evil']}", f"/changes/{world.changes['gao']}", "/", "/sources",
                 "/sources/evil", "/?since=<script>alert(1)</script>"):
        page.goto(base + path)
        assert page.evaluate("() => window.__pwned === undefined"), path
        assert page.locator("script").count() == 0, path
        assert page.locator("a[href^='javascript:' i]").count() == 0, path
        assert page.locator("[onerror], [onclick], [onload]").count() == 0, path
    page.goto(base + f"/changes/{world.changes['evil']}")
    assert "<script>window.__pwned=1</script>" in page.locator("section.why").inner_text()  # shown as text
    page.screenshot(path=str(output_dir() / "change-hostile.png"), full_page=True)

    # the capture rendered as a page: inside a sandbox without scripts, nothing runs either
    snap = page.locator("dd a[href^='/snapshots/']:not([href$='/raw'])").last.get_attribute("href")
    page.goto(base + snap)
    frame = page.locator("iframe.preview")
    assert frame.get_attribute("sandbox") == ""
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned === undefined")
    assert dialogs == []


def test_analyst_creates_a_subscription(served, page):
    world, base = served
    page.goto(base + "/subscriptions")
    page.fill("form.sub-form input[name=name]", "OPR outcomes daily")
    page.fill("form.sub-form input[name=query]", "substantiated OR \"white supremacist\"")
    page.fill("form.sub-form input[name=every]", "hourly")  # a mistake first: shown next to its field
    page.check("form.sub-form input[name='topic:opr-outcomes']")
    page.fill("form.sub-form textarea[name=notify]", "json://127.0.0.1:9/hook?token=browser-secret")
    page.click("form.sub-form button[type=submit]")
    problem = page.locator("#problem-every")
    assert problem.is_visible() and "not a cadence" in problem.inner_text()
    assert "browser-secret" not in page.content()  # a typed URL is not sent back
    page.screenshot(path=str(output_dir() / "subscription-problem.png"), full_page=True)
    page.fill("form.sub-form input[name=every]", "daily@08:00")
    page.fill("form.sub-form textarea[name=notify]", "json://127.0.0.1:9/hook?token=browser-secret")
    page.click("form.sub-form button[type=submit]")
    page.wait_for_url("**/subscriptions#sub-*")
    row = page.locator("table.subs tr", has_text="OPR outcomes daily")
    assert row.count() == 1 and "daily@08:00" in row.inner_text() and "json://" in row.inner_text()
    assert "browser-secret" not in page.content()
    page.screenshot(path=str(output_dir() / "subscriptions.png"), full_page=True)


def test_admin_adds_a_watch_which_is_then_checked(site, workdir, page):
    from monitor.config import load_config
    from monitor.web import WebSettings, create_app
    from state.store import Store
    from tests.e2e.test_monitor import page as html_page

    site.set("/gao", html_page(widget="GAO"))
    workdir.write(sources=[])
    cfg = load_config(str(workdir.config))
    with serving(create_app(cfg, Store(cfg.database), settings=WebSettings())) as base:  # loopback: the local admin
        page.goto(base + "/sources")
        page.fill("form.watch-form input[name=id]", "gao-reports")
        page.fill("form.watch-form input[name=url]", site.url("/gao"))
        page.fill("form.watch-form input[name=select]", "div[[[")  # a mistake first: shown next to its field
        page.click("form.watch-form button[type=submit]")
        assert "not a valid CSS selector" in page.locator("#problem-select").inner_text()
        page.screenshot(path=str(output_dir() / "watch-problem.png"), full_page=True)
        page.fill("form.watch-form input[name=select]", "main")
        page.fill("form.watch-form input[name=name]", "GAO reports")
        page.click("form.watch-form button[type=submit]")
        page.wait_for_url("**/sources/gao-reports")
        out = workdir.run("check").stdout  # the watch is due at once
        assert "1 source(s)" in out or "gao-reports" in out, out
        assert len(site.hits("/gao")) == 1
        page.goto(base + "/sources/gao-reports")
        assert "the web UI" in page.locator("section.facts").inner_text()
        assert page.locator("span.badge.health.h-ok").count() == 1
        page.click("#admin button[value=pause]")
        page.wait_for_url("**/sources/gao-reports#admin")
        assert "paused" in page.locator("ol.trail").inner_text()
        page.screenshot(path=str(output_dir() / "watch-added.png"), full_page=True)


def test_the_demos_change_log_in_a_browser(tmp_path, page):
    """`govwatch demo` as a newcomer runs it: the URL it prints opens its change log, with the replay's
    four alerted changes (screenshot: demo-change-log.png), and one of them opens."""
    import signal

    from tests.e2e.test_operations import GovwatchProcess, wait_until

    port = free_port()
    proc = GovwatchProcess("demo", "--port", str(port), cwd=tmp_path, log_name="demo")
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: url in proc.out_path.read_text() or not proc.alive(), 90, what="the demo's URL")
        assert proc.alive(), proc.out_path.read_text() + proc.err_path.read_text()
        wait_until(lambda: _answers(url), 20, what="the demo's change log")
        page.goto(url)
        text = page.locator("body").inner_text()
        for words in ("Designating Antifa as a Domestic Terrorist Organization", "ICE Office of Professional Responsibility (REPLAY)",
                      "DHS Domestic Violent Extremism Internal Review (REPLAY)"):
            assert words in text, words
        rows = page.locator("ol.changes li.change")
        assert rows.count() == 4  # the noisy page changed nothing worth a line
        assert "OIG-14-20" not in " ".join(rows.all_inner_texts())
        page.screenshot(path=str(output_dir() / "demo-change-log.png"), full_page=True)
        page.click("text=Designating Antifa as a Domestic Terrorist Organization")
        page.wait_for_url("**/changes/*")
        assert "extremism-definitions" in page.locator("body").inner_text()
        page.screenshot(path=str(output_dir() / "demo-change.png"), full_page=True)
        folder = Path(proc.out_path.read_text().split("state in ", 1)[1].split()[0])
        rc, _ = proc.signal(signal.SIGINT, timeout=20)  # Ctrl-C: the demo ends and deletes its folder
        assert rc in (0, 130) and not folder.exists(), rc
    finally:
        proc.signal(signal.SIGKILL, timeout=20)


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False
