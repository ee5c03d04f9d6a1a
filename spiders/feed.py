"""RSS/Atom sources, parsed with feedparser from bytes that Scrapy fetched."""
from __future__ import annotations

import html
import io
import logging
import re
import sys
from typing import Literal

import lxml.html
from lxml.etree import ParserError
from pydantic import BaseModel, ConfigDict, Field

from spiders.kinds import Fetched, Item, Parsed, source_kinds
from state.errors import SourceError

logger = logging.getLogger(__name__)


def _import_feedparser():
    """feedparser, imported with chardet and cchardet out of its reach. feedparser guesses the
    encoding of a feed that declares none with chardet whenever that happens to be installed;
    govwatch does not depend on it (a test dependency brings it in), so every installation decodes
    feeds the same way (the declared encoding, then UTF-8, then windows-1252...) and chardet's
    8.6 MB are not loaded into a long run."""
    saved = {name: sys.modules.get(name) for name in ("chardet", "cchardet")}
    sys.modules.update(dict.fromkeys(saved))  # None: `import chardet` raises ImportError
    try:
        import feedparser
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module
    return feedparser


feedparser = _import_feedparser()

_TAGS = re.compile(r"<[^>]+>")
_WS = re.compile(r"[ \t\r\f\v]+")
# Entity-expansion ("billion laughs") and external-entity payloads live in a DOCTYPE; a real feed
# never needs one, and feedparser's loose parser would otherwise still read the entries.
_DOCTYPE_ENTITY = re.compile(rb"<!DOCTYPE[^>]*\[|<!ENTITY", re.IGNORECASE)


# Site chrome some CMSs put at the top of every entry's content:encoded (the White House feed
# begins each item with its section header and navigation menu): never the entry's text.
_CHROME_TAGS = frozenset({"nav", "form", "select", "button", "script", "style", "noscript", "svg", "header", "footer",
                          "aside", "iframe"})
_CHROME_ROLES = frozenset({"navigation", "menu", "menubar", "search", "banner", "contentinfo"})
_CHROME_CLASS = re.compile(r"(?:^|[-_])(?:nav|navigation|navbar|menu|breadcrumbs?|topper|masthead|skip-link|share|social)"
                           r"(?:[-_]|$)", re.IGNORECASE)
# WordPress's footer line on every feed entry: "The post <title> appeared first on <site>."
_WP_POSTED = re.compile(r"^\s*The post .+ appeared first on .+\.\s*$", re.DOTALL)


def _is_chrome(el) -> bool:
    if not isinstance(el.tag, str):
        return False  # comments, processing instructions
    if el.tag.lower() in _CHROME_TAGS or (el.get("role") or "").lower() in _CHROME_ROLES:
        return True
    return any(_CHROME_CLASS.search(c) for c in (el.get("class") or "").split())


_HUGE_HTML = lxml.html.HTMLParser(huge_tree=True)


def strip_site_chrome(fragment: str) -> str:
    """An entry's HTML without the site's navigation, menus, search forms, page header and the
    WordPress "The post ... appeared first on ..." line; the fragment unchanged if it is not HTML."""
    if "<" not in (fragment or ""):
        return fragment or ""
    try:
        # huge_tree: a text node over libxml2's 10 MB limit is read, not silently cut (the response
        # itself is bounded by fetch.max_bytes)
        root = lxml.html.fragment_fromstring(fragment, create_parent="div", parser=_HUGE_HTML)
    except (ParserError, ValueError):
        return fragment
    for el in [el for el in root.iterdescendants() if _is_chrome(el)]:
        el.drop_tree()  # keeps the text that follows the element
    for p in root.iterdescendants("p"):
        if _WP_POSTED.match(p.text_content() or ""):
            p.drop_tree()
    return lxml.html.tostring(root, encoding="unicode")


def html_to_text(fragment: str) -> str:
    """Plain text of a feed's HTML summary (entries are short; a full extractor is not needed)."""
    text = re.sub(r"(?i)<\s*(br|/p|/div|/li|/h[1-6])\s*/?>", "\n", fragment or "")
    text = html.unescape(_TAGS.sub(" ", text))
    lines = [_WS.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def parse_feed(body: bytes, url: str, headers: dict[str, str] | None = None, max_entries: int = 200) -> tuple[str, list[Item]]:
    """Feed title and items; raises SourceError when the bytes are not a usable feed."""
    if not body.strip():
        raise SourceError("empty response where a feed was expected", url=url)
    if _DOCTYPE_ENTITY.search(body[:4096]):
        raise SourceError("feed declares XML entities (entity expansion or external entity); refused", url=url)
    d = feedparser.parse(io.BytesIO(body), response_headers={k: v for k, v in (headers or {}).items()})
    entries = d.get("entries") or []
    if not entries:
        if d.get("bozo"):
            raise SourceError(f"not a feed: {d.get('bozo_exception')}", url=url)
        if not d.get("version"):
            raise SourceError("not a feed: no RSS or Atom document found", url=url)
    elif d.get("bozo"):
        logger.info("feed %s parsed loosely: %s", url, d.get("bozo_exception"))
    items: list[Item] = []
    seen: set[str] = set()
    for e in entries[:max_entries]:
        link = e.get("link") or ""
        key = (e.get("id") or link or e.get("title") or "").strip()
        if not key or key in seen:
            continue
        seen.add(key)
        summary = ""
        if e.get("content"):
            summary = " ".join(c.get("value", "") for c in e["content"])
        summary = summary or e.get("summary") or e.get("description") or ""
        items.append(
            Item(
                key=key,
                url=link,
                title=html.unescape(e.get("title") or "").strip(),
                published=e.get("published") or e.get("updated") or "",
                summary=html_to_text(strip_site_chrome(summary)),
            )
        )
    return (d.get("feed") or {}).get("title", "") or "", items


@source_kinds.register("feed")
class FeedSource:
    """Watch an RSS or Atom feed for new entries (each new entry is a `new_item` change)."""

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        max_entries: int = Field(200, ge=1, le=5000)
        full_text: Literal["auto", "always", "never"] = "auto"  # fetch the entry's linked page or PDF
        min_summary_chars: int = Field(400, ge=0)  # "auto": follow when the summary is shorter
        max_follow: int = Field(20, ge=0, le=1000)

    def parse(self, fetched: Fetched, source) -> Parsed:
        o = getattr(source, "options", None) or self.Options()
        title, items = parse_feed(fetched.body, fetched.url, fetched.headers, o.max_entries)
        for it in items:
            wants = o.full_text == "always" or (o.full_text == "auto" and len(it.summary) < o.min_summary_chars)
            if wants and it.url.startswith(("http://", "https://")):
                it.doc_url = it.url
        return Parsed(items=items, title=title)
