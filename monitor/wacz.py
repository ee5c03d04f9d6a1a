"""WACZ packages (Web Archive Collection Zipped, Webrecorder's standard 1.1.1) of a source's or a
change's captures with govwatch's own metadata and custody entries, and the offline check of an
exported WACZ or WARC: every digest it carries, and every custody entry it holds."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from typing import BinaryIO
from urllib.parse import urlsplit

from sqlalchemy import select
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from monitor.evidence import EvidenceError, snapshots_of_change, snapshots_of_source, write_warc
from monitor.records import change_dict, iso
from state import custody
from state.models import ChangeRecord, SourceRecord
from state.store import Store, evidence_of

WACZ_VERSION = "1.1.1"
WARC_PATH = "archive/data.warc.gz"
INDEX_PATH = "indexes/index.cdx"
PAGES_PATH = "pages/pages.jsonl"
META_PATH = "govwatch/metadata.json"
CHUNK = 1 << 20


def surt(url: str) -> str:
    """The sort key of a CDX line: host reversed by label, without www., then path and query."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host.startswith("www."):
        host = host[4:]
    port = f":{parts.port}" if parts.port and parts.port not in (80, 443) else ""
    path = parts.path or "/"
    return ",".join(reversed(host.split("."))) + port + ")" + path.lower() + (f"?{parts.query.lower()}" if parts.query else "")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _index(warc: BinaryIO, titles: dict[int, str]) -> tuple[list[str], list[dict]]:
    """CDXJ lines and pages of the WARC's response records (offsets and lengths as written)."""
    lines, pages = [], []
    it = ArchiveIterator(warc)
    for rec in it:
        if rec.rec_type != "response":
            continue
        url = rec.rec_headers.get_header("WARC-Target-URI")
        date = rec.rec_headers.get_header("WARC-Date")
        sid = rec.rec_headers.get_header("WARC-Govwatch-Snapshot") or ""
        status = rec.http_headers.get_statuscode() if rec.http_headers else "200"
        mime = (rec.http_headers.get_header("Content-Type") or "").split(";")[0].strip() if rec.http_headers else ""
        digest = rec.rec_headers.get_header("WARC-Payload-Digest") or ""
        stream = rec.content_stream()
        for _ in iter(lambda: stream.read(CHUNK), b""):
            pass
        offset, length = it.get_record_offset(), it.get_record_length()
        ts = re.sub(r"\D", "", date)[:14]
        lines.append(f"{surt(url)} {ts} " + json.dumps({"url": url, "mime": mime, "status": status, "digest": digest,
                                                        "length": str(length), "offset": str(offset), "filename": "data.warc.gz"},
                                                       separators=(",", ":")))
        page = {"id": f"snapshot-{sid}", "url": url, "ts": date}
        if titles.get(int(sid or 0)):
            page["title"] = titles[int(sid)]
        pages.append(page)
    return sorted(lines), pages


def _change_record(c: ChangeRecord, matches, archives) -> dict:
    d = change_dict(c, matches, excerpt=None)
    d.update({"removed_text": c.removed_text, "diff": c.diff_text, "prev_snapshot_id": c.prev_snapshot_id,
              "new_snapshot_id": c.new_snapshot_id,
              "matches": [{"topic": m.topic, "score": m.score, "severity": m.severity, **evidence_of(m)} for m in matches],
              "archive": [custody.archive_dict(a) for a in archives]})
    return d


def export_wacz(store: Store, out: BinaryIO, *, source_id: str | None = None, change_id: int | None = None,
                since: datetime | None = None) -> int:
    """Write a WACZ of a change (its previous and new capture) or of a source (every capture,
    from `since`). Returns the number of captures."""
    if (source_id is None) == (change_id is None):
        raise EvidenceError("give exactly one of a source id or a change id")
    if change_id is not None:
        snaps = snapshots_of_change(store, change_id)
        with store.session() as s:
            changes = [s.get(ChangeRecord, change_id)]
        source_id = changes[0].source_id
        scope = {"change": change_id}
        title = f"govwatch change {change_id}"
    else:
        snaps = snapshots_of_source(store, source_id)
        if since is not None:
            snaps = [x for x in snaps if (x.fetched_at if x.fetched_at.tzinfo else x.fetched_at.replace(tzinfo=timezone.utc)) >= since]
        with store.session() as s:
            q = select(ChangeRecord).where(ChangeRecord.source_id == source_id)
            if since is not None:
                q = q.where(ChangeRecord.detected_at >= since)
            changes = list(s.scalars(q.order_by(ChangeRecord.detected_at, ChangeRecord.id)))
        scope = {"source": source_id, "since": iso(since)}
        title = f"govwatch source {source_id}" + (f" since {iso(since)}" if since else "")
    with store.session() as s:
        src = s.get(SourceRecord, source_id)
        matches = store.matches_by_change(s, [c.id for c in changes])
        archives = custody.archives_of(s, [c.id for c in changes])
        entries = custody.entries_of(s, [x.id for x in snaps])
        head = custody.head(s)
        stamps = [{"day": st.day, "seq": st.seq, "entry_hash": st.entry_hash, "tsa_url": st.tsa_url, "gen_time": st.gen_time,
                   "token_der_base64": base64.b64encode(bytes(st.token)).decode("ascii")}
                  for st in s.scalars(select(custody.CustodyStampRecord).order_by(custody.CustodyStampRecord.id))]
    with tempfile.TemporaryFile() as warc:  # a source's captures can be large: on disk, not in memory
        n = write_warc(store, snaps, warc, description=f"{title}: captures with their recorded headers")
        warc.seek(0)
        cdx, pages = _index(warc, {x.id: x.title for x in snaps})
        _package(out, warc, cdx, pages, meta_of=lambda created: {
            "format": "govwatch-evidence-1",
            "software": f"govwatch/{version('govwatch')}",
            "exported_at": created,
            "scope": scope,
            "source": {"id": source_id, "name": src.name if src else "", "url": src.url if src else "", "kind": src.kind if src else "",
                       "agency": src.agency if src else ""},
            "changes": [_change_record(c, matches[c.id], archives[c.id]) for c in changes],
            "captures": [{"snapshot_id": x.id, "url": x.url, "item_key": x.item_key, "fetched_at": iso(x.fetched_at), "status": x.status,
                          "content_type": x.content_type, "sha256": x.body_sha256, "title": x.title,
                          "custody": entries[x.id].as_dict() if x.id in entries else None} for x in snaps],
            # the chain's head when this package was written: `govwatch verify` on the store proves
            # that the entries above are still in it, unchanged
            "custody_head": head.as_dict() if head else {"seq": 0, "entry_hash": custody.GENESIS},
            # RFC 3161 tokens over the daily heads (`openssl ts -verify -token_in`, message: the entry_hash)
            "custody_timestamps": stamps,
        }, title=title, n=n)
    return n


def _package(out: BinaryIO, warc: BinaryIO, cdx: list[str], pages: list[dict], *, meta_of, title: str, n: int) -> None:
    """The ZIP: every member stored (replay tools seek into the WARC), datapackage.json last but one."""
    created = _iso_now()
    warc.seek(0)
    h, size = hashlib.sha256(), 0
    for chunk in iter(lambda: warc.read(CHUNK), b""):
        h.update(chunk)
        size += len(chunk)
    files = {
        INDEX_PATH: ("\n".join(cdx) + "\n").encode("utf-8") if cdx else b"",
        PAGES_PATH: ("\n".join(json.dumps(p, ensure_ascii=False) for p in
                               [{"format": "json-pages-1.0", "id": "pages", "title": "All Pages"}] + pages) + "\n").encode("utf-8"),
        META_PATH: json.dumps(meta_of(created), indent=2, ensure_ascii=False).encode("utf-8"),
    }
    resources = [{"name": "data.warc.gz", "path": WARC_PATH, "hash": "sha256:" + h.hexdigest(), "bytes": size}]
    resources += [{"name": path.rsplit("/", 1)[-1], "path": path, "hash": _sha(data), "bytes": len(data)} for path, data in files.items()]
    package = {
        "profile": "data-package",
        "wacz_version": WACZ_VERSION,
        "title": title,
        "description": f"{title}: {n} capture(s) with their HTTP headers, govwatch's change records and chain of custody entries",
        "created": created,
        "modified": created,
        "software": f"govwatch/{version('govwatch')}",
        "resources": resources,
    }
    if pages:
        package["mainPageUrl"], package["mainPageDate"] = pages[-1]["url"], pages[-1]["ts"]
    package_bytes = json.dumps(package, indent=2, ensure_ascii=False).encode("utf-8")
    digest = {"path": "datapackage.json", "hash": _sha(package_bytes)}
    stamp = datetime.now(timezone.utc).timetuple()[:6]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        info = zipfile.ZipInfo(WARC_PATH, date_time=stamp)
        warc.seek(0)
        with z.open(info, "w", force_zip64=size >= 2**31) as member:
            for chunk in iter(lambda: warc.read(CHUNK), b""):
                member.write(chunk)
        for path, data in [*files.items(), ("datapackage.json", package_bytes),
                           ("datapackage-digest.json", json.dumps(digest, indent=2).encode("utf-8"))]:
            z.writestr(zipfile.ZipInfo(path, date_time=stamp), data)


# -- verification of exported files ---------------------------------------------------------
@dataclass
class FileCheck:
    kind: str = ""  # WACZ | WARC
    records: int = 0
    captures: int = 0
    members: int = 0
    head: str = ""
    problems: list[str] = field(default_factory=list)


def verify_file(path: str) -> FileCheck:
    """Every digest of an exported WACZ (each member's SHA-256 against datapackage.json, that file's
    against datapackage-digest.json, then its WARC) or WARC (each record's block and payload
    digest, each capture's custody entry recomputed from the record). Read in chunks: a large
    export is never held in memory whole."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PK\x03\x04":
        return _verify_wacz(path)
    out = FileCheck(kind="WARC")
    _verify_warc(lambda: open(path, "rb"), "", out)
    return out


_SMALL = 64 << 20  # the JSON members are read whole; anything larger is not ours


def _hash_member(z: zipfile.ZipFile, name: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with z.open(name) as f:  # the member's CRC-32 is checked at its end
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def _verify_wacz(path: str) -> FileCheck:
    out = FileCheck(kind="WACZ")
    try:
        z = zipfile.ZipFile(path)
        names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        out.problems.append(f"not a readable ZIP: {e}")
        return out
    with z:
        out.members = len(names)
        hashes: dict[str, tuple[str, int]] = {}
        for name in names:
            try:
                hashes[name] = _hash_member(z, name)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error) as e:
                out.problems.append(f"member {name}: damaged ({e})")

        def small(name: str) -> bytes | None:
            if name not in hashes or hashes[name][1] > _SMALL:
                return None
            return z.read(name)

        raw = small("datapackage.json")
        if raw is None:
            out.problems.append("datapackage.json: missing" if "datapackage.json" not in names else "datapackage.json: unreadable")
            return out
        try:
            digest = json.loads(small("datapackage-digest.json") or b"")
            if digest.get("path") != "datapackage.json" or digest.get("hash") != _sha(raw):
                out.problems.append(f"datapackage.json: its SHA-256 {_sha(raw)} does not match datapackage-digest.json ({digest.get('hash')})")
        except (ValueError, AttributeError) as e:
            out.problems.append(f"datapackage-digest.json: missing or not JSON ({e})")
        try:
            package = json.loads(raw)
            listed = {r["path"]: r for r in package["resources"]}
        except (ValueError, KeyError, TypeError) as e:
            out.problems.append(f"datapackage.json: not a data package ({e})")
            return out
        for name in names:
            if name not in listed and name not in ("datapackage.json", "datapackage-digest.json"):
                out.problems.append(f"member {name}: not listed in datapackage.json")
        for p, r in listed.items():
            if p not in names:
                out.problems.append(f"{p}: listed in datapackage.json but missing")
                continue
            if p not in hashes:
                continue  # damaged: reported above
            sha, size = hashes[p]
            if r.get("hash") != sha:
                out.problems.append(f"{p}: its SHA-256 {sha} does not match datapackage.json ({r.get('hash')})")
            if r.get("bytes") is not None and r.get("bytes") != size:
                out.problems.append(f"{p}: {size} bytes, datapackage.json says {r.get('bytes')}")
        for p in listed:
            if p.startswith("archive/") and p in hashes:
                _verify_warc(lambda p=p: z.open(p), f"{p}: ", out)
        meta = small(META_PATH)
        if meta is not None:
            try:
                m = json.loads(meta)
                out.head = f"{m['custody_head']['seq']} {m['custody_head']['entry_hash']}"
                for cap in m.get("captures", []):
                    e = cap.get("custody")
                    if e and (custody.recompute(e) != e["entry_hash"] or e["body_sha256"] != cap["sha256"]):
                        out.problems.append(f"{META_PATH}: the custody entry of snapshot {cap['snapshot_id']} does not hash to its entry_hash")
            except (ValueError, KeyError, TypeError) as e:
                out.problems.append(f"{META_PATH}: not govwatch metadata ({e})")
    return out


def _verify_warc(opener, where: str, out: FileCheck) -> None:
    """`opener()` gives a fresh binary stream of the WARC (read twice: gzip CRCs, then records)."""
    with opener() as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        try:
            with opener() as f, gzip.GzipFile(fileobj=f) as g:  # every member's CRC-32 and length
                for _ in iter(lambda: g.read(CHUNK), b""):
                    pass
        except (OSError, EOFError, zlib.error) as e:
            out.problems.append(f"{where}damaged gzip data ({e})")
            return
    with opener() as f:
        it = ArchiveIterator(f, check_digests=True)
        try:
            for rec in it:
                out.records += 1
                h = rec.rec_headers
                name = f"{where}record {out.records} ({rec.rec_type} {h.get_header('WARC-Target-URI') or ''})".replace(" )", ")")
                payload_sha, head_bytes, stream = hashlib.sha256(), b"", rec.content_stream()
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    payload_sha.update(chunk)
                    if rec.rec_type == "warcinfo" and len(head_bytes) < 65536:
                        head_bytes += chunk
                for p in rec.digest_checker.problems:
                    out.problems.append(f"{name}: {p}")
                if rec.rec_type == "warcinfo":
                    m = re.search(rb"govwatch-custody-head: (\S+ \S+)", head_bytes)
                    if m and not out.head:
                        out.head = m.group(1).decode()
                if rec.rec_type != "response":
                    continue
                out.captures += 1
                if not h.get_header("WARC-Payload-Digest"):
                    out.problems.append(f"{name}: no payload digest")
                c = h.get_header("WARC-Govwatch-Custody")
                if c:
                    try:
                        e = json.loads(c)
                        want = custody.entry_hash(int(e["seq"]), e["prev_hash"], int(h.get_header("WARC-Govwatch-Snapshot") or 0),
                                                  h.get_header("WARC-Target-URI") or "", e["fetched_at"], payload_sha.hexdigest())
                        if want != e["entry_hash"]:
                            out.problems.append(f"{name}: the payload, URL or time do not hash to its custody entry {e['seq']}")
                    except (ValueError, KeyError, TypeError) as err:
                        out.problems.append(f"{name}: unreadable custody entry ({err})")
        except (ArchiveLoadFailed, OSError, EOFError, ValueError, zlib.error) as e:
            out.problems.append(f"{where}unreadable after record {out.records}: {e}")
