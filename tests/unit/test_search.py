"""Full-text search (state/search.py) on SQLite and PostgreSQL: words in any form, phrases, OR,
exclusion, ranking, snippets, the index kept in step by the database, and `govwatch search` agreeing
with the web list's search box and /changes.json."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from monitor import cli
from monitor.config import load_config
from monitor.queries import Filters, page_of_changes
from monitor.web import create_app
from state import search
from state.models import ChangeRecord, SourceRecord, TopicMatchRecord
from state.store import Store

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
CHANGES = {
    "opr": ("ICE OPR closes investigations", "The investigation was substantiated and the officer was removed for ties to an extremist group.", ""),
    "definition": ("Domestic terrorism definition revised", "DHS revised the definition of domestic terrorism to include anti-ICE violence.",
                   "The old definition of domestic violent extremism."),
    "sports": ("League news", "The terrorism of the football season: nothing domestic about it.", ""),
    "referred": ("Misconduct reports", "Reports of misconduct were referred to the Inspector General.", ""),
    "title-only": ("Substantiated allegations: annual figures", "Figures for the year, in a table.", ""),
    "body-only": ("Annual figures", "Of the allegations, 12 were substantiated in the year.", ""),
    "hostile": ("<script>alert(1)</script> page", 'Budget <img src=x onerror="alert(2)"> of the program.', ""),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'gw.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    ids = {}
    with store.session() as s:
        s.add(SourceRecord(id="ice", name="ICE newsroom", kind="page"))
        s.add(SourceRecord(id="oig", name="OIG reports", kind="listing"))
        s.flush()
        for i, (key, (title, added, removed)) in enumerate(CHANGES.items()):
            c = ChangeRecord(source_id="oig" if key == "referred" else "ice", url=f"https://www.ice.gov/{key}", kind="changed",
                             detected_at=T0 + timedelta(hours=i), title=title, added_text=added, removed_text=removed,
                             matched=key == "opr", topics="opr-outcomes" if key == "opr" else "", severity="high" if key == "opr" else "")
            s.add(c)
            s.flush()
            ids[key] = c.id
        s.add(TopicMatchRecord(change_id=ids["opr"], topic="opr-outcomes", score=5, severity="high"))
    cfg_path = tmp_path / "govwatch.yaml"
    cfg_path.write_text(f"database: '{url}'\ninclude_defaults: false\nsources:\n"
                        "  - {id: ice, url: 'https://www.ice.gov/news', name: ICE newsroom}\n"
                        "  - {id: oig, url: 'https://www.oig.dhs.gov/reports', kind: listing, name: OIG reports}\n")
    yield store, ids, str(cfg_path)
    store.engine.dispose()


def found(store, q: str, **filters) -> list[int]:
    rows = page_of_changes(store, Filters(q=q, **filters), 50, 0).rows
    return [r.change.id for r in rows]


def keys(ids: dict, found_ids: list[int]) -> list[str]:
    by_id = {v: k for k, v in ids.items()}
    return [by_id[i] for i in found_ids]


def test_words_phrases_or_and_exclusion(world):
    store, ids, _ = world
    # every word must occur, in any order and any form (stemming: "investigated" finds "investigation"? no:
    # Porter and Snowball share "investig"); "removed" finds "removal"-free text by its stem "remov"
    assert keys(ids, found(store, "substantiated removed")) == ["opr"]
    assert set(keys(ids, found(store, "domestic terrorism"))) == {"definition", "sports"}
    assert keys(ids, found(store, '"domestic terrorism"')) == ["definition"]  # a phrase: adjacent, in order
    assert set(keys(ids, found(store, "referred OR extremist"))) == {"referred", "opr"}
    assert set(keys(ids, found(store, "terrorism -football"))) == {"definition"}
    assert keys(ids, found(store, 'terrorism -"domestic terrorism"')) == ["sports"]
    assert set(keys(ids, found(store, "report"))) == {"referred"}  # "Reports" by its stem
    assert keys(ids, found(store, "anti-ICE")) == ["definition"]
    assert keys(ids, found(store, "violent extremism")) == ["definition"]  # removed text is searched too
    assert found(store, "nowhere") == []
    # the search together with the other filters
    assert keys(ids, found(store, "referred OR extremist", source="oig")) == ["referred"]
    assert keys(ids, found(store, "referred OR extremist", topic="opr-outcomes")) == ["opr"]


def test_ranking_puts_a_title_match_first(world):
    store, ids, _ = world
    assert keys(ids, found(store, "substantiated"))[0] == "title-only"
    assert set(keys(ids, found(store, "substantiated"))) == {"title-only", "body-only", "opr"}


def test_snippet_marks_the_words_found_and_is_escaped(world):
    store, ids, _ = world
    rows = page_of_changes(store, Filters(q='"domestic terrorism"'), 50, 0).rows
    snip = rows[0].snippet
    assert search.MARK_START in snip and search.MARK_END in snip
    assert "domestic terrorism" in search.snippet_text(snip, "", "").lower()
    assert "<mark>" in search.snippet_html(snip) and "**" in search.snippet_text(snip)
    rows = page_of_changes(store, Filters(q="budget"), 50, 0).rows
    html = search.snippet_html(rows[0].snippet)
    assert "<img" not in html and "<script" not in html and "<mark>Budget</mark>" in html  # escaped (SQLite) or dropped (PostgreSQL)


def test_the_index_follows_new_updated_and_deleted_changes(world):
    store, ids, _ = world
    with store.session() as s:
        c = ChangeRecord(source_id="ice", kind="new_item", title="Semiannual report", added_text="Nihilistic violent extremism category added.")
        s.add(c)
        s.flush()
        new_id = c.id
    assert found(store, "nihilistic") == [new_id]
    with store.session() as s:  # the full text came later (Recorder.attach updates the change)
        c = s.get(ChangeRecord, new_id)
        c.added_text = "The full text: 40 allegations were unsubstantiated."
    assert found(store, "nihilistic") == []
    assert found(store, "unsubstantiated") == [new_id]
    with store.session() as s:
        s.execute(delete(ChangeRecord).where(ChangeRecord.id == new_id))
    assert found(store, "unsubstantiated") == []


def test_a_query_with_nothing_to_find_is_an_error():
    with pytest.raises(search.QueryError, match="at least one word"):
        search.parse("-football")
    with pytest.raises(search.QueryError, match="empty"):
        search.parse(' "" -- ')
    q = search.parse('a OR "b  c" -d OR e')
    assert str(q) == 'a OR "b c" e -d'  # an OR next to an excluded term joins nothing
    assert search.fts5_expression(search.parse('say "no" OR x')) == '("say") AND ("no" OR "x")'


def test_cli_and_web_agree(world, capsys):
    store, ids, cfg_path = world
    cfg = load_config(cfg_path)
    client = TestClient(create_app(cfg, store), base_url="http://127.0.0.1")
    for q in ("substantiated", "domestic terrorism", "referred OR extremist", "terrorism -football"):
        assert cli.main(["search", "-c", cfg_path, q, "--format", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        web = client.get("/changes.json", params={"q": q}).json()
        assert [d["id"] for d in out] == [d["id"] for d in web] == found(store, q)
        assert all(d["snippet"] for d in out)
        assert {k for k in web[0]} <= set(out[0])  # the records of `changes --format json`, plus snippet
        page = client.get("/", params={"q": q})
        assert page.status_code == 200
        for d in out:
            assert f'href="/changes/{d["id"]}"' in page.text
        assert "<mark>" in page.text and "best first" in page.text
    # the table lists the same changes; a bad query or topic is one line
    assert cli.main(["search", "-c", cfg_path, "substantiated"]) == 0
    assert "3 changes found" in capsys.readouterr().out
    assert cli.main(["search", "-c", cfg_path, "--topic", "nope", "x"]) == 1
    assert "no topic 'nope'; known topics: extremism-definitions, opr-outcomes" in capsys.readouterr().err
    assert cli.main(["changes", "-c", cfg_path, "--topic", "nope"]) == 1  # `changes` too: an error, not an empty table
    assert "no topic 'nope'; known topics: extremism-definitions, opr-outcomes" in capsys.readouterr().err
    assert cli.main(["search", "-c", cfg_path, '""']) == 1
    assert "the search is empty" in capsys.readouterr().err
    assert client.get("/", params={"q": '""'}).status_code == 400


def test_relevance_orders_the_newest_matches_and_older_ones_follow(world, monkeypatch):
    """With a window of 2, the two newest matches of "substantiated" are ranked (the title match
    first); the older one follows them, though its text would rank it above one of them."""
    store, ids, _ = world
    monkeypatch.setattr(search, "RANK_WINDOW", 2)
    with store.session() as s:
        newer = ChangeRecord(source_id="ice", kind="changed", detected_at=T0 + timedelta(days=1),
                             title="Misc", added_text="One allegation was substantiated among many other words of a long text.")
        s.add(newer)
        s.flush()
        ids["newer"] = newer.id
    # matches, oldest first: opr, title-only, body-only, newer; the window holds body-only and newer
    got = keys(ids, found(store, "substantiated"))
    assert set(got[:2]) == {"body-only", "newer"} and got[2:] == ["title-only", "opr"]  # the old ones newest first
    monkeypatch.setattr(search, "RANK_WINDOW", 100)
    assert keys(ids, found(store, "substantiated"))[0] == "title-only"


def test_pages_across_the_rank_window_and_a_capped_count(world, monkeypatch):
    """Page by page, a search lists what one long page lists (across the window's edge); with more
    matches than it counts (COUNT_CAP, or to the end of the page) the total says "N+", the topic
    counts are not computed, and the web offers one more page, whose count goes further."""
    import monitor.queries as queries
    import monitor.web.changes as web_changes

    store, ids, cfg_path = world
    monkeypatch.setattr(search, "RANK_WINDOW", 2)
    whole = found(store, "substantiated")
    paged = [r.change.id for k in range(len(whole)) for r in page_of_changes(store, Filters(q="substantiated"), 1, k).rows]
    assert paged == whole and len(whole) == 3
    monkeypatch.setattr(queries, "COUNT_CAP", 2)
    page = page_of_changes(store, Filters(q="substantiated"), 1, 0)
    assert (page.total, page.capped, page.counts) == (2, True, None) and [r.change.id for r in page.rows] == whole[:1]
    # the page's end is counted to: a page of 50 counts all 3
    page = page_of_changes(store, Filters(q="substantiated"), 50, 0)
    assert (page.total, page.capped) == (3, False) and [r.change.id for r in page.rows] == whole
    assert page_of_changes(store, Filters(q="substantiated"), 1, 2).rows[0].change.id == whole[2]  # counted to 3: all
    monkeypatch.setattr(web_changes, "PAGE_SIZE", 1)
    client = TestClient(create_app(load_config(cfg_path), store), base_url="http://127.0.0.1")
    html = client.get("/", params={"q": "substantiated"}).text
    assert "2+ changes matching, best first" in html and '<span class="count">–</span>' in html
    assert "page 1 of 3+" in html and "page=2" in html  # 2 counted (1 page each) and one more offered
    html = client.get("/", params={"q": "substantiated", "page": "3"}).text
    assert "3 changes matching" in html and "page 3 of 3<" in html and "page=4" not in html
    # the rank cutoff read with a capped count (the newest matches) orders the page as an uncapped one
    monkeypatch.setattr(search, "RANK_WINDOW", 1)  # the newest match ranked, the 2 older ones after it
    uncapped = [r.change.id for r in page_of_changes(store, Filters(q="substantiated"), 3, 0).rows]
    monkeypatch.setattr(queries, "COUNT_CAP", 1)  # the summary reads 2 of the 3: the newest two, whose first is the cutoff
    capped = page_of_changes(store, Filters(q="substantiated"), 1, 0)
    assert capped.capped and [r.change.id for r in capped.rows] == uncapped[:1]
    assert [r.change.id for k in range(3) for r in page_of_changes(store, Filters(q="substantiated"), 1, k).rows] == uncapped


def test_pages_in_and_past_the_rank_window_agree_with_one_long_page(world, monkeypatch):
    """Every page of every size lists what one long page lists at its place: on PostgreSQL a page
    inside the window is ranked by the summary statement and any other by _search_page, with
    ties of rank and of time broken the same way by both."""
    store, ids, _ = world
    with store.session() as s:
        for k in range(10):
            s.add(ChangeRecord(source_id="ice", kind="changed", detected_at=T0 + timedelta(days=2, hours=k // 3),
                               title="Misc", added_text="substantiated " * (1 + k % 2) + "among the words of a change"))
    monkeypatch.setattr(search, "RANK_WINDOW", 8)
    whole = [r.change.id for r in page_of_changes(store, Filters(q="substantiated"), 100, 0).rows]
    assert len(whole) == 13 == len(set(whole))
    for limit in (1, 2, 3, 5, 8):
        for offset in range(13):
            got = [r.change.id for r in page_of_changes(store, Filters(q="substantiated"), limit, offset).rows]
            assert got == whole[offset:offset + limit], (limit, offset)


def test_counts_read_from_the_index_alone_agree_with_the_filtered_counts(world):
    """With the search as the only filter, the total and the topic counts come from the search index
    and the topic matches alone (no change is read); with another filter, from the changes. Both
    must give the same numbers: the source filter below keeps every change, so it changes nothing."""
    store, ids, _ = world
    with store.session() as s:  # a second topic on one change, to count per topic
        s.add(TopicMatchRecord(change_id=ids["definition"], topic="extremism-definitions", score=4, severity="medium"))
        for c in s.query(ChangeRecord).where(ChangeRecord.id == ids["referred"]):
            c.source_id = "ice"
    for q in ("substantiated", "definition", "terrorism OR misconduct", "terrorism -football", ""):
        plain = page_of_changes(store, Filters(q=q), 50, 0)
        narrowed = page_of_changes(store, Filters(q=q, source="ice"), 50, 0)
        assert not Filters(q=q).narrows() and Filters(q=q, source="ice").narrows()
        assert (plain.total, plain.counts) == (narrowed.total, narrowed.counts), q
        assert [r.change.id for r in plain.rows] == [r.change.id for r in narrowed.rows], q
    assert page_of_changes(store, Filters(q="definition"), 50, 0).counts == {"extremism-definitions": 1}
    assert page_of_changes(store, Filters(q="substantiated"), 50, 0).counts == {"opr-outcomes": 1}
    assert page_of_changes(store, Filters(), 50, 0).counts == {"opr-outcomes": 1, "extremism-definitions": 1}
    # a topic filter narrows the list, not the counts (the other topic stays reachable)
    assert page_of_changes(store, Filters(topic="opr-outcomes"), 50, 0).counts == {"opr-outcomes": 1, "extremism-definitions": 1}


def test_postgresql_reads_the_newest_matches_either_way(world, monkeypatch):
    """PostgreSQL reads a search's newest matches along the ids when it estimates the words common
    (search.pg_share), within a bound, and from the text index otherwise or when the bounded walk
    found too few (a phrase of common words is estimated high and found rarely): each way, the same
    count, cutoff and page."""
    import monitor.queries as queries

    store, ids, _ = world
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL's planner estimate: SQLite's FTS5 reads its matches in id order itself")
    monkeypatch.setattr(search, "RANK_WINDOW", 1)
    monkeypatch.setattr(queries, "COUNT_CAP", 1)
    real = search.pg_share

    def pages(q: str) -> list:
        return [(p.total, p.capped, [r.change.id for r in p.rows])
                for p in (page_of_changes(store, Filters(q=q), 1, k) for k in range(4))]

    for q in ("substantiated", "definition OR substantiated -extremist", '"domestic terrorism"'):
        want = pages(q)
        for share in (0.0, 0.5, 4.0):  # rare: the text index; common; so common the walk covers 2 ids and falls back
            monkeypatch.setattr(search, "pg_share", lambda s, query, share=share: (share, real(s, query)[1]))
            assert pages(q) == want, (q, share)
        monkeypatch.setattr(search, "pg_share", real)
        assert any(total for total, _, _ in want), q
