"""The chain of custody (state/custody.py) on a scratch SQLite store: an untouched store verifies;
bytes changed behind its back, an edited or deleted entry, an edited snapshot row are each named."""
from __future__ import annotations

import zlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, update

from state import custody
from state.custody import CustodyRecord, verify_store
from state.models import BlobRecord, SnapshotRecord, SourceRecord
from state.store import Store, sha256

T0 = datetime(2026, 11, 1, 9, 30, 5, 250000, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    st = Store(f"sqlite:///{tmp_path / 'gw.db'}")
    with st.session() as s:
        s.add(SourceRecord(id="oig", url="https://www.oig.dhs.gov/reports"))
        s.flush()
        for i in range(3):
            body = f"<html>report list version {i}</html>".encode()
            snap = SnapshotRecord(source_id="oig", url=f"https://www.oig.dhs.gov/reports?page={i}", fetched_at=T0 + timedelta(hours=i),
                                  body_sha256=st.put_blob(s, body), text_sha256=st.put_blob(s, f"version {i}".encode()))
            s.add(snap)
            s.flush()
            custody.append(s, snap)
    return st


def check(store):
    with store.session() as s:
        return verify_store(s)


def test_an_untouched_store_verifies_and_entries_link(store):
    r = check(store)
    assert r.problems == [] and (r.entries, r.snapshots, r.blobs) == (3, 3, 6)
    with store.session() as s:
        e = list(s.scalars(__import__("sqlalchemy").select(CustodyRecord).order_by(CustodyRecord.seq)))
    assert e[0].prev_hash == custody.GENESIS and e[1].prev_hash == e[0].entry_hash and e[2].prev_hash == e[1].entry_hash
    assert e[0].fetched_at == "2026-11-01T09:30:05.250000Z"
    assert r.head.entry_hash == e[2].entry_hash == custody.recompute(e[2].as_dict())


def test_bytes_changed_behind_its_back_name_the_capture(store):
    digest = sha256(b"<html>report list version 1</html>")
    with store.session() as s:
        s.execute(update(BlobRecord).where(BlobRecord.sha256 == digest).values(data=zlib.compress(b"<html>report list version X</html>")))
    r = check(store)
    assert len(r.problems) == 1, r.problems
    assert r.problems[0].startswith(f"blob {digest[:16]}…, the raw bytes of snapshot 2 (https://www.oig.dhs.gov/reports?page=1, "
                                    "fetched 2026-11-01T10:30:05.250000Z): the stored bytes hash to ")


def test_edited_and_deleted_entries_and_an_edited_snapshot_row_are_named(store):
    with store.session() as s:
        s.execute(update(CustodyRecord).where(CustodyRecord.seq == 1).values(url="https://www.oig.dhs.gov/other"))
    assert any(p.startswith("custody entry 1 (snapshot 1, https://www.oig.dhs.gov/other): its fields no longer hash") for p in check(store).problems)
    with store.session() as s:
        s.execute(update(CustodyRecord).where(CustodyRecord.seq == 1).values(url="https://www.oig.dhs.gov/reports?page=0"))
        s.execute(delete(CustodyRecord).where(CustodyRecord.seq == 2))
    problems = check(store).problems
    assert "custody log: entries 2-2 are missing (deleted from the log)" in problems
    assert any(p.startswith("snapshot 2 (https://www.oig.dhs.gov/reports?page=1, fetched 2026-11-01T10:30:05.250000Z): not in the chain") for p in problems)
    assert any(p.startswith("custody entry 3 (snapshot 3, https://www.oig.dhs.gov/reports?page=2): links to ") for p in problems)


def test_a_snapshot_row_pointed_at_other_bytes_is_named(store):
    other = sha256(b"<html>report list version 0</html>")
    with store.session() as s:
        s.execute(update(SnapshotRecord).where(SnapshotRecord.id == 3).values(body_sha256=other))
    assert [p for p in check(store).problems] == [
        f"snapshot 3 (https://www.oig.dhs.gov/reports?page=2, fetched 2026-11-01T11:30:05.250000Z): its SHA-256 was "
        f"'{sha256(b'<html>report list version 2</html>')}' when logged (custody entry 3), now '{other}'"]


def as_of(s, obj) -> None:
    """Insert a model row into an older schema: only the columns the table has there."""
    from sqlalchemy import MetaData, Table, inspect

    bind = s.get_bind()
    table = Table(obj.__tablename__, MetaData(), autoload_with=bind)
    values = {}
    for c in obj.__table__.columns:
        v = getattr(obj, c.name)
        if v is None and c.default is not None and not callable(getattr(c.default, "arg", None)):
            v = c.default.arg
        elif v is None and c.default is not None:
            v = c.default.arg(None) if c.default.is_callable else None
        if c.name in table.c and v is not None:
            values[c.name] = v
    s.execute(table.insert().values(**values))


def test_the_migration_enters_the_snapshots_stored_before_it(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url, migrate=False)
    command.upgrade(old._alembic_config(), "0003")
    with old.session() as s:
        # rows as of 0003: the columns later migrations add are not there yet
        as_of(s, SourceRecord(id="a", url="https://example.gov/a"))
        for i in range(2):
            as_of(s, SnapshotRecord(id=i + 1, source_id="a", url="https://example.gov/a", fetched_at=T0 + timedelta(days=i),
                                    body_sha256=Store.put_blob(s, f"v{i}".encode())))
    new = Store(url)
    assert new.schema_version() == new.head_version()
    r = check(new)
    assert r.problems == [] and r.entries == 2 and r.head.snapshot_id == 2
