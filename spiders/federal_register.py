"""The Federal Register documents API (JSON, no key): agency/term/type conditions, paging, and
each document's provenance (number, type, dates, citation, links); full text from raw_text_url."""
from __future__ import annotations

import json
import time
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from spiders.jsondoc import load_json
from spiders.kinds import Fetched, Item, Parsed, source_kinds
from state.errors import SourceError

API = "https://www.federalregister.gov/api/v1/documents.json"
FIELDS = ["abstract", "action", "agencies", "citation", "document_number", "html_url", "pdf_url", "publication_date",
          "raw_text_url", "signing_date", "subtype", "title", "type", "excerpts"]


def build_url(base: str, o) -> str:
    """The API query for the options; a URL that already has a query is used as it is."""
    if urlsplit(base).query:
        return base
    q: list[tuple[str, str]] = [("per_page", str(o.per_page)), ("order", "newest")]
    q += [("fields[]", f) for f in FIELDS]
    q += [("conditions[agencies][]", a) for a in o.agencies]
    q += [("conditions[type][]", t) for t in o.types]
    q += [("conditions[presidential_document_type][]", t) for t in o.presidential_document_types]
    if o.term:
        q.append(("conditions[term]", o.term))
    if o.cache_bust:
        # The API sits behind a shared cache despite no-store (sources.md): vary the URL per hour.
        q.append(("_", str(int(time.time() // 3600))))
    return f"{base}?{urlencode(q)}"


def parse_documents(body: bytes, url: str) -> tuple[list[Item], str | None]:
    data = load_json(body, api="Federal Register API", url=url)
    if not isinstance(data, dict):
        raise SourceError("Federal Register API: expected a JSON object", url=url)
    if data.get("errors"):
        raise SourceError(f"Federal Register API error: {json.dumps(data['errors'])[:300]}", url=url)
    results = data.get("results", [])
    if not isinstance(results, list):
        raise SourceError("Federal Register API: 'results' is not a list", url=url)
    items = []
    for r in results:
        if not isinstance(r, dict) or not r.get("document_number"):
            continue
        agencies = [a.get("name") or a.get("raw_name") or "" for a in r.get("agencies") or [] if isinstance(a, dict)]
        provenance = {k: r.get(k) for k in ("document_number", "type", "subtype", "publication_date", "signing_date",
                                             "citation", "html_url", "pdf_url", "raw_text_url", "action") if r.get(k)}
        if agencies:
            provenance["agencies"] = agencies
        summary = " ".join(x for x in (str(r.get("abstract") or ""), str(r.get("action") or "")) if x).strip()
        items.append(Item(
            key=str(r["document_number"]),
            url=str(r.get("html_url") or r.get("pdf_url") or ""),
            title=str(r.get("title") or r["document_number"]),
            published=str(r.get("publication_date") or ""),
            summary=summary,
            doc_url=str(r.get("raw_text_url") or r.get("pdf_url") or ""),
            extra=provenance,
        ))
    nxt = data.get("next_page_url")
    return items, (str(nxt) if isinstance(nxt, str) and nxt.startswith("http") else None)


@source_kinds.register("federal-register")
class FederalRegisterSource:
    """Watch a Federal Register API search (agencies, terms, document types) for new documents."""

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        agencies: list[str] = []
        term: str | None = None
        types: list[str] = []
        presidential_document_types: list[str] = []
        per_page: int = Field(50, ge=1, le=1000)
        max_pages: int = Field(2, ge=1, le=20)
        follow: bool = True
        max_follow: int = Field(20, ge=0, le=1000)
        cache_bust: bool = True

    def request_url(self, source) -> str:
        return build_url(source.url, source.options or self.Options())

    def parse(self, fetched: Fetched, source) -> Parsed:
        o = source.options or self.Options()
        items, nxt = parse_documents(fetched.body, fetched.url)
        if not o.follow:
            for it in items:
                it.doc_url = ""
        return Parsed(items=items, title="Federal Register documents", next_pages=[nxt] if nxt else [])
