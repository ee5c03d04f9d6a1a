"""Evidence of what a page said and when: a capture's raw bytes with its recorded headers and
SHA-256, and WARC files (warcio) of a source's or a change's captures with their custody entries."""
from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from typing import BinaryIO, Iterable

from sqlalchemy import select
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from state import custody
from state.errors import GovwatchError
from state.models import ChangeRecord, SnapshotRecord, SourceRecord
from state.store import Store

# The stored body is the decoded entity (gzip/brotli already undone by the fetcher), so these
# headers would lie about the payload in a WARC; they are kept under a renamed header instead.
_TRANSPORT_HEADERS = ("content-encoding", "transfer-encoding", "content-length")


class EvidenceError(GovwatchError):
    """A capture or export was asked for something that does not exist."""


@dataclass(frozen=True)
class Capture:
    """One snapshot's raw bytes as fetched, with the response headers recorded at the time."""

    snapshot: SnapshotRecord
    body: bytes
    headers: dict[str, str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    @property
    def verified(self) -> bool:
        """The bytes still hash to the digest they were stored under."""
        return self.sha256 == self.snapshot.body_sha256


def _headers(snapshot: SnapshotRecord) -> dict[str, str]:
    try:
        data = json.loads(snapshot.headers_json or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def capture(store: Store, snapshot_id: int) -> Capture:
    with store.session() as s:
        snap = s.get(SnapshotRecord, snapshot_id)
        if snap is None:
            raise EvidenceError(f"no snapshot with id {snapshot_id}")
        body = store.get_blob(snap.body_sha256, s)
        pruned = custody.pruned_of(s, [snap.body_sha256]).get(snap.body_sha256) if body is None else None
    if pruned is not None:
        raise EvidenceError(f"snapshot {snapshot_id}: its raw bytes were deleted by `govwatch prune` on {pruned:%Y-%m-%d} "
                            f"(a capture of no change's evidence, past retention); its SHA-256 is {snap.body_sha256}")
    if body is None:
        raise EvidenceError(f"snapshot {snapshot_id}: its raw bytes are not stored")
    return Capture(snap, body, _headers(snap))


def snapshots_of_change(store: Store, change_id: int) -> list[SnapshotRecord]:
    """The captures a change was computed from: the previous and the new snapshot."""
    with store.session() as s:
        change = s.get(ChangeRecord, change_id)
        if change is None:
            raise EvidenceError(f"no change with id {change_id}")
        ids = [i for i in (change.prev_snapshot_id, change.new_snapshot_id) if i is not None]
        if not ids:
            return []
        return list(s.scalars(select(SnapshotRecord).where(SnapshotRecord.id.in_(ids)).order_by(SnapshotRecord.id)))


def snapshots_of_source(store: Store, source_id: str) -> list[SnapshotRecord]:
    with store.session() as s:
        if s.get(SourceRecord, source_id) is None:
            raise EvidenceError(f"no source with id {source_id!r}")
        q = select(SnapshotRecord).where(SnapshotRecord.source_id == source_id).order_by(SnapshotRecord.fetched_at, SnapshotRecord.id)
        return list(s.scalars(q))


def warc_date(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_label(body: bytes) -> str:
    """A WARC digest label: algorithm, colon, base32 (the form WARC 1.1 uses for sha1)."""
    return "sha256:" + base64.b32encode(hashlib.sha256(body).digest()).decode("ascii")


def _http_headers(cap: Capture) -> StatusAndHeaders:
    status = cap.snapshot.status or 200
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    pairs: list[tuple[str, str]] = []
    for k, v in sorted(cap.headers.items()):
        if k.lower() in _TRANSPORT_HEADERS:
            pairs.append((f"X-Govwatch-Original-{k.title()}", v))
        else:
            pairs.append((k.title(), v))
    if not any(k.lower() == "content-type" for k, _ in pairs) and cap.snapshot.content_type:
        pairs.append(("Content-Type", cap.snapshot.content_type))
    pairs.append(("Content-Length", str(len(cap.body))))
    return StatusAndHeaders(f"{status} {reason}", pairs, protocol="HTTP/1.1")


def custody_header(e: custody.CustodyRecord) -> str:
    """A record's entry in the chain of custody, as compact JSON: with the record's target URI,
    snapshot id and payload, anyone can recompute its hash (state/custody.entry_hash)."""
    return json.dumps({"seq": e.seq, "prev_hash": e.prev_hash, "fetched_at": e.fetched_at, "entry_hash": e.entry_hash},
                      separators=(",", ":"))


def write_warc(store: Store, snapshots: Iterable[SnapshotRecord], out: BinaryIO, *, description: str = "",
               gzip: bool = True) -> int:
    """Write a WARC (gzipped per record unless `gzip` is false): a warcinfo record, then one
    response record per capture.

    Returns the number of response records. WARC-Date is the fetch time, WARC-Payload-Digest the
    SHA-256 of the stored bytes (so the file proves what was fetched, not when it was exported),
    WARC-Govwatch-Custody the capture's entry in the chain; the warcinfo carries the chain's head.
    """
    from importlib.metadata import version

    snapshots = list(snapshots)
    with store.session() as s:
        entries = custody.entries_of(s, [x.id for x in snapshots])
        head = custody.head(s)
    writer = WARCWriter(out, gzip=gzip)
    info = {"software": f"govwatch/{version('govwatch')} (warcio)", "format": "WARC File Format 1.1",
            "description": description or "govwatch captures",
            # the log head at export: what the chain of custody held when this file was written
            "govwatch-custody-head": f"{head.seq} {head.entry_hash}" if head else "0 " + custody.GENESIS}
    writer.write_record(writer.create_warcinfo_record("govwatch.warc.gz" if gzip else "govwatch.warc", info))
    n = 0
    for snap in snapshots:
        try:
            cap = capture(store, snap.id)
        except EvidenceError:
            continue  # a snapshot row without bytes cannot be evidence; the others still are
        rec = writer.create_warc_record(
            cap.snapshot.url, "response", payload=io.BytesIO(cap.body), length=len(cap.body),
            http_headers=_http_headers(cap),
            warc_headers_dict={
                "WARC-Date": warc_date(cap.snapshot.fetched_at),
                "WARC-Payload-Digest": sha256_label(cap.body),
                "WARC-Govwatch-Source": cap.snapshot.source_id,
                "WARC-Govwatch-Snapshot": str(cap.snapshot.id),
                **({"WARC-Govwatch-Custody": custody_header(entries[snap.id])} if snap.id in entries else {}),
            },
        )
        writer.write_record(rec)
        n += 1
        # a rendered page: the HTML its server sent (beside the rendered DOM above) and its
        # screenshot, as browser crawlers archive them (resource records)
        for digest, scheme, ctype in ((snap.raw_sha256, "server-html", "text/html"), (snap.screenshot_sha256, "screenshot", "image/png")):
            data = store.get_blob(digest) if digest else None
            if data is not None:
                writer.write_record(writer.create_warc_record(
                    f"urn:{scheme}:{cap.snapshot.url}", "resource", payload=io.BytesIO(data), length=len(data),
                    warc_content_type=ctype,
                    warc_headers_dict={"WARC-Date": warc_date(cap.snapshot.fetched_at), "WARC-Payload-Digest": sha256_label(data),
                                       "WARC-Govwatch-Source": cap.snapshot.source_id,
                                       "WARC-Govwatch-Snapshot": str(cap.snapshot.id)}))
    return n


def export_warc(store: Store, out: BinaryIO, *, source_id: str | None = None, change_id: int | None = None,
                gzip: bool = True) -> int:
    """A source's (every snapshot) or a change's (previous and new snapshot) captures as WARC."""
    if (source_id is None) == (change_id is None):
        raise EvidenceError("give exactly one of a source id or a change id")
    if change_id is not None:
        snaps = snapshots_of_change(store, change_id)
        desc = f"govwatch change {change_id}: previous and new capture"
    else:
        snaps = snapshots_of_source(store, source_id)
        desc = f"govwatch source {source_id}: every capture"
    return write_warc(store, snaps, out, description=desc, gzip=gzip)
