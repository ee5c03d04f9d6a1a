"""The source-kind registry and the records kinds exchange with the monitor.

One kind, one file, one registration: `@source_kinds.register("feed")` on a class with an
`Options` model (extra keys forbidden) and a `parse(fetched, source) -> Parsed` method.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from pydantic import BaseModel, ConfigDict

logger = logging.getLogger(__name__)


@dataclass
class FetchRequest:
    """What to fetch: a URL for a source, with the validators of the last good response."""

    source_id: str
    url: str
    etag: str = ""
    last_modified: str = ""
    max_bytes: int | None = None
    item_key: str = ""  # "#page-N" for page N of a listing; an item's key for its followed document
    headers: dict[str, str] = field(default_factory=dict)  # e.g. an API key: sent, never stored or logged
    meta: dict[str, Any] = field(default_factory=dict)
    render: str = ""  # "browser": rendered by Chromium (spiders/browser.py); "" plain HTTP


@dataclass
class Fetched:
    """What came back: final URL, status, headers (lower-case names), body, or an error."""

    request: FetchRequest
    url: str
    status: int | None
    headers: dict[str, str]
    body: bytes
    started_at: Any
    duration_ms: int
    error: str = ""
    screenshot: bytes | None = None  # a browser-rendered page: its full-page PNG
    raw_body: bytes | None = None  # a browser-rendered page: the HTML the server sent (`body` is the rendered DOM)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


@dataclass
class Item:
    """An entry of a feed, listing or API: keyed by id (or normalised link)."""

    key: str
    url: str = ""
    title: str = ""
    published: str = ""
    summary: str = ""
    doc_url: str = ""  # the document to fetch for full text, "" when the entry is complete
    extra: dict[str, Any] = field(default_factory=dict)  # provenance (document number, citation...)
    fallback: bool = False  # found without the configured selectors (a document link of the region)


@dataclass
class Detail:
    """A new item's own record, read by its kind from the followed document (an API's details
    endpoint): what a reader sees of the item (title, date, link), provenance, and the text to
    classify. Kinds that follow such records define `read_document(fetched, source) -> Detail`
    and `document_headers(source, url) -> dict` (headers for that request only)."""

    title: str = ""
    text: str = ""
    published: str = ""
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Parsed:
    """A kind's reading of a response: a document to extract, or a list of items (or both)."""

    document: bytes | None = None
    content_type: str = ""
    items: list[Item] | None = None
    title: str = ""
    next_pages: list[str] = field(default_factory=list)  # pagination to follow (up to the kind's max_pages)
    # Why the configured selectors are blind ("" when they are not): the item selector matched
    # nothing, or far fewer than the region's document links; a health problem (`empty`) even
    # when fallback items were found.
    blind: str = ""


class SourceKind(Protocol):
    name: str
    Options: type[BaseModel]

    def parse(self, fetched: Fetched, source: Any) -> Parsed: ...


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KindRegistry:
    """Name -> kind class; a duplicate name is a programming error, an unknown one lists the known."""

    def __init__(self) -> None:
        self._kinds: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            if name in self._kinds and self._kinds[name] is not cls:
                raise ValueError(f"source kind {name!r} registered twice ({self._kinds[name].__name__}, {cls.__name__})")
            cls.name = name
            if not hasattr(cls, "Options"):
                cls.Options = NoOptions
            self._kinds[name] = cls
            return cls

        return deco

    def get(self, name: str) -> type:
        try:
            return self._kinds[name]
        except KeyError:
            raise KeyError(f"unknown kind {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __contains__(self, name: str) -> bool:
        return name in self._kinds

    def items(self):
        return sorted(self._kinds.items())


source_kinds = KindRegistry()
