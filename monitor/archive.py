"""Save Page Now: the queue of Wayback Machine captures per change (state/custody.ArchiveRecord),
worked after delivery, never before it. One request at a time; a 429 or a service that is down
holds the whole queue (Retry-After honoured), a failed capture is retried with backoff and given
up loudly after `max_attempts`."""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import func, or_, select, update

from state.custody import ArchiveRecord
from state.models import DeliveryRecord, as_utc

logger = logging.getLogger(__name__)

BACKOFF_MAX = 6 * 3600.0
# SPN2 answers these when the account is over its limits: a wait for the whole queue, not a failure
RATE_LIMITED = ("error:too-many-daily-captures", "error:user-session-limit", "error:too-many-requests", "error:capture-location-error")
OPEN = ("pending", "submitted")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Answer:
    """One HTTP exchange with the archive: status (None: no answer), JSON body, Retry-After."""

    http: int | None
    data: dict = field(default_factory=dict)
    retry_after: float | None = None
    error: str = ""


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (the fetcher's reading of it)."""
    from spiders.fetch import retry_after_seconds  # Scrapy's module: imported when an answer is read

    return retry_after_seconds(value, now.timestamp() if now is not None else None)


def wayback_time(ts: str) -> str:
    """'20261201203005' -> '2026-12-01T20:30:05Z' ('' when it is not a 14-digit timestamp)."""
    try:
        return datetime.strptime(ts[:14], "%Y%m%d%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return ""


class SavePageNow:
    """The SPN2 API: POST {endpoint} url=..., then GET {endpoint}/status/{job_id}."""

    def __init__(self, settings, environment: dict[str, str], user_agent: str = "govwatch"):
        self.settings = settings
        self.endpoint = settings.endpoint.rstrip("/")
        self.missing = [n for n in (settings.access_key_env, settings.secret_key_env) if n and not environment.get(n)]
        access = environment.get(settings.access_key_env, "") if settings.access_key_env else ""
        secret = environment.get(settings.secret_key_env, "") if settings.secret_key_env else ""
        self._auth = f"LOW {access}:{secret}" if access and secret else ""
        self.user_agent = user_agent
        parts = urllib.parse.urlsplit(self.endpoint)
        self.replay_base = f"{parts.scheme}://{parts.netloc}/web/"

    def _call(self, req: urllib.request.Request) -> Answer:
        req.add_header("Accept", "application/json")
        req.add_header("User-Agent", self.user_agent)
        if self._auth:
            req.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout) as resp:
                body, status, headers = resp.read(1 << 20), resp.status, resp.headers
        except urllib.error.HTTPError as e:
            body, status, headers = e.read(1 << 20), e.code, e.headers
        except (OSError, ValueError) as e:  # refused, reset, timeout, bad URL
            reason = getattr(e, "reason", None) or e
            return Answer(None, error=f"no answer from {self.endpoint}: {reason}")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        err = "" if 200 <= status < 300 else f"HTTP {status}" + (f": {str(data.get('message', ''))[:200]}" if data.get("message") else "")
        return Answer(status, data, retry_after(headers.get("Retry-After")), err)

    def submit(self, url: str) -> Answer:
        body = urllib.parse.urlencode({"url": url}).encode("ascii")
        return self._call(urllib.request.Request(self.endpoint, data=body, method="POST",
                                                 headers={"Content-Type": "application/x-www-form-urlencoded"}))

    def status(self, job_id: str) -> Answer:
        return self._call(urllib.request.Request(f"{self.endpoint}/status/{urllib.parse.quote(job_id, safe='')}", method="GET"))

    def replay_url(self, timestamp: str, original: str) -> str:
        return f"{self.replay_base}{timestamp}/{original}"


@dataclass
class ArchiveReport:
    submitted: int = 0
    captured: int = 0
    retrying: int = 0
    failed: int = 0
    held_until: datetime | None = None


class Worker:
    """Works the due rows of the queue, one request at a time."""

    def __init__(self, cfg, store, *, clock: Callable[[], datetime] = _now, sleep: Callable[[float], None] = time.sleep):
        self.settings = cfg.archive.save_page_now
        self.store = store
        self.clock = clock
        self.sleep = sleep
        contact = cfg.fetch.user_agent_contact
        self.spn = SavePageNow(self.settings, cfg.environment, user_agent=f"govwatch (+{contact})" if contact else "govwatch")
        self.health_targets = [t.name for t in cfg.health_notify]

    def backoff(self, attempts: int) -> float:
        return min(self.settings.retry_base * 2 ** max(attempts - 1, 0), BACKOFF_MAX)

    def run(self, *, wait: float = 0.0, stop: Callable[[], bool] = lambda: False) -> ArchiveReport:
        """Work every due row; with `wait`, keep polling the jobs in flight (and the submissions a
        429 put off) for up to that many seconds (`check`: its captures are shown when it exits,
        when the archive is quick enough)."""
        report = ArchiveReport()
        if self.spn.missing:
            if self._open_count():
                logger.warning("save page now: the environment variable(s) %s named in archive.save_page_now are not set; "
                               "%d capture(s) wait", ", ".join(self.spn.missing), self._open_count())
            return report
        deadline = time.monotonic() + wait
        while not stop():
            row = self._claim()
            if row is None:
                nxt = self._next_due()
                left = deadline - time.monotonic()
                if nxt is None or left <= 0:
                    break
                pause = (nxt - self.clock()).total_seconds()
                if pause > left:
                    break
                self.sleep(min(max(pause, 0.05), left, 0.5))  # short naps: a stop is heard soon
                continue
            self._work(row, report)
        return report

    # -- the queue ----------------------------------------------------------------------
    def _due(self, now: datetime):
        return (ArchiveRecord.status.in_(OPEN) & (ArchiveRecord.next_try_at <= now)
                & or_(ArchiveRecord.claimed_until.is_(None), ArchiveRecord.claimed_until < now))

    def _claim(self) -> ArchiveRecord | None:
        """The next due row, claimed (two workers never ask for the same capture at once)."""
        now = self.clock()
        with self.store.session() as s:
            for rid in s.scalars(select(ArchiveRecord.id).where(self._due(now)).order_by(ArchiveRecord.next_try_at, ArchiveRecord.id).limit(5)):
                until = now + timedelta(seconds=2 * self.settings.timeout + 60)
                if s.execute(update(ArchiveRecord).where(ArchiveRecord.id == rid, self._due(now)).values(claimed_until=until)).rowcount:
                    s.flush()
                    return s.get(ArchiveRecord, rid)
        return None

    def _next_due(self) -> datetime | None:
        """When the next capture worth waiting for is due: a job being polled, or a submission
        that a 429 put off. A failure's retry (backoff) is left to the next pass."""
        with self.store.session() as s:
            t = s.scalar(select(ArchiveRecord.next_try_at)
                         .where((ArchiveRecord.status == "submitted") | ((ArchiveRecord.status == "pending") & (ArchiveRecord.last_status == 429)))
                         .order_by(ArchiveRecord.next_try_at).limit(1))
        return as_utc(t) if t else None

    def _open_count(self) -> int:
        with self.store.session() as s:
            return s.scalar(select(func.count()).select_from(ArchiveRecord).where(ArchiveRecord.status.in_(OPEN))) or 0

    def _save(self, rid: int, **values) -> None:
        with self.store.session() as s:
            s.execute(update(ArchiveRecord).where(ArchiveRecord.id == rid)
                      .values(claimed_until=None, updated_at=self.clock(), **values))

    def _hold(self, rid: int, seconds: float, status: int | None, error: str, report: ArchiveReport, attempts: int) -> None:
        """The archive is limiting us or is down: nothing is asked of it until `seconds` from now."""
        until = self.clock() + timedelta(seconds=seconds)
        self._save(rid, next_try_at=until, last_status=status, last_error=error, attempts=attempts)
        with self.store.session() as s:
            s.execute(update(ArchiveRecord).where(ArchiveRecord.status.in_(OPEN), ArchiveRecord.next_try_at < until)
                      .values(next_try_at=until))
        report.held_until = until
        report.retrying += 1
        logger.warning("save page now: %s; every capture waits until %s", error, until.strftime("%H:%M:%S"))

    def _fail(self, row: ArchiveRecord, status: int | None, error: str, report: ArchiveReport) -> None:
        """A submission or a capture failed: retried with backoff, given up after max_attempts."""
        attempts = row.attempts + 1
        if attempts >= self.settings.max_attempts:
            self._save(row.id, status="failed", attempts=attempts, last_status=status, last_error=error, job_id="")
            report.failed += 1
            logger.error("save page now: capture of %s (change %s) given up after %d attempts: %s", row.url, row.change_id, attempts, error)
            with self.store.session() as s:  # loud: the operator's health targets hear of it
                for t in self.health_targets:
                    s.add(DeliveryRecord(kind="health", target=t, title=f"govwatch: Wayback capture for change {row.change_id} given up",
                                         body=f"Save Page Now could not capture {row.url} (change {row.change_id}) after "
                                              f"{attempts} attempts: {error[:400]}"))
            return
        wait = self.backoff(attempts)
        self._save(row.id, status="pending", attempts=attempts, last_status=status, last_error=error, job_id="", polls=0,
                   next_try_at=self.clock() + timedelta(seconds=wait))
        report.retrying += 1
        logger.warning("save page now: capture of %s (change %s), attempt %d failed, retry in %.0fs: %s",
                       row.url, row.change_id, attempts, wait, error)

    def _work(self, row: ArchiveRecord, report: ArchiveReport) -> None:
        if row.status == "submitted" and row.job_id:
            self._poll(row, report)
        else:
            self._submit(row, report)

    def _limited(self, a: Answer) -> bool:
        return a.http == 429 or str(a.data.get("status_ext", "")) in RATE_LIMITED

    def _submit(self, row: ArchiveRecord, report: ArchiveReport) -> None:
        a = self.spn.submit(row.url)
        if self._limited(a):
            wait = a.retry_after if a.retry_after is not None else self.backoff(1)
            self._hold(row.id, min(wait, BACKOFF_MAX), a.http, f"rate limited ({a.http}, {a.data.get('status_ext') or 'Retry-After'}), "
                       f"retry after {wait:.0f}s", report, row.attempts)
            return
        if a.http is None or a.http >= 500 or a.http in (401, 403):
            # the service is down or refuses our keys: one failed request, and the queue waits
            attempts = row.attempts + 1
            if attempts >= self.settings.max_attempts:
                self._fail(row, a.http, a.error, report)
            else:
                self._hold(row.id, self.backoff(attempts), a.http, a.error, report, attempts)
            return
        job = str(a.data.get("job_id") or "")
        if a.error or not job:
            self._fail(row, a.http, a.error or str(a.data.get("message") or a.data.get("status_ext") or "no job id in the answer")[:300], report)
            return
        self._save(row.id, status="submitted", job_id=job, polls=0, last_status=a.http, last_error="",
                   next_try_at=self.clock() + timedelta(seconds=self.settings.poll_every))
        report.submitted += 1
        logger.info("save page now: capture of %s (change %s) asked for, job %s", row.url, row.change_id, job)

    def _poll(self, row: ArchiveRecord, report: ArchiveReport) -> None:
        a = self.spn.status(row.job_id)
        if self._limited(a):
            wait = a.retry_after if a.retry_after is not None else self.settings.poll_every
            self._hold(row.id, min(wait, BACKOFF_MAX), a.http, f"rate limited ({a.http}) while polling, retry after {wait:.0f}s",
                       report, row.attempts)
            return
        state = str(a.data.get("status", ""))
        if a.http is None or a.http >= 500:
            # the job is still there: poll again later, the capture may be done by then
            self._save(row.id, last_status=a.http, last_error=a.error, polls=row.polls + 1,
                       next_try_at=self.clock() + timedelta(seconds=max(self.settings.poll_every, self.backoff(1))))
            report.retrying += 1
            return
        if state == "success" and a.data.get("timestamp"):
            ts = str(a.data["timestamp"])
            original = str(a.data.get("original_url") or row.url)
            self._save(row.id, status="success", archive_url=self.spn.replay_url(ts, original), captured_at=wayback_time(ts),
                       last_status=a.http, last_error="", polls=row.polls + 1)
            report.captured += 1
            logger.info("save page now: %s captured at %s (change %s)", row.url, ts, row.change_id)
            return
        if state == "error" or a.error:
            self._fail(row, a.http, str(a.data.get("message") or a.data.get("status_ext") or a.error)[:300], report)
            return
        polls = row.polls + 1
        if polls >= self.settings.max_polls:
            self._fail(row, a.http, f"job {row.job_id} still pending after {polls} polls", report)
            return
        self._save(row.id, polls=polls, last_status=a.http, next_try_at=self.clock() + timedelta(seconds=self.settings.poll_every))


def work(cfg, store, *, wait: float = 0.0, stop: Callable[[], bool] = lambda: False) -> ArchiveReport | None:
    """One archive pass (after delivery: `check`, and the scheduler's archive job)."""
    if not cfg.archive.save_page_now.enabled:
        return None
    return Worker(cfg, store).run(wait=wait, stop=stop)
