"""The change log with a watch list of thousands of sources: it reads the names of the sources on
its page only, and the source filter becomes a text box instead of a menu nobody can scroll."""
from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from monitor.config import load_config
from monitor.web import create_app
from monitor.web.context import SOURCE_MENU_MAX
from state.models import ChangeRecord, SourceRecord
from state.store import Store

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")


def _client(tmp_path, n_sources: int) -> TestClient:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    store = Store(url)
    now = datetime.now(timezone.utc)
    with store.session() as s:
        s.execute(insert(SourceRecord), [dict(id=f"src-{i:05d}", name=f"Source number {i}", url=f"https://h{i % 7}.example.gov/{i}",
                                              kind="page", agency="DHS", health="ok") for i in range(n_sources)])
        s.execute(insert(ChangeRecord), [dict(source_id=f"src-{i % n_sources:05d}", url="https://h.example.gov/x", kind="changed",
                                              detected_at=now - timedelta(minutes=i), title=f"Change {i}",
                                              added_text=f"Added sentence number {i}.") for i in range(120)])
    cfg = tmp_path / "g.yaml"
    cfg.write_text(f"database: {url}\ninclude_defaults: false\nsources: []\n")
    return TestClient(create_app(load_config(str(cfg)), store), base_url="http://127.0.0.1")


def test_a_large_watch_list_gets_a_source_box_and_only_the_pages_names(tmp_path):
    client = _client(tmp_path, SOURCE_MENU_MAX + 100)
    html = client.get("/").text
    assert '<input name="source" value=""' in html and '<select name="source">' not in html
    assert html.count("Source number ") == 50  # the names of the page's 50 rows, nothing else
    html = client.get("/", params={"source": "src-00007"}).text
    assert '<input name="source" value="src-00007"' in html
    assert "Change 7<" in html and "Change 8<" not in html and "Source number 7<" in html


@pytest.mark.parametrize("n", [3, SOURCE_MENU_MAX])
def test_a_short_watch_list_keeps_its_menu(tmp_path, n):
    html = _client(tmp_path, n).get("/").text
    assert '<select name="source">' in html and '<input name="source"' not in html
    assert html.count('<option value="src-') == n


def test_names_of_more_sources_than_sqlite_takes_parameters(tmp_path):
    """An export of up to 50,000 rows may name tens of thousands of sources: past 1,000 they are
    read in one pass and picked, not bound one parameter each (SQLite stops at 32,766)."""
    client = _client(tmp_path, 1500)
    web = client.app.state.web
    wanted = {f"src-{i:05d}" for i in range(0, 1500, 1)} - {"src-00003"}
    names = web.source_names(wanted)
    assert set(names) == wanted and names["src-01499"] == "Source number 1499"
    assert web.source_names(["src-00003", "nope"]) == {"src-00003": "Source number 3"}
