"""The built-in catalogue: every entry validates, has a fixture under tests/data/catalogue/ (real
captures under real/, with provenance in MANIFEST.jsonl, or hand-made where none was found), and
its kind and selectors extract exactly the items, titles, links and dates recorded there."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from monitor.config import builtin_catalogue, load_config
from monitor.extract import compile_ignore, extract
from spiders import source_kinds
from spiders.federal_register import parse_documents
from spiders.feed import parse_feed
from spiders.kinds import FetchRequest, Fetched

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "catalogue"
SHARED_REAL = Path(__file__).resolve().parents[3] / "shared" / "real"
ENTRIES = builtin_catalogue()
IDS = [e["id"] for e in ENTRIES]
# One line per catalogue entry: its fixture, whether it is real (copied from another project's
# recording of the site, with repo/path/commit/captured) or hand-made (written for govwatch).
MANIFEST = {m["catalogue_id"]: m for m in map(json.loads, (DATA / "MANIFEST.jsonl").read_text(encoding="utf-8").splitlines())}


def provenance(entry_id: str) -> str:
    """What a test's id says of its fixture: `real:<repo>` or `hand-made`."""
    m = MANIFEST[entry_id]
    return f"real:{m['repo']}" if m["real"] else "hand-made"


PIDS = [f"{i}:{provenance(i)}" if i in MANIFEST else i for i in IDS]

# Real fragments (not pages) are served inside a page of our own making: the HTML around
# {fragment} below is HAND-MADE (the region element, the title, and the pager, whose class is a
# guess); the rows themselves are the real bytes.
WRAPPERS = {
    "dhs-oig-ice-reports": (
        '<html><head><title>Audits, Inspections, and Evaluations | Office of Inspector General</title></head><body>'
        '<main><div id="content-area">{fragment}'
        '<nav class="pager"><ul><li class="pager__item pager__item--next">'
        '<a href="?field_dhs_agency_target_id=3&amp;page=1">Next</a></li></ul></nav></div></main></body></html>'),
    "oversight-gov-reports": (
        '<html><head><title>Federal Reports | Oversight.gov</title></head><body><main>{fragment}'
        '<nav class="pager"><ul><li class="pager__item pager__item--next">'
        '<a href="?items_per_page=50&amp;page=1">Next</a></li></ul></nav></main></body></html>'),
    "dhs-press-releases": (
        '<html><head><title>Press Releases | Homeland Security</title></head><body><main>{fragment}'
        '<nav class="usa-pagination"><a class="usa-pagination__next-page" href="?page=1">Next</a></nav>'
        '</main></body></html>'),
    "ice-newsroom": (
        '<html><head><title>Newsroom | ICE</title></head><body><main><div class="view-content">{fragment}</div>'
        '<nav class="usa-pagination"><a class="usa-pagination__next-page" href="?page=1">Next</a></nav>'
        '</main></body></html>'),
}


def body_of(entry_id: str) -> bytes:
    """The bytes a catalogue entry is checked on: the recorded file, or a real fragment in its
    hand-made page (WRAPPERS)."""
    m = MANIFEST[entry_id]
    raw = (DATA / m["file"]).read_bytes()
    if m.get("kind") == "snippet":
        return WRAPPERS[entry_id].replace("{fragment}", raw.decode("utf-8")).encode("utf-8")
    return raw


# id -> (items as (title, url, date)), next page or None). Dates are what the kind reports.
LISTINGS = {
    "dhs-press-releases": ([  # real (2026-08-07): the card's heading is the title, /archive/news/ is kept
        ("Secretary Tours Facility", "https://www.dhs.gov/news/2026/08/07/secretary-tours-facility", "2026-08-07"),
        ("Face Recognition Update", "https://www.dhs.gov/archive/news/2025/01/16/face-recognition-update", "2025-01-16"),
    ], "https://www.dhs.gov/news-releases/press-releases?page=1"),
    "dhs-foia-library": ([
        ("FOIA Log, FY 2026 Quarter 3",
         "https://www.dhs.gov/sites/default/files/2026-09/26_0912_priv_foia-log-fy2026-q3.pdf", "2026-09-12T12:00:00Z"),
        ("Domestic Violent Extremism Workforce Review Records",
         "https://www.dhs.gov/publication/dve-workforce-review-records", "2026-08-30T12:00:00Z"),
    ], "https://www.dhs.gov/foia-library?page=1"),
    "ice-newsroom": ([  # real (2026-08-07): the date is words, not a <time>
        ("ICE operation nets arrests", "https://www.ice.gov/news/releases/ice-operation-nets-arrests", "August 7, 2026"),
        ("ICE HSI uncovers visa fraud scheme", "https://www.ice.gov/news/releases/hsi-fraud-scheme", "August 6, 2026"),
    ], "https://www.ice.gov/newsroom?page=1"),
    "ice-foia-library": ([
        ("OPR investigative summaries, FY2025 | Professional Responsibility",
         "https://www.ice.gov/doclib/foia/opr/2026-ICFO-10231-opr-investigative-summaries.pdf", "2026-09-10T12:00:00Z"),
        ("Detainee Death Report: Sample Name | Detention",
         "https://www.ice.gov/doclib/foia/reports/ddr-SampleName.pdf", "2026-09-02T12:00:00Z"),
        ("Release 2026-ICFO-09876: Detention contracts | Contracts",
         "https://www.ice.gov/foia/library/2026-ICFO-09876", "2026-08-28T12:00:00Z"),
    ], "https://www.ice.gov/foia/library?page=1"),
    "dhs-oig-ice-reports": ([  # real (2026-07-28): the title links straight to the PDF
        ("ICE's Electronic Health Record System Does Not Fully Address Capability Needs",
         "https://www.oig.dhs.gov/sites/default/files/assets/2026-07/OIG-26-18-Jul26.pdf", "2026-07-23T12:00:00Z"),
    ], "https://www.oig.dhs.gov/reports/audits-inspections-and-evaluations?field_dhs_agency_target_id=3&page=1"),
    "oversight-gov-reports": ([  # real (2026-08-01): the title cell, not the "View Report" link
        ("Investigative Activities Quarterly Case Summary FY 2026 Q3",
         "https://www.oversight.gov/reports/other/investigative-activities-quarterly-case-summary-fy-2026-q3",
         "2026-07-30T12:00:00Z"),
    ], "https://www.oversight.gov/reports/federal?items_per_page=50&page=1"),
    "hsgac-majority-news": ([
        ("Chairman Opens Inquiry into DHS Employee Vetting",
         "https://www.hsgac.senate.gov/media/reps/chairman-opens-inquiry-into-dhs-employee-vetting/", "09.16.2026"),
        ("Committee Advances Inspector General Nominations",
         "https://www.hsgac.senate.gov/media/reps/committee-advances-inspector-general-nominations/", "09.11.2026"),
    ], "https://www.hsgac.senate.gov/media/majority-news/page/2/"),
    "hsgac-minority-news": ([
        ("Ranking Member Presses DHS on Domestic Terrorism Definitions",
         "https://www.hsgac.senate.gov/media/dems/ranking-member-presses-dhs-on-domestic-terrorism-definitions/", "09.16.2026"),
        ("Members Request GAO Review of ICE Discipline",
         "https://www.hsgac.senate.gov/media/dems/members-request-gao-review-of-ice-discipline/", "09.11.2026"),
    ], "https://www.hsgac.senate.gov/media/minority-news/page/2/"),
    "hsgac-hearings": ([
        ("Threats to the Homeland", "https://www.hsgac.senate.gov/hearings/threats-to-the-homeland-2026/", "09.23.2026"),
        ("Oversight of the DHS Office of Inspector General",
         "https://www.hsgac.senate.gov/hearings/oversight-of-dhs-office-of-inspector-general/", "09.17.2026"),
    ], "https://www.hsgac.senate.gov/hearings/page/2/"),
    "house-oversight-releases": ([
        ("Committee Releases Staff Report on CBP Employee Misconduct",
         "https://oversight.house.gov/release/committee-releases-staff-report-on-cbp-employee-misconduct/", "2026-09-17T10:15:00-04:00"),
        ("Hearing Wrap Up: Federal Inspectors General",
         "https://oversight.house.gov/release/hearing-wrap-up-federal-inspectors-general/", "2026-09-12T16:40:00-04:00"),
    ], "https://oversight.house.gov/release/page/2/"),
}

# id -> items as (title, url, key, published)
FEEDS = {
    "ice-news-opr": [
        ("Former ICE detention officer pleads guilty to accepting bribes",
         "https://www.ice.gov/news/releases/former-ice-detention-officer-pleads-guilty-accepting-bribes",
         "91841 at https://www.ice.gov", "Tue, 15 Sep 2026 14:02:11 -0400"),
        ("ICE employee sentenced for unauthorized database searches",
         "https://www.ice.gov/news/releases/ice-employee-sentenced-unauthorized-database-searches",
         "91502 at https://www.ice.gov", "Wed, 26 Aug 2026 10:30:00 -0400"),
    ],
    "dhs-oig-reports-feed": [
        ("OIG-26-51 - ICE Did Not Consistently Close Employee Misconduct Investigations Timely",
         "https://www.oig.dhs.gov/reports/2026/ice-oversight-employee-misconduct-investigations/oig-26-51-sep26",
         "14211 at https://www.oig.dhs.gov", "Mon, 14 Sep 2026 12:00:00 -0400"),
        ("OIG-26-50 - FEMA Grant Closeout Controls",
         "https://www.oig.dhs.gov/reports/2026/fema-grant-closeout-controls/oig-26-50-sep26",
         "14198 at https://www.oig.dhs.gov", "Fri, 11 Sep 2026 12:00:00 -0400"),
    ],
    "gao-reports": [  # real (2026-09-14, the first 2 of 25 items)
        ("National Register of Historic Places: Selected States and Tribes Identified Challenges to Participation",
         "https://www.gao.gov/products/gao-26-107879", "/products/gao-26-107879", "Mon, 14 Sep 2026 07:16:14 -0400"),
        ("Testing and Evaluation Guide: Best Practices for Commercial Off-the-Shelf Systems (Exposure Draft)",
         "https://www.gao.gov/products/gao-26-108068", "/products/gao-26-108068", "Mon, 14 Sep 2026 07:11:19 -0400"),
    ],
    "whitehouse-presidential-actions": [  # real (2026-10-02, the first of 30 items)
        ("Eliminating Disease-Carrying Pests And Restoring Enjoyment Of The Great Outdoors",
         "https://www.whitehouse.gov/presidential-actions/2026/09/eliminating-disease-carrying-pests-and-restoring-enjoyment-of-the-great-outdoors/",
         "https://www.whitehouse.gov/?p=51617", "Tue, 29 Sep 2026 21:23:48 +0000"),
    ],
    "house-homeland-feed": [
        ("Chairman Announces Hearing on Threats to Immigration Enforcement Officers",
         "https://homeland.house.gov/2026/09/17/chairman-announces-hearing-on-threats-to-immigration-enforcement-officers/",
         "https://homeland.house.gov/?p=40112", "Thu, 17 Sep 2026 19:02:00 +0000"),
        ("Subcommittee Hearing: Counterterrorism Information Sharing",
         "https://homeland.house.gov/hearing/subcommittee-hearing-counterterrorism-information-sharing/",
         "https://homeland.house.gov/?p=40087", "Tue, 15 Sep 2026 14:00:00 +0000"),
    ],
}

# id -> ((items as (key, title, url, published), count, next page), expected query conditions).
# Both entries are checked on the same real response (2026-10-02, executive orders, without the
# fields[] govwatch asks for, so each document's text link is its PDF): the response shape is
# real, the filtering is the server's and is checked on the request URL.
_FR_REAL = ([
    ("2026-20321", "Inaugurating the Era of Super Intelligence",
     "https://www.federalregister.gov/documents/2026/10/02/2026-20321/inaugurating-the-era-of-super-intelligence", "2026-10-02"),
    ("2026-20320", "Eliminating Disease-Carrying Pests and Restoring Enjoyment of the Great Outdoors",
     "https://www.federalregister.gov/documents/2026/10/02/2026-20320/eliminating-disease-carrying-pests-and-restoring-enjoyment-of-the-great-outdoors",
     "2026-10-02"),
], 10, "https://www.federalregister.gov/api/v1/documents?conditions%5Bpresidential_document_type%5D%5B%5D=executive_order"
       "&format=json&order=newest&page=2&per_page=10&search_after_cursor=WzE3ODg5OTg0MDAwMDAsIjIwMjYtMTg1NzEiXQ")
FEDERAL_REGISTER = {
    "fr-dhs-documents": (_FR_REAL, [("conditions[agencies][]", "homeland-security-department")]),
    "fr-presidential-domestic-terrorism": (_FR_REAL, [("conditions[type][]", "PRESDOCU"), ("conditions[term]", '"domestic terrorism"')]),
}

# id -> (request URL, items as (key, title, url, published, details URL), next page)
CONGRESS = {
    # real list (2026-09): the entries carry no title; each NEW entry's details are asked for
    "congress-hearings": (
        "https://api.congress.gov/v3/hearing/119?format=json&limit=250&offset=0", [
            ("hearing/119/house/64431", "House hearing, jacket 64431 (119th Congress)",
             "https://www.govinfo.gov/app/details/CHRG-119hhrg64431", "2026-09-18T19:55:55Z",
             "https://api.congress.gov/v3/hearing/119/house/64431?format=json"),
            ("hearing/119/house/63127", "House hearing, jacket 63127 (119th Congress)",
             "https://www.govinfo.gov/app/details/CHRG-119hhrg63127", "2026-09-18T01:21:16Z",
             "https://api.congress.gov/v3/hearing/119/house/63127?format=json"),
            ("hearing/119/house/64404", "House hearing, jacket 64404 (119th Congress)",
             "https://www.govinfo.gov/app/details/CHRG-119hhrg64404", "2026-09-18T01:21:16Z",
             "https://api.congress.gov/v3/hearing/119/house/64404?format=json"),
        ], "https://api.congress.gov/v3/hearing/119?offset=3&limit=3&format=json"),
    # real, but of the plain /v3/committee-report/119 route (no capture of the per-committee
    # route govwatch asks for was found); served here as the answer to the committee route
    "congress-committee-reports": (
        "https://api.congress.gov/v3/committee/house/hshm00/reports?format=json&limit=250&offset=0", [
            ("H. Rept. 119-1", "H. Rept. 119-1",
             "https://www.congress.gov/congressional-report/119th-congress/house-report/1", "2025-05-27T14:12:39Z",
             "https://api.congress.gov/v3/committee-report/119/HRPT/1?format=json"),
            ("H. Rept. 119-2", "H. Rept. 119-2",
             "https://www.congress.gov/congressional-report/119th-congress/house-report/2", "2025-05-27T14:12:41Z",
             "https://api.congress.gov/v3/committee-report/119/HRPT/2?format=json"),
            ("H. Rept. 119-3", "H. Rept. 119-3",
             "https://www.congress.gov/congressional-report/119th-congress/house-report/3", "2025-05-27T14:12:42Z",
             "https://api.congress.gov/v3/committee-report/119/HRPT/3?format=json"),
        ], "https://api.congress.gov/v3/committee-report/119?offset=3&limit=3&format=json"),
}

# id -> (text the watched region must contain, boilerplate it must not)
PAGES = {
    "ice-opr": (["Office of Professional Responsibility", "Points of Contact", "OPR Annual Report, Fiscal Year 2025"],
                ["Here's how you know", "Report Crimes", "Careers", "Privacy Policy", "Last Reviewed", "enable JavaScript"]),
}

REQUIRED = {
    # what the issue asks the catalogue to cover: (kind, URL prefix or exact URL)
    "DHS news releases": ("listing", "https://www.dhs.gov/news-releases/press-releases"),
    "ICE OPR topic RSS": ("feed", "https://www.ice.gov/rss/news/358"),
    "ICE newsroom": ("listing", "https://www.ice.gov/newsroom"),
    "ICE OPR page": ("page", "https://www.ice.gov/about-ice/opr"),
    "ICE FOIA library": ("listing", "https://www.ice.gov/foia/library"),
    "DHS FOIA library": ("listing", "https://www.dhs.gov/foia-library"),
    "DHS OIG ICE reports": ("listing", "https://www.oig.dhs.gov/reports/audits-inspections-and-evaluations?field_dhs_agency_target_id=3"),
    "DHS OIG RSS": ("feed", "https://www.oig.dhs.gov/rss/reports.xml"),
    "oversight.gov reports": ("listing", "https://www.oversight.gov/reports"),
    "GAO reports RSS": ("feed", "https://www.gao.gov/rss/reports.xml"),
    "White House presidential actions": ("feed", "https://www.whitehouse.gov/presidential-actions/feed/"),
    "House Homeland Security Committee": (None, "https://homeland.house.gov/"),
    "Senate HSGAC": (None, "https://www.hsgac.senate.gov/"),
    "House Oversight": ("listing", "https://oversight.house.gov/"),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("catalogue")
    cfg = d / "govwatch.yaml"
    cfg.write_text(f"database: sqlite:///{d / 'govwatch.db'}\ninclude_defaults: true\n", encoding="utf-8")
    return {s.id: s for s in load_config(cfg, env={}).sources}


def test_every_entry_has_expectations_and_a_fixture_with_provenance():
    expected = set(LISTINGS) | set(FEEDS) | set(FEDERAL_REGISTER) | set(CONGRESS) | set(PAGES)
    assert sorted(expected) == sorted(IDS)
    assert len(IDS) == len(set(IDS))
    assert sorted(MANIFEST) == sorted(IDS), "every catalogue entry has one line in tests/data/catalogue/MANIFEST.jsonl"
    for cid, m in MANIFEST.items():
        assert (DATA / m["file"]).is_file(), m["file"]
        assert m["notes"], cid
        if m["real"]:
            assert m["file"].startswith("real/") and m["kind"] in ("capture", "snippet")
            assert m["repo"] and m["path"] and len(m["commit"]) == 40 and m["captured"], cid
        else:
            assert m["kind"] == "hand-made" and not m["file"].startswith("real/") and "HAND-MADE" in m["notes"], cid
    on_disk = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file() and p.name != "MANIFEST.jsonl"}
    assert on_disk == {m["file"] for m in MANIFEST.values()}, "fixtures without a manifest line"


def test_real_fixtures_are_the_shared_captures_byte_for_byte():
    """What /work/shared/real holds is copied unchanged (the White House feed is ours: trimmed, see
    its manifest line)."""
    if not SHARED_REAL.is_dir():
        pytest.skip(f"{SHARED_REAL} is absent (it lives outside the repository)")
    shared = {json.loads(line)["file"] for line in (SHARED_REAL / "MANIFEST.jsonl").read_text().splitlines()}
    copied = {m["file"][len("real/"):] for m in MANIFEST.values() if m["real"] and "copied_from" in m}
    assert shared == copied, "every capture and fragment of shared/real is a fixture of the suite"
    for name in shared:
        assert (DATA / "real" / name).read_bytes() == (SHARED_REAL / name).read_bytes(), name


@pytest.mark.parametrize("entry", ENTRIES, ids=PIDS)
def test_entry_validates(entry, sources):
    src = sources[entry["id"]]
    assert src.kind == entry["kind"] and src.url == entry["url"]
    assert src.name and src.agency
    assert src.every >= 3600, "polite: check at most hourly"
    assert entry["kind"] in source_kinds
    assert src.options is not None
    if src.topics is not None:
        assert set(src.topics) <= {"opr-outcomes", "extremism-definitions"}
    if src.expect_update_within is not None:
        assert src.expect_update_within > src.every
    if src.kind == "listing":
        assert src.select and src.options.items, "a listing names its region and item links"


@pytest.mark.parametrize("entry", ENTRIES, ids=PIDS)
def test_entry_extracts_its_recorded_items(entry, sources):
    """Each entry read on its fixture (the test id says `real:<repo>` or `hand-made`; the
    manifest line has the capture's path, commit and date)."""
    src = sources[entry["id"]]
    body = body_of(src.id)
    o = src.options
    if src.kind == "listing":
        want, next_page = LISTINGS[src.id]
        parsed = source_kinds.get("listing")().parse(
            Fetched(request=FetchRequest(source_id=src.id, url=src.url), url=src.url, status=200,
                    headers={"content-type": "text/html; charset=utf-8"}, body=body,
                    started_at=datetime(2026, 9, 20, tzinfo=timezone.utc), duration_ms=1), src)
        assert [(i.title, i.url, i.published) for i in parsed.items] == want
        assert all(i.key == i.url == i.doc_url and not i.fallback for i in parsed.items)
        assert parsed.blind == "", "the configured selectors read the page"
        assert parsed.next_pages == [next_page]
    elif src.kind == "feed":
        _title, items = parse_feed(body, src.url)
        assert [(i.title, i.url, i.key, i.published) for i in items] == FEEDS[src.id]
        assert all(i.summary for i in items)
    elif src.kind == "federal-register":
        (want, count, next_page), conditions = FEDERAL_REGISTER[src.id]
        items, nxt = parse_documents(body, src.url)
        assert [(i.key, i.title, i.url, i.published) for i in items[:len(want)]] == want
        assert len(items) == count
        assert nxt == next_page
        assert all(i.doc_url.startswith("https://www.govinfo.gov/content/pkg/FR-") and i.doc_url.endswith(".pdf") for i in items)
        url = source_kinds.get("federal-register")().request_url(src)
        assert url.startswith("https://www.federalregister.gov/api/v1/documents.json?")
        query = parse_qsl(urlsplit(url).query)
        assert set(conditions) <= set(query)
        assert ("order", "newest") in query
        assert {k for k, _ in query if k.startswith("conditions[")} == {k for k, _ in conditions}
    elif src.kind == "congress-gov":
        request_url, want, next_page = CONGRESS[src.id]
        kind = source_kinds.get("congress-gov")()
        assert kind.request_url(src) == request_url
        fetched = Fetched(request=FetchRequest(source_id=src.id, url=request_url), url=request_url, status=200,
                          headers={"content-type": "application/json"}, body=body,
                          started_at=datetime(2026, 9, 20, tzinfo=timezone.utc), duration_ms=1)
        parsed = kind.parse(fetched, src)
        assert [(i.key, i.title, i.url, i.published, i.doc_url) for i in parsed.items] == want
        assert parsed.next_pages == [next_page]
    elif src.kind == "page":
        must, must_not = PAGES[src.id]
        text = extract(body, content_type="text/html; charset=utf-8", url=src.url, select=src.select,
                       ignore=compile_ignore(src.ignore)).text
        for phrase in must:
            assert phrase in text
        for phrase in must_not:
            assert phrase not in text
    else:  # a new kind in the catalogue needs its own branch here
        pytest.fail(f"no extraction check for kind {src.kind!r}")


@pytest.mark.parametrize("what", sorted(REQUIRED), ids=sorted(REQUIRED))
def test_catalogue_covers_required_sources(what):
    kind, url = REQUIRED[what]
    hits = [e for e in ENTRIES if e["url"].startswith(url) and (kind is None or e["kind"] == kind)]
    assert hits, f"the catalogue has no {kind or 'entry'} for {what} ({url})"


def test_catalogue_covers_federal_register_and_congress():
    fr = {e["id"]: e for e in ENTRIES if e["kind"] == "federal-register"}
    assert any("homeland-security-department" in e.get("agencies", []) for e in fr.values())
    assert any("PRESDOCU" in e.get("types", []) and "domestic terrorism" in (e.get("term") or "") for e in fr.values())
    codes = {c for e in ENTRIES if e["kind"] == "congress-gov" for c in e.get("committees", [])}
    assert codes == {"hshm00", "ssga00", "hsgo00"}
    assert {e.get("endpoint") for e in ENTRIES if e["kind"] == "congress-gov"} == {"hearing", "committee-report"}


def test_no_key_or_token_in_catalogue_urls():
    for e in ENTRIES:
        assert "api_key" not in e["url"].lower() and "token" not in e["url"].lower(), e["id"]


def _read(src, body: bytes):
    """An entry's items as its kind reads them from a fetched body."""
    fetched = Fetched(request=FetchRequest(source_id=src.id, url=src.url), url=src.url, status=200,
                      headers={"content-type": "application/octet-stream"}, body=body,
                      started_at=datetime(2026, 9, 20, tzinfo=timezone.utc), duration_ms=1)
    if src.kind == "congress-gov":
        kind = source_kinds.get("congress-gov")()
        fetched.url = fetched.request.url = kind.request_url(src)
        return kind.parse(fetched, src).items
    if src.kind == "feed":
        return parse_feed(body, src.url)[1]
    if src.kind == "federal-register":
        return parse_documents(body, src.url)[0]
    return source_kinds.get(src.kind)().parse(fetched, src).items


@pytest.mark.parametrize("cid", sorted(c for c, m in MANIFEST.items() if m["real"]))
def test_every_real_capture_is_read_as_its_manifest_expects(cid, sources):
    """The `expected` of each real capture's manifest line (copied from shared/real: a count, or
    the path and title of each item a reader sees) holds for the catalogue entry reading it."""
    m = MANIFEST[cid]
    items = _read(sources[cid], body_of(cid))
    if isinstance(m["expected"], int):
        assert len(items) == m["expected"]
        assert all(i.title and i.url.startswith("https://") for i in items)
    else:
        assert [(urlsplit(i.url).path, i.title) for i in items] == [(e["path"], e["title"]) for e in m["expected"]]
    assert not any(i.fallback for i in items)


def test_white_house_items_lose_the_site_navigation(sources):
    """Real: every item's content:encoded begins with the section header and the navigation menu."""
    raw = body_of("whitehouse-presidential-actions").decode("utf-8")
    assert "Select Category" in raw and "wp-block-whitehouse-topper-navigation" in raw
    (item,) = _read(sources["whitehouse-presidential-actions"], body_of("whitehouse-presidential-actions"))
    assert item.summary.startswith("By the authority vested in me as President by the Constitution")
    for menu in ("Select Category", "Search", "All News", "Briefings & Statements", "Nominations & Appointments",
                 "Fact Sheets", "Presidential Actions\n", "appeared first on"):
        assert menu not in item.summary, menu
    assert item.summary.endswith("DONALD J. TRUMP\nTHE WHITE HOUSE,\nSeptember 29, 2026.")
    assert "Sec. 4" in item.summary.replace(" .", ".").replace("  ", " ")
