"""The same monitor on PostgreSQL: migrations, a change with its alert, nothing sent twice."""
from __future__ import annotations

import json

import pytest

from tests.e2e.test_monitor import RELEVANT, page

pytestmark = pytest.mark.postgres


def test_postgres_end_to_end(pg_url, site, webhook, workdir):
    site.set("/opr", page())
    workdir.write(sources=[{"id": "ice-opr", "name": "ICE OPR", "url": site.url("/opr")}], notify=[{"url": webhook.url(), "name": "hook"}],
                  database=pg_url)
    assert "1 baseline" in workdir.run("check").stdout
    site.set("/opr", page(extra=RELEVANT))
    out = workdir.run("check", "--force").stdout
    assert "1 changed" in out and "alerts sent 1" in out, out
    workdir.run("check", "--force")
    assert len(webhook.received) == 1
    changes = json.loads(workdir.run("changes", "--format", "json", "--matched").stdout)
    assert [c["topics"] for c in changes] == [["opr-outcomes"]]

    from state.store import Store

    store = Store(pg_url)
    assert store.schema_version() == store.head_version()
    with store.engine.connect() as c:
        assert c.exec_driver_sql("select current_schema()").scalar().startswith("gw_")


def test_migrations_match_models_postgres(pg_url):
    from state.store import Store
    from tests.unit.test_store import schema_drift

    store = Store(pg_url)
    assert store.schema_version() == store.head_version()
    assert schema_drift(store) == []
