"""WACZ export and offline verification (monitor/wacz.py) on a scratch SQLite store: the package
passes the `wacz` package's validator, reads back with warcio, and `verify_file` accepts it and
names the member after one flipped byte in any member."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime, timezone

import pytest
from warcio.archiveiterator import ArchiveIterator

from monitor.evidence import export_warc
from monitor.wacz import export_wacz, verify_file
from state import custody
from state.models import ChangeRecord, SnapshotRecord, SourceRecord, TopicMatchRecord
from state.store import Store

T0 = datetime(2026, 11, 1, 9, 30, 5, 123456, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 2, 10, 0, 0, tzinfo=timezone.utc)
BEFORE = b"<html><head><title>OPR</title></head><body>before</body></html>"
AFTER = b"<html><head><title>OPR</title></head><body>ICE OPR substantiated two allegations</body></html>"


@pytest.fixture
def store(tmp_path):
    st = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    with st.session() as s:
        s.add(SourceRecord(id="ice-opr", name="ICE OPR", url="https://www.ice.gov/about-ice/opr", kind="page", agency="ICE"))
        s.flush()
        for body, when in ((BEFORE, T0), (AFTER, T1)):
            snap = SnapshotRecord(source_id="ice-opr", url="https://www.ice.gov/about-ice/opr", fetched_at=when, status=200,
                                  content_type="text/html", headers_json=json.dumps({"content-type": "text/html", "etag": '"x"'}),
                                  body_sha256=st.put_blob(s, body), text_sha256=st.put_blob(s, b"text"), title="OPR")
            s.add(snap)
            s.flush()
            custody.append(s, snap)
        c = ChangeRecord(source_id="ice-opr", url="https://www.ice.gov/about-ice/opr", detected_at=T1, kind="changed",
                         prev_snapshot_id=1, new_snapshot_id=2, added_text="ICE OPR substantiated two allegations",
                         matched=True, topics="opr-outcomes", severity="high")
        s.add(c)
        s.flush()
        s.add(TopicMatchRecord(change_id=c.id, topic="opr-outcomes", score=3.0, severity="high",
                               evidence_json=json.dumps({"evidence": [{"rule": "disposition", "sentence": "ICE OPR substantiated",
                                                                       "marked": "ICE «OPR» «substantiated»"}]})))
    return st


def write(tmp_path, store, **kw) -> bytes:
    buf = io.BytesIO()
    export_wacz(store, buf, **kw)
    (tmp_path / "out.wacz").write_bytes(buf.getvalue())
    return buf.getvalue()


def test_change_package_is_valid_wacz_and_reads_back(tmp_path, store):
    data = write(tmp_path, store, change_id=1)
    p = subprocess.run([sys.executable, "-m", "wacz", "validate", "-f", str(tmp_path / "out.wacz")], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert p.returncode == 0 and "Validation succeeded" in p.stdout, p.stdout + p.stderr
    z = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(z.namelist()) == ["archive/data.warc.gz", "datapackage-digest.json", "datapackage.json", "govwatch/metadata.json",
                                    "indexes/index.cdx", "pages/pages.jsonl"]
    assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    warc = z.read("archive/data.warc.gz")
    recs = [(r.rec_type, r.rec_headers.get_header("WARC-Date"), r.content_stream().read())
            for r in ArchiveIterator(io.BytesIO(warc), check_digests="raise")]
    assert [(t, d) for t, d, _ in recs] == [("warcinfo", recs[0][1]), ("response", "2026-11-01T09:30:05Z"), ("response", "2026-11-02T10:00:00Z")]
    assert recs[1][2] == BEFORE and recs[2][2] == AFTER
    cdx = z.read("indexes/index.cdx").decode().splitlines()
    assert len(cdx) == 2 and cdx[0].startswith("gov,ice)/about-ice/opr 20261101093005 ")
    line = json.loads(cdx[1].split(" ", 2)[2])
    rec = next(iter(ArchiveIterator(io.BytesIO(warc[int(line["offset"]):int(line["offset"]) + int(line["length"])]))))
    assert rec.rec_headers.get_header("WARC-Target-URI") == "https://www.ice.gov/about-ice/opr" and rec.content_stream().read() == AFTER
    pages = [json.loads(x) for x in z.read("pages/pages.jsonl").decode().splitlines()]
    assert pages[0]["format"] == "json-pages-1.0" and [p["ts"] for p in pages[1:]] == ["2026-11-01T09:30:05Z", "2026-11-02T10:00:00Z"]
    meta = json.loads(z.read("govwatch/metadata.json"))
    assert meta["scope"] == {"change": 1} and meta["source"]["name"] == "ICE OPR"
    assert meta["changes"][0]["detected_at"] == "2026-11-02T10:00:00Z" and meta["changes"][0]["evidence"][0]["rule"] == "disposition"
    assert [c["custody"]["seq"] for c in meta["captures"]] == [1, 2]
    assert meta["captures"][0]["custody"]["fetched_at"] == "2026-11-01T09:30:05.123456Z"
    with store.session() as s:
        head = custody.head(s)
    assert meta["custody_head"]["entry_hash"] == head.entry_hash
    r = verify_file(str(tmp_path / "out.wacz"))
    assert r.problems == [] and r.kind == "WACZ" and r.captures == 2 and r.head == f"2 {head.entry_hash}"


def test_one_flipped_byte_in_any_member_is_named(tmp_path, store):
    data = write(tmp_path, store, change_id=1)
    z = zipfile.ZipFile(io.BytesIO(data))
    for info in z.infolist():
        # the member's data starts after its local header (30 bytes, the name, the extra field)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for at in (start, start + info.compress_size // 2, start + info.compress_size - 1):
            bad = bytearray(data)
            bad[at] ^= 0x01
            (tmp_path / "bad.wacz").write_bytes(bytes(bad))
            r = verify_file(str(tmp_path / "bad.wacz"))
            assert r.problems, (info.filename, at)
            assert any(info.filename in p for p in r.problems), (info.filename, r.problems)


def test_source_package_since_and_a_warc_verified_on_its_own(tmp_path, store):
    data = write(tmp_path, store, source_id="ice-opr", since=datetime(2026, 11, 2, tzinfo=timezone.utc))
    meta = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("govwatch/metadata.json"))
    assert [c["snapshot_id"] for c in meta["captures"]] == [2] and [c["id"] for c in meta["changes"]] == [1]
    buf = io.BytesIO()
    export_warc(store, buf, source_id="ice-opr")
    warc = buf.getvalue()
    (tmp_path / "a.warc.gz").write_bytes(warc)
    r = verify_file(str(tmp_path / "a.warc.gz"))
    assert r.problems == [] and r.kind == "WARC" and r.captures == 2
    bad = bytearray(warc)
    bad[len(bad) // 2] ^= 0x01
    (tmp_path / "b.warc.gz").write_bytes(bytes(bad))
    assert any("damaged gzip data" in p for p in verify_file(str(tmp_path / "b.warc.gz")).problems)


def test_a_payload_swapped_with_fresh_digests_breaks_its_custody_entry(tmp_path, store):
    """Whoever rewrites a capture and recomputes the WARC digests still cannot match the entry."""
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    export_warc(store, buf, change_id=1)
    out = io.BytesIO()
    w = WARCWriter(out, gzip=True)
    for r in ArchiveIterator(io.BytesIO(buf.getvalue())):
        body = r.content_stream().read()
        if r.rec_type != "response":
            w.write_record(w.create_warc_record("", r.rec_type, payload=io.BytesIO(body), length=len(body),
                                                warc_headers_dict=dict(r.rec_headers.headers)))
            continue
        forged = body.replace(b"substantiated two", b"did not substantiate")
        keep = {k: v for k, v in r.rec_headers.headers if k.startswith("WARC-Govwatch") or k == "WARC-Date"}
        w.write_record(w.create_warc_record(r.rec_headers.get_header("WARC-Target-URI"), "response", payload=io.BytesIO(forged),
                                            length=len(forged), http_headers=r.http_headers, warc_headers_dict=keep))
    (tmp_path / "forged.warc.gz").write_bytes(out.getvalue())
    problems = verify_file(str(tmp_path / "forged.warc.gz")).problems
    assert problems == ["record 3 (response https://www.ice.gov/about-ice/opr): the payload, URL or time do not hash to its custody entry 2"]
