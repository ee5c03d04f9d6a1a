"""The outbox worker: delivers due (change, target) rows through Apprise, records each attempt,
retries with backoff, gives up loudly after the target's max attempts; never sends a row twice."""
from __future__ import annotations

import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Sequence

from sqlalchemy import or_, select, update

from alerts.message import Message, change_message, health_digest
from state.custody import archives_of
from state.models import ChangeRecord, DeliveryRecord, SourceRecord
from state.store import Store
from state.subscriptions import quiet_now, subscription_of_target
from state.workers import worker_id

logger = logging.getLogger(__name__)
# Apprise's own log lines can carry URLs and tokens: they never reach our handlers (LogCapture
# below still sees them, and the reason is logged by us with the secrets scrubbed).
logging.getLogger("apprise").propagate = False

BACKOFF_BASE = 60.0  # seconds before the first retry; doubles per attempt
BACKOFF_MAX = 6 * 3600.0
CLAIM_SECONDS = 300
HEADER_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms"}
HEALTH_BATCH = 500  # health rows due for a target are sent as one message (a bigger backlog: a few)
CLAIM_BATCH = 10  # small batches: a claim must not expire while earlier rows of its batch are being sent


def backoff(attempts: int) -> float:
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


class Target:
    """One configured notification target: a name and an Apprise object (the URL stays inside)."""

    def __init__(self, name: str, url: str, max_attempts: int = 8):
        self.name = name
        self.max_attempts = max_attempts
        self._url = url
        import apprise  # here: a cycle with nothing to send does not pay for importing it

        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise ValueError(f"target {name}: not a valid Apprise URL")
        for service in self._apprise:
            # One message per change; e-mail's 5.5 s self-throttle would stall a busy cycle.
            if service.request_rate_per_sec > 2:
                service.request_rate_per_sec = 0.5

    def _with_key(self, key: str):
        """For webhook targets (json/xml/form), an Apprise object that also sends the header
        X-Govwatch-Delivery: <key>, so a receiver can drop the repeat of a message whose
        acknowledgement was lost in a crash (the outbox delivers at least once)."""
        scheme = self._url.split("://", 1)[0].lower()
        if not key or scheme not in HEADER_SCHEMES:
            return self._apprise
        import apprise

        a = apprise.Apprise()
        sep = "&" if "?" in self._url else "?"
        a.add(f"{self._url}{sep}+X-Govwatch-Delivery={key}")
        return a

    def send(self, msg: Message, key: str = "") -> str:
        """Send; returns "" on success or Apprise's reason (secrets scrubbed)."""
        import apprise

        with apprise.LogCapture(level=logging.DEBUG, fmt="%(levelname)s %(message)s") as logs:
            try:
                ok = self._with_key(key).notify(body=msg.body, title=msg.title, body_format=apprise.NotifyFormat.MARKDOWN)
            except Exception as e:  # Apprise should not raise; a plugin bug must not kill delivery
                ok = False
                logs.write(f"ERROR {type(e).__name__}: {e}\n")
            text = logs.getvalue()
        if ok:
            return ""
        return self.scrub(apprise_reason(text))

    def scrub(self, text: str) -> str:
        """Remove the URL and anything that looks like its credentials from an error text."""
        secrets = {self._url}
        rest = self._url.split("://", 1)[-1]
        for part in rest.replace("@", "/").replace("?", "/").replace("&", "/").replace(":", "/").split("/"):
            part = part.split("=", 1)[-1]
            if len(part) >= 6:
                secrets.add(part)
        for s in sorted(secrets, key=len, reverse=True):
            text = text.replace(s, "***")
        return text


_LEVEL = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) ", re.M)
_ERRNO = re.compile(r"\[Errno -?\d+\][^\"')\]]*|Name or service not known|timed out|Connection refused")


def apprise_reason(captured: str) -> str:
    """Apprise's reason for a failed notification, from the log records it wrote while sending
    ("LEVEL message" each): its warnings and errors, plus the socket's own reason (e.g.
    "[Errno 111] Connection refused") that Apprise logs only at DEBUG; never the log line itself
    (no timestamps, no level names, no payload)."""
    records = [(m.group(1), captured[m.end():n.start() if n else len(captured)].strip())
               for m, n in zip(_LEVEL.finditer(captured), [*list(_LEVEL.finditer(captured))[1:], None])]
    said = [msg for level, msg in records if level in ("WARNING", "ERROR", "CRITICAL") and msg]
    socket_detail = [_ERRNO.search(msg) for level, msg in records if level == "DEBUG" and msg.startswith(("Socket Exception", "Socket exception"))]
    detail = next((m.group(0).strip() for m in socket_detail if m), "")
    reason = " ".join(dict.fromkeys(" ".join(m.split()) for m in said))
    if detail and detail not in reason:
        reason = f"{reason} ({detail})" if reason else detail
    return reason[-500:] or "Apprise reported a failure without a reason"


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Outbox:
    """Delivers due rows. Claims rows first (status 'sending', with an expiry) so that two
    workers never send the same row; a row left 'sending' by a dead worker is retried after
    its claim expires.

    Each row is marked sent in its own commit as soon as its target accepts it, and a process
    sends one row at a time (passes from several threads, e.g. the scheduler's cycle and its
    delivery job, take turns): a SIGKILL repeats at most the one message in flight, which a
    webhook receiver can drop by its X-Govwatch-Delivery header."""

    _in_flight = threading.Lock()   # one delivery pass at a time in this process

    def __init__(self, store: Store, targets: Sequence[Target], *, source_names: dict[str, str] | None = None,
                 public_url: str = "", clock: Callable[[], datetime] | None = None, on_give_up=None,
                 claim_seconds: float = CLAIM_SECONDS, quiet: dict[str, tuple[str, str]] | None = None):
        self.store = store
        self.targets = {t.name: t for t in targets}
        self.quiet = quiet or {}  # target name -> (quiet hours "22:00-07:00", time zone): its rows wait meanwhile
        self.source_names = source_names or {}
        self.public_url = public_url
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.worker = worker_id()
        self.on_give_up = on_give_up
        self.claim_seconds = claim_seconds

    def _claim(self, limit: int = 200, *, health: bool = False) -> tuple[str, list[int]]:
        """Take up to `limit` due rows with a fresh claim token. The UPDATE repeats the due
        condition, so of two claimers (threads or processes) racing for a row exactly one gets
        it: SQLite serialises the writes, PostgreSQL also skips rows another claimer has locked."""
        now = self.clock()
        token = f"{self.worker}:{uuid.uuid4().hex[:12]}"
        due = or_(
            DeliveryRecord.status.in_(["pending", "retrying"]) & (DeliveryRecord.next_try_at <= now),
            (DeliveryRecord.status == "sending") & (DeliveryRecord.claimed_until < now),
        )
        open_targets = [name for name in self.targets
                        if name not in self.quiet or not quiet_now(self.quiet[name][0], self.quiet[name][1], now)]
        with self.store.session() as s:
            q = (
                select(DeliveryRecord.id)
                .where(DeliveryRecord.target.in_(open_targets), due,
                       (DeliveryRecord.kind == "health") if health else (DeliveryRecord.kind != "health"))
                .order_by(DeliveryRecord.id)
                .limit(limit)
            )
            if self.store.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)
            ids = list(s.scalars(q))
            if ids:
                s.execute(
                    update(DeliveryRecord)
                    .where(DeliveryRecord.id.in_(ids), due)
                    .values(status="sending", claimed_by=token, claimed_until=now + timedelta(seconds=self.claim_seconds))
                )
        if not ids:
            return token, []
        with self.store.session() as s:
            mine = list(s.scalars(select(DeliveryRecord.id).where(DeliveryRecord.id.in_(ids), DeliveryRecord.claimed_by == token)
                                  .order_by(DeliveryRecord.id)))
        return token, mine

    def deliver_due(self) -> DeliveryReport:
        report = DeliveryReport()
        with Outbox._in_flight:
            self._deliver_health(report)
            while True:
                token, ids = self._claim(limit=CLAIM_BATCH)
                if not ids:
                    break
                for did in ids:
                    self._deliver_one(did, token, report)
            self._deliver_health(report)  # e.g. the operator's notice of a delivery given up just now
        return report

    def _deliver_health(self, report: DeliveryReport) -> None:
        """All due health rows of a target go as one message (N sources failing, each with its
        reason; recoveries likewise); each row is marked with the result, so a crash before that
        loses nothing (the rows are claimed, then due again when the claim expires)."""
        token, ids = self._claim(limit=HEALTH_BATCH, health=True)
        if not ids:
            return
        with self.store.session() as s:
            rows = list(s.scalars(select(DeliveryRecord).where(DeliveryRecord.id.in_(ids)).order_by(DeliveryRecord.id)))
        by_target: dict[str, list[int]] = {}
        for r in rows:
            by_target.setdefault(r.target, []).append(r.id)
        for target_name, group in by_target.items():
            now = self.clock()
            with self.store.session() as s:
                s.execute(update(DeliveryRecord)
                          .where(DeliveryRecord.id.in_(group), DeliveryRecord.claimed_by == token, DeliveryRecord.status == "sending")
                          .values(claimed_until=now + timedelta(seconds=self.claim_seconds)))
                mine = list(s.scalars(select(DeliveryRecord).where(DeliveryRecord.id.in_(group), DeliveryRecord.claimed_by == token,
                                                                    DeliveryRecord.status == "sending")
                                      .order_by(DeliveryRecord.id)))
                messages = [Message(title=r.title, body=r.body) for r in mine]
                group = [r.id for r in mine]
            if not group:
                continue
            msg = health_digest(messages)
            key = str(group[0]) if len(group) == 1 else f"health-{group[0]}-{group[-1]}-{len(group)}"
            error = self.targets[target_name].send(msg, key=key)
            for did in group:
                self._record_result(did, error, msg, report)

    def _message(self, s, row: DeliveryRecord) -> Message:
        if row.kind == "health" or row.change_id is None:
            return Message(title=row.title, body=row.body)
        change = s.get(ChangeRecord, row.change_id)
        src = s.get(SourceRecord, change.source_id)
        name = self.source_names.get(change.source_id) or (src.name if src else "") or change.source_id
        matches = self.store.matches_of(s, change.id)
        archived = [a.archive_url for a in archives_of(s, [change.id])[change.id] if a.status == "success"]
        msg = change_message(change, matches, name, self.public_url, archived=archived, update=row.kind == "update")
        if row.kind == "subscription":  # a saved search's instant alert: its name first
            msg = Message(title=f"{subscription_of_target(s, row.target)}: {msg.title}", body=msg.body)
        return msg

    def _deliver_one(self, did: int, token: str, report: DeliveryReport) -> None:
        # renew the claim right before sending, atomically: if it expired meanwhile and another
        # claimer took the row, this worker must not send it as well
        now = self.clock()
        with self.store.session() as s:
            renewed = s.execute(update(DeliveryRecord)
                                .where(DeliveryRecord.id == did, DeliveryRecord.claimed_by == token, DeliveryRecord.status == "sending")
                                .values(claimed_until=now + timedelta(seconds=self.claim_seconds))).rowcount
        if not renewed:
            return
        with self.store.session() as s:
            row = s.get(DeliveryRecord, did)
            msg = self._message(s, row)
        error = self.targets[row.target].send(msg, key=f"{row.id}")
        self._record_result(did, error, msg, report)

    def _record_result(self, did: int, error: str, msg: Message, report: DeliveryReport) -> None:
        """Record one attempt of a row: sent, retrying with backoff, or given up (loudly)."""
        now = self.clock()
        with self.store.session() as s:
            row = s.get(DeliveryRecord, did)
            target = self.targets[row.target]
            row.attempts += 1
            row.claimed_by, row.claimed_until = "", None
            if not error:
                row.status, row.sent_at, row.last_error = "sent", now, ""
                report.sent += 1
                logger.info("alert %s -> %s: sent (%s)", row.change_id or "health", row.target, msg.title[:80])
            elif row.attempts >= target.max_attempts:
                row.status, row.last_error = "failed", error
                report.failed += 1
                report.errors.append(f"{row.target}: {error}")
                logger.error("alert %s -> %s: given up after %d attempts: %s", row.change_id or "health", row.target, row.attempts, error)
            else:
                row.status, row.last_error = "retrying", error
                row.next_try_at = now + timedelta(seconds=backoff(row.attempts))
                report.retrying += 1
                report.errors.append(f"{row.target}: {error}")
                logger.warning("alert %s -> %s: attempt %d failed, retry at %s: %s", row.change_id or "health", row.target,
                               row.attempts, row.next_try_at.strftime("%H:%M:%S"), error)
            given_up = row.status == "failed"
            target_name, change_id = row.target, row.change_id
        if given_up and self.on_give_up:
            self.on_give_up(target_name, change_id, error)


def retry_now(store: Store) -> int:
    """Make every retrying row due now (the operator's `check` after fixing a target)."""
    with store.session() as s:
        res = s.execute(update(DeliveryRecord).where(DeliveryRecord.status == "retrying").values(next_try_at=datetime.now(timezone.utc)))
        return res.rowcount or 0


def requeue_failed(store: Store, ids: Sequence[int] | None, actor: str, *, clock: Callable[[], datetime] | None = None
                   ) -> tuple[list[int], list[str]]:
    """Queue given-up deliveries again (the given ids, or every failed one when `ids` is None): each
    starts over with its target's max attempts. Audited: for a change's alert an event in that
    change's audit trail (who, when, the last error); for a health message (no change), the note
    goes in the delivery's last_error until its next attempt. Returns (ids queued, problems)."""
    from state.triage import record_event

    now = (clock or (lambda: datetime.now(timezone.utc)))()
    queued: list[int] = []
    problems: list[str] = []
    with store.session() as s:
        q = select(DeliveryRecord).order_by(DeliveryRecord.id)
        q = q.where(DeliveryRecord.status == "failed") if ids is None else q.where(DeliveryRecord.id.in_(list(ids)))
        rows = {r.id: r for r in s.scalars(q)}
        for did in (sorted(rows) if ids is None else ids):
            row = rows.get(did)
            if row is None:
                problems.append(f"no delivery with id {did}")
                continue
            if row.status != "failed":
                problems.append(f"delivery {did} is {row.status}, not failed: only given-up deliveries are queued again")
                continue
            note = (f"alert to {row.target} queued again by {actor} after {row.attempts} attempt(s); "
                    f"last error: {row.last_error[:500]}")
            if row.change_id is not None:
                record_event(s, row.change_id, "delivery_retried", actor, note, at=now)
            else:
                row.last_error = f"[{now.strftime('%Y-%m-%d %H:%M UTC')}: {note}]"
            row.status, row.attempts, row.next_try_at = "pending", 0, now
            row.claimed_by, row.claimed_until = "", None
            queued.append(did)
            logger.warning("delivery %d (%s -> %s) queued again by %s", did, row.change_id or "health", row.target, actor)
    return queued, problems
