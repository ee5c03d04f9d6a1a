"""A single PDF at a fixed URL: a silent replacement (new bytes or new text) is a change."""
from __future__ import annotations

from spiders.kinds import Fetched, Parsed, source_kinds
from state.errors import SourceError


def is_pdf(body: bytes, content_type: str) -> bool:
    # Scrapy may hand a PDF over as a text response: trust the bytes as much as the header.
    return b"%PDF-" in body[:1024] or "application/pdf" in content_type.lower()


@source_kinds.register("pdf")
class PdfSource:
    """Watch one PDF document (text via pypdf; a PDF without a text layer is recorded as such)."""

    has_items = False  # one document, never items to follow

    def parse(self, fetched: Fetched, source) -> Parsed:
        if not is_pdf(fetched.body, fetched.content_type):
            raise SourceError(f"expected a PDF, got {fetched.content_type or 'an unlabelled response'} "
                              f"starting {fetched.body[:20]!r}", url=fetched.url)
        return Parsed(document=fetched.body, content_type="application/pdf")
