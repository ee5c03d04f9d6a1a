"""Exports of the change log: `/changes.json` and `/changes.csv` (the filters of the page) and the
Atom feed of matched changes (`/feed.atom`, per topic with `?topic=`)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from monitor import records
from monitor.records import change_dict, iso
from monitor.web.auth import Denied, require
from monitor.web.context import web_of
from monitor.web.presentation import safe_url
from monitor.queries import Filters, page_of_changes
from state.models import as_utc
from state.store import evidence_of

EXPORT_LIMIT = 5000
FEED_ENTRIES = 100
ATOM = "http://www.w3.org/2005/Atom"

router = APIRouter()


def _export_rows(request: Request, excerpt: int | None = 2000) -> list[dict]:
    require(request, "viewer")
    w = web_of(request)
    f = Filters.parse(request.query_params)
    limit = request.query_params.get("limit", "")
    n = int(limit) if limit.isdigit() and 0 < int(limit) <= 50_000 else EXPORT_LIMIT
    rows = page_of_changes(w.store, f, n, (f.page - 1) * n).rows
    names = w.source_names({r.change.source_id for r in rows})
    return [change_dict(r.change, r.matches, r.state, names.get(r.change.source_id, ""), excerpt=excerpt) for r in rows]


@router.get("/changes.json")
def changes_json(request: Request):
    return JSONResponse(_export_rows(request))


@router.get("/changes.csv")
def changes_csv(request: Request):
    """The same CSV as `govwatch changes --format csv`: its columns, text never cut, cells escaped."""
    return Response(records.changes_csv(_export_rows(request, excerpt=None)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="govwatch-changes.csv"'})


@router.get("/feed.atom")
def feed(request: Request, topic: str = ""):
    require(request, "viewer")
    w = web_of(request)
    if topic and topic not in w.topic_title:
        raise Denied(404, f"no topic '{topic}'; known: {', '.join(w.topic_title)}")
    f = Filters(topic=topic, matched=True)
    rows = page_of_changes(w.store, f, FEED_ENTRIES, 0).rows
    # Never from the request (its Host header is the client's to choose): public_url, or relative.
    base = w.public_url
    return Response(_atom(rows, topic, base, w.source_names({r.change.source_id for r in rows}), w.topic_title), media_type="application/atom+xml; charset=utf-8")


def _xml_text(s: str) -> str:
    """XML 1.0 cannot carry most control characters; captured text may contain them."""
    return "".join(c for c in s if c in "\t\n\r" or (ord(c) >= 32 and not 0xD800 <= ord(c) <= 0xDFFF and c not in "\ufffe\uffff"))


def _atom(rows, topic: str, base: str, names: dict[str, str], topic_title: dict[str, str]) -> bytes:
    """An Atom 1.0 feed of matched changes; ids are stable tag: URIs, so readers never repeat one.
    Links are `base` + path: absolute with public_url, else relative to the feed's own URL."""
    ET.register_namespace("", ATOM)
    q = lambda t: f"{{{ATOM}}}{t}"  # noqa: E731
    feed = ET.Element(q("feed"))
    ET.SubElement(feed, q("id")).text = f"tag:govwatch,2026:feed:{topic or 'all'}"
    ET.SubElement(feed, q("title")).text = "govwatch: " + (topic_title.get(topic, topic) if topic else "matched changes")
    newest = max((as_utc(r.change.detected_at) for r in rows), default=datetime(2026, 1, 1, tzinfo=timezone.utc))
    ET.SubElement(feed, q("updated")).text = iso(newest)
    ET.SubElement(feed, q("link"), rel="self", href=base + "/feed.atom" + (f"?{urlencode({'topic': topic})}" if topic else ""))
    ET.SubElement(feed, q("link"), rel="alternate", type="text/html", href=base + "/" + (f"?{urlencode({'topic': topic, 'matched': '1'})}" if topic else "?matched=1"))
    ET.SubElement(ET.SubElement(feed, q("author")), q("name")).text = "govwatch"
    for r in rows:
        c, ms = r.change, r.matches
        e = ET.SubElement(feed, q("entry"))
        ET.SubElement(e, q("id")).text = f"tag:govwatch,2026:change:{c.id}"
        topics = ", ".join(m.topic for m in ms)
        ET.SubElement(e, q("title")).text = _xml_text(f"[{topics}] {names.get(c.source_id, c.source_id)}: {c.title or c.kind}")
        ET.SubElement(e, q("updated")).text = iso(c.detected_at)
        ET.SubElement(e, q("published")).text = iso(c.detected_at)
        ET.SubElement(e, q("link"), rel="alternate", type="text/html", href=f"{base}/changes/{c.id}")
        if safe_url(c.url):
            ET.SubElement(e, q("link"), rel="related", href=c.url)
        for m in ms:
            ET.SubElement(e, q("category"), term=m.topic, label=topic_title.get(m.topic, m.topic))
        lines = [f"{c.kind} on {names.get(c.source_id, c.source_id)} ({c.source_id}), detected {iso(c.detected_at)}",
                 f"URL: {c.url}"]
        for m in ms:
            lines.append(f"{m.topic}: severity {m.severity}, score {m.score:g}")
            lines += ["  " + ev.get("sentence", "") for ev in evidence_of(m)["evidence"]]
        lines.append("")
        lines.append(" ".join(c.added_text.split())[:1000])
        # type="text": feed readers show it as text, so captured markup cannot run in them either.
        ET.SubElement(e, q("summary"), type="text").text = _xml_text("\n".join(lines))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
