"""HTML pages (and documents at a fixed URL): the body is the document; the monitor extracts it."""
from __future__ import annotations

from spiders.kinds import Fetched, Parsed, source_kinds


@source_kinds.register("page")
class PageSource:
    """Watch one page (or the region `select` picks) for added and removed text."""

    has_items = False  # one document, never items to follow

    def parse(self, fetched: Fetched, source) -> Parsed:
        return Parsed(document=fetched.body, content_type=fetched.content_type)
