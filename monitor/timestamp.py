"""RFC 3161 time-stamps of the chain of custody: once a UTC day, the head entry's hash is sent to a
time stamping authority (`archive.timestamp_url`); its token is kept, and `verify` checks that
each token stamps an entry of the chain. The DER needed is small and written out here."""
from __future__ import annotations

import hashlib
import logging
import secrets
import urllib.error
import urllib.request
from datetime import datetime, timezone

from sqlalchemy import select

from state import custody
from state.custody import CustodyRecord, CustodyStampRecord

logger = logging.getLogger(__name__)

SHA256_OID = bytes.fromhex("0609608648016503040201")  # 2.16.840.1.101.3.4.2.1, as a DER OID
_GRANTED = (0, 1)  # granted, grantedWithMods


class StampError(Exception):
    """A time stamping authority's answer that is not a token for what was asked."""


# -- DER ----------------------------------------------------------------------------------
def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, position after) of the TLV at `pos`."""
    if pos + 2 > len(data):
        raise StampError("truncated DER")
    tag, n = data[pos], data[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > len(data):
            raise StampError("bad DER length")
        n, pos = int.from_bytes(data[pos:pos + k], "big"), pos + k
    if pos + n > len(data):
        raise StampError("truncated DER")
    return tag, data[pos:pos + n], pos + n


def _children(content: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, content, the whole TLV) of each element of a constructed value."""
    out, pos = [], 0
    while pos < len(content):
        tag, value, end = _read(content, pos)
        out.append((tag, value, content[pos:end]))
        pos = end
    return out


def request(message: bytes, nonce: int) -> bytes:
    """A TimeStampReq (v1) for SHA-256(message), asking for the authority's certificate."""
    imprint = _tlv(0x30, _tlv(0x30, SHA256_OID + b"\x05\x00") + _tlv(0x04, hashlib.sha256(message).digest()))
    return _tlv(0x30, _int(1) + imprint + _int(nonce) + b"\x01\x01\xff")


def tst_info(token: bytes) -> dict:
    """What a TimeStampToken (CMS SignedData around a TSTInfo) says: the imprint, the time, the nonce."""
    tag, content, _ = _read(token)
    ci = _children(content)  # ContentInfo: contentType, [0] SignedData
    if tag != 0x30 or len(ci) < 2 or ci[1][0] != 0xA0:
        raise StampError("not a CMS ContentInfo")
    sd = _children(_read(ci[1][1])[1])  # SignedData: version, digestAlgorithms, encapContentInfo, ...
    eci = _children(sd[2][1])
    if len(eci) < 2 or eci[1][0] != 0xA0:
        raise StampError("no encapsulated TSTInfo")
    _, tst, _ = _read(_read(eci[1][1])[1])  # [0] EXPLICIT OCTET STRING -> TSTInfo
    fields = _children(tst)  # version, policy, messageImprint, serialNumber, genTime, ...
    mi = _children(fields[2][1])
    alg = _children(mi[0][1])[0][2]
    info = {"imprint_alg": alg, "imprint": mi[1][1], "gen_time": "", "nonce": None}
    rest = fields[4:]
    if not rest or rest[0][0] != 0x18:
        raise StampError("no genTime")
    info["gen_time"] = rest[0][1].decode("ascii", "replace")
    for tag, value, _ in rest[1:]:
        if tag == 0x02:
            info["nonce"] = int.from_bytes(value, "big", signed=True)
            break
    return info


def response_token(resp: bytes, message: bytes, nonce: int) -> tuple[bytes, str]:
    """The token of a TimeStampResp, checked: granted, for SHA-256(message), with our nonce."""
    tag, content, _ = _read(resp)
    parts = _children(content) if tag == 0x30 else []
    if not parts:
        raise StampError("not a TimeStampResp")
    status = _children(parts[0][1])
    code = int.from_bytes(status[0][1], "big") if status else -1
    if code not in _GRANTED or len(parts) < 2:
        raise StampError(f"the authority refused (PKIStatus {code})")
    token = parts[1][2]
    info = tst_info(token)
    if info["imprint_alg"] != SHA256_OID or info["imprint"] != hashlib.sha256(message).digest():
        raise StampError("the token stamps another message")
    if info["nonce"] != nonce:
        raise StampError("the token's nonce is not ours (a replayed answer)")
    return token, info["gen_time"]


# -- the daily stamp ----------------------------------------------------------------------
def stamp_day(cfg, store, *, now: datetime | None = None) -> CustodyStampRecord | None:
    """Stamp today's chain head if today has no stamp yet (and the chain is not empty)."""
    url = cfg.archive.timestamp_url
    if not url:
        return None
    day = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    with store.session() as s:
        if s.scalar(select(CustodyStampRecord.id).where(CustodyStampRecord.day == day).limit(1)) is not None:
            return None
        head = custody.head(s)
    if head is None:
        return None
    message = head.entry_hash.encode("ascii")
    nonce = secrets.randbits(63)
    req = urllib.request.Request(url, data=request(message, nonce), method="POST",
                                 headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = resp.read(1 << 20)
        token, gen_time = response_token(answer, message, nonce)
    except (OSError, ValueError, StampError, IndexError) as e:
        logger.warning("custody time-stamp of head #%d from %s failed, retried at the next pass: %s", head.seq, url, e)
        return None
    rec = CustodyStampRecord(day=day, seq=head.seq, entry_hash=head.entry_hash, tsa_url=url, gen_time=gen_time, token=token)
    with store.session() as s:
        s.add(rec)
    logger.info("custody head #%d time-stamped by %s at %s", head.seq, url, gen_time)
    return rec


def check_stamps(session) -> tuple[int, list[str]]:
    """Each stored token stamps the entry it names, and that entry is in the chain unchanged.
    (The authority's signature is checked with its certificate: `openssl ts -verify`.)"""
    problems, n = [], 0
    for st in session.scalars(select(CustodyStampRecord).order_by(CustodyStampRecord.id)):
        n += 1
        where = f"time-stamp of {st.day} (head #{st.seq})"
        try:
            info = tst_info(bytes(st.token))
        except (StampError, IndexError) as e:
            problems.append(f"{where}: the token cannot be read ({e})")
            continue
        if info["imprint"] != hashlib.sha256(st.entry_hash.encode("ascii")).digest():
            problems.append(f"{where}: the token stamps another hash than {st.entry_hash[:16]}…")
        e = session.get(CustodyRecord, st.seq)
        if e is None or e.entry_hash != st.entry_hash:
            problems.append(f"{where}: the chain's entry {st.seq} is not the one that was stamped")
    return n, problems
