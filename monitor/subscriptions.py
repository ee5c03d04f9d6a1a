"""Subscriptions at work (tables and guarantees: state/subscriptions.py): one validation for the
configuration's `subscriptions:` and the web form, the sync of the configured ones into the
database, the match of each recorded change, and the sending of due digests."""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from state import search
from state import subscriptions as subs
from state.errors import StateError
from state.models import ChangeRecord, DeliveryRecord, SourceRecord, as_utc
from state.store import dialect_insert
from state.subscriptions import SubscriptionMatchRecord, SubscriptionRecord

logger = logging.getLogger("govwatch.subscriptions")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")
FIELDS = ("name", "query", "every", "timezone", "notify", "topics", "sources", "min_severity")
CACHE_SECONDS = 5.0  # a subscription made in the web UI applies to changes recorded this long after
DIGEST_MAX_CHANGES = 200  # listed in one digest message; the rest go in the next one, never lost


@dataclass
class Subscription:
    name: str
    query: str
    every: str  # canonical cadence: instant | daily@HH:MM | weekly@day HH:MM
    timezone: str
    topics: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    min_severity: str = ""
    targets: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (key, Apprise URL): secrets
    origin: str = "config"
    owner: str = ""


def _as_list(value, sep: str = r"[,\n]") -> list:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [x.strip() for x in re.split(sep, value) if x.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def validate(raw: dict, *, topic_ids: set[str], source_ids: set[str], named_targets: dict[str, str],
             url_ok: Callable[[str], bool], default_timezone: str = "UTC") -> tuple[Subscription | None, dict[str, str]]:
    """A subscription from the configuration or the web form, or every problem by field name
    (`url_ok`: whether Apprise takes a URL, config.valid_apprise_url)."""
    problems: dict[str, str] = {}
    if not isinstance(raw, dict):
        return None, {"": "a subscription is a mapping of name, query, every, notify, ..."}
    for key in raw:
        if key not in FIELDS:
            problems[key] = f"unknown field (known: {', '.join(FIELDS)})"
    name = str(raw.get("name") or "").strip()
    if not NAME.fullmatch(name):
        problems["name"] = "a name of 1-64 letters, digits, spaces and . _ - is required"
    elif name.endswith(" digest") and name.removesuffix(" digest") in named_targets:
        problems["name"] = f"'{name}' is the name of the notify target {name.removesuffix(' digest')}'s own digest"
    query = str(raw.get("query") or "").strip()
    topics, sources = [str(x) for x in _as_list(raw.get("topics"))], [str(x) for x in _as_list(raw.get("sources"))]
    severity = str(raw.get("min_severity") or "").strip()
    if query:
        try:
            search.parse(query)
        except search.QueryError as e:
            problems["query"] = str(e)
    elif not (topics or sources or severity):
        problems["query"] = "give a query, or at least one of topics, sources, min_severity (or it would be every change)"
    every = str(raw.get("every") or "instant").strip()
    try:
        every = str(subs.parse_cadence(every))
    except StateError as e:
        problems["every"] = str(e)
    tz = str(raw.get("timezone") or default_timezone).strip()
    try:
        subs.check_timezone(tz)
    except StateError as e:
        problems["timezone"] = str(e)
    if unknown := [t for t in topics if t not in topic_ids]:
        problems["topics"] = f"unknown topic(s) {', '.join(unknown)}; known: {', '.join(sorted(topic_ids))}"
    if unknown := [x for x in sources if x not in source_ids]:
        problems["sources"] = f"unknown source id(s) {', '.join(unknown[:5])}"
    if severity and severity not in subs.SEVERITIES:
        problems["min_severity"] = f"'{severity}' is not one of {', '.join(subs.SEVERITIES)}"
    targets: list[tuple[str, str]] = []
    for i, t in enumerate(_as_list(raw.get("notify"), sep=r"\n")):  # one per line: a URL may hold commas
        t = (t.get("url") if isinstance(t, dict) else t) or ""
        t = str(t).strip()
        if t in named_targets:
            targets.append((t, named_targets[t]))
        elif "://" in t and url_ok(t):
            targets.append((str(i), t))
        else:
            # never a fragment of something that may be a URL or an address (it may hold a secret)
            shown = t.split("://", 1)[0] + "://..." if "://" in t else ("(not shown)" if "@" in t or ":" in t else t)
            problems["notify"] = (problems["notify"] + "; " if "notify" in problems else "") + (f"'{shown}' is neither a notify target's name ({', '.join(sorted(named_targets)) or 'none defined'}) "
                                  "nor a usable Apprise URL (valid, and from the web UI not to a private or loopback address; the URL is not shown: it may hold a token)")
    if not targets and "notify" not in problems:
        problems["notify"] = "at least one target: the name of a notify target or an Apprise URL"
    if problems:
        return None, problems
    return Subscription(name=name, query=query, every=every, timezone=tz, topics=topics, sources=sources,
                        min_severity=severity, targets=targets), {}


# -- the database side --------------------------------------------------------------------------------
def sync_config(store, configured: list[Subscription], now: datetime | None = None) -> None:
    """The configuration's subscriptions into the database, by name (their cursors and unsent
    matches live there); a configured one no longer in the file is disabled, never deleted."""
    now = now or datetime.now(timezone.utc)
    names = {c.name for c in configured}
    if names:
        # workers starting together may all see a subscription as new: insert-if-missing, never fail
        with store.session() as s:
            s.execute(dialect_insert(store.dialect)(SubscriptionRecord)
                      .values([{"name": c.name, "origin": c.origin, "owner": "", "query": "", "every": "", "timezone": "UTC",
                                "topics": "", "sources": "", "min_severity": "", "targets_json": "[]", "enabled": True,
                                "cursor": 0, "created_at": now, "updated_at": now} for c in configured])
                      .on_conflict_do_nothing(index_elements=["name"]))
    with store.session() as s:
        existing = {r.name: r for r in s.scalars(select(SubscriptionRecord))}
        for c in configured:
            rec = existing[c.name]
            if rec.origin == "web":
                logger.error("subscription %r of the configuration has the name of one made in the web UI (by %s): not used",
                             c.name, rec.owner or "someone")
                continue
            want = (c.origin, c.query, c.every, c.timezone, ",".join(c.topics), ",".join(c.sources), c.min_severity, True)
            have = (rec.origin, rec.query, rec.every, rec.timezone, rec.topics, rec.sources, rec.min_severity, rec.enabled)
            if want != have or rec.next_digest_at is None and c.every != "instant":
                rec.origin = c.origin
                _apply(rec, c, now, targets_json="[]")
        for name, rec in existing.items():
            if rec.origin in ("config", "target") and name not in names and rec.enabled:
                rec.enabled, rec.updated_at = False, now


def _apply(rec: SubscriptionRecord, c: Subscription, now: datetime, *, targets_json: str | None) -> None:
    cadence_changed = rec.every != c.every or rec.timezone != c.timezone
    rec.query, rec.every, rec.timezone = c.query, c.every, c.timezone
    rec.topics, rec.sources, rec.min_severity = ",".join(c.topics), ",".join(c.sources), c.min_severity
    if targets_json is not None:
        rec.targets_json = targets_json
    if not rec.enabled or cadence_changed or rec.next_digest_at is None:
        rec.next_digest_at = subs.parse_cadence(c.every).next_after(now, c.timezone)
    rec.enabled = True
    rec.updated_at = now


def save_web(store, c: Subscription, owner: str, *, existing_id: int | None = None) -> int:
    """Create or update an analyst's subscription (the web form); its targets are stored (secrets
    at rest in the database, like the configuration file's; never shown again)."""
    now = datetime.now(timezone.utc)
    with store.session() as s:
        clash = s.scalars(select(SubscriptionRecord).where(SubscriptionRecord.name == c.name)).first()
        if clash is not None and clash.id != existing_id:
            raise StateError(f"a subscription named '{c.name}' exists already")
        rec = s.get(SubscriptionRecord, existing_id) if existing_id else SubscriptionRecord(name=c.name, origin="web", owner=owner)
        if rec is None or rec.origin != "web":
            raise StateError("no such subscription of the web UI")
        if existing_id is None:
            s.add(rec)
        rec.name = c.name
        _apply(rec, c, now, targets_json=json.dumps([u for _, u in c.targets]))
        s.flush()
        return rec.id


def delete_web(store, sub_id: int) -> None:
    """An analyst's subscription removed: disabled (its history and sent digests stay)."""
    with store.session() as s:
        rec = s.get(SubscriptionRecord, sub_id)
        if rec is None or rec.origin != "web":
            raise StateError("no such subscription of the web UI")
        rec.enabled, rec.updated_at = False, datetime.now(timezone.utc)
        rec.name = f"{rec.name} (deleted {rec.id})"[:200]  # the name is free again; queued rows go by id
        # the analyst asked it to stop: changes waiting for its next digest are not sent
        s.execute(delete(SubscriptionMatchRecord).where(SubscriptionMatchRecord.subscription_id == sub_id,
                                                       SubscriptionMatchRecord.digest_id.is_(None)))


@dataclass
class _Active:
    rec: SubscriptionRecord
    query: search.Query | None
    targets: list[str]  # outbox target names


class Matcher:
    """The recorder's side: each recorded change against every enabled subscription, in the
    change's own transaction."""

    def __init__(self, store, configured: list[Subscription]):
        self.store = store
        self.configured = {c.name: c for c in configured}
        self._cache: tuple[float, list[_Active]] = (0.0, [])
        self._target_subs: dict[str, int] = {}

    def _active(self, s) -> list[_Active]:
        at, cached = self._cache
        if time.monotonic() - at < CACHE_SECONDS:
            return cached
        out = []
        for rec in subs.enabled(s):
            if rec.origin == "target":
                continue  # a notify target's digest: fed by the recorder's routing, not by a search
            try:
                q = search.prepare(s, self.store.dialect, search.parse(rec.query)) if rec.query else None
            except search.QueryError as e:
                logger.warning("subscription %r: its query %r cannot be used: %s", rec.name, rec.query, e)
                continue
            out.append(_Active(rec, q, [name for name, _ in subscription_targets(rec, self.configured)]))
        self._cache = (time.monotonic(), out)
        return out

    def hold_for_digest(self, s, target_name: str, change: ChangeRecord, severity: str, now: datetime) -> bool:
        """Team routing: a low or medium change for a target with `digest:` waits for its digest
        (True); a high one, or a target without a digest, is sent at once (False)."""
        if severity == "high":
            return False
        name = f"{target_name} digest"
        sub = self.configured.get(name)
        if sub is None or sub.origin != "target":
            return False
        sub_id = self._target_subs.get(name)
        if sub_id is None:
            sub_id = s.scalars(select(SubscriptionRecord.id).where(SubscriptionRecord.name == name,
                                                                 SubscriptionRecord.origin == "target")).first()
            if sub_id is None:
                return False  # not synced (a check that did not sync): sent at once rather than lost
            self._target_subs[name] = sub_id
        _pend(s, sub_id, change.id, now)
        return True

    def _matches(self, s, a: _Active, change_id: int) -> bool:
        """The saved search against this change, in a savepoint: a search the engine refuses is
        logged and skipped, never a reason to lose the change being recorded."""
        try:
            with s.begin_nested():
                return search.matches_change(s, self.store.dialect, a.query, change_id)
        except SQLAlchemyError as e:
            logger.error("subscription %r: its search failed on change %s: %s", a.rec.name, change_id, str(e).splitlines()[0])
            return False

    def on_change(self, s, change: ChangeRecord, now: datetime) -> list[str]:
        """Queue this change for each subscription that wants it; the names of those."""
        active = self._active(s)
        if not active:
            return []
        s.flush()  # the search index follows the change's row
        hit = []
        topics = {t for t in (change.topics or "").split(",") if t}
        for a in active:
            r = a.rec
            if r.topics and not topics & set(r.topics.split(",")):
                continue
            if r.sources and change.source_id not in r.sources.split(","):
                continue
            if r.min_severity and (not change.severity or subs.SEVERITIES.index(change.severity) < subs.SEVERITIES.index(r.min_severity)):
                continue
            if a.query is not None and not self._matches(s, a, change.id):
                continue
            hit.append(r.name)
            if r.every == "instant":
                have = set(s.scalars(select(DeliveryRecord.target).where(DeliveryRecord.change_id == change.id,
                                                                         DeliveryRecord.kind == "subscription")))
                for t in a.targets:
                    if t not in have:
                        s.add(DeliveryRecord(change_id=change.id, target=t, kind="subscription", next_try_at=now))
                s.execute(update(SubscriptionRecord).where(SubscriptionRecord.id == r.id, SubscriptionRecord.cursor < change.id)
                          .values(cursor=change.id))
            else:
                _pend(s, r.id, change.id, now)
        return hit


def _pend(s, sub_id: int, change_id: int, now: datetime) -> None:
    """The change waits for the subscription's next digest (once: a change updated later is not
    listed twice)."""
    if s.scalars(select(SubscriptionMatchRecord.id).where(SubscriptionMatchRecord.subscription_id == sub_id,
                                                         SubscriptionMatchRecord.change_id == change_id)).first() is None:
        s.add(SubscriptionMatchRecord(subscription_id=sub_id, change_id=change_id, created_at=now))


def subscription_targets(rec: SubscriptionRecord, configured: dict[str, Subscription]) -> list[tuple[str, str]]:
    """(outbox target name, Apprise URL) of a subscription: from the configuration for a configured
    one, from its row for one made in the web UI."""
    if rec.origin == "target":  # a notify target's own digest goes to that target, by its name
        c = configured.get(rec.name)
        return list(c.targets) if c else [(rec.name.removesuffix(" digest"), "")]  # its digest removed: still the target
    if rec.origin == "config":
        c = configured.get(rec.name)
        return [(subs.target_name(rec.id, k), url) for k, url in (c.targets if c else [])]
    return [(subs.target_name(rec.id, i), url) for i, url in enumerate(subs.targets_of(rec))]


def all_targets(store, configured: list[Subscription]) -> list[tuple[str, str]]:
    """Every subscription's outbox targets, for the outbox (disabled ones too: their queued rows
    still go out)."""
    by_name = {c.name: c for c in configured}
    with store.session() as s:
        recs = list(s.scalars(select(SubscriptionRecord)))
    return [t for rec in recs for t in subscription_targets(rec, by_name) if t[1]]


def subscription_rows(store, cfg) -> list[dict]:
    """The subscriptions as records (CLI and web): targets by scheme only, never their URLs."""
    from monitor.records import iso

    configured = {c.name: c for c in cfg.subscriptions}
    with store.session() as s:
        recs = list(s.scalars(select(SubscriptionRecord).order_by(SubscriptionRecord.origin, SubscriptionRecord.name)))
    out = []
    for r in recs:
        if r.origin == "config" and not r.enabled:
            continue  # removed from the file
        targets = [url.split("://", 1)[0] + "://" for _, url in subscription_targets(r, configured)]
        out.append({"id": r.id, "name": r.name, "origin": r.origin, "owner": r.owner, "enabled": r.enabled, "query": r.query,
                    "every": r.every, "timezone": r.timezone, "topics": [x for x in r.topics.split(",") if x],
                    "sources": [x for x in r.sources.split(",") if x], "min_severity": r.min_severity, "targets": targets,
                    "cursor": r.cursor, "next_digest_at": iso(r.next_digest_at) if r.every != "instant" else "",
                    "last_digest_at": iso(r.last_digest_at)})
    return out


# -- digests --------------------------------------------------------------------------------------------
@dataclass
class DigestReport:
    name: str
    changes: int
    targets: int


def send_due_digests(store, cfg, *, force: bool = False, now: datetime | None = None) -> list[DigestReport]:
    """Queue every digest of the configuration's and the web UI's subscriptions due now (with
    force: every digest) as outbox rows, in one transaction per subscription with its matches and
    cursor; a digest with nothing unsent queues nothing."""
    from alerts.message import digest_message
    from monitor.records import headline

    now = now or datetime.now(timezone.utc)
    by_name = {c.name: c for c in cfg.subscriptions}
    source_names = {src.id: src.display_name for src in cfg.sources}
    reports = []
    with store.session() as s:
        due = [r.id for r in subs.enabled(s) if r.every != "instant"
               and (force or (r.next_digest_at is not None and as_utc(r.next_digest_at) <= now))]
        # matches still waiting in a subscription that is now instant, or disabled (removed from the
        # file, deleted, a target's digest taken away): their last digest goes out now, never lost
        waiting = set(s.scalars(select(SubscriptionMatchRecord.subscription_id).where(SubscriptionMatchRecord.digest_id.is_(None))))
        due += [r.id for r in s.scalars(select(SubscriptionRecord).where(SubscriptionRecord.id.in_(waiting)))
                if r.id not in due and (r.every == "instant" or not r.enabled)]
    for sub_id in due:
        with store.session() as s:
            q = select(SubscriptionRecord).where(SubscriptionRecord.id == sub_id)
            if store.dialect == "postgresql":
                q = q.with_for_update(skip_locked=True)  # another worker is sending this one
            rec = s.scalars(q).first()
            if rec is None:
                continue
            pending = list(s.scalars(select(SubscriptionMatchRecord).where(SubscriptionMatchRecord.subscription_id == sub_id,
                                                                          SubscriptionMatchRecord.digest_id.is_(None))
                                     .order_by(SubscriptionMatchRecord.change_id).limit(DIGEST_MAX_CHANGES)))
            if (not force or pending) and rec.enabled and rec.every != "instant":
                rec.next_digest_at = subs.parse_cadence(rec.every).next_after(now, rec.timezone)
            elif rec.every == "instant" or not rec.enabled:
                rec.next_digest_at = None
            if not pending:
                continue
            changes = {c.id: c for c in s.scalars(select(ChangeRecord).where(ChangeRecord.id.in_([m.change_id for m in pending])))}
            names = dict(s.execute(select(SourceRecord.id, SourceRecord.name)).all()) | source_names
            entries = [(changes[m.change_id], headline(changes[m.change_id]), names.get(changes[m.change_id].source_id) or changes[m.change_id].source_id)
                       for m in pending if m.change_id in changes]
            more = s.scalar(select(func.count()).select_from(SubscriptionMatchRecord).where(
                SubscriptionMatchRecord.subscription_id == sub_id, SubscriptionMatchRecord.digest_id.is_(None))) - len(pending)
            msg = digest_message(rec.name, rec.query, rec.every, entries, public_url=cfg.public_url, more=more)
            rows = [DeliveryRecord(kind="digest", target=name, title=msg.title, body=msg.body, next_try_at=now)
                    for name, _ in subscription_targets(rec, by_name)]
            if not rows:
                logger.warning("subscription %r: no target to send its digest to", rec.name)
                continue
            s.add_all(rows)
            s.flush()
            for m in pending:
                m.digest_id = rows[0].id
            rec.cursor = max(rec.cursor, max(m.change_id for m in pending))
            rec.last_digest_at = now
            reports.append(DigestReport(rec.name, len(entries), len(rows)))
            logger.info("subscription %r: digest of %d change(s) queued for %d target(s)", rec.name, len(entries), len(rows))
    return reports
