"""The listing fallback: when the configured selectors are blind (they match nothing, or far fewer
items than the region has document links), the region's document links are still returned as
items marked `fallback`, and the kind says why it is blind. Checked on the real OIG, ICE and DHS
fragments (tests/data/catalogue/real/snippets) read with the selectors the catalogue had before
those sites were captured, and on small hand-made pages for the edge cases."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from spiders import source_kinds
from spiders.kinds import FetchRequest, Fetched
from spiders.listing import is_document_link, parse_listing, read_listing
from state.errors import ExtractError

SNIPPETS = Path(__file__).resolve().parents[2] / "tests" / "data" / "catalogue" / "real" / "snippets"
OIG = "https://www.oig.dhs.gov/reports/audits-inspections-and-evaluations?field_dhs_agency_target_id=3"


def page(fragment: str, region: str = "main") -> bytes:
    """A hand-made page around a fragment (the site's chrome is outside `region`)."""
    return (f"<html><head><title>Listing</title></head><body><header><nav><a href='/news/releases/menu-item'>Menu</a>"
            f"</nav></header><{region}>{fragment}</{region}><footer><a href='/reports/footer-report.pdf'>F</a></footer>"
            "</body></html>").encode()


def real(name: str) -> str:
    return (SNIPPETS / name).read_text(encoding="utf-8")


def test_oig_pdf_row_with_the_old_selector_is_still_caught():
    """The real OIG row links its title straight to the PDF: `td a[href*='/reports/']` (the old
    catalogue selector) matches nothing, and the PDF is still an item, marked fallback."""
    body = f"<html><body><div id='content-area'>{real('dhs-oig-ice-reports--row.html')}</div></body></html>".encode()
    r = read_listing(body, OIG, select="#content-area", items="td a[href*='/reports/']", item_row="tbody tr",
                     item_title=None, item_date="td:nth-child(3)", next_page=None)
    assert r.selector_items == 0 and r.document_links == 1
    assert r.blind == ("row selector 'tbody tr' with item selector 'td a[href*='/reports/']' matched nothing in "
                       "'#content-area'; 1 document link(s) found without the configured selectors")
    (it,) = r.items
    assert it.fallback
    assert (it.title, it.url, it.published, it.doc_url) == (
        "ICE's Electronic Health Record System Does Not Fully Address Capability Needs",
        "https://www.oig.dhs.gov/sites/default/files/assets/2026-07/OIG-26-18-Jul26.pdf", "2026-07-23T12:00:00Z",
        "https://www.oig.dhs.gov/sites/default/files/assets/2026-07/OIG-26-18-Jul26.pdf")
    assert it.summary.startswith("OIG-26-18 ICE's Electronic Health Record System")


@pytest.mark.parametrize("name, url, old, want", [
    ("ice-newsroom--listing.html", "https://www.ice.gov/newsroom",
     {"item_row": "li.usa-collection__item", "items": "a[href*='/news/releases/']", "item_date": "time"},
     [("ICE operation nets arrests", "https://www.ice.gov/news/releases/ice-operation-nets-arrests"),
      ("ICE HSI uncovers visa fraud scheme", "https://www.ice.gov/news/releases/hsi-fraud-scheme")]),
    ("dhs-press-releases--listing.html", "https://www.dhs.gov/news-releases/press-releases",
     {"item_row": ".views-row", "items": "a[href*='/news/20']", "item_date": "time[datetime]"},
     [("Secretary Tours Facility", "https://www.dhs.gov/news/2026/08/07/secretary-tours-facility"),
      ("Face Recognition Update", "https://www.dhs.gov/archive/news/2025/01/16/face-recognition-update")]),
], ids=["ice-newsroom", "dhs-press-releases"])
def test_real_listings_with_the_old_selectors_fall_back_to_their_document_links(name, url, old, want):
    r = read_listing(page(real(name)), url, select="main", item_title=None, next_page=None, **old)
    assert r.blind.endswith(f"matched nothing in 'main'; {len(want)} document link(s) found without the configured selectors")
    assert [(i.title, i.url) for i in r.items] == want  # the site's own menu and footer links are not documents
    assert all(i.fallback and i.doc_url == i.url for i in r.items)


def test_the_kind_reports_blindness_on_parsed_and_can_be_told_not_to_fall_back():
    class Src:
        id, select = "oig", "#content-area"
        options = source_kinds.get("listing").Options(items="td a[href*='/reports/']", item_row="tbody tr")

    body = f"<div id='content-area'>{real('dhs-oig-ice-reports--row.html')}</div>".encode()
    fetched = Fetched(request=FetchRequest(source_id="oig", url=OIG), url=OIG, status=200, headers={}, body=body,
                      started_at=datetime(2026, 9, 20, tzinfo=timezone.utc), duration_ms=1)
    kind = source_kinds.get("listing")()
    parsed = kind.parse(fetched, Src)
    assert parsed.blind.startswith("row selector 'tbody tr' with item selector")
    assert [i.fallback for i in parsed.items] == [True]
    Src.options = source_kinds.get("listing").Options(items="td a[href*='/reports/']", item_row="tbody tr", fallback=False)
    parsed = kind.parse(fetched, Src)
    assert parsed.items == [] and "matched nothing" in parsed.blind  # still blind, still said


def test_a_missing_region_falls_back_to_the_main_element():
    body = page("<ul><li><a href='/reports/2026/oig-26-60-oct26'>A new report</a> <time datetime='2026-10-01'>Oct 1</time></li></ul>")
    r = read_listing(body, OIG, select="#content-area", items="td a", item_row=None, item_title=None, item_date=None,
                     next_page=None)
    assert r.blind == "region selector '#content-area' matched nothing; 1 document link(s) found without the configured selectors"
    assert [(i.title, i.url, i.published, i.fallback) for i in r.items] == [
        ("A new report", "https://www.oig.dhs.gov/reports/2026/oig-26-60-oct26", "2026-10-01", True)]
    # without the fallback a missing region stays the error it always was
    with pytest.raises(ExtractError, match="selector '#content-area' matched nothing"):
        read_listing(body, OIG, select="#content-area", items="td a", item_row=None, item_title=None, item_date=None,
                     next_page=None, fallback=False)
    with pytest.raises(ExtractError):
        parse_listing(body, OIG, select="#content-area", items="td a", item_row=None, item_title=None, item_date=None,
                      next_page=None)


def test_far_fewer_items_than_document_links_is_blind_and_adds_the_missed_ones():
    rows = "".join(f"<div class='card'><a href='/news/releases/release-{n}'>Release {n}</a></div>" for n in range(6))
    body = page(f"<div class='views-row'><a href='/news/releases/release-0'>Release 0</a></div>{rows}")
    r = read_listing(body, "https://www.ice.gov/newsroom", select="main", items="a[href]", item_row=".views-row",
                     item_title=None, item_date=None, next_page=None)
    assert r.selector_items == 1 and r.document_links == 6
    assert r.blind == ("item selector 'a[href]' found 1 item(s) but the region has 6 document links; "
                       "5 document link(s) found without the configured selectors")
    assert [(i.title, i.fallback) for i in r.items] == [("Release 0", False)] + [(f"Release {n}", True) for n in range(1, 6)]


def test_working_selectors_are_not_blind_beside_a_few_other_document_links():
    rows = "".join(f"<li class='row'><a href='/news/releases/r-{n}'>R {n}</a></li>" for n in range(3))
    related = "<aside><a href='/news/releases/related-1'>Related</a></aside><p><a href='/reports/annual-2025.pdf'>Annual</a></p>"
    r = read_listing(page(f"<ul>{rows}</ul>{related}"), "https://www.ice.gov/newsroom", select="main", items="a",
                     item_row="li.row", item_title=None, item_date=None, next_page=None)
    assert r.blind == "" and [i.title for i in r.items] == ["R 0", "R 1", "R 2"] and not r.fallback_items


def test_an_empty_region_is_blind_without_items():
    r = read_listing(page("<p>No results.</p>"), OIG, select="main", items="td a", item_row="tbody tr",
                     item_title=None, item_date=None, next_page=None)
    assert r.items == [] and r.blind == "row selector 'tbody tr' with item selector 'td a' matched nothing in 'main'"


@pytest.mark.parametrize("url, is_doc", [
    ("https://www.oig.dhs.gov/sites/default/files/assets/2026-07/OIG-26-18-Jul26.pdf", True),
    ("https://www.ice.gov/doclib/foia/opr/summaries.PDF", True),
    ("https://www.ice.gov/news/releases/ice-operation-nets-arrests", True),
    ("https://www.dhs.gov/news/2026/08/07/secretary-tours-facility", True),
    ("https://www.oversight.gov/reports/audit/audit-dhs-insider-threat-program", True),
    ("https://www.ice.gov/news/releases", False),          # a section, not a document
    ("https://www.ice.gov/newsroom?page=2", False),         # the listing's own pages
    ("https://www.ice.gov/about-ice/opr", False),
    ("https://www.ice.gov/news/releases/about", False),    # no slug, year or number
], ids=lambda v: v if isinstance(v, bool) else v.split("//")[1][:50])
def test_what_counts_as_a_document_link(url, is_doc):
    assert is_document_link(url, "https://www.ice.gov/newsroom") is is_doc
