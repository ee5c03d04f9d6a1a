"""Upgrades: migrations run when govwatch opens its database, tested from older schemas. A database
is built at the previous release's revision (the one before the head) and at 0006, filled through
SQL with what a running install holds (a source, two captures with their blobs and custody entries,
a matched change with its evidence, an alert sent, an analyst's review), then opened by the current
CLI: the schema reaches the head and every record reads back whole, on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import zlib
from datetime import datetime, timezone

import pytest
from sqlalchemy import MetaData

from state.store import sha256

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
T0 = datetime(2026, 10, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
T1 = datetime(2026, 10, 2, 12, 0, 0, 654321, tzinfo=timezone.utc)
URL = "https://www.ice.gov/about-ice/opr"
ADDED = ("In fiscal year 2025, ICE OPR substantiated allegations that two employees were members of a white supremacist "
         "extremist group; both employees were removed from federal service.")


def previous_head() -> str:
    """The revision the previous release left: the one the current head revises."""
    from alembic.script import ScriptDirectory

    from state.store import Store

    scripts = ScriptDirectory.from_config(Store("sqlite://", migrate=False)._alembic_config())
    return scripts.get_revision(scripts.get_current_head()).down_revision


def at_revision(url: str, revision: str) -> None:
    """A new database at this revision, as the release that shipped it would have left it."""
    from alembic import command

    from state.store import Store

    store = Store(url, migrate=False)
    cfg = store._alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    store.engine.dispose()


def fill(url: str) -> dict:
    """What an install holds, written with plain SQL INSERTs on the tables as they are at that revision."""
    from state.custody import GENESIS, entry_hash, iso_micro
    from state.store import Store

    engine = Store(url, migrate=False).engine
    md = MetaData()
    md.reflect(engine)
    t = md.tables
    old_body = b"<html><body><main><p>The Office of Professional Responsibility upholds standards.</p></main></body></html>"
    new_body = old_body.replace(b"</main>", f"<p>{ADDED}</p></main>".encode())
    texts = [b"The Office of Professional Responsibility upholds standards.",
             b"The Office of Professional Responsibility upholds standards.\n" + ADDED.encode()]
    blobs = {sha256(b): b for b in (old_body, new_body, *texts)}
    snaps = [(1, T0, sha256(old_body), sha256(texts[0])), (2, T1, sha256(new_body), sha256(texts[1]))]
    with engine.begin() as c:
        c.execute(t["sources"].insert(), [{
            "id": "ice-opr", "name": "ICE OPR", "url": URL, "kind": "page", "agency": "ICE", "enabled": True, "disabled_reason": "",
            "every_seconds": 21600, "created_at": T0, "last_attempt_at": T1, "last_success_at": T1, "last_change_at": T1,
            "next_due_at": T1, "consecutive_failures": 0, "consecutive_blocks": 0, "last_error": "", "last_status": 200,
            "etag": '"v2"', "last_modified": "", "last_snapshot_id": 2, "health": "ok", "health_alerted": "", "lease_owner": ""}])
        c.execute(t["blobs"].insert(), [{"sha256": d, "size": len(b), "codec": "zlib", "data": zlib.compress(b), "created_at": T0}
                                        for d, b in blobs.items()])
        c.execute(t["snapshots"].insert(), [{
            "id": i, "source_id": "ice-opr", "url": URL, "item_key": "", "fetched_at": at, "status": 200,
            "content_type": "text/html", "headers_json": json.dumps({"Content-Type": "text/html", "ETag": f'"v{i}"'}),
            "body_sha256": body, "text_sha256": text, "text_chars": 60, "title": "Office of Professional Responsibility",
            "note": "", "item_keys_json": ""} for i, at, body, text in snaps])
        prev, log = GENESIS, []
        for seq, (i, at, body, _) in enumerate(snaps, 1):
            h = entry_hash(seq, prev, i, URL, iso_micro(at), body)
            log.append({"seq": seq, "snapshot_id": i, "url": URL, "fetched_at": iso_micro(at), "body_sha256": body,
                        "prev_hash": prev, "entry_hash": h, "recorded_at": at})
            prev = h
        c.execute(t["custody_log"].insert(), log)
        c.execute(t["changes"].insert(), [{
            "id": 1, "source_id": "ice-opr", "url": URL, "detected_at": T1, "kind": "changed", "title": "Office of Professional Responsibility",
            "item_key": "", "item_published": "", "prev_snapshot_id": 1, "new_snapshot_id": 2, "added_text": ADDED,
            "removed_text": "", "diff_text": f"+ {ADDED}", "topics": "opr-outcomes", "severity": "high", "matched": True,
            "note": "", "meta_json": "{}"}])
        c.execute(t["topic_matches"].insert(), [{
            "id": 1, "change_id": 1, "topic": "opr-outcomes", "score": 7.5, "severity": "high",
            "evidence_json": json.dumps({"evidence": [{"rule": "opr-disposition", "sentence": ADDED, "marked": ADDED}],
                                         "definition_changes": []})}])
        c.execute(t["deliveries"].insert(), [{
            "id": 1, "change_id": 1, "kind": "change", "target": "hook", "status": "sent", "attempts": 1, "next_try_at": T1,
            "last_error": "", "created_at": T1, "sent_at": T1, "title": "", "body": "", "claimed_by": "", "claimed_until": None}])
        c.execute(t["triage_actions"].insert(), [{"id": 1, "change_id": 1, "action": "reviewed", "note": "confirmed",
                                                  "actor": "ana", "created_at": T1}])
        c.execute(t["triage_states"].insert(), [{"change_id": 1, "state": "reviewed", "actor": "ana", "updated_at": T1, "action_id": 1}])
    engine.dispose()
    return {"head": prev}


@pytest.fixture(params=BACKENDS)
def db_url(request, workdir):
    return request.getfixturevalue("pg_url") if request.param == "postgres" else workdir.db


@pytest.mark.parametrize("start", ["previous", "0006"])
def test_an_older_database_is_migrated_on_start_and_reads_back_whole(start, db_url, workdir):
    from state.store import Store

    revision = previous_head() if start == "previous" else start
    at_revision(db_url, revision)
    assert Store(db_url, migrate=False).schema_version() == revision
    chain = fill(db_url)
    workdir.write(sources=[{"id": "ice-opr", "name": "ICE OPR", "url": URL}], database=db_url)

    # the first command of the new release migrates, and reads what the old one wrote
    changes = json.loads(workdir.run("changes", "--format", "json").stdout)
    store = Store(db_url, migrate=False)
    assert store.schema_version() == store.head_version() != revision
    assert [(c["id"], c["source_id"], c["kind"], c["topics"], c["url"], c["detected_at"], c["review_state"]) for c in changes] == \
        [(1, "ice-opr", "changed", ["opr-outcomes"], URL, "2026-10-02T12:00:00Z", "reviewed")]
    assert changes[0]["added_text"] == ADDED and changes[0]["evidence"]
    shown = json.loads(workdir.run("show", "1", "--format", "json").stdout)
    assert shown["matches"][0]["evidence"][0]["rule"] == "opr-disposition" and shown["matches"][0]["score"] == 7.5
    assert [(d["target"], d["status"], d["sent_at"]) for d in shown["deliveries"]] == [("hook", "sent", "2026-10-02T12:00:00Z")]
    # the chain of custody and every blob still check, with the head the old release wrote
    v = workdir.run("verify").stdout
    assert v.startswith(f"OK: chain of custody of 2 entries (head #2 {chain['head']}); 2 snapshot(s), 4 blob(s) checked"), v
    # the full-text index covers what was recorded before it existed (0007, from 0006)
    found = json.loads(workdir.run("search", "supremacist", "--format", "json").stdout)
    assert [c["id"] for c in found] == [1]
    p = workdir.run("export-warc", "--change", "1", "-o", "c1.warc.gz")
    assert p.stdout.strip() == "wrote 2 capture(s) of change 1 to c1.warc.gz"
    assert workdir.run("verify", "c1.warc.gz").stdout.startswith("OK: WARC c1.warc.gz: 3 WARC record(s), 2 capture(s)")
    # what the new release adds works on the migrated data: a dry-run prune keeps this evidence
    out = workdir.run("prune", "--older-than", "1d", "--dry-run").stdout
    assert "the stored bytes of 0 snapshot(s)" in out and "kept: 2 snapshot(s)" in out, out
    # and opening it again does nothing more
    assert workdir.run("changes", "--format", "json").stdout == json.dumps(changes, indent=2, ensure_ascii=False) + "\n"
