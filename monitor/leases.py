"""Which sources are due and who holds them: the sources table kept in step with the configuration,
the due sources of a cycle, and the leases a worker takes, renews and gives back."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import select, update

from monitor.config import SourceConfig
from monitor.context import Context, logger
from state import workers
from state.errors import GovwatchError
from state.models import SourceRecord
from state.store import bulk_update, chunks, dialect_insert


class Leases:
    """A worker's view of the sources table. A lease expires, so a dead worker's sources are
    taken over; on PostgreSQL workers skip each other's locked rows instead of waiting."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.seconds = ctx.config.scheduler.lease
        self.skipped: list[tuple[str, str, datetime | None]] = []  # (source, live owner, until) at the last take

    def sync_sources(self) -> None:
        """Make the sources table match the configuration (history of removed sources is kept).
        Runs every cycle: reads the configured columns in one query and writes only what differs."""
        store, clock = self.ctx.store, self.ctx.clock
        cols = ("name", "url", "kind", "agency", "every_seconds", "enabled", "disabled_reason")
        with store.engine.connect() as conn:
            have = {r.id: r for r in conn.execute(select(SourceRecord.id, SourceRecord.paused, *(getattr(SourceRecord, c) for c in cols)))}
        missing = [src.id for src in self.ctx.config.sources if src.id not in have]
        if missing:
            # workers starting together may all see a source as new: insert-if-missing, never fail
            with store.session() as s:
                # executemany: one row's values bound at a time (a multi-row VALUES binds every
                # column of every row, past SQLite's limit at a few thousand sources)
                s.execute(dialect_insert(store.dialect)(SourceRecord).on_conflict_do_nothing(index_elements=["id"]),
                          [{"id": i, "created_at": clock()} for i in missing])
        changed: list[dict] = []
        for src in self.ctx.config.sources:
            reason = self.disabled_reason(src) or ("paused in the web UI" if src.id in have and have[src.id].paused else "")
            want = {"name": src.display_name, "url": src.url, "kind": src.kind, "agency": src.agency,
                    "every_seconds": int(src.every), "enabled": not reason, "disabled_reason": reason}
            old = have.get(src.id)
            if old is not None and all(getattr(old, c) == want[c] for c in cols):
                continue
            if old is not None and old.url and old.url != src.url:
                # a new URL is a new baseline: validators of the old URL must not be sent
                want.update(etag="", last_modified="")
            changed.append({"id": src.id, **want})
        if changed:
            with store.session() as s:
                bulk_update(s, SourceRecord, changed)

    def disabled_reason(self, src: SourceConfig) -> str:
        """Why a source is not checked ("" when it is): the configuration, or a kind that lacks
        what it needs (e.g. an API key)."""
        if not src.enabled:
            return "disabled in the configuration"
        kind = self.ctx.kinds[src.id]
        return (kind.disabled_reason(src, env=self.ctx.env) or "") if hasattr(kind, "disabled_reason") else ""

    def due_sources(self, *, force: bool = False, only: Iterable[str] | None = None,
                    exclude: Iterable[str] = ()) -> list[SourceConfig]:
        """The sources to check now (all with `force`, or just `only`), leased to this worker;
        `exclude`: sources this worker has in flight already."""
        only = set(only or ())
        unknown = only - {s.id for s in self.ctx.config.sources}
        if unknown:
            raise GovwatchError(f"unknown source id(s): {', '.join(sorted(unknown))}; see `govwatch sources`")
        now = self.ctx.clock()
        with self.ctx.store.session() as s:
            recs = {r.id: r for r in s.execute(select(SourceRecord.id, SourceRecord.paused, SourceRecord.next_due_at))}
        due = []
        exclude = set(exclude)
        for src in self.ctx.config.sources:
            if (only and src.id not in only) or src.id in exclude:
                continue
            rec = recs.get(src.id)
            if self.disabled_reason(src):
                continue
            if rec is not None and rec.paused and src.id not in only:
                continue  # paused in the web UI (named with --source, it is checked all the same)
            if force or only or rec is None or rec.next_due_at is None or rec.next_due_at <= now:
                due.append(src)
        return self.take(due, now, recheck_due=not (force or only)) if due else []

    def take(self, due: list[SourceConfig], now: datetime, recheck_due: bool = True) -> list[SourceConfig]:
        """Take the due sources that no other worker holds: one conditional UPDATE (atomic on SQLite,
        whose writes are serialised; with SKIP LOCKED on PostgreSQL so workers never wait on each
        other)."""
        worker = self.ctx.worker
        until = now + timedelta(seconds=self.seconds)
        ids = [s.id for s in due]
        self._take_over_the_dead(ids, now)
        with self.ctx.store.session() as s:
            free = (SourceRecord.lease_until.is_(None)) | (SourceRecord.lease_until < now) | (SourceRecord.lease_owner == worker)
            if recheck_due:
                # another worker may have checked it since the due list was read: due *now*, in the same statement
                free = free & (SourceRecord.next_due_at.is_(None) | (SourceRecord.next_due_at <= now))
            for part in chunks(ids):
                q = select(SourceRecord.id).where(SourceRecord.id.in_(part), free)
                if self.ctx.store.dialect == "postgresql":
                    q = q.with_for_update(skip_locked=True)
                free_ids = list(s.scalars(q))
                if free_ids:
                    s.execute(update(SourceRecord).where(SourceRecord.id.in_(free_ids), free)
                              .values(lease_owner=worker, lease_until=until))
        with self.ctx.store.session() as s:
            held = {r.id: (r.lease_owner, r.lease_until) for part in chunks(ids) for r in s.execute(
                select(SourceRecord.id, SourceRecord.lease_owner, SourceRecord.lease_until).where(SourceRecord.id.in_(part)))}
        self.skipped = [(i, owner, until) for i, (owner, until) in held.items() if owner and owner != worker]
        return [src for src in due if held.get(src.id, ("", None))[0] == worker]

    def _take_over_the_dead(self, ids: list[str], now: datetime) -> None:
        """Leases of a worker of this host whose process no longer runs (a SIGKILL, a crash) are
        given up at once instead of when they expire."""
        with self.ctx.store.engine.connect() as conn:
            owners = {o for part in chunks(ids) for o in conn.scalars(select(SourceRecord.lease_owner).where(
                SourceRecord.id.in_(part), SourceRecord.lease_owner != "", SourceRecord.lease_owner != self.ctx.worker,
                SourceRecord.lease_until >= now).distinct())}
        for owner in sorted(o for o in owners if workers.gone(o)):
            with self.ctx.store.session() as s:
                n = s.execute(update(SourceRecord).where(SourceRecord.lease_owner == owner)
                              .values(lease_owner="", lease_until=None)).rowcount
            if n:
                logger.warning("took over %d source(s) leased by worker %s, which no longer runs", n, owner)

    def renew(self) -> None:
        """Keep holding what this worker is still checking (a long cycle outlasts one lease)."""
        with self.ctx.store.session() as s:
            s.execute(update(SourceRecord).where(SourceRecord.lease_owner == self.ctx.worker)
                      .values(lease_until=self.ctx.clock() + timedelta(seconds=self.seconds)))

    def release(self) -> None:
        """Give back what this worker still holds (at the end of a cycle, or on shutdown)."""
        with self.ctx.store.session() as s:
            s.execute(update(SourceRecord).where(SourceRecord.lease_owner == self.ctx.worker)
                      .values(lease_owner="", lease_until=None))
