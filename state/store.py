"""The store: engine and sessions (SQLite in WAL mode or PostgreSQL), schema migrations,
content-addressed compressed blobs, and the queries every layer shares."""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import any_, bindparam, create_engine, event, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from state import blobs
from state.errors import StateError
from state.models import BlobRecord, ChangeRecord, SnapshotRecord, SourceRecord, TopicMatchRecord

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"""^revision\s*=\s*["']([^"']+)["']""", re.M)
_DOWN_REVISION = re.compile(r"""^down_revision\s*=\s*["']([^"']+)["']""", re.M)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


IN_CHUNK = 400  # values bound in one statement (ids of an IN, cells of a multi-row INSERT): SQLite takes 32,766 (999 before 3.32)


def chunks(items: list, size: int = IN_CHUNK):
    """`items` in consecutive slices of at most `size`: a watch list of 20,000 sources is not one
    statement with 20,000 bound values."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def one_of(session: Session, column, values: list):
    """`column IN values` (at most IN_CHUNK of them, see chunks). On PostgreSQL one array parameter,
    `column = ANY(%(values)s)`: an IN of 50 ids is 50 bound values that SQLAlchemy renders, casts and
    psycopg converts at every execution (about 2 ms of a change log page's 50)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def dialect_insert(dialect: str):
    """The INSERT of this database dialect, which knows ON CONFLICT DO NOTHING."""
    return pg_insert if dialect == "postgresql" else sqlite_insert


def bulk_update(session: Session, model, rows: list[dict]) -> None:
    """UPDATE rows by primary key in as few statements as their column sets allow (a bulk UPDATE
    wants the same columns in every row); rows keep their given order within a statement. Each
    statement is built once per table and set of columns and run on the session's connection (Core,
    not the ORM's bulk path: this serves every new version of a healthy source too)."""
    by_columns: dict[tuple, list[dict]] = {}
    for row in rows:
        by_columns.setdefault(tuple(row), []).append(row)
    conn = session.connection()
    for columns, group in by_columns.items():
        conn.execute(_update_by_key(model.__table__, columns), [{f"v_{k}": v for k, v in row.items()} for row in group])


@functools.lru_cache(maxsize=64)
def _update_by_key(table, columns: tuple[str, ...]):
    """UPDATE table SET columns WHERE its primary key, with bound values named v_<column>."""
    keys = [c.name for c in table.primary_key.columns]
    stmt = update(table)
    for k in keys:
        stmt = stmt.where(table.c[k] == bindparam(f"v_{k}", type_=table.c[k].type))
    return stmt.values({c: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns if c not in keys})


def redact_url(url: str) -> str:
    """A database URL safe to print: the password replaced."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database url>"


SQLITE_POOL = 2


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (the web change log) are never blocked by the one writer.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Store:
    """One database: open it (migrating the schema to head), then use sessions."""

    def __init__(self, url: str, *, migrate: bool = True):
        self.url = url
        try:
            u = make_url(url)
        except Exception as e:
            raise StateError(f"invalid database URL: {e}") from e
        self.dialect = u.get_backend_name()
        kwargs: dict = {}
        if self.dialect == "sqlite":
            db = u.database
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
                # Two connections kept open, more opened while needed (up to 15 at once, as
                # before): each open connection keeps a page cache of up to 2 MB of a growing
                # database, and five of them filled 10 MB of a long `run` (issue 19).
                kwargs.update(pool_size=SQLITE_POOL, max_overflow=15 - SQLITE_POOL)
        else:
            kwargs["pool_pre_ping"] = True
            if u.get_driver_name() == "psycopg":
                # Planned with each execution's values, never a cached generic plan: after five runs
                # psycopg prepares a statement and PostgreSQL may then plan it once for any value,
                # and a search's plan depends on how common its words are (the newest matches of a
                # word in nine changes of ten are read along the id, of a rare one from the text
                # index: a generic plan took "program"'s first page from 45 to 140 ms).
                kwargs["connect_args"] = {"prepare_threshold": None}
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except Exception as e:  # missing driver, bad URL
            raise StateError(f"cannot open database {redact_url(url)}: {e}") from e
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._write_lock = threading.Lock()
        if migrate:
            self.migrate()

    # -- schema -------------------------------------------------------------------------
    def _alembic_config(self):
        from alembic.config import Config  # alembic is imported only when the schema must move

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def schema_version(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_version(self) -> str | None:
        from alembic.script import ScriptDirectory

        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def _at_head(self) -> bool:
        """The common case, answered without importing alembic (0.1 s of every command): the
        stored revision is the one revision of the migrations folder that no other one follows."""
        revisions, parents = set(), set()
        for f in (MIGRATIONS / "versions").glob("*.py"):
            text = f.read_text(encoding="utf-8")
            rev, down = _REVISION.search(text), _DOWN_REVISION.search(text)
            if rev:
                revisions.add(rev.group(1))
            if down:
                parents.add(down.group(1))
        heads = revisions - parents
        if len(heads) != 1:
            return False
        try:
            with self.engine.connect() as conn:
                stored = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
        except SQLAlchemyError:
            return False  # no version table yet: a new database
        return stored == list(heads)

    def migrate(self) -> None:
        """Bring the schema to the newest version; a user's history is kept."""
        try:
            if self._at_head() or self.schema_version() == self.head_version():
                return
            from alembic import command

            cfg = self._alembic_config()
            with self.engine.begin() as conn:
                if self.dialect == "postgresql":
                    # Several workers may start at once: one migrates, the others wait.
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7366021)")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as e:
            raise StateError(f"cannot open database {redact_url(self.url)}: {e.__class__.__name__}: {str(e).splitlines()[0]}") from e

    # -- sessions -----------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except SQLAlchemyError as e:
                s.rollback()
                raise StateError(f"database error: {e.__class__.__name__}: {str(e).splitlines()[0]}") from e
            except BaseException:
                s.rollback()
                raise

    # -- blobs --------------------------------------------------------------------------
    @staticmethod
    def put_blob(session: Session, data: bytes, digest: str | None = None, compressed: bytes | None = None) -> str:
        """Store bytes once per SHA-256 (compressed); returns the hash. `compressed`: the bytes
        already compressed by state.blobs.compress (by the extraction worker, monitor/offload.py)."""
        digest = digest or sha256(data)
        if not Store._hold_blob(session, digest):
            # an insert that a concurrent worker storing the same bytes cannot make fail (state/blobs.py: how)
            conn = session.connection()
            conn.execute(_blob_insert(conn.dialect.name), {
                "sha256": digest, "size": len(data), "codec": blobs.CODEC,
                "data": compressed if compressed is not None else blobs.compress(data)})
        return digest

    @staticmethod
    def _hold_blob(session: Session, digest: str) -> bool:
        """Whether these bytes are stored, holding the blob until the caller's transaction ends, so
        that `prune` (state/retention.py) cannot delete bytes a snapshot being written will refer to:
        on PostgreSQL a FOR KEY SHARE row lock (prune skips locked rows); on SQLite a no-op UPDATE,
        which takes the database's write lock before the check instead of after it."""
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            return conn.execute(_BLOB_KEY_SHARE, {"digest": digest}).first() is not None
        return conn.execute(_BLOB_TOUCH, {"digest": digest}).rowcount > 0

    def get_blob(self, digest: str, session: Session | None = None) -> bytes | None:
        if not digest:
            return None
        if session is None:
            with self.engine.connect() as conn:      # a read: no ORM session, no transaction to commit
                row = conn.execute(select(BlobRecord.data, BlobRecord.codec).where(BlobRecord.sha256 == digest)).first()
        else:
            row = session.execute(select(BlobRecord.data, BlobRecord.codec).where(BlobRecord.sha256 == digest)).first()
        if row is None:
            return None
        return blobs.decompress(row.data, row.codec)

    def get_text(self, digest: str, session: Session | None = None) -> str:
        data = self.get_blob(digest, session)
        return data.decode("utf-8") if data else ""

    # -- shared queries -----------------------------------------------------------------
    @staticmethod
    def latest_snapshot(session: Session, source_id: str, item_key: str = "") -> SnapshotRecord | None:
        q = (
            select(SnapshotRecord)
            .where(SnapshotRecord.source_id == source_id, SnapshotRecord.item_key == item_key)
            .order_by(SnapshotRecord.id.desc())
            .limit(1)
        )
        return session.scalars(q).first()

    def query_changes(
        self,
        *,
        topic: str | None = None,
        source_id: str | None = None,
        since: datetime | None = None,
        matched: bool = False,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[tuple[ChangeRecord, list[TopicMatchRecord]]]:
        with self.session() as s:
            q = select(ChangeRecord)
            if source_id:
                q = q.where(ChangeRecord.source_id == source_id)
            if since:
                q = q.where(ChangeRecord.detected_at >= since)
            if matched:
                q = q.where(ChangeRecord.matched.is_(True))
            if topic:
                q = q.where(ChangeRecord.id.in_(select(TopicMatchRecord.change_id).where(TopicMatchRecord.topic == topic)))
            q = q.order_by(ChangeRecord.detected_at.desc(), ChangeRecord.id.desc()).offset(offset)
            if limit:
                q = q.limit(limit)
            changes = list(s.scalars(q))
            matches = self.matches_by_change(s, [c.id for c in changes])
            return [(c, matches[c.id]) for c in changes]

    @staticmethod
    def matches_by_change(session: Session, change_ids: list[int]) -> dict[int, list[TopicMatchRecord]]:
        """The topic matches of these changes, best score first: one query per IN_CHUNK changes."""
        out: dict[int, list[TopicMatchRecord]] = {i: [] for i in change_ids}
        for part in chunks(list(out)):
            for m in session.scalars(select(TopicMatchRecord).where(one_of(session, TopicMatchRecord.change_id, part))
                                     .order_by(TopicMatchRecord.score.desc(), TopicMatchRecord.id)):
                out[m.change_id].append(m)
        return out

    @staticmethod
    def matches_of(session: Session, change_id: int) -> list[TopicMatchRecord]:
        return Store.matches_by_change(session, [change_id])[change_id]

    def count_changes(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(ChangeRecord)) or 0

    def sources(self) -> list[SourceRecord]:
        with self.session() as s:
            return list(s.scalars(select(SourceRecord).order_by(SourceRecord.id)))


# The statements of every new version, built once and executed with their values on the session's
# connection (Core, not the ORM: no statement built, cache key computed or unit of work per version).
_BLOBS = BlobRecord.__table__
_BLOB_KEY_SHARE = (select(_BLOBS.c.sha256).where(_BLOBS.c.sha256 == bindparam("digest"))
                   .with_for_update(read=True, key_share=True))
_BLOB_TOUCH = update(_BLOBS).where(_BLOBS.c.sha256 == bindparam("digest")).values(size=_BLOBS.c.size)
_BLOB_INSERTS = {name: dialect_insert(name)(_BLOBS).on_conflict_do_nothing(index_elements=["sha256"])
                 for name in ("sqlite", "postgresql")}


def _blob_insert(dialect: str):
    return _BLOB_INSERTS["postgresql" if dialect == "postgresql" else "sqlite"]


def evidence_of(match: TopicMatchRecord) -> dict:
    """A match's evidence as {"evidence": [...], "definition_changes": [...], "removed": bool}, whatever is stored
    (an older bare list, or a damaged field, reads as what can be salvaged)."""
    try:
        data = json.loads(match.evidence_json or "[]")
    except ValueError:
        data = []
    if isinstance(data, list):
        data = {"evidence": data, "definition_changes": []}
    if not isinstance(data, dict):
        data = {}
    return {"evidence": [e for e in data.get("evidence", []) if isinstance(e, dict)],
            "definition_changes": [d for d in data.get("definition_changes", []) if isinstance(d, dict)],
            "removed": data.get("removed") is True}  # matched on what disappeared: alerted as REMOVED


def now() -> datetime:
    return datetime.now(timezone.utc)
