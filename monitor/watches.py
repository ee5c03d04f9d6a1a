"""Watches: sources an admin adds in the web UI, stored in the database beside the configuration's
(state/watches.py), validated exactly as a `sources:` entry of the file, listed with the rest and
exported with `govwatch sources --format yaml`. Any source can be paused and resumed, or asked to be
checked now (its next due time set to now: the scheduler takes it at its next tick). Every action
is in the admin audit trail."""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone

from sqlalchemy import update

from monitor.config import Config, SourceConfig, validate_watch
from state.errors import GovwatchError
from state.models import SourceRecord
from state.watches import WatchRecord, audit, live_watches

logger = logging.getLogger("govwatch.watches")
_FIELD = re.compile(r"^watch\.?([A-Za-z_]*)")
_warned: set[str] = set()  # watches shadowed by a configured source, said once per process


def merge(cfg: Config, store) -> list[SourceConfig]:
    """Add the web UI's watches to the configuration's sources (in place); the ones added now. A
    watch whose entry no longer validates (e.g. the file now has its id) is logged and skipped."""
    with store.session() as s:
        recs = live_watches(s)
    live = {r.source_id for r in recs}
    gone = [sid for sid in cfg.web_sources if sid not in live]
    if gone:  # removed in the web UI since: out of this process's list too
        cfg.sources[:] = [src for src in cfg.sources if src.id not in gone]
        cfg.web_sources.difference_update(gone)
        cfg._by_id = {}
    have = {src.id for src in cfg.sources}
    added = []
    for rec in recs:
        if rec.source_id in have:
            if rec.source_id not in cfg.web_sources and rec.source_id not in _warned:
                _warned.add(rec.source_id)
                logger.warning("watch %s made in the web UI has the id of a configured source: the configuration's is used", rec.source_id)
            continue
        src, problems = validate_watch(json.loads(rec.spec_json), cfg, have)
        if src is None:
            logger.error("watch %s made in the web UI is not valid any more: %s", rec.source_id, "; ".join(problems))
            continue
        cfg.sources.append(src)
        cfg.web_sources.add(src.id)
        have.add(src.id)
        added.append(src)
    if added:
        cfg._by_id = {}
    return added


def problems_by_field(problems: list[str]) -> dict[str, str]:
    """"watch.url: message (line n)" -> {"url": "message"} for the form (general ones under "")."""
    out: dict[str, str] = {}
    for p in problems:
        where, _, msg = p.partition(": ")
        m = _FIELD.match(where)
        key = m.group(1) if m else ""
        msg = re.sub(r" \(line \d+\)$", "", msg or p)
        out[key] = f"{out[key]}; {msg}" if key in out else msg
    return out


def add_watch(store, cfg: Config, raw: dict, actor: str) -> tuple[SourceConfig | None, dict[str, str]]:
    """Validate and store a new watch (audited); the source, or the problems by field."""
    raw = {k: v for k, v in raw.items() if v not in ("", None, [])}
    src, problems = validate_watch(raw, cfg, {s.id for s in cfg.sources} | _stored_ids(store))
    if src is None:
        return None, problems_by_field(problems)
    with store.session() as s:
        old = s.get(WatchRecord, src.id)
        if old is not None:
            s.delete(old)  # a removed watch's id used again
            s.flush()
        ordered = {k: raw[k] for k in ("id", "url", "kind") if k in raw} | raw  # as a file entry reads
        s.add(WatchRecord(source_id=src.id, spec_json=json.dumps(ordered), created_by=actor))
        rec = s.get(SourceRecord, src.id)
        if rec is None:  # listed (and pausable) at once; due at once, having never been checked
            s.add(SourceRecord(id=src.id, name=src.display_name, url=src.url, kind=src.kind, agency=src.agency,
                               every_seconds=int(src.every)))
        elif rec.disabled_reason == "removed in the web UI":  # an id used again
            rec.enabled, rec.disabled_reason = True, ""
        audit(s, src.id, "watch_added", actor, json.dumps(raw, sort_keys=True))
    logger.info("watch %s (%s) added by %s", src.id, src.url, actor)
    return src, {}


def _stored_ids(store) -> set[str]:
    with store.session() as s:
        return {w.source_id for w in live_watches(s)}


def remove_watch(store, source_id: str, actor: str) -> None:
    with store.session() as s:
        rec = s.get(WatchRecord, source_id)
        if rec is None or rec.removed_at is not None:
            raise GovwatchError(f"no watch '{source_id}' made in the web UI (the configuration's sources are edited in its file)")
        rec.removed_at = datetime.now(timezone.utc)
        src = s.get(SourceRecord, source_id)
        if src is not None:  # shown as removed; a running scheduler drops it at its next tick (merge)
            src.enabled, src.disabled_reason = False, "removed in the web UI"
        audit(s, source_id, "watch_removed", actor)


def set_paused(store, source_id: str, paused: bool, actor: str) -> None:
    with store.session() as s:
        rec = s.get(SourceRecord, source_id)
        if rec is None:
            raise GovwatchError(f"no source '{source_id}'")
        rec.paused = paused
        if paused:
            rec.enabled, rec.disabled_reason = False, "paused in the web UI"
        elif rec.disabled_reason == "paused in the web UI":
            rec.enabled, rec.disabled_reason = True, ""
        audit(s, source_id, "paused" if paused else "resumed", actor)


def check_now(store, source_id: str, actor: str) -> None:
    """Queue a check: the source falls due now, for the scheduler's next tick (or the next `check`)."""
    with store.session() as s:
        if s.get(SourceRecord, source_id) is None:
            raise GovwatchError(f"no source '{source_id}'")
        s.execute(update(SourceRecord).where(SourceRecord.id == source_id).values(next_due_at=datetime.now(timezone.utc)))
        audit(s, source_id, "check_requested", actor)


def yaml_entries(cfg: Config, store) -> list[dict]:
    """Every source as a `sources:` entry of the configuration file: the file's own as written
    there (their validated form), the web UI's with `# added in the web UI` in the YAML."""
    with store.session() as s:
        specs = {w.source_id: json.loads(w.spec_json) for w in live_watches(s)}
    out = []
    for src in cfg.sources:
        if src.id in cfg.web_sources and src.id in specs:
            out.append({**specs[src.id], "_origin": "web"})
            continue
        entry = {"id": src.id, "url": src.url, "kind": src.kind}
        for key in ("name", "agency", "select", "ignore", "topics", "alert_on", "expect_update_within"):
            value = getattr(src, key)
            if value not in (None, "", []):
                entry[key] = value
        entry["every"] = _duration(src.every)
        if src.render != "auto":
            entry["render"] = src.render
        if not src.enabled:
            entry["enabled"] = False
        if src.options is not None:
            defaults = type(src.options)().model_dump() if _constructible(src.options) else {}
            for k, v in src.options.model_dump().items():
                if defaults.get(k, object()) != v:
                    entry[k] = v
        out.append(entry)
    return out


def _constructible(options) -> bool:
    try:
        type(options)()
        return True
    except Exception:
        return False


def _duration(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"
