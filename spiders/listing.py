"""Index pages whose links are the news: every item is a link picked by a CSS selector (with its
title and date where the page has them); new items are followed to their document (HTML or PDF).
When the configured selectors go blind, links to documents in the region are still found (fallback)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from parsel import Selector
from pydantic import BaseModel, ConfigDict, Field

from spiders.kinds import Fetched, Item, Parsed, source_kinds
from spiders.urls import strip_tracking
from state.errors import ExtractError, SourceError

# A document link, for the fallback: a file (PDF, Word, spreadsheet...) or a page under a path
# segment that publishes documents, with something after it (a slug, a year, a number).
_DOC_FILE = re.compile(r"\.(pdf|docx?|xlsx?|csv|pptx?|rtf|txt|zip)$", re.IGNORECASE)
_DOC_SECTION = re.compile(
    r"/(reports?|news|releases?|press-releases?|news-releases?|publications?|documents?|doclib|library|foia|"
    r"hearings?|media|statements?|letters?|testimony|audits?|investigations?|inspections?|evaluations?|"
    r"alerts?|memos?|memoranda|orders?|directives?|guidance|products|archive|files|assets)/",
    re.IGNORECASE)
# Containers whose links are the site's chrome, never documents, even inside the region.
_CHROME = ("ancestor::*[self::nav or self::header or self::footer or self::aside or self::form or @role='navigation'"
           " or @role='search' or @role='banner' or @role='contentinfo']")
# The region searched when the configured `select` matches nothing.
_MAIN_REGIONS = ("main", "[role=main]", "#main-content", "#main", "#content", "body")
# Fallback items are added when the configured selectors find fewer than this share of the
# region's document links (and at least MIN_MISSED of them are missed).
COVERAGE = 1 / 3
MIN_MISSED = 3


def _text(sel) -> str:
    return " ".join(" ".join(sel.xpath(".//text()").getall()).split())


@dataclass
class ListingRead:
    """One listing page as read: items in page order (configured ones, then fallback ones), the
    next-page URLs, and `blind`: why the configured selectors are blind ("" when they are not)."""

    title: str
    items: list[Item]
    pages: list[str]
    blind: str = ""
    selector_items: int = 0  # items the configured selectors found
    document_links: int = 0  # document links in the region (what the fallback looks for)
    fallback_items: list[Item] = field(default_factory=list)


def _absolute(url: str, href: str | None, host: str | None, same_site: bool) -> str:
    href = (href or "").strip()
    if not href or href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
        return ""
    absolute = strip_tracking(urljoin(url, href))
    if not absolute.startswith(("http://", "https://")):
        return ""
    if same_site and urlsplit(absolute).hostname != host:
        return ""
    return absolute


def is_document_link(absolute: str, page_url: str) -> bool:
    """A link the fallback takes for a document: a file, or a page deeper than a publishing section
    (`/reports/2026/x`, `/news/releases/x`), never the listing itself or one of its pages."""
    parts, page = urlsplit(absolute), urlsplit(page_url)
    path = parts.path or "/"
    if (parts.hostname, path.rstrip("/")) == (page.hostname, (page.path or "/").rstrip("/")):
        return False  # the listing, another page or another filter of it
    if _DOC_FILE.search(path):
        return True
    m = _DOC_SECTION.search(path)
    if not m:
        return False
    rest = path[m.end():].strip("/")
    return bool(rest) and bool(re.search(r"[-_\d]", rest.split("/")[-1]))


def _document_links(region: list, url: str, host: str | None, same_site: bool) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    seen: set[str] = set()
    for reg in region:
        for a in reg.css("a[href]"):
            if a.xpath(_CHROME):
                continue
            absolute = _absolute(url, a.attrib.get("href"), host, same_site)
            if absolute and absolute not in seen and is_document_link(absolute, url):
                seen.add(absolute)
                out.append((absolute, a))
    return out


def _fallback_item(absolute: str, a) -> Item:
    heading = a.css("h1, h2, h3, h4, h5, h6")  # a card whose whole body is the link: its heading
    title = _text(heading[0]) if heading else ""
    title = title or _text(a) or (a.attrib.get("title") or "").strip() or absolute
    row = a.xpath("ancestor::*[self::tr or self::li or self::article][1]")
    date = ""
    if row:
        t = row[0].css("time")
        if t:
            date = t[0].attrib.get("datetime") or _text(t[0])
    summary = _text(row[0]) if row else ""
    return Item(key=absolute, url=absolute, title=title, published=date, summary="" if summary == title else summary,
                doc_url=absolute, fallback=True)


def read_listing(body: bytes, url: str, *, select: str | None, items: str, item_row: str | None, item_title: str | None,
                 item_date: str | None, next_page: str | None, same_site: bool = True, encoding: str = "utf-8",
                 fallback: bool = True) -> ListingRead:
    """Read one listing page; see ListingRead. Without `fallback`, a region that is missing raises
    ExtractError as before and no fallback items are made (`blind` still says what went wrong)."""
    try:
        doc = Selector(text=body.decode(encoding, errors="replace"), base_url=url)
    except Exception as e:  # parsel/lxml on hostile bytes
        raise SourceError(f"cannot parse the listing page: {e}", url=url) from e
    region = doc.css(select) if select else [doc]
    blind = ""
    if select and not region:
        if not fallback:
            raise ExtractError(f"selector '{select}' matched nothing", url=url)
        blind = f"region selector '{select}' matched nothing"
        region = next((doc.css(s) for s in _MAIN_REGIONS if doc.css(s)), [doc])[:1]
    host = urlsplit(url).hostname
    out: list[Item] = []
    seen: set[str] = set()
    if not blind:
        for reg in region:
            rows = reg.css(item_row) if item_row else reg.css(items)
            for row in rows:
                link = row if not item_row else (row.css(items) or [None])[0]
                if link is None:
                    continue
                absolute = _absolute(url, link.attrib.get("href"), host, same_site)
                if not absolute or absolute in seen:
                    continue
                seen.add(absolute)
                title = _text(row.css(item_title)[0]) if item_title and row.css(item_title) else _text(link)
                date = ""
                if item_date:
                    d = row.css(item_date)
                    if d:
                        date = d[0].attrib.get("datetime") or _text(d[0])
                summary = _text(row) if item_row else ""
                if summary == title:
                    summary = ""
                out.append(Item(key=absolute, url=absolute, title=title or absolute, published=date, summary=summary,
                                doc_url=absolute))
    found = len(out)
    docs = _document_links(region, url, host, same_site)
    missed = [(u, a) for u, a in docs if u not in seen]
    extra: list[Item] = []
    if not blind and not out:
        what = f"row selector '{item_row}' with item selector '{items}'" if item_row else f"item selector '{items}'"
        blind = f"{what} matched nothing" + (f" in '{select}'" if select else "")
    elif not blind and len(missed) >= MIN_MISSED and found < COVERAGE * len(docs):
        blind = (f"item selector '{items}' found {found} item(s) but the region has {len(docs)} document links")
    if blind and fallback:
        extra = [_fallback_item(u, a) for u, a in missed]
        if extra:
            blind += f"; {len(extra)} document link(s) found without the configured selectors"
    pages: list[str] = []
    if next_page:
        for a in doc.css(next_page):
            href = a.attrib.get("href")
            if href:
                pages.append(urljoin(url, href))
    title = _text(doc.css("title")[0]) if doc.css("title") else ""
    return ListingRead(title=title, items=out + extra, pages=pages, blind=blind, selector_items=found,
                       document_links=len(docs), fallback_items=extra)


def parse_listing(body: bytes, url: str, *, select: str | None, items: str, item_row: str | None, item_title: str | None,
                  item_date: str | None, next_page: str | None, same_site: bool = True, encoding: str = "utf-8",
                  fallback: bool = False) -> tuple[str, list[Item], list[str]]:
    """(page title, items in page order, next-page URLs) of an index page: the configured selectors
    only unless `fallback` (then a missing region is not an error; see read_listing)."""
    r = read_listing(body, url, select=select, items=items, item_row=item_row, item_title=item_title, item_date=item_date,
                     next_page=next_page, same_site=same_site, encoding=encoding, fallback=fallback)
    return r.title, r.items, r.pages


@source_kinds.register("listing")
class ListingSource:
    """Watch an index page (OIG reports, FOIA library, press releases) for new and removed documents."""

    tracks_removals = True  # an item gone from the middle of the listing is a `removed` change
    # options that are CSS selectors (read with parsel): compiled when the configuration loads
    selector_options = ("items", "item_row", "item_title", "item_date", "next_page")

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: str = "a[href]"
        item_row: str | None = None
        item_title: str | None = None
        item_date: str | None = None
        next_page: str | None = None
        max_pages: int = Field(1, ge=1, le=50)
        follow: bool = True
        max_follow: int = Field(20, ge=0, le=1000)
        same_site: bool = True
        fallback: bool = True  # blind selectors: still take the region's document links (marked fallback)

    def parse(self, fetched: Fetched, source) -> Parsed:
        o = source.options or self.Options()
        r = read_listing(fetched.body, fetched.url, select=source.select, items=o.items, item_row=o.item_row,
                         item_title=o.item_title, item_date=o.item_date, next_page=o.next_page,
                         same_site=o.same_site, fallback=o.fallback)
        if not o.follow:
            for it in r.items:
                it.doc_url = ""
        return Parsed(items=r.items, title=r.title, next_pages=r.pages[:1], blind=r.blind)
