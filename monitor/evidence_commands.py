"""CLI commands of the evidence that stands up on its own: `export-wacz` and `verify`;
`register(add)` adds them to the `govwatch` parser (monitor/cli.py imports this module, never the
reverse: each command opens its configuration and store itself)."""
from __future__ import annotations

import os
import tempfile

from state.errors import GovwatchError


def cmd_export_wacz(args) -> int:
    """Export a change's or a source's captures as a WACZ package (Webrecorder's format, read by
    ReplayWeb.page): the WARC with raw bytes and headers, an index, pages, govwatch's change records
    with their evidence, the captures' chain of custody entries and its head, SHA-256 of every file.

    Example: govwatch export-wacz --change 42 -o change-42.wacz
    """
    from monitor.config import load_config
    from monitor.records import parse_since
    from monitor.wacz import export_wacz
    from state.store import Store

    if args.since and args.change is not None:
        raise GovwatchError("--since goes with --source (a change's package holds its own two captures)")
    cfg = load_config(args.config)
    store = Store(cfg.database)
    since = parse_since(args.since) if args.since else None
    target = os.path.abspath(args.output)
    # Written next to the target and renamed: an interrupted export never leaves a half file.
    fd, tmp = tempfile.mkstemp(prefix=".govwatch-", suffix=".wacz", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as f:
            n = export_wacz(store, f, source_id=args.source, change_id=args.change, since=since)
        os.replace(tmp, target)
    except OSError as e:
        raise GovwatchError(f"cannot write {args.output}: {e.strerror}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    what = f"change {args.change}" if args.change is not None else f"source {args.source}"
    print(f"wrote {n} capture(s) of {what} to {args.output}")
    return 0


def cmd_verify(args) -> int:
    """Check the evidence; exit 1 on any mismatch, each one named.

    Without FILE: recompute the chain of custody and the SHA-256 of every stored body from the
    database. With FILE (an exported .wacz, .warc.gz or .warc): every digest it carries and every
    custody entry it holds; no configuration or database is needed for that.
    Example: govwatch verify change-42.wacz
    """
    if args.file:
        from monitor.wacz import verify_file

        try:
            r = verify_file(args.file)
        except OSError as e:
            raise GovwatchError(f"cannot read {args.file}: {e.strerror}") from e
        for p in r.problems:
            print(f"MISMATCH: {p}")
        what = f"{r.kind} {args.file}: " + (f"{r.members} member(s), " if r.kind == "WACZ" else "") + \
            f"{r.records} WARC record(s), {r.captures} capture(s); custody head at export: {r.head or 'none'}"
        print(("OK: " if not r.problems else f"FAILED ({len(r.problems)} mismatch(es)): ") + what)
        return 1 if r.problems else 0
    from monitor.config import load_config
    from monitor.timestamp import check_stamps
    from state.custody import verify_store
    from state.store import Store

    cfg = load_config(args.config)
    store = Store(cfg.database)
    with store.session() as s:
        r = verify_store(s)
        stamps, stamp_problems = check_stamps(s)
    r.problems += stamp_problems
    for p in r.problems:
        print(f"MISMATCH: {p}")
    head = f"head #{r.head.seq} {r.head.entry_hash}" if r.head else "empty"
    summary = f"chain of custody of {r.entries} entr{'y' if r.entries == 1 else 'ies'} ({head}); {r.snapshots} snapshot(s), {r.blobs} blob(s) checked"
    if r.pruned:
        summary += f"; the raw bytes of {r.pruned} snapshot(s) were deleted by `govwatch prune` (their entries still hold the SHA-256)"
    if stamps:
        summary += f"; {stamps} RFC 3161 time-stamp(s) of its head"
    print(("OK: " if not r.problems else f"FAILED ({len(r.problems)} mismatch(es)): ") + summary)
    return 1 if r.problems else 0


def register(add) -> None:
    """Add the evidence commands; `add(name, func)` returns the subparser (with --config)."""
    sp = add("export-wacz", cmd_export_wacz)
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--source", metavar="ID", help="every capture of this source")
    g.add_argument("--change", metavar="ID", type=int, help="the previous and new capture of this change")
    sp.add_argument("--since", metavar="ISO", help="with --source: captures and changes from this date or time (UTC when no offset)")
    sp.add_argument("-o", "--output", required=True, metavar="FILE", help="the WACZ file to write (.wacz)")
    sp = add("verify", cmd_verify)
    sp.add_argument("file", nargs="?", metavar="FILE", help="an exported .wacz or .warc.gz; without it, the database")
