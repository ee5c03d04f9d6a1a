"""Every listed document archived (issue 12, point 5): the documents a listing, feed or Federal
Register query already lists at its baseline are fetched too, a few a run, and stored as snapshots
of their item (never alerted); then each is fetched again in turn, with its validators, so that a
document replaced at the same URL is a change of that document. API records (kinds that
`read_document`) are not documents and are left out."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select, update

from monitor.config import SourceConfig
from monitor.context import Context, Outcome, logger
from monitor.documents import Documents
from monitor.health import Health
from monitor.recorder import Recorder
from spiders.blocks import judge
from spiders.kinds import FetchRequest, Fetched, Parsed
from state.models import ChangeRecord, ItemRecord, SnapshotRecord, SourceRecord
from state.store import sha256

REPLACED_NOTE = "the listed document was replaced at the same URL"
DOC_ATTEMPTS = 3  # a new item's document is tried on this many runs (it is recorded at the first failure)
ARCHIVE_PER_RUN = 20  # listed documents archived (baseline) or fetched again (replaced?) per run, at most max_follow
KEPT = ("backfill", "archived", "fetched")  # doc_status of the items whose document is archived or kept checked


class ListedDocuments:
    def __init__(self, ctx: Context, health: Health, recorder: Recorder, documents: Documents, items):
        """`items`: the Items step (monitor/items.py), whose per-run bookkeeping this shares."""
        self.ctx, self.health, self.recorder, self.documents, self.items = ctx, health, recorder, documents, items
        self.counts: dict[str, int] = {}  # per source, listed documents archived or checked again this run

    def begin(self, sid: str) -> None:
        self.counts[sid] = 0

    @staticmethod
    def owns(fetched: Fetched, item: ItemRecord) -> bool:
        """A response to one of this step's requests."""
        return bool(fetched.request.meta.get("doc")) and item.doc_status in KEPT

    def requests(self, src: SourceConfig) -> list[FetchRequest]:
        """Every listed document gets a stored copy, politely: per run at most ARCHIVE_PER_RUN (and
        max_follow) of them, first those listed at the baseline and never fetched (archived, never
        alerted), then those fetched longest ago, again with their validators: a document replaced
        at the same URL is then a change of that document. API records (read_document) are not
        documents: they are left out."""
        kind = self.ctx.kinds[src.id]
        budget = min(ARCHIVE_PER_RUN, self.items.max_follow(src)) - self.counts.get(src.id, 0)
        if budget <= 0 or hasattr(kind, "read_document"):
            return []
        requested = self.items.requested.setdefault(src.id, set())
        started = self.items.started.get(src.id)
        with self.ctx.store.session() as s:
            rows = list(s.scalars(
                select(ItemRecord).where(ItemRecord.source_id == src.id, ItemRecord.removed_at.is_(None), ItemRecord.doc_url != "",
                                         ItemRecord.doc_status.in_(KEPT))
                .order_by((ItemRecord.doc_status != "backfill"), ItemRecord.doc_checked_at.is_not(None),
                          ItemRecord.doc_checked_at, ItemRecord.id)
                .limit(budget + len(requested))))
            validators = {}
            for r in rows:
                if r.doc_status != "backfill" and r.snapshot_id:
                    snap = s.get(SnapshotRecord, r.snapshot_id)
                    validators[r.key] = json.loads(snap.headers_json or "{}") if snap is not None else {}
        out = []
        for r in rows:
            if r.key in requested or len(out) >= budget:
                continue
            checked = r.doc_checked_at
            if r.doc_status != "backfill" and checked is not None and started is not None and as_utc(checked) >= started:
                continue  # checked in this run already
            requested.add(r.key)
            v = validators.get(r.key, {})
            out.append(FetchRequest(source_id=src.id, url=r.doc_url, item_key=r.key, headers=self.items.doc_headers(src, r.doc_url),
                                    etag=v.get("etag", ""), last_modified=v.get("last-modified", ""),
                                    meta={"doc": "backfill" if r.doc_status == "backfill" else "recheck"}))
        self.counts[src.id] = self.counts.get(src.id, 0) + len(out)
        return out

    def process(self, fetched: Fetched, src: SourceConfig, item: ItemRecord) -> Outcome:
        """A listed document fetched to be archived (its first copy: a baseline, never alerted) or
        fetched again: the same bytes (or a 304) change nothing; other bytes are a new version,
        recorded as a `changed` change of that document when its text differs (or when a scan
        without text was replaced), classified and alerted like any change."""
        sid, key, now = src.id, item.key, self.ctx.clock()
        error = fetched.error
        if not error and fetched.status != 304:
            verdict = judge(fetched, seen_before=item.doc_status != "backfill")
            error = verdict.reason if verdict is not None else (f"HTTP {fetched.status}" if (fetched.status or 0) >= 400 else "")
        if error:
            return self.items.doc_failed(fetched, error)
        if fetched.status == 304:  # most of them: each is asked again with its validators
            self.health.quiet_document(fetched, item.id, now)
            return Outcome(sid, "unchanged", part="archive")
        digest = sha256(fetched.body)
        with self.ctx.store.session() as s:
            last = s.get(SnapshotRecord, item.snapshot_id) if item.snapshot_id else None
            if last is not None and last.body_sha256 == digest:
                s.execute(update(ItemRecord).where(ItemRecord.id == item.id).values(doc_checked_at=now, doc_error=""))
                s.add(self.health.attempt(fetched, "unchanged"))
                return Outcome(sid, "unchanged", part="archive")
        doc = self.documents.extract(fetched, src, Parsed(document=fetched.body, content_type=fetched.content_type), select=False)
        d, replaced_scan, matches = (self.documents.compare(sid, self.ctx.store.get_text(last.text_sha256), doc, last, digest)
                                     if last is not None else (None, False, []))
        outcome = "baseline" if last is None else ("changed" if (d.changed or replaced_scan) else "unchanged")
        with self.ctx.store.session() as s:
            row = s.merge(item)
            snap = self.recorder.snapshot(s, fetched, digest, doc.text, doc.title, doc.note, compressed=doc.compressed)
            if outcome == "changed":
                note = "; ".join(n for n in (REPLACED_NOTE, doc.note) if n)
                self.recorder.change(s, ChangeRecord(
                    source_id=sid, url=item.url or fetched.url, detected_at=now, kind="changed", title=(item.title or doc.title)[:500],
                    item_key=key, item_published=item.published, prev_snapshot_id=last.id, new_snapshot_id=snap.id,
                    added_text=d.added_text, removed_text=d.removed_text, diff_text=d.unified(), note=note, meta_json=item.extra_json,
                ), matches)
                s.get(SourceRecord, sid).last_change_at = now
            row.snapshot_id, row.doc_checked_at, row.doc_error = snap.id, now, ""
            row.doc_status = "archived" if row.doc_status == "backfill" else row.doc_status
            s.add(self.health.attempt(fetched, outcome))
        if outcome == "changed":
            logger.info("source %s: listed document replaced at %s (%s)", sid, fetched.url,
                        ", ".join(m.topic for m in matches) or "no topic matched")
        return Outcome(sid, outcome, changes=int(outcome == "changed"), matched=int(bool(matches)), part="archive")

    def failed(self, item: ItemRecord, reason: str, now: datetime) -> Outcome:
        """Archiving is best effort: the document is tried again on later runs (a first copy at most
        DOC_ATTEMPTS times). `item` belongs to the caller's open session."""
        item.doc_checked_at, item.doc_error = now, reason[:500]
        if item.doc_status == "backfill":
            item.doc_attempts += 1
            if item.doc_attempts >= DOC_ATTEMPTS:
                item.doc_status = "failed"
        return Outcome(item.source_id, "error", error=reason, part="archive")


def as_utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC


