"""CLI commands of the operator who keeps govwatch running for months: `prune` (retention) and
`backup`; `register(add)` adds them to the `govwatch` parser (monitor/cli.py imports this module,
never the reverse: each command opens its configuration and store itself). docs/operations.md is
the guide around them."""
from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone

from state.errors import GovwatchError

_UNIT = re.compile(r"[a-z]\s*$")


class UsageError(GovwatchError):
    """The command cannot do this here (exit 2, like a bad configuration)."""

    exit_code = 2


def _actor() -> str:
    """Who ran the command, for the record: user@host (cli)."""
    import pwd
    import socket

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (cli)"


MAX_AGE_DAYS = 36_500


def _older_than(value: str) -> timedelta:
    """A retention period the way the configuration writes durations (30d, 6h, 1d12h), with its
    unit: a bare `180` would be 180 seconds, which no operator means."""
    from monitor.config import parse_duration

    if not _UNIT.search(value.strip().lower()):
        raise GovwatchError(f"--older-than {value!r}: give a unit, e.g. 180d (w, d, h, m, s); a bare number would be seconds")
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise GovwatchError(f"--older-than: {e}") from None
    if seconds < 1:
        raise GovwatchError(f"--older-than {value!r}: must be at least 1s")
    if seconds > MAX_AGE_DAYS * 86400:  # past the calendar: nothing is that old (and datetime cannot say it)
        raise GovwatchError(f"--older-than {value!r}: at most {MAX_AGE_DAYS:,}d (100 years)")
    return timedelta(seconds=seconds)


def human(n: int) -> str:
    """12,345,678 bytes as '11.8 MB (12,345,678 bytes)'."""
    value, unit = float(n), "bytes"
    for u in ("KB", "MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, u
    return f"{n:,} bytes" if unit == "bytes" else f"{value:,.1f} {unit} ({n:,} bytes)"


def _sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL (None for PostgreSQL); in-memory has no file."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    if not u.database or u.database == ":memory:":
        raise GovwatchError("the database is SQLite in memory: there is no file to prune or back up")
    return os.path.abspath(u.database)


# -- prune ------------------------------------------------------------------------------------
def cmd_prune(args) -> int:
    """Drop what is old and proves nothing: routine fetch attempts (304s, the same bytes again) and
    the stored bytes of captures that are no change's evidence, older than --older-than.

    Kept whatever their age: the captures of every change that matched a topic, was triaged or
    assigned, was alerted, was listed by a saved search or sent to a web archive; the latest capture
    of each source and item (the next diff's base); snapshot rows, their SHA-256 and the chain of
    custody (`govwatch verify` still passes, naming the pruned captures). Run --dry-run first.
    Example: govwatch prune --older-than 180d --dry-run
    """
    from monitor.config import load_config
    from state.retention import prune
    from state.store import Store

    age = _older_than(args.older_than)
    if args.vacuum and args.dry_run:
        raise GovwatchError("--vacuum rewrites the database file: it goes with a real prune, not with --dry-run")
    cfg = load_config(args.config)
    path = _sqlite_file(cfg.database)
    if args.vacuum and path is None:
        raise GovwatchError("--vacuum is for SQLite; on PostgreSQL autovacuum reuses the space (VACUUM FULL blobs returns it to the disk)")
    store = Store(cfg.database)
    cutoff = datetime.now(timezone.utc) - age
    r = prune(store, cutoff, dry_run=args.dry_run, actor=_actor())
    when = cutoff.strftime("%Y-%m-%dT%H:%M:%SZ")
    head = "would prune (dry run: nothing changed)" if r.dry_run else "pruned"
    print(f"{head} what is older than {args.older_than} (before {when}): {r.attempts:,} routine fetch attempt(s); "
          f"the stored bytes of {r.snapshots:,} snapshot(s) (their rows, SHA-256 and custody entries stay); "
          f"{r.blobs:,} blob(s), {human(r.bytes_freed)} freed")
    print(f"kept: {r.kept_snapshots:,} snapshot(s) older than that, whole, as evidence of a change or as a diff base")
    if r.dry_run:
        return 0
    if path is None:
        print("PostgreSQL reuses the freed space for new rows (autovacuum); `VACUUM FULL blobs` returns it to the disk (it locks the table)")
    elif args.vacuum:
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the file's size counts every page written so far
            before = os.path.getsize(path)
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            after = os.path.getsize(path)
        print(f"VACUUM: {path} went from {human(before)} to {human(after)}")
    else:
        print(f"SQLite reuses the freed pages for new captures; the file ({path}) shrinks only with `govwatch prune "
              "--vacuum` (it rewrites the file: stop the scheduler first)")
    return 0


# -- backup -----------------------------------------------------------------------------------
def _pg_dump_hint(url: str) -> str:
    """The pg_dump command for this database, without its password (libpq reads PGPASSWORD)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    # a password may also sit in the query string (libpq's password=, sslpassword=): never printed
    query = {k: v for k, v in parsed.query.items() if k.lower() not in ("password", "sslpassword", "passfile")}
    plain = parsed._replace(drivername="postgresql", password=None, query=query)  # URL.set(password=None) keeps it
    return f"pg_dump --format=custom --file=govwatch.dump '{plain.render_as_string(hide_password=False)}'"


def backup_sqlite(path: str, target: str) -> None:
    """Copy the database with SQLite's online backup: one step, inside one read transaction, so the
    copy is the database as it was at one instant while the scheduler goes on writing (WAL mode:
    the reader blocks no writer). Written next to the target and renamed: never a half file."""
    fd, tmp = tempfile.mkstemp(prefix=".govwatch-backup-", suffix=".db", dir=os.path.dirname(target))
    os.close(fd)
    try:
        src = sqlite3.connect(path, timeout=30)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)  # pages=-1: every page in one step
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            ok = dst.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            dst.close()
            src.close()
        if ok != "ok":
            raise GovwatchError(f"backup: the copy failed SQLite's quick_check ({ok}); {target} was not written")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def cmd_backup(args) -> int:
    """Write a consistent copy of the SQLite database while govwatch keeps running (SQLite's online
    backup). On PostgreSQL use pg_dump (the error says how). Restore: stop govwatch, copy the file
    over the database, delete its -wal and -shm files, start again (see docs/operations.md).

    Example: govwatch backup -o /backups/govwatch-$(date +%F).db
    """
    from monitor.config import load_config

    cfg = load_config(args.config)
    path = _sqlite_file(cfg.database)
    if path is None:
        raise UsageError(f"backup copies SQLite databases; this one is PostgreSQL: use pg_dump, e.g. {_pg_dump_hint(cfg.database)} "
                         "(restore: pg_restore --clean --if-exists -d URL govwatch.dump)")
    target = os.path.abspath(args.output)
    if not os.path.isdir(os.path.dirname(target)):
        raise GovwatchError(f"backup: {args.output}: the directory {os.path.dirname(target)} does not exist")
    if os.path.isdir(target):
        raise GovwatchError(f"backup: {args.output} is a directory; give a file name")
    if not os.path.exists(path):
        raise GovwatchError(f"backup: no database at {path} (nothing has run yet?)")
    if os.path.exists(target):
        if os.path.samefile(target, path):
            raise GovwatchError(f"backup: {args.output} is the database itself")
        if not args.force:
            raise GovwatchError(f"backup: {args.output} exists; --force replaces it")
    from state.store import Store

    # never migrated here: a backup taken before an upgrade is the old schema, as the old version left it
    store = Store(cfg.database, migrate=False)
    try:
        version = store.schema_version() or "none"
    finally:
        store.engine.dispose()
    try:
        backup_sqlite(path, target)
    except OSError as e:
        raise GovwatchError(f"backup: cannot write {args.output}: {e.strerror or e}") from e
    except sqlite3.Error as e:
        raise GovwatchError(f"backup: {e}") from e
    print(f"wrote {args.output}: {human(os.path.getsize(target))}, a consistent copy of {path} (schema {version})")
    return 0


def register(add) -> None:
    """Add the operator's commands; `add(name, func)` returns the subparser (with --config)."""
    sp = add("prune", cmd_prune)
    sp.add_argument("--older-than", required=True, metavar="AGE", help="what is older than this goes, e.g. 180d or 26w (units w, d, h, m, s)")
    sp.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    sp.add_argument("--vacuum", action="store_true", help="SQLite: then rewrite the file so it shrinks (stop the scheduler first)")
    sp = add("backup", cmd_backup)
    sp.add_argument("-o", "--output", required=True, metavar="FILE", help="the copy to write (SQLite)")
    sp.add_argument("--force", action="store_true", help="replace FILE if it exists")
