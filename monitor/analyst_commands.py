"""CLI commands an analyst reaches for beside `changes`: `search` (the web list's search box, in a
terminal), `subscriptions` and `digests send`; `register(add)` adds them to the `govwatch` parser (monitor/cli.py imports this module,
never the reverse: each command opens its configuration and store itself)."""
from __future__ import annotations

import json

from state.errors import GovwatchError

SEARCH_LIMIT = 20


def known_topic(cfg, topic: str | None) -> None:
    """An unknown topic is an error naming the known ones, never an empty result."""
    ids = [t.id for t in cfg.topics]
    if topic and topic not in ids:
        raise GovwatchError(f"no topic '{topic}'; known topics: {', '.join(ids)}")


def cmd_search(args) -> int:
    """Full-text search of the change log, best matches first: titles, added and removed text, and
    new documents' full text. Every word must occur (in any form: "report" finds "reports");
    "a phrase"; a OR b; -word or -"a phrase" excludes.

    Example: govwatch search '"domestic terrorism" definition -sports' --since 2026-01-01 --format json
    """
    from monitor.config import load_config
    from monitor.queries import BadRequest, Filters, page_of_changes
    from monitor.records import change_dict
    from state import search
    from state.store import Store

    cfg = load_config(args.config)
    known_topic(cfg, args.topic)
    try:
        f = Filters.parse({"q": args.query, "topic": args.topic or "", "source": args.source or "",
                           "since": args.since or "", "severity": args.severity or ""})
    except BadRequest as e:
        raise GovwatchError(str(e).removeprefix("q: ")) from None
    store = Store(cfg.database)
    limit = args.limit if args.limit is not None else (SEARCH_LIMIT if args.format == "table" else 0)
    page = page_of_changes(store, f, limit or 1_000_000_000, 0)
    total, rows = page.total, page.rows
    names = {r.id: r.name for r in store.sources()} | {s.id: s.display_name for s in cfg.sources}
    data = []
    for row in rows:
        d = change_dict(row.change, row.matches, row.state, names.get(row.change.source_id, row.change.source_id))
        d["snippet"] = search.snippet_text(row.snippet)
        data.append(d)
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    _print_table(data, rows, f"{total:,}+" if page.capped else f"{total:,}", limit, f)
    return 0


def _print_table(data: list[dict], rows, total: str, limit: int, f) -> None:
    from rich.table import Table
    from rich.text import Text

    from monitor.escaping import console, terminal_text
    from state import search

    con = console()
    if not data:
        con.print(Text(f"nothing found for {terminal_text(str(f.searching), newlines=False)!r}"
                       + (" with these filters" if f.topic or f.source or f.since or f.severity else "")))
        return
    t = Table(show_lines=True)
    for col in ("id", "detected (UTC)", "source", "kind", "topics", "title and what was found"):
        t.add_column(col, overflow="fold")
    for d, row in zip(data, rows):
        cell = Text(terminal_text(d["title"] or d["url"], newlines=False), style="bold")
        cell.append("\n")
        # the found words in reverse video: the text itself is never read as markup
        for i, part in enumerate(terminal_text(row.snippet, newlines=False).replace(search.MARK_END, search.MARK_START)
                                 .split(search.MARK_START)):
            cell.append(part, style="reverse" if i % 2 else "")
        t.add_row(str(d["id"]), d["detected_at"].replace("T", " ").rstrip("Z"), d["source_name"] or d["source_id"],
                  d["kind"], " ".join(d["topics"]) or "-", cell)
    con.print(t)
    if limit and total != f"{len(data):,}":
        con.print(f"the best {len(data)} of {total} shown; --limit N for more, --limit 0 for all")
    else:
        con.print(f"{total} change{'s' if total != '1' else ''} found")


def cmd_subscriptions(args) -> int:
    """List the subscriptions (saved searches that alert): the configuration's and those analysts
    made in the web UI, with cadence, what they match, how far they have got and when the next
    digest is due. Targets are named by scheme only (their URLs hold tokens).

    Example: govwatch subscriptions --format json
    """
    from monitor.config import load_config
    from monitor.subscriptions import subscription_rows, sync_config
    from state.store import Store

    cfg = load_config(args.config)
    store = Store(cfg.database)
    sync_config(store, cfg.subscriptions)
    rows = subscription_rows(store, cfg)
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    from rich.table import Table

    from monitor.escaping import console
    from monitor.escaping import text_cell as _cell

    t = Table()
    for col in ("name", "origin", "every", "query and filters", "targets", "sent up to change", "next digest"):
        t.add_column(col, overflow="fold")
    for r in rows:
        filters = " ".join(x for x in (r["query"], *(f"topic:{x}" for x in r["topics"]), *(f"source:{x}" for x in r["sources"]),
                                       f"severity>={r['min_severity']}" if r["min_severity"] else "") if x)
        # an analyst wrote the name and the query: text, never rich markup
        t.add_row(_cell(r["name"]), r["origin"] + (f" ({r['owner']})" if r["owner"] else ""), r["every"] + ("" if r["enabled"] else " (off)"),
                  _cell(filters), ", ".join(r["targets"]), str(r["cursor"] or "-"), (r["next_digest_at"] or "-").replace("T", " "))
    con = console()
    con.print(t) if rows else con.print("no subscriptions: add `subscriptions:` to the configuration or make one in the web UI (/subscriptions)")
    return 0


def cmd_digests(args) -> int:
    """Send the digests that are due now (`--force`: every digest subscription at once), then
    deliver them. A digest lists each matching change once; run again, it sends nothing already
    sent. `govwatch run` does this on time by itself.

    Example: govwatch digests send --force
    """
    from monitor.config import load_config
    from monitor.delivery import deliver
    from monitor.subscriptions import send_due_digests, sync_config
    from state.store import Store

    if args.action != "send":
        raise GovwatchError("usage: govwatch digests send [--force]")
    cfg = load_config(args.config)
    store = Store(cfg.database)
    sync_config(store, cfg.subscriptions)
    reports = send_due_digests(store, cfg, force=args.force)
    report = deliver(cfg, store)
    for r in reports:
        print(f"{r.name}: a digest of {r.changes} change(s) for {r.targets} target(s)")
    if not reports:
        print("no digest due" + ("" if args.force else " (--force sends every digest with unsent changes now)")
              if not args.force else "nothing to send: every matching change was in a digest already")
    print(f"delivery: {report.sent} sent, {report.retrying} to retry, {report.failed} given up")
    return 1 if report.failed else 0


def register(add) -> None:
    sp = add("search", cmd_search)
    sp.add_argument("query", metavar="QUERY", help='words, "a phrase", a OR b, -excluded')
    sp.add_argument("--topic", metavar="T", help="only changes that matched this topic")
    sp.add_argument("--source", metavar="ID", help="only this source")
    sp.add_argument("--since", metavar="ISO", help="from this date or time (UTC when no offset)")
    sp.add_argument("--severity", choices=["low", "medium", "high"], help="only matched changes of at least this severity")
    sp.add_argument("--limit", type=int, default=None, help=f"at most this many, best first (0: all; default {SEARCH_LIMIT} for the table, all for json)")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp = add("subscriptions", cmd_subscriptions)
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp = add("digests", cmd_digests)
    sp.add_argument("action", choices=["send"], metavar="send")
    sp.add_argument("--force", action="store_true", help="every digest subscription now, due or not")
