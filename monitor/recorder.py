"""The record step, inside the caller's transaction: a version's snapshot (raw bytes and text,
content-addressed, appended to the chain of custody) and a change with its topic matches, one outbox
row per target that wants it and its web archive request."""
from __future__ import annotations

import json

from sqlmodel import Session

from monitor import classify as classify_mod
from monitor.context import Context, logger
from spiders.kinds import Fetched
from state import custody
from state.custody import ArchiveRecord
from state.models import ChangeRecord, DeliveryRecord, SnapshotRecord, TopicMatchRecord


class Recorder:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def snapshot(self, s: Session, fetched: Fetched, digest: str, text: str, title: str, note: str = "",
                 item_key: str | None = None, item_keys: list[str] | None = None) -> SnapshotRecord:
        store = self.ctx.store
        store.put_blob(s, fetched.body, digest)
        text_sha = store.put_blob(s, text.encode("utf-8"))
        snap = SnapshotRecord(
            source_id=fetched.request.source_id,
            url=fetched.url,
            item_key=fetched.request.item_key if item_key is None else item_key,
            fetched_at=fetched.started_at,
            status=fetched.status,
            content_type=fetched.content_type[:200],
            headers_json=json.dumps(fetched.headers, sort_keys=True),
            body_sha256=digest,
            text_sha256=text_sha,
            text_chars=len(text),
            title=title[:500],
            note=note,
            item_keys_json=json.dumps(item_keys) if item_keys is not None else "",
        )
        s.add(snap)
        s.flush()
        custody.append(s, snap)  # the capture and its entry in the chain of custody: together or not at all
        return snap

    def change(self, s: Session, change: ChangeRecord, matches) -> ChangeRecord:
        """The change, its matches and its outbox rows: same transaction as the snapshot."""
        if len(change.added_text) > classify_mod.MAX_TEXT_CHARS:
            # the classifier reads a bounded prefix: an analyst must know the rest was not read
            cut = f"only the first {classify_mod.MAX_TEXT_CHARS:,} of {len(change.added_text):,} characters added were classified"
            change.note = f"{change.note}; {cut}" if change.note else cut
            logger.warning("source %s: %s", change.source_id, cut)
        change.matched = bool(matches)
        change.topics = ",".join(m.topic for m in matches)
        change.severity = max((m.severity for m in matches), key=classify_mod.SEVERITIES.index, default="")
        s.add(change)
        s.flush()
        for m in matches:
            d = m.to_dict()
            payload = {"evidence": d.get("evidence", []), "definition_changes": d.get("definition_changes", [])}
            s.add(TopicMatchRecord(change_id=change.id, topic=m.topic, score=m.score, severity=m.severity,
                                   evidence_json=json.dumps(payload, ensure_ascii=False)))
        for target in self.ctx.config.notify:
            wanted = [m for m in matches
                      if (target.topics is None or m.topic in target.topics)
                      and classify_mod.severity_at_least(m.severity, target.min_severity)]
            if wanted:
                s.add(DeliveryRecord(change_id=change.id, target=target.name, next_try_at=self.ctx.clock()))
        spn = self.ctx.config.archive.save_page_now
        if spn.enabled and change.url and (matches or spn.changes == "every"):
            # queued with the change (durable), asked for only after delivery: never delays the alert
            s.add(ArchiveRecord(change_id=change.id, service="wayback", url=change.url, next_try_at=self.ctx.clock()))
        return change
