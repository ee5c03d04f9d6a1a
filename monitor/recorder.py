"""The record step, inside the caller's transaction: a version's snapshot (raw bytes and text,
content-addressed, appended to the chain of custody) and a change with its topic matches, one outbox
row per target that wants it and its web archive request."""
from __future__ import annotations

import json

from sqlalchemy import delete, insert, select
from sqlmodel import Session

from monitor import classify as classify_mod
from monitor.context import Context, logger
from monitor.subscriptions import Matcher
from spiders.kinds import Fetched
from state import custody
from state.custody import ArchiveRecord
from state.models import ChangeRecord, DeliveryRecord, SnapshotRecord, TopicMatchRecord
from state.store import sha256

_INSERT_SNAPSHOT = insert(SnapshotRecord.__table__).returning(SnapshotRecord.__table__.c.id)


class Recorder:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.subscriptions = Matcher(ctx.store, ctx.config.subscriptions)

    def snapshot(self, s: Session, fetched: Fetched, digest: str, text: str, title: str, note: str = "",
                 item_key: str | None = None, item_keys: list[str] | None = None,
                 compressed: dict[str, bytes] | None = None, extraction: str = "") -> SnapshotRecord:
        """`compressed`: bytes already compressed by the extraction worker, by their SHA-256;
        `extraction`: the extraction key of what read `text` (monitor/documents.extraction_key)."""
        store = self.ctx.store
        compressed = compressed or {}
        store.put_blob(s, fetched.body, digest, compressed.get(digest))
        text_bytes = text.encode("utf-8")
        text_sha = sha256(text_bytes)
        store.put_blob(s, text_bytes, text_sha, compressed.get(text_sha))
        shot_sha = store.put_blob(s, fetched.screenshot) if fetched.screenshot else ""
        raw_sha = store.put_blob(s, fetched.raw_body) if fetched.raw_body is not None else ""
        row = dict(
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
            screenshot_sha256=shot_sha,
            raw_sha256=raw_sha,
            item_keys_json=json.dumps(item_keys) if item_keys is not None else "",
            extraction=extraction,
        )
        # a Core INSERT (no ORM unit of work: this runs for every new version); the record returned
        # carries the row's id and is not added to the session
        snap = SnapshotRecord(id=s.connection().execute(_INSERT_SNAPSHOT, row).scalar_one(), **row)
        custody.append(s, snap)  # the capture and its entry in the chain of custody: together or not at all
        return snap

    def change(self, s: Session, change: ChangeRecord, matches) -> ChangeRecord:
        """The change, its matches and its outbox rows: same transaction as the snapshot."""
        _note_cut(change)
        _summarise(change, matches)
        s.add(change)
        s.flush()
        self._add_matches(s, change, matches)
        now = self.ctx.clock()
        for target in self.ctx.config.notify:
            if self._wanted(target, matches) and not self.subscriptions.hold_for_digest(s, target.name, change, change.severity, now):
                s.add(DeliveryRecord(change_id=change.id, target=target.name, next_try_at=now))
        self.subscriptions.on_change(s, change, now)
        spn = self.ctx.config.archive.save_page_now
        if spn.enabled and change.url and (matches or spn.changes == "every"):
            # queued with the change (durable), asked for only after delivery: never delays the alert
            s.add(ArchiveRecord(change_id=change.id, service="wayback", url=change.url, next_try_at=self.ctx.clock()))
        return change

    def attach(self, s: Session, change: ChangeRecord, *, added_text: str, diff_text: str, snapshot: SnapshotRecord,
               matches, note: str) -> None:
        """A new item's full text, come after its change was recorded and alerted on what the listing
        said: the same change gets the text, the snapshot, the matches of the full text (topics the
        listing matched and the full text does not stay) and the note. A target is alerted again
        only when the full text adds a topic it wants or raises the severity: an `update` delivery,
        never a repeat; a first alert still waiting to be sent simply carries the full text."""
        old = list(s.scalars(select(TopicMatchRecord).where(TopicMatchRecord.change_id == change.id)))
        new_topics = {m.topic for m in matches}
        kept = [_Stored(r) for r in old if r.topic not in new_topics]
        final = [*matches, *kept]
        deliveries = {d.target: d for d in s.scalars(select(DeliveryRecord).where(DeliveryRecord.change_id == change.id))
                      if d.kind == "change"}
        severity = max((m.severity for m in final), key=classify_mod.SEVERITIES.index, default="")
        for target in self.ctx.config.notify:
            before, after = self._wanted(target, [_Stored(r) for r in old]), self._wanted(target, final)
            if not after:
                continue
            first = deliveries.get(target.name)
            if first is None:
                if not self.subscriptions.hold_for_digest(s, target.name, change, severity, self.ctx.clock()):
                    s.add(DeliveryRecord(change_id=change.id, target=target.name, next_try_at=self.ctx.clock()))
                continue
            topics = sorted({m.topic for m in after} - {m.topic for m in before})
            raised = _rank(after) > _rank(before)
            if (topics or raised) and first.status not in ("pending", "retrying"):
                s.add(DeliveryRecord(change_id=change.id, target=target.name, kind="update", next_try_at=self.ctx.clock()))
        added = sorted(new_topics - {r.topic for r in old})
        if added:
            note += "; the full text adds " + ", ".join(added)
        elif _rank(final) > _rank([_Stored(r) for r in old]):
            note += f"; the full text raises the severity to {max((m.severity for m in final), key=classify_mod.SEVERITIES.index)}"
        else:
            note += "; the full text adds no topic and does not raise the severity (no second alert)"
        s.execute(delete(TopicMatchRecord).where(TopicMatchRecord.change_id == change.id, TopicMatchRecord.topic.in_(new_topics)))
        self._add_matches(s, change, matches)
        change.added_text, change.diff_text = added_text, diff_text
        change.prev_snapshot_id = change.prev_snapshot_id or change.new_snapshot_id
        change.new_snapshot_id = snapshot.id
        change.title = change.title or snapshot.title[:500]
        change.note = note
        _note_cut(change)
        _summarise(change, final)
        self.subscriptions.on_change(s, change, self.ctx.clock())  # the full text may match a saved search now

    @staticmethod
    def _add_matches(s: Session, change: ChangeRecord, matches) -> None:
        s.add_all(match_records(change.id, matches))

    @staticmethod
    def _wanted(target, matches) -> list:
        return [m for m in matches if (target.topics is None or m.topic in target.topics)
                and classify_mod.severity_at_least(m.severity, target.min_severity)]


def match_records(change_id: int | None, matches) -> list[TopicMatchRecord]:
    """The stored form of a change's matches: score, severity and the evidence as JSON."""
    out = []
    for m in matches:
        d = m.to_dict()
        payload = {"evidence": d.get("evidence", []), "definition_changes": d.get("definition_changes", [])}
        if d.get("removed"):
            payload["removed"] = True
        out.append(TopicMatchRecord(change_id=change_id, topic=m.topic, score=m.score, severity=m.severity,
                                    evidence_json=json.dumps(payload, ensure_ascii=False)))
    return out


class _Stored:
    """A stored match read back as the recorder compares it (topic and severity)."""

    def __init__(self, rec: TopicMatchRecord):
        self.topic, self.severity, self.score = rec.topic, rec.severity, rec.score


def _rank(matches) -> int:
    return max((classify_mod.SEVERITIES.index(m.severity) for m in matches), default=-1)


def _note_cut(change: ChangeRecord) -> None:
    if len(change.added_text) > classify_mod.MAX_TEXT_CHARS:
        # the classifier reads a bounded prefix: an analyst must know the rest was not read
        cut = f"only the first {classify_mod.MAX_TEXT_CHARS:,} of {len(change.added_text):,} characters added were classified"
        change.note = f"{change.note}; {cut}" if change.note else cut
        logger.warning("source %s: %s", change.source_id, cut)


def _summarise(change: ChangeRecord, matches) -> None:
    change.matched = bool(matches)
    change.topics = ",".join(m.topic for m in matches)
    change.severity = max((m.severity for m in matches), key=classify_mod.SEVERITIES.index, default="")
