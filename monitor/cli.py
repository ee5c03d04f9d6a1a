"""The `govwatch` command: thin commands that parse, call one function, and turn a
GovwatchError into a one-line message (exit 2 for a bad configuration)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import textwrap
from datetime import datetime, timezone
from typing import Any

from monitor import add_command, analyst_commands, evidence_commands, operator_commands, web_commands
from monitor.config import config_path_given
from monitor.escaping import console, terminal_text
from monitor.escaping import text_cell as _cell
from monitor.records import change_dict, changes_csv, iso
from monitor.records import parse_since as _parse_since
from state.errors import ConfigError, GovwatchError

logger = logging.getLogger("govwatch")


# -- helpers ---------------------------------------------------------------------------
def _setup_logging(verbose: int = 0) -> None:
    from monitor.config import environment

    env = environment()
    level_name = env.get("GOVWATCH_LOG_LEVEL", "").upper()
    level = getattr(logging, level_name, None) if level_name else None
    if not isinstance(level, int):
        level = logging.DEBUG if verbose > 1 else logging.INFO
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if env.get("GOVWATCH_LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("scrapy.downloadermiddlewares.retry").setLevel(logging.CRITICAL)  # we record each failure ourselves
    for noisy in ("scrapy", "twisted", "py.warnings", "trafilatura", "htmldate", "charset_normalizer", "alembic", "apprise", "asyncio", "filelock"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def _config(args):
    from monitor.config import load_config

    return load_config(getattr(args, "config", None))


def _store(cfg):
    from state.store import Store

    return Store(cfg.database)


class _Progress:
    """A rich progress bar on a terminal; nothing extra in a container log (lines are logged)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._p = None
        self._task = None

    def start(self, total: int) -> None:
        if not self.enabled or total == 0:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(TextColumn("checking sources"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TextColumn("{task.description}"), transient=True)
        self._task = self._p.add_task("", total=total)
        self._p.start()

    def advance(self, outcome) -> None:
        if self._p is not None:
            self._p.update(self._task, advance=1 if not outcome.source_id.startswith("#") else 0,
                           description=f"{outcome.source_id}: {outcome.outcome}")

    def stop(self) -> None:
        if self._p is not None:
            self._p.stop()


# -- commands --------------------------------------------------------------------------
def cmd_check(args) -> int:
    """Run one cycle: fetch every due source (all with --force), diff, classify, record, alert.

    Example: govwatch check --config govwatch.yaml --source ice-opr --force
    """
    cfg = _config(args)
    store = _store(cfg)
    report = run_cycle_once(cfg, store, force=args.force, only=args.source, progress=sys.stderr.isatty())
    _print_cycle(report)
    if not report.sources and not report.skipped and not args.force:
        print(_next_due(cfg, store, args.source))
    return 0


def cmd_doctor(args) -> int:
    """Fetch each source once (politely; nothing is recorded, no alert is sent) and say what govwatch
    reads there: the HTTP outcome, walls, items and their first titles, the main text's size, and
    what looks wrong. Exit 1 when any source is blind, blocked or failing. Run it after deploying
    and after editing selectors.

    Example: govwatch doctor --source dhs-oig-ice-reports
    """
    from monitor.doctor import failing, print_report, run_doctor

    cfg = _config(args)
    readings = run_doctor(cfg, args.source)
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in readings], indent=2, ensure_ascii=False))
    else:
        print_report(readings)
    return 1 if failing(readings) else 0


def _next_due(cfg, store, only=None) -> str:
    """Why a check did nothing: when the next source is due, and how to check now anyway."""
    wanted = {s.id for s in cfg.sources if s.enabled and (not only or s.id in only)}
    recs = [r for r in store.sources() if r.id in wanted and r.enabled and r.next_due_at is not None]
    hint = "`govwatch check --force` checks " + ("them" if only else "every source") + " now"
    if not recs:
        return f"no source is due; {hint}"
    nxt = min(recs, key=lambda r: r.next_due_at)
    at = nxt.next_due_at if nxt.next_due_at.tzinfo else nxt.next_due_at.replace(tzinfo=timezone.utc)
    wait = max(0.0, (at - datetime.now(timezone.utc)).total_seconds())
    return f"no source is due; the next is {nxt.id}, due {iso(at)} (in {_fmt_wait(wait)}); {hint}"


def _fmt_wait(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours < 48 else f"{hours // 24}d {hours % 24}h"


def run_cycle_once(cfg, store, *, force=False, only=None, progress=False):
    from monitor import archive, timestamp
    from monitor.delivery import deliver
    from monitor.pipeline import Monitor
    from spiders.fetch import Fetcher, run_in_reactor

    mon = Monitor(cfg, store)
    result: dict[str, Any] = {}

    async def main(stop_event) -> int:
        import asyncio

        prog = _Progress(progress)
        try:
            result["report"] = await mon.run_cycle(Fetcher(cfg.fetch), force=force, only=only, stop_event=stop_event, progress=prog)
        finally:
            prog.stop()
        result["delivery"] = await asyncio.to_thread(deliver, cfg, store, retry_now=True)
        # after delivery, never before it: the alerts are out whatever the archive does
        await asyncio.to_thread(archive.work, cfg, store, wait=cfg.archive.save_page_now.check_wait, stop=stop_event.is_set)
        await asyncio.to_thread(timestamp.stamp_day, cfg, store)  # the day's chain head, once a day
        return 0

    run_in_reactor(main, stop_timeout=cfg.scheduler.stop_timeout, on_abandon=mon.abandon)
    if "delivery" not in result:
        # a signal, and the in-flight work outlasted scheduler.stop_timeout: the cycle was cut
        raise GovwatchError("the check was interrupted before it finished (signal); every response already "
                            "received is stored, the rest will be checked next time")
    report = result["report"]
    d = result["delivery"]
    report.sent, report.retrying, report.failed_deliveries = d.sent, d.retrying, d.failed
    return report


def _print_cycle(report) -> None:
    n = len(report.sources)
    secs = ((report.finished_at or report.started_at) - report.started_at).total_seconds()
    parts = [f"{report.count(o)} {o.replace('_', ' ')}" for o in ("changed", "unchanged", "not_modified", "baseline", "removed", "blocked", "error") if report.count(o)]
    docs = report.documents
    if docs:
        parts.append(f"{len(docs)} new document(s) fetched" + (f" ({sum(1 for d in docs if d.outcome == 'error')} failed)" if any(d.outcome == "error" for d in docs) else ""))
    kept = report.archived
    if kept:
        failed = sum(1 for d in kept if d.outcome == "error")
        parts.append(f"{len(kept)} listed document(s) archived or checked again" + (f" ({failed} failed)" if failed else ""))
    print(f"checked {n} source(s) in {secs:.1f}s: {', '.join(parts) or 'nothing due'}; "
          f"{report.changes} change(s), {report.matched} matched; alerts sent {report.sent}, "
          f"retrying {report.retrying}, failed {report.failed_deliveries}" + ("; interrupted" if report.interrupted else ""))
    for o in report.outcomes:
        if o.outcome in ("error", "blocked"):
            print(f"  {o.source_id}: {o.outcome}{' (' + o.part + ')' if o.part else ''}: {terminal_text(o.error, newlines=False)}")
    if report.skipped:
        print(f"skipped {len(report.skipped)} source(s) that a running worker is checking (they are not checked twice):")
        for sid, owner, until in report.skipped:
            print(f"  {sid}: held by worker {owner} until {iso(until) or 'it finishes'}")


TABLE_LIMIT = 50


def cmd_changes(args) -> int:
    """List recorded changes, newest first.

    Example: govwatch changes --topic opr-outcomes --since 2026-11-01 --format json
    """
    cfg = _config(args)
    analyst_commands.known_topic(cfg, args.topic)
    store = _store(cfg)
    since = _parse_since(args.since) if args.since else None
    # A table is for reading: the newest TABLE_LIMIT unless asked; json and csv are exports: all.
    limit = args.limit if args.limit is not None else (TABLE_LIMIT if args.format == "table" else 0)
    rows = store.query_changes(topic=args.topic, source_id=args.source, since=since, matched=args.matched, limit=limit or None)
    from state.triage import states_of

    names = {r.id: r.name for r in store.sources()} | {s.id: s.display_name for s in cfg.sources}
    with store.session() as s:
        states = states_of(s, [c.id for c, _ in rows])
    # the CSV never cuts text; the JSON carries the same excerpt as /changes.json (`govwatch show` has all)
    excerpt = None if args.format == "csv" else 2000
    data = [change_dict(c, m, states.get(c.id), names.get(c.source_id, c.source_id), excerpt=excerpt) for c, m in rows]
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif args.format == "csv":
        sys.stdout.write(changes_csv(data))
    else:
        from rich.table import Table

        t = Table(show_lines=False)
        for col in ("id", "detected (UTC)", "source", "kind", "topics", "title / added text"):
            t.add_column(col, overflow="fold")
        for d in data:
            t.add_row(str(d["id"]), d["detected_at"].replace("T", " ").rstrip("Z"), d["source_id"], d["kind"],
                      " ".join(d["topics"]) or "-", _cell((d["title"] or d["added_text"])[:100].replace("\n", " ")))
        con = console()
        con.print(t) if data else con.print("no changes recorded" + (" matching the filters" if any([args.topic, args.source, args.since, args.matched]) else ""))
        if limit and len(data) == limit:
            con.print(f"the newest {limit} shown; --limit N for more, --limit 0 for all")
    return 0


def cmd_show(args) -> int:
    """Show one change with its diff and evidence.

    Example: govwatch show 42 --format json
    """
    from state.custody import archive_dict, archives_of
    from state.store import evidence_of
    from state.models import ChangeRecord, SourceRecord

    cfg = _config(args)
    store = _store(cfg)
    with store.session() as s:
        change = s.get(ChangeRecord, args.change_id)
        if change is None:
            raise GovwatchError(f"no change with id {args.change_id}; see `govwatch changes`")
        matches = store.matches_of(s, change.id)
        src = s.get(SourceRecord, change.source_id)
        from sqlalchemy import select
        from state.models import DeliveryRecord

        deliveries = list(s.scalars(select(DeliveryRecord).where(DeliveryRecord.change_id == change.id)))
        archived = [archive_dict(a) for a in archives_of(s, [change.id])[change.id]]
    d = change_dict(change, matches, excerpt=None)
    d.update({
        "source_name": src.name if src else "",
        "removed_text": change.removed_text,
        "diff": change.diff_text,
        "item_key": change.item_key,
        "published": change.item_published,
        "matches": [{"topic": m.topic, "score": m.score, "severity": m.severity, **evidence_of(m)} for m in matches],
        "deliveries": [{"target": x.target, "kind": x.kind, "status": x.status, "attempts": x.attempts, "last_error": x.last_error,
                        "sent_at": iso(x.sent_at)} for x in deliveries],
        "archive": archived,
    })
    if args.format == "json":
        print(json.dumps(d, indent=2, ensure_ascii=False))
        return 0
    out = [f"Change {d['id']}: {d['kind']} — {d['source_name']} ({d['source_id']})",
           f"URL:      {d['url']}", f"Detected: {d['detected_at']}"]
    if d["title"]:
        out.append(f"Title:    {d['title']}" + (f" ({d['published']})" if d["published"] else ""))
    if d["note"]:
        out.append(f"Note:     {d['note']}")
    out.append(f"Topics:   {', '.join(d['topics']) or 'none matched'}")
    for m in d["matches"]:
        out.append(f"\n[{m['topic']}] severity {m['severity']}, score {m['score']:g}")
        for ev in m.get("evidence", []):
            out.append(f"  rule {ev.get('rule', '?')}: " + textwrap.shorten(ev.get("marked") or ev.get("sentence", ""), 400))
        for dc in m.get("definition_changes", []):
            out.append(f"  definition of '{dc.get('term')}' {dc.get('change')}:")
            if dc.get("old"):
                out.append(f"    was: {dc['old']}")
            if dc.get("new"):
                out.append(f"    now: {dc['new']}")
    for a in d["archive"]:
        out.append(f"Archived: {a['url']} ({a['service']}, {a['timestamp']})" if a["status"] == "success" else
                   f"Archive:  {a['service']} capture {a['status']}" + (f"; last error: {a['error']}" if a["error"] else ""))
    out.append("\nDiff:")
    out.append(d["diff"] or "(none)")
    if d["deliveries"]:
        out.append("\nAlerts:")
        for x in d["deliveries"]:
            out.append(f"  {x['target']}: {x['status']} after {x['attempts']} attempt(s)" + (f"; last error: {x['last_error']}" if x["last_error"] else ""))
    print(terminal_text("\n".join(out)))  # titles, diffs and errors are captured text
    return 0


def cmd_sources(args) -> int:
    """List the configured sources with their health (last success, failures, last error).

    Example: govwatch sources --format json
    """
    cfg = _config(args)
    store = _store(cfg)
    from monitor.pipeline import Monitor

    Monitor(cfg, store).sync_sources()  # so that new and disabled sources show with their reason
    recs = {r.id: r for r in store.sources()}
    data = []
    for s in cfg.sources:
        r = recs.get(s.id)
        data.append({
            "id": s.id, "name": s.display_name, "agency": s.agency, "kind": s.kind, "url": s.url,
            "every": _fmt_duration(s.every), "enabled": s.enabled, "topics": s.topics or [t.id for t in cfg.topics],
            "disabled_reason": r.disabled_reason if r else "",
            "health": (r.health if r.enabled else "disabled") if r else "unknown", "last_success": iso(r.last_success_at) if r else "",
            "last_change": iso(r.last_change_at) if r else "", "consecutive_failures": r.consecutive_failures if r else 0,
            "last_error": r.last_error if r else "", "next_due": iso(r.next_due_at) if r else "",
            # how it is fetched: "browser" (render: browser, or auto after a JavaScript wall) or "http"
            "render": "browser" if s.renders(r is not None and r.needs_browser) else "http",
            "origin": "web" if s.id in cfg.web_sources else "config", "paused": bool(r and r.paused),
        })
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    if args.format == "yaml":
        import yaml

        from monitor import watches

        entries = watches.yaml_entries(cfg, store)
        print("# govwatch sources: the configuration's and (marked) those added in the web UI; paste into `sources:`")
        for e in entries:
            web = e.pop("_origin", "") == "web"
            text = yaml.safe_dump([e], sort_keys=False, allow_unicode=True, width=120)
            print(("# added in the web UI\n" if web else "") + text, end="")
        return 0
    from rich.table import Table

    t = Table()
    for col in ("id", "kind", "every", "health", "last success", "fails", "last error / url"):
        t.add_column(col, overflow="fold")
    for d in data:
        t.add_row(d["id"] + (" (web)" if d["origin"] == "web" else ""), d["kind"] + (" (browser)" if d["render"] == "browser" else ""), d["every"], d["health"], d["last_success"].replace("T", " ").rstrip("Z") or "never",
                  str(d["consecutive_failures"]), _cell(d["disabled_reason"] or d["last_error"][:80] or d["url"]))
    console().print(t)
    return 0


def _fmt_duration(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{int(seconds // n)}{unit}"
    return f"{seconds:g}s"


def cmd_classify(args) -> int:
    """Run the topic rules on a text, HTML or PDF document (a file, or - for standard input).
    A scanned PDF (no text layer) is read with OCR when Tesseract is installed.

    Example: govwatch classify report.pdf --format json
    """
    from monitor import classify
    from monitor.extract import detect_kind, extract

    cfg = _config(args) if (args.config or config_path_given()) else None
    if args.file == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            with open(args.file, "rb") as f:
                body = f.read()
        except OSError as e:
            raise GovwatchError(f"cannot read {args.file}: {e.strerror}") from e
    kind = detect_kind(body, None)
    if kind == "binary":
        raise GovwatchError(f"{args.file}: binary data, not a text, HTML or PDF document")
    if kind in ("html", "pdf"):
        ex = extract(body, content_type=None, ocr=cfg.ocr if cfg else None)
        text = ex.text
        if ex.note:  # OCR text and its confidence, or a scan that could not be read: said on stderr
            print(f"note: {ex.note}", file=sys.stderr)
    else:
        text = body.decode("utf-8", errors="replace")
    topics = cfg.topics if cfg else classify.builtin_topics()
    matches = classify.classify(text, topics)
    if args.format == "json":
        print(json.dumps({"topics": [m.to_dict() for m in matches]}, indent=2, ensure_ascii=False))
        return 0
    if not matches:
        print("no topic matched")
        return 0
    for m in matches:
        print(f"{m.topic}: severity {m.severity}, score {m.score:g}")
        for ev in m.evidence:
            print(f"  rule {ev.rule}: {terminal_text(textwrap.shorten(ev.marked, 300))}")
        for dc in m.definition_changes:
            print(f"  definition of '{dc.term}' {dc.change}: {terminal_text(dc.new or dc.old, newlines=False)}")
    return 0


def cmd_validate(args) -> int:
    """Check the configuration and report every problem at once (exit 2 when invalid).

    Example: govwatch validate --config govwatch.yaml
    """
    cfg = _config(args)
    if cfg.advisories:  # a run would go on (the fetch refuses these), but the configuration is not right
        raise ConfigError(cfg.path, cfg.advisories)
    user = sum(1 for s in cfg.sources)
    print(f"OK: {cfg.path if cfg.from_file else 'no configuration file (built-in defaults)'}: {user} source(s), "
          f"{len(cfg.notify)} notification target(s), {len(cfg.health_notify)} health target(s), {len(cfg.topics)} topic(s)")
    return 0


def cmd_notify_test(args) -> int:
    """Send a test message to every notification target and report each result.

    Example: govwatch notify-test --config govwatch.yaml
    """
    from alerts.message import Message
    from alerts.outbox import Target

    cfg = _config(args)
    targets = cfg.notify + cfg.health_notify
    if not targets:
        raise GovwatchError("no notification targets configured (notify: in the configuration, or GOVWATCH_NOTIFY)")
    failed = 0
    now = iso(datetime.now(timezone.utc))
    for t in targets:
        msg = Message(title="govwatch test message", body=f"This is a test message from govwatch to target **{t.name}**, sent {now}.")
        err = Target(t.name, t.url.get_secret_value(), t.max_attempts).send(msg)
        print(f"{t.name}: {'sent' if not err else 'FAILED: ' + err}")
        failed += bool(err)
    return 1 if failed else 0


def cmd_run(args) -> int:
    """Run the scheduler: check each source at its interval until SIGTERM/SIGINT (--once: one cycle).

    Example: govwatch run --config govwatch.yaml
    """
    import signal

    def early_stop(signum, _frame):
        raise SystemExit(0)  # nothing has started: any open transaction rolls back

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, early_stop)
    cfg = _config(args)
    store = _store(cfg)
    if args.once:
        report = run_cycle_once(cfg, store, progress=sys.stderr.isatty())
        _print_cycle(report)
        return 0
    from monitor.scheduler import run_forever

    if args.tick:
        cfg.scheduler.tick = args.tick
    return run_forever(cfg, store, max_cycles=args.max_cycles)


def cmd_health(args) -> int:
    """Exit 0 when a scheduler completed a cycle recently (the container's HEALTHCHECK), else 1.

    Example: govwatch health --max-age 15m
    """
    from monitor.config import parse_duration
    from monitor.scheduler import health_status

    cfg = _config(args)
    store = _store(cfg)
    max_age = parse_duration(args.max_age) if args.max_age else cfg.scheduler.health_max_age
    healthy, lines = health_status(store, max_age)
    failing = [r for r in store.sources() if r.enabled and r.health not in ("ok", "unknown")]
    print(("healthy: " if healthy else "UNHEALTHY: ") + "; ".join(lines))
    if failing:
        print(f"{len(failing)} source(s) need attention: " + ", ".join(f"{r.id} ({r.health})" for r in failing[:20]))
    return 0 if healthy else 1


def cmd_deliveries(args) -> int:
    """List alert deliveries (newest first), or queue given-up ones again once their target is fixed.

    Examples: govwatch deliveries --state failed
              govwatch deliveries retry 12 13      (or: govwatch deliveries retry --all-failed)
    """
    from monitor.delivery import delivery_list

    cfg = _config(args)
    store = _store(cfg)
    if getattr(args, "action", None) == "retry":
        return _retry_deliveries(store, args)
    limit = args.limit if args.limit is not None else (TABLE_LIMIT if args.format == "table" else 0)
    data = delivery_list(store, args.state, limit or None)
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    from rich.table import Table

    con = console()
    if not data:
        con.print("no deliveries" + (f" in state {args.state}" if args.state else ""))
        return 0
    t = Table()
    for col in ("id", "created (UTC)", "target", "status", "tries", "change / source", "last error"):
        t.add_column(col, overflow="fold")
    for d in data:
        what = f"{d['change_id']} {d['source_id']}" if d["change_id"] else f"{d['kind']}: {d['title'][:60]}"
        t.add_row(str(d["id"]), d["created_at"].replace("T", " ").rstrip("Z"), d["target"], d["status"], str(d["attempts"]),
                  what, d["last_error"][:200])
    con.print(t)
    if limit and len(data) == limit:
        con.print(f"the newest {limit} shown; --limit N for more, --limit 0 for all")
    return 0


def _retry_deliveries(store, args) -> int:
    import os
    import pwd
    import socket

    from alerts.outbox import requeue_failed

    if bool(args.ids) == bool(args.all_failed):
        raise GovwatchError("deliveries retry: give delivery ids (see `govwatch deliveries --state failed`) or --all-failed")
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid {os.getuid()}"
    queued, problems = requeue_failed(store, None if args.all_failed else args.ids, f"{user}@{socket.gethostname()} (cli)")
    for p in problems:
        print(f"Error: {p}", file=sys.stderr)
    if queued:
        print(f"queued again: {len(queued)} deliver{'y' if len(queued) == 1 else 'ies'} ({', '.join(map(str, queued))}); "
              "the next `govwatch check` or the running scheduler sends them")
    elif args.all_failed:
        print("no failed deliveries")
    return 1 if problems else 0


def cmd_kinds(args) -> int:
    """List the source kinds and their options.

    Example: govwatch kinds
    """
    from spiders import source_kinds

    for name, cls in source_kinds.items():
        opts = ", ".join(cls.Options.model_fields) or "no extra options"
        print(f"{name}: {(cls.__doc__ or '').strip().splitlines()[0]} ({opts})")
    return 0


def cmd_demo(args) -> int:
    """See govwatch work in a minute, offline: a replay of real captures (an OIG listing gaining a report
    PDF, a Federal Register query gaining an executive order, the ICE OPR page gaining outcome figures,
    a page taken down, a page whose only changes are a date and a banner) served on 127.0.0.1,
    checked generation by generation, its alerts caught and printed, then its change log served.
    Exit 1 when an expected alert is missing or the noisy page alerted.

    Example: govwatch demo            (then open the URL it prints; Ctrl-C ends it)
             govwatch demo --no-serve --keep ./demo-state
    """
    from monitor import demo

    def say(text: str) -> None:
        print(text, flush=True)

    port = demo.DEFAULT_PORT if args.port is None else args.port
    return demo.run(port=port, keep=args.keep, serve=not args.no_serve, out=say)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="govwatch", description="Watch DHS, ICE, OIG, GAO, Federal Register and congressional sources; alert on what matters.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, func, **kw):
        doc = (func.__doc__ or "").strip()
        sp = sub.add_parser(name, help=doc.splitlines()[0], description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        sp.set_defaults(func=func)
        if name not in ("kinds", "demo"):
            sp.add_argument("-c", "--config", help="configuration file (default: $GOVWATCH_CONFIG or ./govwatch.yaml)")
        return sp

    sp = add("check", cmd_check)
    sp.add_argument("--source", action="append", metavar="ID", help="only this source (repeatable)")
    sp.add_argument("--force", action="store_true", help="check every source, due or not")
    sp = add("doctor", cmd_doctor)
    sp.add_argument("--source", action="append", metavar="ID", help="only this source (repeatable)")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp = add("run", cmd_run)
    sp.add_argument("--once", action="store_true", help="one cycle, then exit (same as check)")
    sp.add_argument("--tick", type=float, default=None, help=argparse.SUPPRESS)
    sp.add_argument("--max-cycles", type=int, default=None, help=argparse.SUPPRESS)  # tests and soak runs
    sp = add("health", cmd_health)
    sp.add_argument("--max-age", help="how recent the last completed cycle must be (default: scheduler.health_max_age, 15m)")
    sp = add("changes", cmd_changes)
    sp.add_argument("--topic")
    sp.add_argument("--source")
    sp.add_argument("--since", help="ISO 8601 date or time (UTC when no offset)")
    sp.add_argument("--matched", action="store_true", help="only changes that matched a topic")
    sp.add_argument("--limit", type=int, default=None,
                    help=f"at most this many, newest first (0: all; default {TABLE_LIMIT} for the table, all for json/csv)")
    sp.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sp = add("show", cmd_show)
    sp.add_argument("change_id", type=int, metavar="CHANGE_ID")
    sp.add_argument("--format", choices=["text", "json"], default="text")
    sp = add("sources", cmd_sources)
    sp.add_argument("--format", choices=["table", "json", "yaml"], default="table",
                    help="yaml: every source as a `sources:` entry of the configuration, those added in the web UI marked")
    sp = add("classify", cmd_classify)
    sp.add_argument("file", metavar="FILE|-")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp = add("deliveries", cmd_deliveries)
    sp.add_argument("--state", choices=["pending", "sending", "sent", "retrying", "failed"], help="only deliveries in this state")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.add_argument("--limit", type=int, default=None, help=f"at most this many, newest first (0: all; default {TABLE_LIMIT} for the table)")
    dsub = sp.add_subparsers(dest="action", metavar="ACTION")
    rp = dsub.add_parser("retry", help="queue given-up (failed) deliveries again", description=(
        "Queue given-up deliveries again, each with its target's max attempts; recorded in the change's audit trail.\n\n"
        "Example: govwatch deliveries retry 12 13   |   govwatch deliveries retry --all-failed"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_argument("ids", nargs="*", type=int, metavar="ID")
    rp.add_argument("--all-failed", action="store_true", help="every failed delivery")
    rp.add_argument("-c", "--config", default=argparse.SUPPRESS, help="configuration file")
    add("validate", cmd_validate)
    add("notify-test", cmd_notify_test)
    add("kinds", cmd_kinds)
    sp = add("demo", cmd_demo)
    sp.add_argument("--port", type=int, default=None, help="serve the replay's change log here (default 8765; 0: any free port)")
    sp.add_argument("--keep", metavar="DIR", help="keep the replay's database and configuration in DIR (a new or empty folder)")
    sp.add_argument("--no-serve", action="store_true", help="end after the replay instead of serving its change log")
    web_commands.register(add)
    evidence_commands.register(add)
    analyst_commands.register(add)
    operator_commands.register(add)
    add_command.register(add)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except GovwatchError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
