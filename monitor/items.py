"""Listings, feeds and APIs: new and removed items of a fetched page of items, the later pages, and
each new item's own document (followed, at most max_follow a run, the rest pending for the next)."""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select, update

from monitor.config import SourceConfig
from monitor.context import Context, Outcome, log_outcome, logger, part_of
from monitor.documents import Doc, Documents
from monitor.listed import DOC_ATTEMPTS, ListedDocuments, as_utc
from monitor.health import Health
from monitor.recorder import Recorder
from spiders.blocks import judge
from spiders.kinds import FetchRequest, Fetched, Item, Parsed
from state.errors import ExtractError
from state.models import ChangeRecord, ItemRecord, SnapshotRecord, SourceRecord
from state.store import chunks, sha256

FALLBACK_NOTE = "found without the configured selectors (they are blind): a document link of the listing's region"
MAX_KEY = 2000


class Items:
    def __init__(self, ctx: Context, health: Health, recorder: Recorder, documents: Documents):
        self.ctx, self.health, self.recorder, self.documents = ctx, health, recorder, documents
        # per source, since its own request was last fed: the documents asked for (each is tried
        # once a run), and when the run began (items seen since moved pages rather than vanished)
        self.requested: dict[str, set[str]] = {}
        self.started: dict[str, datetime] = {}
        self.listed = ListedDocuments(ctx, health, recorder, documents, self)

    def begin(self, sid: str, now: datetime) -> None:
        """A new run of a source: its first request is being fed."""
        self.requested[sid] = set()
        self.started[sid] = now
        self.listed.begin(sid)

    # -- follow-ups ---------------------------------------------------------------------
    def max_follow(self, src: SourceConfig) -> int:
        return int(getattr(src.options, "max_follow", 20) or 0) if src.options is not None else 20

    def pending_docs(self, src: SourceConfig) -> list[FetchRequest]:
        """New items waiting for their document: at most max_follow per run, oldest first; the rest
        stay pending in the database for the next run (never dropped)."""
        if not getattr(self.ctx.kinds[src.id], "has_items", True):
            return []
        limit = self.max_follow(src)
        requested = self.requested.setdefault(src.id, set())
        asked = len(requested)
        if limit - asked <= 0:
            self._record_waiting(src, limit)
            return []
        with self.ctx.store.session() as s:
            rows = list(s.scalars(select(ItemRecord)
                                  .where(ItemRecord.source_id == src.id, ItemRecord.doc_status == "pending")
                                  .order_by(ItemRecord.first_seen_at, ItemRecord.id).limit(limit - asked + len(requested))))
        out = []
        for r in rows:
            if r.key in requested or len(out) >= limit - asked:
                continue
            requested.add(r.key)
            out.append(FetchRequest(source_id=src.id, url=r.doc_url, item_key=r.key, headers=self.doc_headers(src, r.doc_url)))
        if asked + len(out) >= limit:
            self._record_waiting(src, limit)
        return out + self.listed.requests(src)

    def doc_headers(self, src: SourceConfig, url: str) -> dict[str, str]:
        """Headers of a followed document's request: only what its kind says that URL may get (the
        Congress.gov key goes to api.congress.gov alone); none for most kinds."""
        kind = self.ctx.kinds[src.id]
        return kind.document_headers(src, url, env=self.ctx.env) if hasattr(kind, "document_headers") else {}

    def _record_waiting(self, src: SourceConfig, limit: int) -> None:
        """Items first seen in this cycle whose document waits for a later run (more new items than
        max_follow): recorded and alerted now on what the listing says; the full text is attached
        to the same change when it comes (process_doc)."""
        sid, now = src.id, self.ctx.clock()
        started, requested = self.started.get(sid), self.requested.get(sid, set())
        with self.ctx.store.session() as s:
            rows = [r for r in s.scalars(select(ItemRecord).where(ItemRecord.source_id == sid, ItemRecord.doc_status == "pending"))
                    if (started is None or as_utc(r.first_seen_at) >= started) and r.key not in requested]
            for item in rows:
                if _item_change(s, sid, item.key) is not None:
                    continue
                self._listing_change(s, sid, item, now, f"full text pending: more than max_follow ({limit}) new documents "
                                                        "in this run; its document is fetched on a later run")
        if rows:
            logger.info("source %s: %d new item(s) recorded on the listing's word, their documents wait for the next run", sid, len(rows))

    def _listing_change(self, s, sid: str, item: ItemRecord, now: datetime, note: str) -> ChangeRecord:
        """A new item's change on what the listing, feed or API says (title and summary)."""
        text = item_text(item)
        last_listing = self.ctx.store.latest_snapshot(s, sid, "")
        return self.recorder.change(s, ChangeRecord(
            source_id=sid, url=item.url or item.doc_url, detected_at=now, kind="new_item", title=item.title[:500], item_key=item.key,
            item_published=item.published, prev_snapshot_id=last_listing.id if last_listing else None,
            added_text=text, diff_text=_plus(text), note=note, meta_json=item.extra_json,
        ), self.ctx.classify(sid, text))

    def next_page(self, src: SourceConfig, fetched: Fetched, parsed: Parsed) -> list[FetchRequest]:
        page_no = _page_no(fetched.request.item_key)
        max_pages = int(getattr(src.options, "max_pages", 1) or 1) if src.options is not None else 1
        if page_no >= max_pages or not parsed.next_pages:
            return []
        key = f"#page-{page_no + 1}"
        with self.ctx.store.session() as s:
            last = self.ctx.store.latest_snapshot(s, src.id, key)
        validators = json.loads(last.headers_json) if last is not None else {}
        browser = fetched.request.render == "browser"  # a rendered listing's later pages are rendered too
        return [FetchRequest(source_id=src.id, url=parsed.next_pages[0], item_key=key, headers=self.ctx.headers(src),
                             etag="" if browser else validators.get("etag", ""),
                             last_modified="" if browser else validators.get("last-modified", ""),
                             render=fetched.request.render)]

    # -- a page of items ----------------------------------------------------------------
    def process(self, fetched: Fetched, src: SourceConfig, parsed: Parsed, digest: str,
                last: SnapshotRecord | None) -> Outcome:
        """Record a page of items: its snapshot, the items first seen (alerted at once when they
        have no document to follow, else pending), and the items removed from the listing."""
        sid = src.id
        part = part_of(fetched.request)
        now = self.ctx.clock()
        items = parsed.items or []
        for it in items:
            it.key = item_key(it.key)
        prev_keys = json.loads(last.item_keys_json or "[]") if last is not None else []
        if not items and prev_keys:
            # a redesign that leaves the region but loses the items must be loud, not "unchanged"
            what = f"item selector '{getattr(src.options, 'items', '')}' matched nothing" if src.kind == "listing" else "no items any more"
            raise ExtractError(f"{what} (the last fetch had {len(prev_keys)} items)", source_id=sid, url=fetched.url)
        # blind from the first fetch: a source whose own first page holds no item at all reads nothing
        blind = parsed.blind or ("" if items or part else
                                 "no items: the " + ("feed has no entries" if src.kind == "feed" else
                                                     "API answered with no records" if src.kind != "listing" else
                                                     "listing shows no item links") + " (matched nothing)")
        cur_keys = [it.key for it in items]
        for it in items:
            if it.fallback:  # kept with the item and its change: found without the configured selectors
                it.extra["fallback"] = True
        with self.ctx.store.session() as s:
            known = {r.key: r for r in s.scalars(select(ItemRecord).where(ItemRecord.source_id == sid))}
        baseline = last is None
        new_items = [it for it in items if it.key not in known]
        follow = self.max_follow(src) > 0
        immediate = [] if baseline else [(it, item_text(it)) for it in new_items if not (follow and it.doc_url)]
        immediate = [(it, text, self.ctx.classify(sid, text)) for it, text in immediate]
        # a blind reading (selectors matching nothing, fallback links) says nothing of what left the listing
        removed_keys = [] if baseline or blind or not getattr(self.ctx.kinds[sid], "tracks_removals", False) else \
            _removed_keys(prev_keys, cur_keys)
        if blind:
            logger.warning("source %s: selectors blind%s: %s", sid, f" ({part} {fetched.url})" if part else "", blind)
        n_changes = n_matched = 0
        with self.ctx.store.session() as s:
            rec = s.get(SourceRecord, sid)
            snap = self.recorder.snapshot(s, fetched, digest, items_text(items), parsed.title, item_keys=cur_keys)
            if not part:
                rec.last_snapshot_id = snap.id
            self._store_items(s, sid, items, known, now, pending=not baseline and follow, backfill=baseline and follow)
            for it, text, matches in immediate:
                self.recorder.change(s, ChangeRecord(
                    source_id=sid, url=it.url or fetched.url, detected_at=now, kind="new_item", title=it.title[:500],
                    item_key=it.key, item_published=it.published[:100], prev_snapshot_id=last.id,
                    new_snapshot_id=snap.id, added_text=text, diff_text=_plus(text),
                    meta_json=json.dumps(it.extra, ensure_ascii=False), note=FALLBACK_NOTE if it.fallback else "",
                ), matches)
                n_changes += 1
                n_matched += bool(matches)
            n_changes += self._record_removals(s, sid, removed_keys, known, fetched, last, snap, now)
            if n_changes:
                rec.last_change_at = now
            if new_items and not baseline:
                rec.last_new_item_at = now
            outcome = "baseline" if baseline else ("changed" if (n_changes or new_items) else "unchanged")
            s.add(self.health.attempt(fetched, outcome, blind))
            self.health.success(s, rec, fetched, now, blind=blind)
        pending = 0 if baseline else len(new_items) - len(immediate)
        log_outcome(sid, outcome, [], n_changes, n_matched, pending)
        return Outcome(sid, outcome, changes=n_changes, matched=n_matched, part=part)

    @staticmethod
    def _store_items(s, sid: str, items: list[Item], known: dict, now: datetime, *, pending: bool, backfill: bool = False) -> None:
        """New items inserted (pending their document when one is to be followed, or, listed at the
        baseline, waiting to be archived); known ones seen again."""
        seen_again = []
        for it in items:
            if it.key in known:
                seen_again.append(it.key)
                continue
            wait = (pending or backfill) and bool(it.doc_url)
            status = ("pending" if pending else "backfill") if wait else ""
            s.add(ItemRecord(source_id=sid, key=it.key, url=it.url, title=it.title[:1000], published=it.published[:100],
                             summary=it.summary, first_seen_at=now, last_seen_at=now, doc_url=it.doc_url if wait else "",
                             doc_status=status, extra_json=json.dumps(it.extra, ensure_ascii=False)))
            known[it.key] = None  # a key twice on one page is one item
        for part in chunks(seen_again):  # one UPDATE per IN_CHUNK known items, not one merge each
            s.execute(update(ItemRecord).where(ItemRecord.source_id == sid, ItemRecord.key.in_(part))
                      .values(last_seen_at=now, removed_at=None))

    def _record_removals(self, s, sid: str, removed_keys: list[str], known: dict, fetched: Fetched,
                         last: SnapshotRecord | None, snap: SnapshotRecord, now: datetime) -> int:
        """Items taken off the listing: a `removed` change each, what they said (title, summary and
        the stored document's text) classified by the same rules: a match alerts as REMOVED."""
        n = 0
        for key in removed_keys:
            row = known.get(key)
            if row is None:
                continue
            row = s.merge(row)
            started = self.started.get(sid)
            if row.removed_at is not None or (started is not None and as_utc(row.last_seen_at) >= started):
                continue  # already recorded, or it moved to another page of this listing in this run
            row.removed_at = now
            doc = s.get(SnapshotRecord, row.snapshot_id) if row.snapshot_id else None
            text = item_text(row, self.ctx.store.get_text(doc.text_sha256, s) if doc is not None else "")
            capture = doc.id if doc is not None else (last.id if last is not None else None)
            self.recorder.change(s, ChangeRecord(
                source_id=sid, url=row.url or fetched.url, detected_at=now, kind="removed", title=row.title[:500],
                item_key=key, item_published=row.published, prev_snapshot_id=last.id, new_snapshot_id=snap.id,
                removed_text=text, diff_text=f"- {row.title}\n- {row.url}", note="the item was removed from the listing",
                meta_json=json.dumps({"last_capture_id": capture}),
            ), self.ctx.classify(sid, "", removed=text))
            n += 1
        return n

    # -- an item's document -------------------------------------------------------------
    def process_doc(self, fetched: Fetched, src: SourceConfig) -> Outcome:
        """A new item's document (HTML or PDF): stored as its own snapshot, classified in full, and
        recorded as the item's `new_item` change with its title, date and link."""
        sid, key = src.id, fetched.request.item_key
        with self.ctx.store.session() as s:
            item = s.scalars(select(ItemRecord).where(ItemRecord.source_id == sid, ItemRecord.key == key)).first()
        if item is not None and self.listed.owns(fetched, item):
            return self.listed.process(fetched, src, item)
        if item is None or item.doc_status != "pending":
            return Outcome(sid, "unchanged", part="document")
        error = fetched.error
        if not error:
            verdict = judge(fetched, seen_before=False)
            if verdict is not None:
                error = verdict.reason
            elif fetched.status is not None and fetched.status >= 400:
                error = f"HTTP {fetched.status}"
        if error:
            return self.doc_failed(fetched, error)
        kind = self.ctx.kinds[sid]
        if hasattr(kind, "read_document"):
            # the item's own record (an API's details): what a reader sees of it replaces the list's stand-in
            detail = kind.read_document(fetched, src)
            extra = {**_extra(item), **detail.extra}
            item.title = (detail.title or item.title)[:1000]
            item.published = (detail.published or item.published)[:100]  # the hearing's date, not the record's update
            item.extra_json = json.dumps(extra, ensure_ascii=False)
            doc = Doc(text=detail.text, title=detail.title)
            head = detail.text if detail.title else "\n".join(x for x in (item.title, detail.text) if x)
            text = "\n\n".join(x for x in (head, item.summary) if x)
        else:
            doc = self.documents.extract(fetched, src, Parsed(document=fetched.body, content_type=fetched.content_type), select=False)
            text = item_text(item, doc.text)
        notes = [n for n in (doc.note + ("; classified on the title and summary only" if doc.note and not doc.text else ""),
                             FALLBACK_NOTE if _extra(item).get("fallback") else "") if n]
        matches = self.ctx.classify(sid, text)
        now = self.ctx.clock()
        with self.ctx.store.session() as s:
            item = s.merge(item)
            snap = self.recorder.snapshot(s, fetched, sha256(fetched.body), doc.text, doc.title, doc.note, compressed=doc.compressed)
            earlier = _item_change(s, sid, key)
            if earlier is not None:  # recorded and alerted on the listing's word when the document failed
                self.recorder.attach(s, earlier, added_text=text, diff_text=_plus(text), snapshot=snap, matches=matches,
                                     note=f"full text attached {now:%Y-%m-%d %H:%M UTC} after {item.doc_attempts} failed "
                                          f"attempt(s) ({item.doc_error[:200]})" + (f"; {doc.note}" if doc.note else ""))
            else:
                last_listing = self.ctx.store.latest_snapshot(s, sid, "")
                self.recorder.change(s, ChangeRecord(
                    source_id=sid, url=item.url or fetched.url, detected_at=now, kind="new_item", title=(item.title or doc.title)[:500],
                    item_key=key, item_published=item.published, prev_snapshot_id=last_listing.id if last_listing else None,
                    new_snapshot_id=snap.id, added_text=text, diff_text=_plus(text),
                    note="; ".join(notes), meta_json=item.extra_json,
                ), matches)
            item.doc_status, item.snapshot_id, item.doc_error = "fetched", snap.id, ""
            item.doc_attempts += 1
            s.add(self.health.attempt(fetched, "changed"))
            rec = s.get(SourceRecord, sid)
            rec.last_change_at = now
        logger.info("source %s: new document %s (%s)", sid, fetched.url, ", ".join(m.topic for m in matches) or "no topic matched")
        return Outcome(sid, "changed", changes=int(earlier is None), matched=int(earlier is None and bool(matches)), part="document")

    def doc_failed(self, fetched: Fetched, reason: str) -> Outcome:
        """A new item's document could not be fetched: the item is recorded and classified at once
        on what the listing, feed or API says (alerted in the cycle that saw it, the full text
        noted as pending and why), and its document is tried again on the next runs; when it
        comes, it is attached to the same change (see process_doc)."""
        sid, key = fetched.request.source_id, fetched.request.item_key
        now = self.ctx.clock()
        logger.warning("source %s: document %s: %s", sid, fetched.url, reason)
        n = matched = 0
        with self.ctx.store.session() as s:
            item = s.scalars(select(ItemRecord).where(ItemRecord.source_id == sid, ItemRecord.key == key)).first()
            s.add(self.health.attempt(fetched, "error", reason))
            if item is not None and self.listed.owns(fetched, item):
                return self.listed.failed(item, reason, now)
            if item is None or item.doc_status != "pending":
                return Outcome(sid, "error", error=reason, part="document")
            item.doc_attempts += 1
            item.doc_error = reason[:500]
            change = _item_change(s, sid, key)
            if change is None:
                change = self._listing_change(s, sid, item, now, f"full text pending: the document could not be fetched "
                                              f"({reason[:200]}); classified on what the listing says (title and summary); "
                                              "the document is tried again on the next runs")
                n, matched = 1, int(change.matched)
            if item.doc_attempts >= DOC_ATTEMPTS:
                item.doc_status = "failed"
                change.note = (f"the full text could not be fetched after {item.doc_attempts} attempts ({reason[:200]}); "
                               "classified on what the listing says (title and summary)")
            if _extra(item).get("fallback") and FALLBACK_NOTE not in change.note:
                change.note = f"{change.note}; {FALLBACK_NOTE}"
        return Outcome(sid, "error", changes=n, matched=matched, error=reason, part="document")


def _item_change(s, sid: str, key: str) -> ChangeRecord | None:
    """The `new_item` change of an item, when one was recorded before its document came."""
    return s.scalars(select(ChangeRecord).where(ChangeRecord.source_id == sid, ChangeRecord.item_key == key,
                                                ChangeRecord.kind == "new_item").order_by(ChangeRecord.id.desc()).limit(1)).first()


def _extra(item: ItemRecord) -> dict:
    try:
        extra = json.loads(item.extra_json or "{}")
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


def items_text(items: list[Item]) -> str:
    """A feed or listing as text, for the snapshot (evidence) and the web view."""
    blocks = []
    for it in items:
        head = it.title or it.key
        lines = [head, it.url] + ([it.published] if it.published else []) + ([it.summary] if it.summary else [])
        blocks.append("\n".join(x for x in lines if x))
    return "\n\n".join(blocks)


def item_text(it: Item | ItemRecord, body: str = "") -> str:
    return "\n\n".join(x for x in (it.title, it.summary, body) if x)


def item_key(key: str) -> str:
    """An item key as stored: a very long id (some feeds use whole URLs with state) is cut and
    made unique with its hash, the same way every time, so it is never "new" twice."""
    if len(key) <= MAX_KEY:
        return key
    return key[: MAX_KEY - 65] + "#" + sha256(key.encode("utf-8"))


def _plus(text: str) -> str:
    return "\n".join("+ " + line for line in text.splitlines())


def _page_no(item_key: str) -> int:
    return int(item_key[6:]) if item_key.startswith("#page-") else 1


def _removed_keys(prev: list[str], cur: list[str]) -> list[str]:
    """Items gone from a listing, except those that merely rolled off its end (a newest-first
    listing pushes old items out as new ones arrive: that is not a removal)."""
    cur_set = set(cur)
    present = [i for i, k in enumerate(prev) if k in cur_set]
    last_present = present[-1] if present else -1
    return [k for i, k in enumerate(prev) if k not in cur_set and i < last_present]
