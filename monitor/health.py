"""A source's books: every fetch attempt, its schedule after a success, failure or block (with
backoff), shrinking and silence, health alerts and recoveries, and the batched quiet outcomes."""
from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from sqlalchemy import insert, select
from sqlmodel import Session

from alerts.message import health_alert
from monitor.context import Context, Outcome, logger, part_of
from spiders.kinds import Fetched
from state.errors import GovwatchError
from state.models import DeliveryRecord, FetchAttemptRecord, ItemRecord, SnapshotRecord, SourceRecord, as_utc
from state.store import bulk_update

FAILURE_BACKOFF_CAP = 8  # a failing source waits at most 8x its interval (and at most a day more)
SHRINK_ACCEPT_AFTER = 3  # the same shrunken page this many times in a row is accepted as the new content
MIN_TEXT_FOR_SHRINK = 400  # pages shorter than this are too small to judge shrinking
QUIET_BATCH = 200  # queued quiet outcomes (304, same bytes) written together ...
QUIET_SECONDS = 1.0  # ... or once the oldest has waited this long


class Health:
    """Writes what a response says of its source's health and schedule. Quiet outcomes (304, same
    bytes) of healthy sources are queued and written in batches: their one row and one update each
    cost more in sessions than the fetch itself."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.quiet_every: dict[str, float] = {}  # healthy source -> every_seconds, set per cycle
        self._quiet_rows: list[tuple[dict, type, dict]] = []  # (fetch attempt, SourceRecord or ItemRecord, its update)
        self._quiet_lock = threading.RLock()  # the writer queues and flushes; an abandoned cycle flushes from outside
        self._quiet_since = 0.0

    # -- attempts -----------------------------------------------------------------------
    def attempt(self, fetched: Fetched, outcome: str, error: str = "") -> FetchAttemptRecord:
        return FetchAttemptRecord(**attempt_row(fetched, outcome, error))

    def next_due(self, rec: SourceRecord, now: datetime) -> datetime:
        return due_after(float(rec.every_seconds), max(rec.consecutive_failures, rec.consecutive_blocks), now)

    # -- failures and blocks ------------------------------------------------------------
    def record_failure(self, fetched: Fetched, reason: str, *, blind: bool = False) -> None:
        """A failed fetch or reading. `blind`: the response came but nothing could be read from it
        (a BlindError: a region matching nothing, a page with no text), which is `empty` at once."""
        sid = fetched.request.source_id
        part = part_of(fetched.request)
        # one line per routine failure: source, host and reason (no traceback: see spiders/fetch.py)
        logger.warning("source %s (%s): fetch failed%s: %s", sid, urlsplit(fetched.url).hostname or fetched.url,
                       f" ({part} {fetched.url})" if part else "", reason)
        now = self.ctx.clock()
        with self.ctx.store.session() as s:
            s.add(self.attempt(fetched, "error", reason))
            rec = s.get(SourceRecord, sid)
            if rec is None or part:
                return  # a later page failing does not make the source unhealthy
            rec.last_attempt_at = now
            rec.lease_owner, rec.lease_until = "", None
            rec.consecutive_failures += 1
            rec.last_error = reason[:2000]
            rec.last_status = fetched.status
            # the watched region vanishing (a redesign) is its own problem: say so at once
            problem = "empty" if blind or "matched nothing" in reason else "failing"
            rec.health = problem
            # the interval runs from when the fetch started, not from when its processing ended:
            # a busy writer must not push every source's next check later and later
            rec.next_due_at = self.next_due(rec, as_utc(fetched.started_at))
            self.alert(s, rec, problem, f"{rec.consecutive_failures} consecutive failure(s); last error: {reason[:300]}",
                       problem == "empty" or self.ctx.config.health.failures_before_alert <= rec.consecutive_failures)

    def record_block(self, fetched: Fetched, reason: str) -> Outcome:
        """A bot wall or a page that lost most of its text: never a content change; the last good
        snapshot stays the comparison base; repeated blocks raise a health alert."""
        sid = fetched.request.source_id
        part = part_of(fetched.request)
        logger.warning("source %s: blocked: %s", sid, reason)
        now = self.ctx.clock()
        with self.ctx.store.session() as s:
            s.add(self.attempt(fetched, "blocked", reason))
            rec = s.get(SourceRecord, sid)
            if rec is not None and not part:
                rec.last_attempt_at = now
                rec.lease_owner, rec.lease_until = "", None
                rec.consecutive_blocks += 1
                rec.last_error = reason[:2000]
                rec.last_status = fetched.status
                rec.health = "blocked"
                rec.next_due_at = self.next_due(rec, as_utc(fetched.started_at))
                self.alert(s, rec, "blocked", f"{rec.consecutive_blocks} blocked fetches in a row; last: {reason[:300]}",
                           self.ctx.config.health.blocks_before_alert <= rec.consecutive_blocks)
        return Outcome(sid, "blocked", error=reason, part=part)

    def alert(self, s: Session, rec: SourceRecord, problem: str, detail: str, due: bool) -> None:
        """Queue a health alert once per problem, and a recovery message when it clears."""
        now = self.ctx.clock()
        if due and rec.health_alerted != problem:
            rec.health_alerted = problem
            msg = health_alert(rec.name, rec.id, rec.url, problem, detail)
        elif problem == "ok" and rec.health_alerted:
            msg = health_alert(rec.name, rec.id, rec.url, "ok", was=rec.health_alerted)
            rec.health_alerted = ""
        else:
            return
        logger.warning("%s", msg.title)
        # one row per (source, target): the outbox groups the rows due for a target into one message
        for t in self.ctx.config.health_notify:
            s.add(DeliveryRecord(kind="health", target=t.name, title=msg.title, body=msg.body, next_try_at=now))

    # -- successes ----------------------------------------------------------------------
    def success(self, s: Session, rec: SourceRecord, fetched: Fetched, now: datetime, blind: str | None = None) -> None:
        """A good response. `blind`: why the kind's selectors read nothing of it ("" when they read
        it; None when it was not read at all: the same bytes or a 304, which keep a blind source
        blind). A blind source is `empty` from its first fetch, with a health alert at once."""
        if part_of(fetched.request):
            return  # only the source's own fetch speaks for its health and schedule
        if blind is None and rec.health == "empty" and not rec.consecutive_failures and rec.last_error:
            blind = rec.last_error  # nothing new was read: the selectors are as blind as they were
        rec.last_attempt_at = now
        rec.last_success_at = now
        rec.lease_owner, rec.lease_until = "", None
        rec.last_status = fetched.status
        rec.consecutive_failures = 0
        rec.consecutive_blocks = 0
        rec.last_error = (blind or "")[:2000]
        rec.health = "ok"
        for name, value in validators(fetched).items():
            setattr(rec, name, value)
        rec.next_due_at = self.next_due(rec, as_utc(fetched.started_at))
        if blind:
            rec.health = "empty"
            self.alert(s, rec, "empty", f"the configured selectors are blind: {blind[:500]}", True)
            return
        silent = self.silent(rec, now)
        if silent:
            rec.health = "silent"
            self.alert(s, rec, "silent", silent, True)
        else:
            self.alert(s, rec, "ok", "", False)

    def silent(self, rec: SourceRecord, now: datetime) -> str:
        """A feed or listing with no new item for longer than its expect_update_within."""
        src = self.ctx.config.source(rec.id)
        if not src.expect_update_within:
            return ""
        ref = rec.last_new_item_at or rec.created_at
        if ref.tzinfo is None:
            ref = ref.replace(tzinfo=timezone.utc)
        quiet = (now - ref).total_seconds()
        if quiet <= src.expect_update_within:
            return ""
        return f"no new item for {quiet / 86400:.1f} days (expected one within {src.expect_update_within / 86400:g} days)"

    def shrunk(self, fetched: Fetched, text_chars: int, last: SnapshotRecord | None, digest: str) -> str:
        """A reason when the text suddenly lost most of its size (and this is not yet accepted)."""
        if last is None or last.note.startswith("removed") or last.text_chars < MIN_TEXT_FOR_SHRINK:
            return ""
        if text_chars >= last.text_chars * (1 - self.ctx.config.health.shrink_ratio):
            return ""
        marker = f"body {digest[:12]}"
        reason = f"text shrank from {last.text_chars} to {text_chars} characters ({marker})"
        with self.ctx.store.session() as s:
            recent = list(s.scalars(select(FetchAttemptRecord.error)
                                    .where(FetchAttemptRecord.source_id == fetched.request.source_id,
                                           FetchAttemptRecord.url == fetched.url)
                                    .order_by(FetchAttemptRecord.id.desc()).limit(SHRINK_ACCEPT_AFTER - 1)))
        if len(recent) == SHRINK_ACCEPT_AFTER - 1 and all(marker in (e or "") for e in recent):
            return ""  # the same smaller page every time: it is the page now
        return reason

    # -- quiet outcomes -----------------------------------------------------------------
    def unchanged(self, fetched: Fetched, outcome: str) -> Outcome:
        sid = fetched.request.source_id
        now = self.ctx.clock()
        # DEBUG: the routine outcome of most checks (the fetch attempt records it; `run` logs each
        # pass's tally at INFO). At INFO, 20,000 sources every 5 minutes wrote ~4,000 lines a minute.
        logger.debug("source %s: %s", sid, "not modified (304)" if outcome == "not_modified" else "unchanged")
        every = self.quiet_every.pop(sid, None) if not part_of(fetched.request) else None
        if every is not None:
            self._queue_quiet(fetched, outcome, every, now)
            return Outcome(sid, outcome)
        with self.ctx.store.session() as s:
            s.add(self.attempt(fetched, outcome))
            rec = s.get(SourceRecord, sid)
            self.success(s, rec, fetched, now)
        return Outcome(sid, outcome, part=part_of(fetched.request))

    def _queue_quiet(self, fetched: Fetched, outcome: str, every: float, now: datetime) -> None:
        """What `success` writes for a healthy source, queued: written with the next batch (at most
        QUIET_BATCH rows or QUIET_SECONDS old, and at the end of the cycle). A crash loses at most
        that batch's bookkeeping: those sources are simply checked again; no version is involved."""
        self._queue(attempt_row(fetched, outcome), SourceRecord, success_row(fetched, every, now))

    def write_success(self, s: Session, fetched: Fetched, outcome: str, every: float, now: datetime, **also) -> None:
        """What `success` writes for a healthy source (see `quiet_every`) and its fetch attempt, at
        once in the caller's transaction (a new version's): two statements, no record loaded.
        `also`: more columns of the source to set (its last snapshot, its last change)."""
        s.connection().execute(_INSERT_ATTEMPT, attempt_row(fetched, outcome))
        bulk_update(s, SourceRecord, [{**success_row(fetched, every, now), **also}])

    def quiet_document(self, fetched: Fetched, item_id: int, now: datetime) -> None:
        """A listed document checked again and answered 304 (monitor/listed.py): its attempt and
        its item's `doc_checked_at`, queued like a quiet source's (a crash: checked again sooner)."""
        self._queue(attempt_row(fetched, "not_modified"), ItemRecord, dict(id=item_id, doc_checked_at=now, doc_error=""))

    def _queue(self, attempt: dict, model: type, update_row: dict) -> None:
        with self._quiet_lock:
            if not self._quiet_rows:
                self._quiet_since = time.monotonic()
            self._quiet_rows.append((attempt, model, update_row))
        if len(self._quiet_rows) >= QUIET_BATCH:
            self.flush_quiet()

    def flush_quiet(self, *, older_than: float = 0.0) -> None:
        """Write the queued quiet outcomes (all, or only once the oldest has waited `older_than`
        seconds): one INSERT of the attempts, one bulk UPDATE by key of the sources (and one of the
        listed documents' items), rows in key order (the order any other update of these rows takes
        its locks in: no deadlock)."""
        with self._quiet_lock:
            if not self._quiet_rows or time.monotonic() - self._quiet_since < older_than:
                return
            rows, self._quiet_rows = self._quiet_rows, []
            try:
                with self.ctx.store.session() as s:
                    s.connection().execute(_INSERT_ATTEMPT, [a for a, _, _ in rows])
                    for model in (SourceRecord, ItemRecord):
                        updates = sorted((u for _, m, u in rows if m is model), key=lambda u: u["id"])
                        if updates:
                            bulk_update(s, model, updates)
            except GovwatchError as e:  # the database is unwell: say so; these sources are simply due again
                logger.error("could not record %d unchanged fetch(es) (%s); those sources will be checked again", len(rows), e)


def success_row(fetched: Fetched, every: float, now: datetime) -> dict:
    """What `Health.success` sets of a healthy source (nothing to reset or announce), as a row."""
    return dict(id=fetched.request.source_id, last_attempt_at=now, last_success_at=now, lease_owner="",
                lease_until=None, last_status=fetched.status, health="ok", last_error="",
                next_due_at=due_after(every, 0, as_utc(fetched.started_at)), **validators(fetched))


_INSERT_ATTEMPT = insert(FetchAttemptRecord.__table__)


def attempt_row(fetched: Fetched, outcome: str, error: str = "") -> dict:
    h = fetched.headers
    return dict(
        source_id=fetched.request.source_id,
        url=fetched.url,
        started_at=fetched.started_at,
        duration_ms=fetched.duration_ms,
        status=fetched.status,
        outcome=outcome,
        bytes=len(fetched.body),
        etag=h.get("etag", ""),
        last_modified=h.get("last-modified", ""),
        content_type=h.get("content-type", "")[:200],
        error=error[:2000],
    )




def due_after(every: float, bad: int, start: datetime) -> datetime:
    """When to check again: `every` after the fetch started, doubled per failure or block in a row
    (capped), with jitter (±10%, at most 10 minutes) so one host's sources are not hit in bursts."""
    if bad:
        factor = min(2 ** (bad - 1), FAILURE_BACKOFF_CAP)
        every = min(every * factor, every + 86400)
    jitter = min(every * 0.1, 600.0)
    return start + timedelta(seconds=every + random.uniform(-jitter, jitter))


def validators(fetched: Fetched) -> dict[str, str]:
    """The validators to store from a response: none from a 304 (the stored ones stay); from
    another URL than asked (a redirect) empty ones, since sent to the old URL and followed to the
    new one, a 304 there would hide the change."""
    if fetched.status == 304:
        return {}
    same = fetched.url == fetched.request.url
    return {"etag": fetched.headers.get("etag", "") if same else "",
            "last_modified": fetched.headers.get("last-modified", "") if same else ""}


def healthy(rec: SourceRecord) -> bool:
    """Nothing for a success to reset or announce (no failures, blocks or health alert open): a
    source that is well, or not fetched yet."""
    return (not rec.consecutive_failures and not rec.consecutive_blocks and rec.health in ("ok", "unknown", "")
            and not rec.health_alerted)
