"""Evidence: one capture (`/snapshots/{id}`) with its recorded headers, its raw bytes as an inert
download, its text, a sandboxed preview, WARC exports of a change or a source and a change's WACZ."""
from __future__ import annotations

import io

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from monitor.evidence import capture, export_warc
from monitor.wacz import export_wacz
from monitor.records import iso
from monitor.web.auth import Denied, require
from monitor.web.context import render, web_of
from monitor.web.sources import source_or_404
from state.models import SnapshotRecord

# A captured page rendered for an analyst: an opaque-origin sandbox, no scripts, nothing loaded
# from the monitored site (which would tell it who is looking), framable only by us.
PREVIEW_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
DOWNLOAD_CSP = "sandbox; default-src 'none'"
_EXTENSIONS = {"text/html": "html", "application/pdf": "pdf", "application/rss+xml": "xml", "application/atom+xml": "xml",
               "application/xml": "xml", "text/xml": "xml", "application/json": "json", "text/plain": "txt"}

router = APIRouter()


@router.get("/snapshots/{snapshot_id}", response_class=HTMLResponse)
def snapshot_page(request: Request, snapshot_id: int):
    require(request, "viewer")
    w = web_of(request)
    cap = capture(w.store, snapshot_id)
    return render(request, "snapshot.html", snap=cap.snapshot, cap=cap, headers=sorted(cap.headers.items()),
                  is_html="html" in (cap.snapshot.content_type or "").lower(),
                  source_name=w.source_names([cap.snapshot.source_id]).get(cap.snapshot.source_id, cap.snapshot.source_id))


@router.get("/snapshots/{snapshot_id}/raw")
def snapshot_raw(request: Request, snapshot_id: int):
    require(request, "viewer")
    cap = capture(web_of(request).store, snapshot_id)
    ext = _extension(cap.snapshot.content_type)
    resp = _download(cap.body, "application/octet-stream", f"snapshot-{snapshot_id}-{cap.sha256[:12]}.{ext}")
    resp.headers["X-Govwatch-SHA256"] = cap.sha256
    resp.headers["X-Govwatch-Fetched-At"] = iso(cap.snapshot.fetched_at)
    resp.headers["X-Govwatch-Content-Type"] = _header_safe(cap.snapshot.content_type)
    return resp


def _rendered_blob(request: Request, snapshot_id: int, column: str, missing: str) -> bytes:
    """A blob a rendered version keeps beside its capture (screenshot, the server's HTML); 404 without."""
    store = web_of(request).store
    with store.session() as s:
        snap = s.get(SnapshotRecord, snapshot_id)
        digest = getattr(snap, column) if snap is not None else ""
    data = store.get_blob(digest) if digest else None
    if data is None:
        raise HTTPException(404, missing)
    return data


@router.get("/snapshots/{snapshot_id}/screenshot.png")
def snapshot_screenshot(request: Request, snapshot_id: int):
    """The full-page PNG the browser took of a rendered version (404 for a page fetched over HTTP)."""
    require(request, "viewer")
    png = _rendered_blob(request, snapshot_id, "screenshot_sha256", "no screenshot of this capture (it was not rendered by the browser)")
    return Response(png, media_type="image/png", headers={"Content-Security-Policy": DOWNLOAD_CSP,
                                                          "X-Content-Type-Options": "nosniff",
                                                          "Cache-Control": "private, max-age=86400"})


@router.get("/snapshots/{snapshot_id}/server-html")
def snapshot_server_html(request: Request, snapshot_id: int):
    """A rendered version's HTML as its server sent it (the capture itself is the rendered DOM), as
    an inert download."""
    require(request, "viewer")
    raw = _rendered_blob(request, snapshot_id, "raw_sha256", "this capture was not rendered by the browser: its raw bytes are the server's answer")
    return _download(raw, "application/octet-stream", f"snapshot-{snapshot_id}-server.html")


@router.get("/snapshots/{snapshot_id}/headers.json")
def snapshot_headers(request: Request, snapshot_id: int):
    require(request, "viewer")
    cap = capture(web_of(request).store, snapshot_id)
    body = {"snapshot_id": snapshot_id, "source_id": cap.snapshot.source_id, "url": cap.snapshot.url,
            "fetched_at": iso(cap.snapshot.fetched_at), "status": cap.snapshot.status, "sha256": cap.sha256,
            "sha256_verified": cap.verified, "bytes": len(cap.body), "headers": cap.headers}
    return JSONResponse(body, headers={"Content-Disposition": f'attachment; filename="snapshot-{snapshot_id}-headers.json"'})


@router.get("/snapshots/{snapshot_id}/text")
def snapshot_text(request: Request, snapshot_id: int):
    require(request, "viewer")
    store = web_of(request).store
    with store.session() as s:
        snap = s.get(SnapshotRecord, snapshot_id)
        if snap is None:
            raise Denied(404, f"no snapshot with id {snapshot_id}")
        text = store.get_text(snap.text_sha256, s)
    return PlainTextResponse(text, headers={"Content-Security-Policy": DOWNLOAD_CSP})


@router.get("/snapshots/{snapshot_id}/preview")
def snapshot_preview(request: Request, snapshot_id: int):
    require(request, "viewer")
    cap = capture(web_of(request).store, snapshot_id)
    if "html" not in (cap.snapshot.content_type or "").lower():
        return PlainTextResponse(cap.body.decode("utf-8", "replace"), headers={"Content-Security-Policy": DOWNLOAD_CSP})
    return Response(cap.body, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"})


@router.get("/changes/{change_id}/warc")
def change_warc(request: Request, change_id: int):
    require(request, "viewer")
    buf = io.BytesIO()
    export_warc(web_of(request).store, buf, change_id=change_id)
    return _download(buf.getvalue(), "application/warc", f"govwatch-change-{change_id}.warc.gz")


@router.get("/changes/{change_id}/wacz")
def change_wacz(request: Request, change_id: int):
    require(request, "viewer")
    buf = io.BytesIO()
    export_wacz(web_of(request).store, buf, change_id=change_id)
    return _download(buf.getvalue(), "application/wacz", f"govwatch-change-{change_id}.wacz")


@router.get("/sources/{source_id}/warc")
def source_warc(request: Request, source_id: str):
    require(request, "viewer")
    store = web_of(request).store
    with store.session() as s:
        source_or_404(s, source_id)
    buf = io.BytesIO()
    export_warc(store, buf, source_id=source_id)
    # the file name is built from the id only after it was found in the database
    return _download(buf.getvalue(), "application/warc", f"govwatch-source-{_filename_safe(source_id)}.warc.gz")


def _extension(content_type: str) -> str:
    return _EXTENSIONS.get((content_type or "").split(";")[0].strip().lower(), "bin")


def _filename_safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)[:100]


def _header_safe(s: str) -> str:
    return "".join(c for c in (s or "") if 32 <= ord(c) < 127)[:200]


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{_filename_safe(filename)}"',
        "Content-Security-Policy": DOWNLOAD_CSP})
