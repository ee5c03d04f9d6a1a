"""RSS/Atom sources, parsed with feedparser from bytes that Scrapy fetched."""
from __future__ import annotations

import html
import io
import logging
import re
from typing import Literal

import feedparser
from pydantic import BaseModel, ConfigDict, Field

from spiders.kinds import Fetched, Item, Parsed, source_kinds
from state.errors import SourceError

logger = logging.getLogger(__name__)

_TAGS = re.compile(r"<[^>]+>")
_WS = re.compile(r"[ \t\r\f\v]+")
# Entity-expansion ("billion laughs") and external-entity payloads live in a DOCTYPE; a real feed
# never needs one, and feedparser's loose parser would otherwise still read the entries.
_DOCTYPE_ENTITY = re.compile(rb"<!DOCTYPE[^>]*\[|<!ENTITY", re.IGNORECASE)


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
                summary=html_to_text(summary),
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
