"""One document's new version (a page or a PDF): its text extracted, compared with the last
version as today's extraction reads it, classified, and recorded as a change; removals too."""
from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path

from monitor.config import SourceConfig
from monitor.context import Context, Outcome, log_outcome, logger, part_of
from monitor.diff import diff
from monitor import extract as extract_mod
from monitor.extract import extract
from monitor.health import Health
from monitor.ocr import engine_version, limits as ocr_limits
from monitor.offload import Args
from monitor.recorder import Recorder
from spiders.kinds import Fetched, Parsed
from state.errors import GovwatchError, SourceError
from state.models import ChangeRecord, SnapshotRecord, SourceRecord
from state.store import sha256

NO_TEXT_LAYER = "PDF without a text layer"  # how the note of an unread scan begins


@dataclass
class Doc:
    text: str
    title: str
    note: str = ""
    compressed: dict[str, bytes] = field(default_factory=dict)  # by the extraction worker (monitor/offload.py)
    extraction: str = ""  # extraction_key of what read `text`


class Documents:
    def __init__(self, ctx: Context, health: Health, recorder: Recorder):
        self.ctx, self.health, self.recorder = ctx, health, recorder

    def extract(self, fetched: Fetched, src: SourceConfig, parsed: Parsed, select: str | None | bool = True) -> Doc:
        body = parsed.document or b""
        args = extract_args(self.ctx, fetched, src, parsed.content_type, select)
        prepared = self.ctx.extractor.take(body, args)  # done ahead in the worker process, when it was
        try:
            if prepared is None or prepared.extracted is None:
                ex = extract(body, content_type=args.content_type, url=args.url, select=args.select,
                             ignore=self.ctx.ignore[src.id], ocr=args.ocr)
            else:
                ex = prepared.extracted
        except SourceError as e:
            e.source_id, e.url = src.id, fetched.url
            raise
        # a scan: "OCR text (mean confidence 87%)", or no text and how to enable OCR (monitor.ocr)
        note = ex.note or (NO_TEXT_LAYER if ex.no_text_layer else "")
        # the worker's compressed bytes serve by their SHA-256 even when its extraction did not
        return Doc(text=ex.text, title=ex.title or parsed.title or "", note=note,
                   compressed=prepared.compressed if prepared is not None else {}, extraction=extraction_key(args, ex.kind))

    def prepare(self, fetched: Fetched, src: SourceConfig) -> None:
        """On the reactor thread, as a response arrives: a page, a PDF or a listed document is
        handed to the extraction worker, to be extracted by the time the writer reaches it (the
        writer uses it only if it asks for the very same extraction: Documents.extract)."""
        ex = self.ctx.extractor
        if not ex.enabled or fetched.error or not fetched.body or not 200 <= (fetched.status or 0) < 300:
            return
        part = part_of(fetched.request)
        if part == "document":  # a new item's or a listed document (select does not apply)
            ex.submit(fetched.body, extract_args(self.ctx, fetched, src, None, False))
        elif not part and not getattr(self.ctx.kinds[src.id], "has_items", True):  # a page or a PDF
            try:
                parsed = self.ctx.kinds[src.id].parse(fetched, src)
            except GovwatchError:
                return
            ex.submit(fetched.body, extract_args(self.ctx, fetched, src, parsed.content_type, True))

    def process(self, fetched: Fetched, src: SourceConfig, doc: Doc, digest: str, last: SnapshotRecord | None) -> Outcome:
        """A new version of a page or PDF: baseline, changed, or unchanged (cosmetic) — or held back
        as a block when it suddenly lost most of its text."""
        sid = src.id
        part = part_of(fetched.request)
        shrunk = self.health.shrunk(fetched, len(doc.text), last, digest)
        if shrunk:
            return self.health.record_block(fetched, shrunk)
        now = self.ctx.clock()
        d, replaced_pdf, matches = (self.compare(sid, self.previous_text(fetched, src, last, doc), doc, last, digest)
                                    if last is not None else (None, False, []))
        # a healthy source's books are two statements; another's are loaded and judged (Health.success)
        every = self.health.quiet_every.pop(sid, None) if not part else None
        with self.ctx.store.session() as s:
            rec = s.get(SourceRecord, sid) if every is None else None
            snap = self.recorder.snapshot(s, fetched, digest, doc.text, doc.title, doc.note, compressed=doc.compressed,
                                          extraction=doc.extraction)
            also = {} if part else {"last_snapshot_id": snap.id}
            if last is None:
                outcome = "baseline"
            elif d.changed or replaced_pdf:
                outcome = "changed"
                note = (f"the PDF was replaced; neither version has a text layer{doc.note.removeprefix(NO_TEXT_LAYER)}"
                        if replaced_pdf else doc.note)
                self.recorder.change(s, ChangeRecord(
                    source_id=sid, url=fetched.url, detected_at=now, kind="changed", title=doc.title[:500],
                    prev_snapshot_id=last.id, new_snapshot_id=snap.id, added_text=d.added_text,
                    removed_text=d.removed_text, diff_text=d.unified(), note=note,
                ), matches)
                also["last_change_at"] = now
            else:
                outcome = "unchanged"  # a cosmetic change: the new bytes are kept as evidence only
            if every is not None:
                self.health.write_success(s, fetched, outcome, every, now, **also)
            else:
                for name, value in also.items():
                    setattr(rec, name, value)
                s.add(self.health.attempt(fetched, outcome))
                self.health.success(s, rec, fetched, now)
        log_outcome(sid, outcome, matches)
        return Outcome(sid, outcome, changes=int(outcome == "changed"), matched=int(bool(matches)), part=part)

    def compare(self, sid: str, prev_text: str, doc: Doc, last: SnapshotRecord, digest: str):
        """A new version against the last: the sentence diff, whether a scan without a text layer
        was replaced by other bytes (no text on either side to diff), and the topics of the change."""
        d = diff(prev_text, doc.text)
        replaced_scan = not d.changed and not doc.text and doc.note.startswith(NO_TEXT_LAYER) and last.body_sha256 != digest
        matches = self.ctx.classify(sid, d.added_text, d.removed_text, d.replaced) if d.changed else []
        return d, replaced_scan, matches

    def previous_text(self, fetched: Fetched, src: SourceConfig, last: SnapshotRecord, new: Doc) -> str:
        """The last version's text as this extraction reads it. The stored text is, when this very
        extraction stored it (the same extraction key) or it equals the new text. Otherwise (a new
        govwatch, trafilatura or Tesseract release, an edited `select` or `ignore`, a version stored
        before keys were kept) the old raw body is read again, so an upgrade is never reported as a
        change of every page; the stored text serves when the old body cannot be read again."""
        store = self.ctx.store
        stored = store.get_text(last.text_sha256)
        if stored == new.text or last.note.startswith("removed"):
            return stored
        if new.extraction and last.extraction == new.extraction and (stored or last.text_chars == 0):
            return stored  # never a scan OCR-read again, nor a page extracted twice, for the same reading
        body = store.get_blob(last.body_sha256)
        if not body:
            return stored
        try:
            old = replace(fetched, url=last.url, body=body, headers=json.loads(last.headers_json or "{}"))
            parsed = self.ctx.kinds[src.id].parse(old, src)
            if parsed.document is None or parsed.items is not None:
                return stored
            return self.extract(old, src, parsed).text
        except (GovwatchError, ValueError) as e:
            logger.debug("source %s: previous version not re-extracted (%s); using its stored text", src.id, e)
            return stored

    def removed(self, fetched: Fetched, src: SourceConfig, reason: str, last: SnapshotRecord | None) -> Outcome:
        """The page is gone (404/410, a redirect home, a 'not found' page): a `removed` change once,
        its last text classified by the same rules (a match alerts as REMOVED, the last capture linked)."""
        sid = src.id
        part = part_of(fetched.request)
        now = self.ctx.clock()
        if last is not None and last.note.startswith("removed"):
            return self.health.unchanged(fetched, "unchanged")  # still gone: recorded already
        prev_text = self.ctx.store.get_text(last.text_sha256) if last else ""
        matches = self.ctx.classify(sid, "", removed=prev_text) if prev_text else []
        with self.ctx.store.session() as s:
            rec = s.get(SourceRecord, sid)
            snap = self.recorder.snapshot(s, fetched, sha256(fetched.body), "", last.title if last else "", note=f"removed: {reason}")
            if not part:
                rec.last_snapshot_id = snap.id
                rec.last_change_at = now
            self.recorder.change(s, ChangeRecord(
                source_id=sid, url=fetched.request.url, detected_at=now, kind="removed", title=(last.title if last else "")[:500],
                prev_snapshot_id=last.id if last else None, new_snapshot_id=snap.id, removed_text=prev_text,
                diff_text="\n".join("- " + line for line in prev_text.splitlines()), note=f"removed: {reason}",
            ), matches)
            s.add(self.health.attempt(fetched, "removed", reason))
            self.health.success(s, rec, fetched, now)
        logger.warning("source %s: removed (%s)", sid, reason)
        return Outcome(sid, "removed", changes=1, matched=int(bool(matches)), part=part)


def extract_args(ctx: Context, fetched: Fetched, src: SourceConfig, content_type: str | None, select: str | None | bool) -> Args:
    """What Documents.extract extracts with: the same for the worker's job and the writer's check."""
    return Args(content_type=content_type or fetched.content_type, url=fetched.url,
                select=src.select if select is True else None, ignore=tuple(src.ignore), ocr=ocr_limits(ctx.config.ocr))


def extraction_key(args: Args, kind: str) -> str:
    """Which extraction reads a body of this kind ("html", "pdf", "text": Extracted.kind) into
    text, as a short hash: the code that reads (monitor/extract.py, ocr.py, patterns.py, hashed as
    they are, so that no edit of them can be forgotten), the versions of the libraries it reads
    with, Unicode's (normalisation), `select`, `ignore`, and for a PDF the OCR limits with what OCR
    reads with here (or why it cannot). Two texts with the same key are two readings by the same
    extraction."""
    return _key(kind, args.select, args.ignore, args.ocr if kind == "pdf" else None)


@functools.lru_cache(maxsize=1024)
def _key(kind: str, select: str | None, ignore: tuple[str, ...], ocr) -> str:
    ocr_part = asdict(ocr) if ocr is not None else None
    if ocr is not None and ocr.enabled:
        ocr_part["engine"] = engine_version(ocr)
    parts = [_reader(), kind, select, list(ignore), ocr_part]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@functools.cache
def _reader() -> dict:
    from monitor import ocr, patterns

    code = hashlib.sha256()
    for module in (extract_mod, ocr, patterns):
        code.update(Path(module.__file__).read_bytes())
    versions = {}
    for name in extract_mod.LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return {"code": code.hexdigest(), "libraries": versions, "unicode": unicodedata.unidata_version}
