"""The store: migrations give exactly the models' schema, blobs are stored once, WAL is on."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import state.models  # noqa: F401
from state.errors import StateError
from state.models import BlobRecord
from state.store import Store, redact_url, sha256


def schema_drift(store: Store) -> list:
    import state.custody  # noqa: F401
    import state.triage  # noqa: F401  (every table the migrations create)
    import state.websessions  # noqa: F401
    import state.subscriptions  # noqa: F401
    import state.watches  # noqa: F401

    from state import search

    def ours(obj, name, type_, reflected, compare_to) -> bool:
        # the search index (state/search.py) lives beside the models, made by migration 0007
        return not (type_ == "table" and name in search.SEARCH_TABLES or type_ == "column" and name in search.SEARCH_COLUMNS
                    or type_ == "index" and name in search.SEARCH_INDEXES)

    with store.engine.connect() as c:
        return compare_metadata(MigrationContext.configure(c, opts={"include_object": ours}), SQLModel.metadata)


def test_migrations_match_models_sqlite(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/g.db")
    assert store.schema_version() == store.head_version()
    assert schema_drift(store) == []
    with store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_reopen_keeps_history(tmp_path):
    url = f"sqlite:///{tmp_path}/g.db"
    s1 = Store(url)
    with s1.session() as s:
        digest = Store.put_blob(s, b"evidence")
    s2 = Store(url)
    assert s2.get_blob(digest) == b"evidence"


def test_blobs_are_content_addressed_and_compressed(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/g.db")
    body = b"<html>" + b"the same page " * 5000 + b"</html>"
    with store.session() as s:
        a = Store.put_blob(s, body)
        b = Store.put_blob(s, body)
    assert a == b == sha256(body)
    with store.session() as s:
        rows = s.query(BlobRecord).all()
        assert len(rows) == 1 and rows[0].size == len(body) and len(rows[0].data) < len(body) / 20
    assert store.get_blob(a) == body


def test_unreachable_database_is_a_clear_error():
    with pytest.raises(StateError, match=r"cannot open database postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/x"):
        Store("postgresql+psycopg://u:secretpw@127.0.0.1:1/x")


def test_redact_url():
    assert "secretpw" not in redact_url("postgresql+psycopg://u:secretpw@h/db")

