"""`govwatch add URL` through the real CLI, on a local site serving real captures: the kind told
from one fetch, the entry added to a hand-written file whose comments and layout survive, the
file validated before it is written (nothing written on any problem), doctor's reading printed,
and a check that then records the baseline."""
from __future__ import annotations

import difflib
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
import yaml

from monitor.config import builtin_catalogue

DATA = Path(__file__).resolve().parents[1] / "data"
REAL = DATA / "catalogue" / "real"
# the ICE newsroom's real listing markup (a fragment: served in a page of ours with the site's chrome)
NEWSROOM = (REAL / "snippets" / "ice-newsroom--listing.html").read_text(encoding="utf-8")
NEWSROOM_PAGE = ("<!DOCTYPE html><html lang='en'><head><title>Newsroom | ICE</title></head><body>"
                 "<header><nav class='main-menu'><a href='/'>Home</a> <a href='/newsroom'>Newsroom</a></nav></header>"
                 f"<main id='main-content'><h1>Newsroom</h1>{NEWSROOM}</main>"
                 "<footer><a href='/privacy'>Privacy Policy</a></footer></body></html>")
# the ICE OPR page as the site marks it up (USWDS banner, menu, article, feedback form, footer)
OPR_PAGE = (DATA / "pages" / "dhs-main-change.before.html").read_text(encoding="utf-8")

CONFIG = """\
# govwatch for the watchdog team (local copies of the sites)
database: {db}   # this test's own database
include_defaults: false          # only our own sources here

fetch:
  allow_private_networks: ["127.0.0.1"]   # the local site, nothing else private
  per_host_delay: 0s
  timeout: 5s
  retries: 0
  user_agent_contact: "tests@example.org"

sources:
  # ICE's OPR page, watched since the start
  - id: ice-opr
    url: {site}/opr
    kind: page
    every: 6h        # the team reads it weekly
  # - id: retired
  #   url: https://example.org/retired

# topics of our own come later
topics: []
"""


def _config(workdir, site, name: str = "govwatch.yaml", **extra) -> Path:
    path = workdir.path / name
    path.write_text(CONFIG.format(db=workdir.db, site=site.base, **extra), encoding="utf-8")
    return path


def _sources(path: Path) -> dict[str, dict]:
    return {s["id"]: s for s in yaml.safe_load(path.read_text(encoding="utf-8"))["sources"]}


def _only_added(before: str, after: str) -> list[str]:
    """The lines `after` adds to `before`; fails when any line of `before` was changed or removed."""
    ops = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False).get_opcodes()
    assert all(op in ("equal", "insert") for op, *_ in ops), list(difflib.unified_diff(before.splitlines(), after.splitlines()))
    return [line for op, _, _, j1, j2 in ops if op == "insert" for line in after.splitlines()[j1:j2]]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".add-" in p.name)


def test_add_a_page_a_listing_and_a_feed_then_check_them(site, workdir):
    site.set("/opr", OPR_PAGE)
    site.set("/about/opr", OPR_PAGE)
    site.set("/newsroom", NEWSROOM_PAGE)
    # the GAO reports feed as recorded, its links moved to the local site (nothing leaves this machine)
    gao = (REAL / "gao-reports.xml").read_text(encoding="utf-8").replace("https://www.gao.gov", site.base)
    site.set("/rss/reports.xml", gao, content_type="application/rss+xml; charset=utf-8")
    config = _config(workdir, site)
    config.chmod(0o640)
    original = config.read_text(encoding="utf-8")

    page = workdir.run("add", site.url("/about/opr"), "-c", str(config), check=False)
    assert page.returncode == 0, page.stdout + page.stderr
    out = page.stdout
    assert "added source '127-0-0-1-about-opr' (kind page, told from the response: an HTML page)" in out, out
    assert "127-0-0-1-about-opr: ok (HTTP 200; " in out and "characters of text)" in out, out
    assert "`--kind listing` with item selectors" in out and "`item_row`" in out, out
    assert f"`govwatch check -c {config} --source 127-0-0-1-about-opr` records its baseline" in out, out
    assert len(site.hits("/about/opr")) == 1  # told and read from one fetch

    again = workdir.run("add", site.url("/about/opr"), "-c", str(config), check=False)
    assert again.returncode == 2, again.stdout + again.stderr
    assert again.stderr.strip() == (f"Error: a source with the id '127-0-0-1-about-opr' exists already in {config} "
                                    f"({site.url('/about/opr')}); nothing written: give another with --id"), again.stderr
    assert len(site.hits("/about/opr")) == 1  # refused before any fetch

    listing = workdir.run("add", site.url("/newsroom"), "--kind", "listing", "--id", "ice-newsroom", "--name", "ICE newsroom",
                          "--every", "1h", "-c", str(config), check=False)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    out = listing.stdout
    assert "added source 'ice-newsroom' (kind listing)" in out and "ice-newsroom: ok (HTTP 200; 5 item(s))" in out, out
    assert "    - Home\n    - Newsroom\n    - ICE operation nets arrests\n" in out, out  # what a listing without selectors reads
    assert "a listing without selectors takes every link of the page" in out and "`select`" in out, out

    feed = workdir.run("add", site.url("/rss/reports.xml"), "--name", "GAO reports", "-c", str(config), check=False)
    assert feed.returncode == 0, feed.stdout + feed.stderr
    out = feed.stdout
    assert "added source '127-0-0-1-rss-reports' (kind feed, told from the response: an RSS/Atom feed)" in out, out
    assert "127-0-0-1-rss-reports: ok (HTTP 200; 2 item(s))" in out, out
    assert "    - National Register of Historic Places: Selected States and Tribes Identified Challenges to Participation" in out, out
    assert "--kind listing" not in out

    now = config.read_text(encoding="utf-8")
    added = _only_added(original, now)  # every comment and line of the operator's file is where it was
    assert added == [
        "  - id: 127-0-0-1-about-opr", f"    url: {site.url('/about/opr')}", "    kind: page",
        "  - id: ice-newsroom", "    name: ICE newsroom", f"    url: {site.url('/newsroom')}", "    kind: listing", "    every: 1h",
        "  - id: 127-0-0-1-rss-reports", "    name: GAO reports", f"    url: {site.url('/rss/reports.xml')}", "    kind: feed",
    ], added
    assert now.index("ice-newsroom") < now.index("  # - id: retired")  # in the list, before the commented-out entry
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert _leftovers(workdir.path) == []
    got = _sources(config)
    assert [got[s]["kind"] for s in ("ice-opr", "127-0-0-1-about-opr", "ice-newsroom", "127-0-0-1-rss-reports")] == \
        ["page", "page", "listing", "feed"]
    assert got["ice-newsroom"]["url"] == site.url("/newsroom") and got["127-0-0-1-rss-reports"]["url"] == site.url("/rss/reports.xml")

    assert "OK: " in workdir.run("validate", "-c", str(config)).stdout
    ids = ("127-0-0-1-about-opr", "ice-newsroom", "127-0-0-1-rss-reports")
    checked = workdir.run("check", "-c", str(config), *[a for sid in ids for a in ("--source", sid)])
    assert "checked 3 source(s)" in checked.stdout and "3 baseline" in checked.stdout, checked.stdout
    with sqlite3.connect(workdir.path / "state" / "govwatch.db") as c:
        snapshots = dict(c.execute("select source_id, count(*) from snapshots group by source_id").fetchall())
    assert all(snapshots.get(sid) for sid in ids), snapshots
    sources = {s["id"]: s for s in json.loads(workdir.run("sources", "-c", str(config), "--format", "json").stdout)}
    assert sources["ice-newsroom"]["name"] == "ICE newsroom" and sources["ice-newsroom"]["every"] == "1h"


def test_nothing_is_written_on_a_bad_url_a_taken_id_or_a_private_address(site, workdir):
    site.set("/opr", OPR_PAGE)
    config = _config(workdir, site)
    original = config.read_bytes()

    def refused(*args, path: Path = config) -> str:
        p = workdir.run("add", *args, "-c", str(path), check=False)
        assert p.returncode == 2, p.stdout + p.stderr
        assert p.stdout == "" and "Traceback" not in p.stderr, p.stdout + p.stderr
        assert path.read_bytes() == (original if path == config else private_text) and _leftovers(workdir.path) == []
        return p.stderr

    err = refused(site.url("/about"), "--id", "ice-opr")
    assert err == f"Error: a source with the id 'ice-opr' exists already in {config} ({site.url('/opr')}); nothing written: " \
                  "give another with --id\n", err
    err = refused("ftp://example.org/reports/list.txt")
    assert "sources[1].url: 'ftp://example.org/reports/list.txt' is not an http(s) URL (line " in err, err
    assert err.rstrip().endswith(f"nothing was written to {config}"), err
    assert "is not an http(s) URL" in refused("not a URL")
    assert "unknown kind 'fead'; known: congress-gov, federal-register, feed, listing, page, pdf" in \
        refused(site.url("/opr2"), "--kind", "fead")
    assert "'6 hours' is not a duration like 30m, 6h or 1d" in refused(site.url("/opr2"), "--every", "6 hours")
    err = refused(site.url("/gone"))  # no kind to tell: a 404 is not a source to add
    assert f"cannot tell the kind of {site.url('/gone')}: it answered HTTP 404; nothing written" in err, err
    assert len(site.hits("/gone")) == 1

    # the same site, but a configuration that does not allow private addresses: refused before any fetch
    private = workdir.path / "private.yaml"
    private_text = b"# no fetch settings: public sites only\ninclude_defaults: false\nsources: []\n"
    private.write_bytes(private_text)
    before = len(site.requests)
    err = refused(site.url("/opr"), path=private)
    assert "host 127.0.0.1 is a loopback address, which is refused unless fetch.allow_private_networks is true" in err, err
    assert len(site.requests) == before


def test_a_new_file_keeps_the_catalogue(workdir):
    """No configuration file yet: `add` creates ./govwatch.yaml with a header, and the built-in
    catalogue is still watched (include_defaults is true by default)."""
    created = workdir.path / "govwatch.yaml"
    local = workdir.run("add", "http://127.0.0.1:9/reports", check=False)  # private, and no file to allow it
    assert local.returncode == 2 and "fetch.allow_private_networks" in local.stderr, local.stderr
    assert not created.exists()
    taken = workdir.run("add", "https://www.ice.gov/about-ice/opr", "--id", "ice-opr", check=False)
    assert taken.returncode == 2 and "exists already in the built-in catalogue (https://www.ice.gov/" in taken.stderr, taken.stderr
    assert not created.exists()

    # a Congress.gov API URL is told by its address (nothing fetched); without a key doctor says it is not checked
    p = workdir.run("add", "https://api.congress.gov/v3", "--id", "congress-meetings", "--name", "Committee meetings",
                    check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "added source 'congress-meetings' (kind congress-gov, told from its address) to govwatch.yaml, line 6" in p.stdout, p.stdout
    assert "note: source 'congress-hearings' watches this URL already" in p.stdout, p.stdout
    assert "congress-meetings: DISABLED" in p.stdout and "GOVWATCH_CONGRESS_API_KEY" in p.stdout, p.stdout
    assert "the source was added but is not checked until that is fixed" in p.stdout, p.stdout
    text = created.read_text(encoding="utf-8")
    assert text.startswith("# govwatch configuration, created by `govwatch add`") and "include_defaults" in text.splitlines()[2]
    assert yaml.safe_load(text) == {"sources": [{"id": "congress-meetings", "name": "Committee meetings",
                                                 "url": "https://api.congress.gov/v3", "kind": "congress-gov"}]}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(created.stat().st_mode) == 0o666 & ~umask
    ok = workdir.run("validate")
    assert f"OK: govwatch.yaml: {len(builtin_catalogue()) + 1} source(s)" in ok.stdout, ok.stdout


ENTRY = {"id": "gao-reports-2", "name": "GAO: reports", "url": "https://www.gao.gov/rss/reports.xml#x", "kind": "feed"}


@pytest.mark.parametrize("text", [
    "sources: []   # none yet\ntopics: []\n",
    "sources:\ntopics: []\n",
    "database: sqlite:///state/govwatch.db\n# no sources yet",
    "sources:\r\n  - id: a\r\n    url: https://www.ice.gov/a   # crlf\r\n",
    "sources:\n- id: a\n  url: https://www.ice.gov/a\n  ignore: ['x',\n    'y']\n  name: |\n    A\n    B\n\n# the end\n",
])
def test_the_entry_is_added_as_lines_only(text):
    """Whatever form an empty or block `sources:` has, the file only gains the entry's lines (an
    empty value opened), and reads as before plus the entry."""
    from monitor.add_command import with_source

    out, line = with_source(text, ENTRY)
    old = yaml.safe_load(text) or {}
    assert yaml.safe_load(out) == {**old, "sources": list(old.get("sources") or []) + [ENTRY]}
    assert out.splitlines()[line - 1].lstrip().startswith("- id: gao-reports-2")
    kept = text.replace("sources: []", "sources: ", 1)  # an empty [] is the one thing taken out
    _only_added(kept.replace("\r\n", "\n"), out.replace("\r\n", "\n"))
    if "\r\n" in text:  # the file's line ends are kept
        assert out.count("\n") == out.count("\r\n")


def test_a_flow_list_is_not_rewritten():
    from monitor.add_command import _Unplaceable, with_source

    with pytest.raises(_Unplaceable):
        with_source("sources: [{id: a, url: 'https://www.ice.gov/a'}]\n", ENTRY)
