"""Index pages whose links are the news: every item is a link picked by a CSS selector (with its
title and date where the page has them); new items are followed to their document (HTML or PDF)."""
from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from parsel import Selector
from pydantic import BaseModel, ConfigDict, Field

from spiders.kinds import Fetched, Item, Parsed, source_kinds
from spiders.urls import strip_tracking
from state.errors import ExtractError, SourceError


def _text(sel) -> str:
    return " ".join(" ".join(sel.xpath(".//text()").getall()).split())


def parse_listing(body: bytes, url: str, *, select: str | None, items: str, item_row: str | None, item_title: str | None,
                  item_date: str | None, next_page: str | None, same_site: bool = True, encoding: str = "utf-8") -> tuple[str, list[Item], list[str]]:
    """(page title, items in page order, next-page URLs) of an index page."""
    try:
        doc = Selector(text=body.decode(encoding, errors="replace"), base_url=url)
    except Exception as e:  # parsel/lxml on hostile bytes
        raise SourceError(f"cannot parse the listing page: {e}", url=url) from e
    region = doc.css(select) if select else [doc]
    if select and not region:
        raise ExtractError(f"selector '{select}' matched nothing", url=url)
    host = urlsplit(url).hostname
    out: list[Item] = []
    seen: set[str] = set()
    for reg in region:
        rows = reg.css(item_row) if item_row else reg.css(items)
        for row in rows:
            link = row if not item_row else (row.css(items) or [None])[0]
            if link is None:
                continue
            href = (link.attrib.get("href") or "").strip()
            if not href or href.startswith(("#", "javascript:", "mailto:", "tel:")):
                continue
            absolute = strip_tracking(urljoin(url, href))
            if not absolute.startswith(("http://", "https://")):
                continue
            if same_site and urlsplit(absolute).hostname != host:
                continue
            if absolute in seen:
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
            out.append(Item(key=absolute, url=absolute, title=title or absolute, published=date, summary=summary, doc_url=absolute))
    pages: list[str] = []
    if next_page:
        for a in doc.css(next_page):
            href = a.attrib.get("href")
            if href:
                pages.append(urljoin(url, href))
    title = _text(doc.css("title")[0]) if doc.css("title") else ""
    return title, out, pages


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

    def parse(self, fetched: Fetched, source) -> Parsed:
        o = source.options or self.Options()
        title, items, pages = parse_listing(fetched.body, fetched.url, select=source.select, items=o.items, item_row=o.item_row,
                                            item_title=o.item_title, item_date=o.item_date, next_page=o.next_page,
                                            same_site=o.same_site)
        if not o.follow:
            for it in items:
                it.doc_url = ""
        return Parsed(items=items, title=title, next_pages=pages[:1])
