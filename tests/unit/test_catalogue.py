"""The built-in catalogue: every entry validates, has a recorded page structure under
tests/data/catalogue/, and its kind and selectors extract exactly the items recorded there."""
from __future__ import annotations

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
from spiders.listing import parse_listing

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "catalogue"
ENTRIES = builtin_catalogue()
IDS = [e["id"] for e in ENTRIES]

# id -> (items as (title, url, date)), next page or None). Dates are what the kind reports.
LISTINGS = {
    "dhs-press-releases": ([
        ("DHS Announces Workforce Integrity Review",
         "https://www.dhs.gov/news/2026/09/18/dhs-announces-workforce-integrity-review", "2026-09-18T12:00:00Z"),
        ("Statement from the Secretary on Violence Against Officers",
         "https://www.dhs.gov/news/2026/09/17/statement-secretary-violence-against-officers", "2026-09-17T16:30:00Z"),
        ("Readout of Meeting with State Homeland Security Advisors",
         "https://www.dhs.gov/news/2026/09/15/readout-meeting-state-homeland-security-advisors", "2026-09-15T14:05:00Z"),
    ], "https://www.dhs.gov/news-releases/press-releases?page=1"),
    "dhs-foia-library": ([
        ("FOIA Log, FY 2026 Quarter 3",
         "https://www.dhs.gov/sites/default/files/2026-09/26_0912_priv_foia-log-fy2026-q3.pdf", "2026-09-12T12:00:00Z"),
        ("Domestic Violent Extremism Workforce Review Records",
         "https://www.dhs.gov/publication/dve-workforce-review-records", "2026-08-30T12:00:00Z"),
    ], "https://www.dhs.gov/foia-library?page=1"),
    "ice-newsroom": ([
        ("Former ICE officer sentenced for bribery scheme",
         "https://www.ice.gov/news/releases/former-ice-officer-sentenced-bribery-scheme", "2026-09-16T12:00:00Z"),
        ("ICE arrests fugitive wanted abroad",
         "https://www.ice.gov/news/releases/ice-arrests-fugitive-wanted-abroad", "2026-09-15T12:00:00Z"),
    ], "https://www.ice.gov/newsroom?page=1"),
    "ice-foia-library": ([
        ("OPR investigative summaries, FY2025 | Professional Responsibility",
         "https://www.ice.gov/doclib/foia/opr/2026-ICFO-10231-opr-investigative-summaries.pdf", "2026-09-10T12:00:00Z"),
        ("Detainee Death Report: Sample Name | Detention",
         "https://www.ice.gov/doclib/foia/reports/ddr-SampleName.pdf", "2026-09-02T12:00:00Z"),
        ("Release 2026-ICFO-09876: Detention contracts | Contracts",
         "https://www.ice.gov/foia/library/2026-ICFO-09876", "2026-08-28T12:00:00Z"),
    ], "https://www.ice.gov/foia/library?page=1"),
    "dhs-oig-ice-reports": ([
        ("ICE Did Not Consistently Close Employee Misconduct Investigations Timely",
         "https://www.oig.dhs.gov/reports/2026/ice-oversight-employee-misconduct-investigations/oig-26-51-sep26", "09/14/2026"),
        ("Results of an Unannounced Inspection of an ICE Processing Center (Summary)",
         "https://www.oig.dhs.gov/reports/2026/unannounced-inspection-ice-processing-center/oig-26-47-unsum-aug26", "08/29/2026"),
    ], "https://www.oig.dhs.gov/reports/audits-inspections-and-evaluations?field_dhs_agency_target_id=3&page=1"),
    "oversight-gov-reports": ([
        ("Investigation of Misconduct by an ICE Supervisor",
         "https://www.oversight.gov/reports/investigation/investigation-ice-supervisor-misconduct-findings", "2026-09-15T12:00:00Z"),
        ("Audit of the DHS Insider Threat Program",
         "https://www.oversight.gov/reports/audit/audit-dhs-insider-threat-program", "2026-09-12T12:00:00Z"),
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
    "gao-reports": [
        ("DHS Employee Misconduct: Components Should Better Track Discipline Outcomes",
         "https://www.gao.gov/products/gao-26-108101", "/products/gao-26-108101", "Mon, 21 Sep 2026 07:16:14 -0400"),
        ("Domestic Terrorism: Agencies Should Clarify Categories Used to Track Incidents",
         "https://www.gao.gov/products/gao-26-108095", "/products/gao-26-108095", "Fri, 18 Sep 2026 07:11:19 -0400"),
    ],
    "whitehouse-presidential-actions": [
        ("Strengthening the Coordination of Domestic Counterterrorism Efforts",
         "https://www.whitehouse.gov/presidential-actions/2026/09/strengthening-the-coordination-of-domestic-counterterrorism-efforts/",
         "https://www.whitehouse.gov/?p=61234", "Fri, 18 Sep 2026 20:41:07 +0000"),
        ("Adjusting Imports of Processed Critical Minerals",
         "https://www.whitehouse.gov/presidential-actions/2026/09/adjusting-imports-of-processed-critical-minerals/",
         "https://www.whitehouse.gov/?p=61190", "Thu, 17 Sep 2026 22:10:00 +0000"),
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

# id -> (items as (key, title, url, date), next page, expected query conditions)
FEDERAL_REGISTER = {
    "fr-dhs-documents": ([
        ("2026-18234", "Privacy Act of 1974; System of Records: Employee Misconduct Case Records",
         "https://www.federalregister.gov/documents/2026/09/18/2026-18234/privacy-act-of-1974-system-of-records-employee-misconduct-case-records",
         "2026-09-18"),
        ("2026-18001", "Agency Information Collection Activities: Insider Threat Reporting",
         "https://www.federalregister.gov/documents/2026/09/16/2026-18001/agency-information-collection-activities-insider-threat-reporting",
         "2026-09-16"),
    ], None, [("conditions[agencies][]", "homeland-security-department")]),
    "fr-presidential-domestic-terrorism": ([
        ("2026-17950", "Strengthening the Coordination of Domestic Counterterrorism Efforts",
         "https://www.federalregister.gov/documents/2026/09/22/2026-17950/strengthening-the-coordination-of-domestic-counterterrorism-efforts",
         "2026-09-22"),
    ], "https://www.federalregister.gov/api/v1/documents.json?conditions%5Bterm%5D=%22domestic+terrorism%22"
       "&conditions%5Btype%5D%5B%5D=PRESDOCU&page=2&per_page=1",
       [("conditions[type][]", "PRESDOCU"), ("conditions[term]", '"domestic terrorism"')]),
}

# id -> (request URL, items as (key, title, url, published), next page)
CONGRESS = {
    "congress-hearings": (
        "https://api.congress.gov/v3/hearing/119?format=json&limit=250&offset=0", [
            ("hearing/119/house/61102", "House hearing, jacket 61102 (119th Congress)",
             "https://www.govinfo.gov/app/details/CHRG-119hhrg61102", "2026-09-19T10:12:30Z"),
            ("hearing/119/senate/59870", "Senate hearing, jacket 59870 (119th Congress)",
             "https://www.govinfo.gov/app/details/CHRG-119shrg59870", "2026-09-18T22:01:05Z"),
        ], "https://api.congress.gov/v3/hearing/119?offset=250&limit=250&format=json"),
    "congress-committee-reports": (
        "https://api.congress.gov/v3/committee/house/hshm00/reports?format=json&limit=250&offset=0", [
            ("H. Rept. 119-230", "H. Rept. 119-230",
             "https://www.congress.gov/congressional-report/119th-congress/house-report/230", "2026-09-10T14:12:39Z"),
        ], "https://api.congress.gov/v3/committee/house/hshm00/reports?offset=250&limit=250&format=json"),
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


def fixture_of(entry_id: str) -> Path:
    found = sorted(DATA.glob(f"{entry_id}.*"))
    assert [p.suffix for p in found] in ([".html"], [".xml"], [".json"]), \
        f"catalogue entry '{entry_id}' needs exactly one recorded page tests/data/catalogue/{entry_id}.html|xml|json"
    return found[0]


def test_every_entry_has_expectations_and_a_fixture():
    expected = set(LISTINGS) | set(FEEDS) | set(FEDERAL_REGISTER) | set(CONGRESS) | set(PAGES)
    assert sorted(expected) == sorted(IDS)
    assert len(IDS) == len(set(IDS))
    recorded = {p.name.split(".")[0] for p in DATA.iterdir()}
    assert recorded == set(IDS), "fixtures without a catalogue entry, or entries without a fixture"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
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


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_entry_extracts_its_recorded_items(entry, sources):
    src = sources[entry["id"]]
    body = fixture_of(src.id).read_bytes()
    o = src.options
    if src.kind == "listing":
        want, next_page = LISTINGS[src.id]
        _title, items, pages = parse_listing(body, src.url, select=src.select, items=o.items, item_row=o.item_row,
                                             item_title=o.item_title, item_date=o.item_date, next_page=o.next_page,
                                             same_site=o.same_site)
        assert [(i.title, i.url, i.published) for i in items] == want
        assert all(i.key == i.url == i.doc_url for i in items)
        assert pages[:1] == [next_page]
    elif src.kind == "feed":
        _title, items = parse_feed(body, src.url)
        assert [(i.title, i.url, i.key, i.published) for i in items] == FEEDS[src.id]
        assert all(i.summary for i in items)
    elif src.kind == "federal-register":
        want, next_page, conditions = FEDERAL_REGISTER[src.id]
        items, nxt = parse_documents(body, src.url)
        assert [(i.key, i.title, i.url, i.published) for i in items] == want
        assert nxt == next_page
        assert all(i.doc_url.startswith("https://www.federalregister.gov/documents/full_text/text/") for i in items)
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
        assert [(i.key, i.title, i.url, i.published) for i in parsed.items] == want
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
