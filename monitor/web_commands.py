"""CLI commands of the web change log and its evidence: `serve`, `export-warc`, `feedback` and
`hash-password`; `register(add)` adds them to the `govwatch` parser (monitor/cli.py imports this
module, never the reverse: each command opens its configuration and store itself)."""
from __future__ import annotations

import getpass
import json
import os
import sys
import tempfile

from state.errors import GovwatchError


def cmd_serve(args) -> int:
    """Serve the analyst change log (127.0.0.1:8080 by default).

    Another address needs GOVWATCH_WEB_TOKEN or GOVWATCH_WEB_USERS (see `govwatch hash-password`).
    Example: govwatch serve --port 8080
    """
    from monitor.config import load_config
    from monitor.web import serve, web_settings
    from state.store import Store

    cfg = load_config(args.config)
    # GOVWATCH_WEB_TOKEN and GOVWATCH_WEB_USERS from the environment load_config read once
    serve(cfg, Store(cfg.database), host=args.host, port=args.port, settings=web_settings(cfg.environment))
    return 0


def cmd_export_warc(args) -> int:
    """Export a source's or a change's captures as a WARC file (raw bytes, recorded headers, SHA-256).

    Example: govwatch export-warc --change 42 -o change-42.warc.gz
    """
    from monitor.config import load_config
    from monitor.evidence import export_warc
    from state.store import Store

    cfg = load_config(args.config)
    store = Store(cfg.database)
    name = args.output.lower()
    if not name.endswith((".warc", ".warc.gz")):
        raise GovwatchError(f"export-warc: {args.output}: the file name must end in .warc (plain) or .warc.gz (gzip)")
    target = os.path.abspath(args.output)
    tmp = ""
    # Written next to the target and renamed: an interrupted export never leaves a half file.
    try:
        fd, tmp = tempfile.mkstemp(prefix=".govwatch-", suffix=".warc.part", dir=os.path.dirname(target))
        with os.fdopen(fd, "wb") as f:
            n = export_warc(store, f, source_id=args.source, change_id=args.change, gzip=name.endswith(".gz"))
        os.replace(tmp, target)
    except OSError as e:
        raise GovwatchError(f"cannot write {args.output}: {e.strerror or e}") from e
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    what = f"change {args.change}" if args.change is not None else f"source {args.source}"
    print(f"wrote {n} capture(s) of {what} to {args.output}")
    return 0


def cmd_feedback(args) -> int:
    """Print the changes analysts marked "not relevant" (topic, evidence, note) to tune the rules.

    Example: govwatch feedback --format csv > not-relevant.csv
    """
    from monitor.config import load_config
    from monitor.web import feedback_csv, not_relevant_feedback
    from state.store import Store

    cfg = load_config(args.config)
    rows = not_relevant_feedback(Store(cfg.database))
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(feedback_csv(rows))
    return 0


def cmd_hash_password(args) -> int:
    """Print a password hash (scrypt) for a GOVWATCH_WEB_USERS account file.

    Reads the password from standard input when it is not a terminal.
    Example: govwatch hash-password   (then: users: [{name: ana, role: analyst, password_hash: ...}])
    """
    from monitor.web import hash_password

    if sys.stdin.isatty():
        pw = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != pw:
            raise GovwatchError("the passwords differ")
    else:
        pw = sys.stdin.readline().rstrip("\r\n")
    if len(pw) < 10:
        raise GovwatchError("use a password of at least 10 characters")
    print(hash_password(pw))
    return 0


def register(add) -> None:
    """Add the web and evidence commands; `add(name, func)` returns the subparser (with --config)."""
    sp = add("serve", cmd_serve)
    sp.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    sp = add("export-warc", cmd_export_warc)
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--source", metavar="ID", help="every capture of this source")
    g.add_argument("--change", metavar="ID", type=int, help="the previous and new capture of this change")
    sp.add_argument("-o", "--output", required=True, metavar="FILE", help="the WARC file to write: .warc.gz (gzipped) or .warc (plain)")
    sp = add("feedback", cmd_feedback)
    sp.add_argument("--format", choices=["csv", "json"], default="csv")
    add("hash-password", cmd_hash_password)
