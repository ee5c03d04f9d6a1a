"""The edges a review found in subscriptions, team digests and watches: a query too big for the
engines is refused (and a search that fails never stops a change being recorded), a web
subscription cannot take a team target's digest, queued rows survive a delete (targets go by id),
matches waiting for a digest are sent when the subscription turns instant or goes away, and a
removed watch's id can be used again by the configuration."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from monitor import subscriptions as subs_mod
from monitor import watches
from monitor.config import load_config, valid_apprise_url
from monitor.pipeline import Monitor
from state import search
from state.models import ChangeRecord, DeliveryRecord, SourceRecord
from state.store import Store
from state.subscriptions import SubscriptionMatchRecord, SubscriptionRecord

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def world(tmp_path, extra: str = ""):
    path = tmp_path / "govwatch.yaml"
    path.write_text(f"database: 'sqlite:///{tmp_path / 'gw.db'}'\ninclude_defaults: false\n"
                    "notify:\n  - {url: 'json://hooks.example.org/team', name: team}\n"
                    "sources:\n  - {id: ice, url: 'https://www.ice.gov/opr'}\n" + extra)
    cfg = load_config(str(path))
    store = Store(cfg.database)
    with store.session() as s:
        s.add(SourceRecord(id="ice", name="ICE"))
    return cfg, store, path


def record(store, matcher, text: str) -> int:
    with store.session() as s:
        c = ChangeRecord(source_id="ice", kind="changed", title="OPR", added_text=text, detected_at=NOW)
        s.add(c)
        s.flush()
        matcher.on_change(s, c, NOW)
        return c.id


def test_a_query_too_big_is_refused_and_a_failing_search_never_stops_recording(tmp_path, monkeypatch):
    with pytest.raises(search.QueryError, match="more than 32"):
        search.parse("report " + " ".join(f"-w{i}" for i in range(100)))
    with pytest.raises(search.QueryError, match="control character"):
        search.parse("detention\x00x")
    cfg, store, _ = world(tmp_path, "subscriptions:\n  - {name: s, query: substantiated, notify: [team]}\n")
    subs_mod.sync_config(store, cfg.subscriptions, NOW)
    matcher = subs_mod.Matcher(store, cfg.subscriptions)

    def broken(*a, **k):
        raise OperationalError("SELECT", {}, Exception("fts5: parser stack overflow"))

    monkeypatch.setattr(search, "matches_change", broken)
    cid = record(store, matcher, "The allegation was substantiated.")
    with store.session() as s:
        assert s.get(ChangeRecord, cid) is not None  # recorded all the same


def test_a_web_subscription_cannot_take_a_team_targets_digest(tmp_path):
    cfg, store, path = world(tmp_path)
    sub, problems = subs_mod.validate({"name": "team digest", "query": "x", "notify": ["json://hooks.example.org/bob"]},
                                      topic_ids=set(), source_ids=set(), named_targets={"team": "json://x"}, url_ok=valid_apprise_url)
    assert sub is None and "own digest" in problems["name"]
    # made before the operator gave `team` a digest: the team's changes never go to it
    bob = subs_mod.validate({"name": "team digest", "query": "x", "notify": ["json://hooks.example.org/bob"]}, topic_ids=set(),
                            source_ids=set(), named_targets={}, url_ok=valid_apprise_url)[0]
    subs_mod.save_web(store, bob, "bob")
    text = path.read_text().replace("name: team}", "name: team, digest: 'daily@08:00', min_severity: low}")
    path.write_text(text)
    cfg = load_config(str(path))
    subs_mod.sync_config(store, cfg.subscriptions, NOW)
    matcher = subs_mod.Matcher(store, cfg.subscriptions)
    with store.session() as s:
        c = ChangeRecord(source_id="ice", kind="changed", added_text="y", severity="low", detected_at=NOW)
        s.add(c)
        s.flush()
        assert matcher.hold_for_digest(s, "team", c, "low", NOW) is False  # sent at once rather than to bob
        assert list(s.scalars(select(SubscriptionMatchRecord))) == []


def test_queued_rows_go_by_subscription_id_and_survive_a_delete(tmp_path):
    cfg, store, _ = world(tmp_path)
    sub = subs_mod.validate({"name": "detention", "query": "detention", "notify": ["json://hooks.example.org/ana"]},
                            topic_ids=set(), source_ids=set(), named_targets={}, url_ok=valid_apprise_url)[0]
    sid = subs_mod.save_web(store, sub, "ana")
    cid = record(store, subs_mod.Matcher(store, []), "Detention standards changed.")
    with store.session() as s:
        rows = list(s.scalars(select(DeliveryRecord).where(DeliveryRecord.change_id == cid)))
    assert [(r.kind, r.target) for r in rows] == [("subscription", f"sub:{sid}:0")]
    subs_mod.delete_web(store, sid)
    sub2 = subs_mod.validate({"name": "detention", "query": "x", "notify": ["json://hooks.example.org/bob"]},
                             topic_ids=set(), source_ids=set(), named_targets={}, url_ok=valid_apprise_url)[0]
    sid2 = subs_mod.save_web(store, sub2, "bob")  # the name is free again; ana's row still goes to ana's URL
    targets = dict(subs_mod.all_targets(store, []))
    assert targets[f"sub:{sid}:0"] == "json://hooks.example.org/ana" and targets[f"sub:{sid2}:0"] == "json://hooks.example.org/bob"


def test_waiting_matches_go_out_when_a_digest_turns_instant_or_goes_away(tmp_path):
    cfg, store, path = world(tmp_path, "subscriptions:\n  - {name: daily, query: detention, every: 'daily@08:00', notify: [team]}\n")
    subs_mod.sync_config(store, cfg.subscriptions, NOW)
    record(store, subs_mod.Matcher(store, cfg.subscriptions), "Detention standards changed.")
    assert subs_mod.send_due_digests(store, cfg, now=NOW) == []  # not due before 08:00 tomorrow
    path.write_text(path.read_text().replace("every: 'daily@08:00'", "every: instant"))
    cfg = load_config(str(path))
    subs_mod.sync_config(store, cfg.subscriptions, NOW)
    reports = subs_mod.send_due_digests(store, cfg, now=NOW)
    assert [(r.name, r.changes) for r in reports] == [("daily", 1)]
    with store.session() as s:
        assert [m.digest_id is not None for m in s.scalars(select(SubscriptionMatchRecord))] == [True]


def test_a_removed_watch_leaves_its_id_free_for_the_configuration(tmp_path):
    cfg, store, path = world(tmp_path)
    src, problems = watches.add_watch(store, cfg, {"id": "cbp", "url": "https://www.cbp.gov/newsroom", "kind": "page"}, "ada")
    assert src is not None, problems
    watches.remove_watch(store, "cbp", "ada")
    path.write_text(path.read_text() + "  - {id: cbp, url: 'https://www.cbp.gov/newsroom'}\n")
    mon = Monitor(load_config(str(path)), store)
    mon.sync_sources()
    assert {s.id for s in mon.due_sources()} == {"ice", "cbp"}
    with store.session() as s:
        rec = s.get(SourceRecord, "cbp")
        assert rec.enabled and not rec.paused and rec.disabled_reason == ""
