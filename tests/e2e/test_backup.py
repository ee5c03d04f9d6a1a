"""`govwatch backup` through the real CLI: SQLite's online backup taken while another connection
goes on writing captures (the copy is one instant of the database: every capture in it has its
custody entry, nothing half), the copy opens with the same change log; a copy never migrates; an
existing file is kept without --force, a missing directory is one line; PostgreSQL is told to use
pg_dump, without its password."""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import datetime, timezone

from tests.e2e.test_monitor import RELEVANT, page
from tests.e2e.test_retention import store_capture
from tests.e2e.test_upgrade import at_revision, previous_head


def writer(url: str, stop: threading.Event, written: list[int]) -> None:
    """A scheduler's worth of writes: one capture (blobs, snapshot, custody entry) per transaction."""
    from state.store import Store

    store = Store(url)
    n = 0
    while not stop.is_set():
        n += 1
        with store.session() as s:
            store_capture(store, s, "opr", f"version {n} of the page, {'x' * 2000}".encode(), datetime.now(timezone.utc))
        written.append(n)


def test_backup_while_another_connection_writes(site, webhook, workdir):
    from state.custody import verify_store
    from state.store import Store

    site.set("/opr", page())
    workdir.write(sources=[{"id": "opr", "url": site.url("/opr")}], notify=[{"url": webhook.url(), "name": "hook"}])
    workdir.run("check")
    site.set("/opr", page(extra=RELEVANT))
    assert "1 matched" in workdir.run("check", "--force").stdout
    changes = workdir.run("changes", "--format", "json").stdout

    stop, written = threading.Event(), []
    t = threading.Thread(target=writer, args=(workdir.db, stop, written))
    t.start()
    try:
        while len(written) < 20:
            stop.wait(0.05)
        at_start = len(written)
        outs = [workdir.run("backup", "-o", f"backup-{i}.db").stdout for i in range(2)]
        during = len(written)
    finally:
        stop.set()
        t.join(30)
    assert during > at_start  # the writer went on while the copies were taken
    for i, out in enumerate(outs):
        path = workdir.path / f"backup-{i}.db"
        assert out.startswith(f"wrote backup-{i}.db: ") and f"a consistent copy of {workdir.path / 'state' / 'govwatch.db'} (schema " in out
        assert f"({os.path.getsize(path):,} bytes)" in out, out
        assert not os.path.exists(f"{path}-wal")
        con = sqlite3.connect(path)
        try:
            assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            copied = con.execute("SELECT count(*) FROM snapshots WHERE source_id = 'opr'").fetchone()[0]
        finally:
            con.close()
        assert 2 + at_start <= copied <= 2 + len(written)  # the two checks' captures and some of the writer's
        url = f"sqlite:///{path}"
        with Store(url, migrate=False).session() as s:
            check = verify_store(s)
        assert check.problems == [] and check.snapshots == copied, check.problems[:3]  # every capture with its entry
        # the copy is a working database: the same change log through the CLI
        p = workdir.run("changes", "--format", "json", env={"GOVWATCH_DATABASE": url})
        assert p.stdout == changes
    assert json.loads(changes)[0]["topics"] == ["opr-outcomes"]


def test_backup_keeps_files_and_says_why_in_one_line(workdir):
    workdir.write(sources=[])
    workdir.run("check")
    first = workdir.run("backup", "-o", "b.db").stdout
    assert first.startswith("wrote b.db: ")
    before = (workdir.path / "b.db").read_bytes()
    for args, msg in ((["-o", "b.db"], "backup: b.db exists; --force replaces it"),
                      (["-o", "missing/b.db"], f"backup: missing/b.db: the directory {workdir.path / 'missing'} does not exist"),
                      (["-o", "."], "backup: . is a directory; give a file name"),
                      (["-o", "state/govwatch.db", "--force"], "backup: state/govwatch.db is the database itself")):
        p = workdir.run("backup", *args, check=False)
        assert (p.returncode, p.stderr, p.stdout) == (1, f"Error: {msg}\n", ""), (args, p.stderr)
    assert (workdir.path / "b.db").read_bytes() == before
    assert workdir.run("backup", "-o", "b.db", "--force").stdout.startswith("wrote b.db: ")


def test_backup_of_postgres_names_pg_dump_without_the_password(workdir):
    workdir.write(sources=[])
    secret = "pg-s3cret-pa55"
    p = workdir.run("backup", "-o", "b.db", check=False,
                    env={"GOVWATCH_DATABASE": f"postgresql+psycopg://govwatch:{secret}@db.internal:5432/govwatch?sslmode=require"})
    assert p.returncode == 2 and p.stdout == "", p
    assert p.stderr.count("\n") == 1 and secret not in p.stderr
    assert ("use pg_dump, e.g. pg_dump --format=custom --file=govwatch.dump "
            "'postgresql://govwatch@db.internal:5432/govwatch?sslmode=require'") in p.stderr
    assert not (workdir.path / "b.db").exists()
    # ... nor one given as a libpq parameter in the query string
    p = workdir.run("backup", "-o", "b.db", check=False,
                    env={"GOVWATCH_DATABASE": f"postgresql+psycopg://govwatch@db.internal/govwatch?password={secret}&sslpassword={secret}"})
    assert p.returncode == 2 and secret not in p.stderr and "'postgresql://govwatch@db.internal/govwatch'" in p.stderr, p.stderr


def test_a_backup_is_never_migrated(workdir):
    """Taken before an upgrade with the new release's command, it is still the old schema."""
    from state.store import Store

    before = previous_head()
    at_revision(workdir.db, before)
    workdir.write(sources=[])
    out = workdir.run("backup", "-o", "old.db").stdout
    assert out.endswith(f"(schema {before})\n"), out
    assert Store(f"sqlite:///{workdir.path / 'old.db'}", migrate=False).schema_version() == before
    assert Store(workdir.db, migrate=False).schema_version() == before
