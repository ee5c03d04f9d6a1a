"""Signed-in users' web sessions and the web's secret key, in the database: every `serve` process
of one database shares them, a restart keeps users signed in, and signing out (or a session's
expiry) holds in every process at once. A session is stored under the SHA-256 of its id, so the
table (a backup, a read-only database user) never holds a usable cookie."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlmodel import Field, SQLModel

from state.models import as_utc, utcnow
from state.store import Store, dialect_insert


class WebSessionRecord(SQLModel, table=True):
    __tablename__ = "web_sessions"
    id_sha256: str = Field(primary_key=True)  # the SHA-256 of the cookie's session id, never the id
    user: str = Field(default="", index=True)
    role: str = ""
    csrf: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(default_factory=utcnow, index=True)


class WebSecretRecord(SQLModel, table=True):
    """Secrets the web processes of one database share (the key of anonymous CSRF tokens)."""

    __tablename__ = "web_secrets"
    name: str = Field(primary_key=True)
    value: str = ""
    created_at: datetime = Field(default_factory=utcnow)


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def shared_secret(store: Store, name: str) -> bytes:
    """The named secret, made by whichever process asks first (the others read that one)."""
    with store.session() as s:
        stmt = dialect_insert(store.dialect)(WebSecretRecord).values(name=name, value=secrets.token_hex(32), created_at=utcnow())
        s.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    with store.session() as s:
        return bytes.fromhex(s.get(WebSecretRecord, name).value)


def open_session(store: Store, sid: str, *, user: str, role: str, csrf: str, ttl: timedelta) -> None:
    now = utcnow()
    with store.session() as s:
        s.execute(delete(WebSessionRecord).where(WebSessionRecord.expires_at < now))  # the expired, while here
        s.add(WebSessionRecord(id_sha256=_hash(sid), user=user, role=role, csrf=csrf, created_at=now, expires_at=now + ttl))


def find_session(store: Store, sid: str) -> WebSessionRecord | None:
    """The live session of this id (None when unknown or expired)."""
    with store.session() as s:
        rec = s.get(WebSessionRecord, _hash(sid))
        if rec is None:
            return None
        if as_utc(rec.expires_at) < utcnow():
            s.delete(rec)
            return None
        s.expunge(rec)
        return rec


def close_session(store: Store, sid: str) -> None:
    with store.session() as s:
        s.execute(delete(WebSessionRecord).where(WebSessionRecord.id_sha256 == _hash(sid)))


def close_sessions_of(store: Store, user: str) -> int:
    """Sign `user` out everywhere: every session of theirs, in every process."""
    with store.session() as s:
        return s.execute(delete(WebSessionRecord).where(WebSessionRecord.user == user)).rowcount or 0


def count_sessions(store: Store) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(WebSessionRecord).where(WebSessionRecord.expires_at >= utcnow())) or 0
