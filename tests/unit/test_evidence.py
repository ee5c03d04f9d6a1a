"""WARC export and capture access (monitor/evidence.py) on a scratch SQLite store: what warcio
reads back is what was fetched, with the recorded headers, the fetch time and a SHA-256 digest."""
from __future__ import annotations

import base64
import hashlib
import io
import json
from datetime import datetime, timezone

import pytest
from warcio.archiveiterator import ArchiveIterator

from monitor.evidence import EvidenceError, capture, export_warc, sha256_label, warc_date
from state.models import ChangeRecord, SnapshotRecord, SourceRecord
from state.store import Store

T0 = datetime(2026, 11, 1, 9, 30, 5, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 2, 10, 0, 0, tzinfo=timezone.utc)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF"


@pytest.fixture
def store(tmp_path):
    st = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    with st.session() as s:
        s.add(SourceRecord(id="oig", name="OIG", url="https://www.oig.dhs.gov/reports", kind="page"))
        s.flush()
        for i, (body, when, headers, ctype) in enumerate([
            (b"<html><body>before</body></html>", T0, {"content-type": "text/html; charset=utf-8", "etag": '"a1"',
                                                       "content-encoding": "gzip", "content-length": "40"}, "text/html"),
            (PDF, T1, {"content-type": "application/pdf", "last-modified": "Sun, 01 Nov 2026 08:00:00 GMT"}, "application/pdf"),
        ]):
            sha = st.put_blob(s, body)
            s.add(SnapshotRecord(source_id="oig", url=f"https://www.oig.dhs.gov/r/{i}", fetched_at=when, status=200,
                                 content_type=ctype, headers_json=json.dumps(headers), body_sha256=sha,
                                 text_sha256=st.put_blob(s, b"text"), text_chars=4))
        s.flush()
        s.add(SnapshotRecord(source_id="oig", url="https://www.oig.dhs.gov/lost", fetched_at=T1, status=200,
                             body_sha256="0" * 64))  # a row whose bytes are gone: skipped, never invented
        s.add(ChangeRecord(source_id="oig", url="https://www.oig.dhs.gov/r/1", detected_at=T1, kind="changed",
                           prev_snapshot_id=1, new_snapshot_id=2))
    return st


def read(data: bytes) -> list:
    return [(r.rec_type, r.rec_headers, r.http_headers, r.content_stream().read())
            for r in ArchiveIterator(io.BytesIO(data), check_digests="raise")]


def test_source_export_reads_back_with_headers_dates_and_digests(store):
    buf = io.BytesIO()
    assert export_warc(store, buf, source_id="oig") == 2
    data = buf.getvalue()
    assert data[:2] == b"\x1f\x8b"  # gzip members, as .warc.gz readers expect
    recs = read(data)
    assert [r[0] for r in recs] == ["warcinfo", "response", "response"]
    (_, h0, http0, b0), (_, h1, http1, b1) = recs[1], recs[2]
    assert h0.get_header("WARC-Target-URI") == "https://www.oig.dhs.gov/r/0" and h0.get_header("WARC-Date") == "2026-11-01T09:30:05Z"
    assert h1.get_header("WARC-Date") == warc_date(T1) == "2026-11-02T10:00:00Z"
    assert b0 == b"<html><body>before</body></html>" and b1 == PDF  # binary bytes survive intact
    for h, body in ((h0, b0), (h1, b1)):
        assert h.get_header("WARC-Payload-Digest") == "sha256:" + base64.b32encode(hashlib.sha256(body).digest()).decode()
        assert h.get_header("WARC-Block-Digest")  # warcio's own, verified by check_digests="raise"
    assert http0.get_statuscode() == "200" and http0.get_header("ETag") == '"a1"'
    assert http1.get_header("Last-Modified") == "Sun, 01 Nov 2026 08:00:00 GMT"
    # the stored body is decoded: no Content-Encoding claiming gzip, a Content-Length that is true
    assert http0.get_header("Content-Encoding") is None and http0.get_header("X-Govwatch-Original-Content-Encoding") == "gzip"
    assert http0.get_header("Content-Length") == str(len(b0))


def test_change_export_holds_its_two_captures(store):
    buf = io.BytesIO()
    assert export_warc(store, buf, change_id=1) == 2
    uris = [h.get_header("WARC-Target-URI") for t, h, _, _ in read(buf.getvalue()) if t == "response"]
    assert uris == ["https://www.oig.dhs.gov/r/0", "https://www.oig.dhs.gov/r/1"]


@pytest.mark.parametrize("kwargs,message", [
    ({"change_id": 99}, "no change with id 99"),
    ({"source_id": "nope"}, "no source with id 'nope'"),
    ({}, "exactly one"),
    ({"change_id": 1, "source_id": "oig"}, "exactly one"),
], ids=["unknown-change", "unknown-source", "neither", "both"])
def test_export_errors_are_clear(store, kwargs, message):
    with pytest.raises(EvidenceError, match=message):
        export_warc(store, io.BytesIO(), **kwargs)


def test_capture_has_bytes_headers_and_verified_hash(store):
    cap = capture(store, 2)
    assert cap.body == PDF and cap.sha256 == hashlib.sha256(PDF).hexdigest() and cap.verified
    assert cap.headers["content-type"] == "application/pdf"
    with pytest.raises(EvidenceError, match="raw bytes are not stored"):
        capture(store, 3)
    with pytest.raises(EvidenceError, match="no snapshot with id 42"):
        capture(store, 42)


def test_sha256_label_is_base32_of_the_digest():
    assert sha256_label(b"") == "sha256:" + base64.b32encode(hashlib.sha256(b"").digest()).decode()
    assert len(sha256_label(b"x")) == len("sha256:") + 56
