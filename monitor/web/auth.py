"""Who may use the web change log: accounts and password hashes, the shared token, server-side
sessions, CSRF checks of forms, and the throttle on failed sign-ins."""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from fastapi import Request

from monitor.config import web_environment
from state import websessions
from state.errors import GovwatchError
from state.store import Store

logger = logging.getLogger("monitor.web")  # one logger name for the web app, as before the split

ROLES = ("viewer", "analyst", "admin")
SESSION_COOKIE = "govwatch_session"
SESSION_TTL = 12 * 3600
LOGIN_FAILURES_ALLOWED = 10
LOGIN_FAILURE_WINDOW = 600


# -- settings, accounts and password hashes ---------------------------------------------
@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str = field(repr=False)


@dataclass(frozen=True)
class WebSettings:
    """Who may use the web change log: a shared token and/or named accounts (none: loopback only)."""

    token: str = field(default="", repr=False)
    users: dict[str, User] = field(default_factory=dict, repr=False)

    @property
    def auth_required(self) -> bool:
        return bool(self.token or self.users)


def web_settings(env: Mapping[str, str] | None = None) -> WebSettings:
    """The token and accounts of GOVWATCH_WEB_TOKEN and GOVWATCH_WEB_USERS (a YAML/JSON file of
    accounts), as monitor.config reads them (from `env`, or the process environment)."""
    web_env = web_environment(env)
    token = web_env.token
    if token and len(token) < 16:
        raise GovwatchError("GOVWATCH_WEB_TOKEN is too short: use at least 16 random characters "
                            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    path = web_env.users_file
    return WebSettings(token=token, users=load_users(path) if path else {})


def load_users(path: str) -> dict[str, User]:
    """Accounts from a YAML or JSON file: a list (or `users:` list) of {name, role, password_hash}."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise GovwatchError(f"GOVWATCH_WEB_USERS: cannot read {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise GovwatchError(f"GOVWATCH_WEB_USERS: {path} is not valid YAML or JSON") from e
    if isinstance(raw, dict):
        raw = raw.get("users")
    if not isinstance(raw, list) or not raw:
        raise GovwatchError(f"GOVWATCH_WEB_USERS: {path} must hold a list of users {{name, role, password_hash}}")
    users: dict[str, User] = {}
    problems = []
    for i, u in enumerate(raw):
        if not isinstance(u, dict):
            problems.append(f"users[{i}]: expected a mapping")
            continue
        name, role, ph = str(u.get("name") or "").strip(), u.get("role"), str(u.get("password_hash") or "")
        if not name:
            problems.append(f"users[{i}]: name is required")
        elif name in users:
            problems.append(f"users[{i}]: duplicate name '{name}'")
        if role not in ROLES:
            problems.append(f"users[{i}]: role must be one of {', '.join(ROLES)}")
        if not ph.startswith(("scrypt$", "pbkdf2_sha256$")):
            problems.append(f"users[{i}]: password_hash must come from `govwatch hash-password`")
        if name and role in ROLES and ph:
            users[name] = User(name, role, ph)
    if problems:
        raise GovwatchError(f"GOVWATCH_WEB_USERS: {path} has {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return users


def hash_password(password: str, *, n: int = 2**14, r: int = 8, p: int = 1) -> str:
    """scrypt$N$r$p$salt$hash (base64); verify with verify_password."""
    salt = os.urandom(16)
    dk = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${n}${r}${p}${b64(salt)}${b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        parts = stored.split("$")
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, want = base64.b64decode(parts[4]), base64.b64decode(parts[5])
            got = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=2**27)
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations, salt, want = int(parts[1]), base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=len(want))
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


# Unknown names are verified against this, so the time of a sign-in does not reveal them.
_DUMMY_HASH = hash_password("govwatch-dummy", n=2**14)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- sessions (server-side, in the database: shared by every `serve` process, kept across restarts) --
@dataclass
class WebSession:
    csrf: str
    expires: float
    user: str = ""
    role: str = ""


_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_ANONYMOUS_KEY = "anonymous-csrf"


class Sessions:
    """Signed-in users' sessions, stored in the database (state/websessions.py); nobody else's. An
    anonymous browser (or a probe, or an attacker) gets a session that is never stored: a random
    id in its cookie, and as CSRF token an HMAC of that id with the key the web processes of this
    database share. So anonymous traffic can neither fill the table nor evict a signed-in
    analyst, and only signing in adds a row."""

    def __init__(self, store: Store):
        self.store = store
        self._key = websessions.shared_secret(store, _ANONYMOUS_KEY)

    def anonymous(self, sid: str | None) -> tuple[str, WebSession]:
        """The unstored session of the cookie `sid` (a new id when it has none, or a malformed one)."""
        if not sid or not _SESSION_ID.fullmatch(sid):
            sid = secrets.token_urlsafe(32)
        mac = hmac.new(self._key, sid.encode("ascii"), hashlib.sha256).digest()
        csrf = base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
        return sid, WebSession(csrf=csrf, expires=time.time() + SESSION_TTL)

    def get(self, sid: str | None) -> WebSession | None:
        if not sid or not _SESSION_ID.fullmatch(sid):
            return None
        rec = websessions.find_session(self.store, sid)
        if rec is None:
            return None
        return WebSession(csrf=rec.csrf, expires=rec.expires_at.timestamp(), user=rec.user, role=rec.role)

    def new(self, user: str = "", role: str = "") -> tuple[str, WebSession]:
        sid = secrets.token_urlsafe(32)
        s = WebSession(csrf=secrets.token_urlsafe(32), expires=time.time() + SESSION_TTL, user=user, role=role)
        websessions.open_session(self.store, sid, user=user, role=role, csrf=s.csrf, ttl=timedelta(seconds=SESSION_TTL))
        return sid, s

    def drop(self, sid: str | None) -> None:
        if sid and _SESSION_ID.fullmatch(sid):
            websessions.close_session(self.store, sid)

    def drop_user(self, user: str) -> int:
        """Sign `user` out everywhere (every browser, every `serve` process)."""
        return websessions.close_sessions_of(self.store, user)

    def __len__(self) -> int:
        return websessions.count_sessions(self.store)


class Throttle:
    """Failed sign-ins per client address, on every credential path (the form, a bearer token, a
    ?token=): after LOGIN_FAILURES_ALLOWED within LOGIN_FAILURE_WINDOW seconds, that address may
    not try again, right credentials or not, until the oldest failure is older than the window."""

    MAX_ADDRESSES = 10_000  # beyond this, addresses with no failure in the window are forgotten

    def __init__(self):
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str, now: float) -> bool:
        with self._lock:
            fails = self._failures.get(client)
            while fails and fails[0] < now - LOGIN_FAILURE_WINDOW:
                fails.popleft()
            return fails is not None and len(fails) >= LOGIN_FAILURES_ALLOWED

    def failed(self, client: str, now: float) -> None:
        with self._lock:
            if client not in self._failures and len(self._failures) >= self.MAX_ADDRESSES:
                self._forget(now)
            self._failures.setdefault(client, deque(maxlen=LOGIN_FAILURES_ALLOWED)).append(now)

    def _forget(self, now: float) -> None:
        stale = [k for k, d in self._failures.items() if not d or d[-1] < now - LOGIN_FAILURE_WINDOW]
        for k in stale or sorted(self._failures, key=lambda k: self._failures[k][-1])[: self.MAX_ADDRESSES // 10]:
            del self._failures[k]


# -- who is asking, and may they ----------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    via: str  # local | token | session | bearer

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


class Denied(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


class Throttled(Exception):
    """A credential came from an address with too many failed sign-ins (HTTP 429)."""

    message = "too many failed sign-ins; wait ten minutes"


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


def token_matches(given: str, settings: WebSettings) -> bool:
    """The shared token, compared in constant time (digests of equal length: the time says
    nothing about how much of a guess was right, nor about the token's length)."""
    if not settings.token:
        return False
    digest = lambda s: hashlib.sha256(s.encode("utf-8", "surrogateescape")).digest()  # noqa: E731
    return hmac.compare_digest(digest(given), digest(settings.token))


def authenticate(request: Request, sess: WebSession | None, settings: WebSettings, throttle: Throttle) -> Principal | None:
    """The principal of a request: everyone on loopback without accounts, else a bearer or
    ?token= (GET only) token, else the signed-in user of the session; None if nobody.
    A wrong token counts as a failed sign-in of the client's address; raises Throttled when
    that address has too many."""
    if not settings.auth_required:
        return Principal("local", "admin", "local")
    auth = request.headers.get("authorization", "")
    offered = []
    if settings.token and auth.lower().startswith("bearer "):
        offered.append(auth[7:].strip())
    qtoken = request.query_params.get("token")
    if settings.token and qtoken and request.method == "GET":
        offered.append(qtoken)
    if offered:
        client, now = client_address(request), time.time()
        if throttle.blocked(client, now):
            raise Throttled()
        if any(token_matches(t, settings) for t in offered):
            return Principal("token", "admin", "bearer")
        throttle.failed(client, now)
        logger.warning("web: wrong token from %s", client)
    if sess is not None and sess.user:
        # the role as the users file says now (a demoted or removed user loses it at once, in every
        # process, also across restarts); a token session lives only as long as that token
        u = settings.users.get(sess.user)
        if u is not None:
            return Principal(u.name, u.role, "session")
        if sess.user == "token" and settings.token and hmac.compare_digest(sess.role, token_session_role(settings)):
            return Principal("token", "admin", "session")
    return None


def token_session_role(settings: WebSettings) -> str:
    """The role stored with a session signed in by the shared token: admin, and a fingerprint of
    that token, so that a new token ends every session the old one opened."""
    return "admin@" + hashlib.sha256(("govwatch-session:" + (settings.token or "")).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def require(request: Request, role: str) -> Principal:
    p: Principal | None = request.state.principal
    if p is None:
        raise Denied(401, "sign in first")
    if not p.can(role):
        raise Denied(403, f"this needs the {role} role; you are signed in as a {p.role}")
    return p


async def form_with_csrf(request: Request) -> dict[str, str]:
    """A POST's form, refused unless it carries this session's CSRF token (or a bearer token)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        if urlsplit(origin).netloc.lower() != (request.headers.get("host") or "").lower():
            raise Denied(403, "cross-site request refused")
    form = await request.form()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    p: Principal | None = request.state.principal
    if p is not None and p.via == "bearer":
        return data  # no cookie was used, so no other site can forge this request
    sess: WebSession | None = request.state.session
    sent = data.get("csrf_token", "")
    if sess is None or not sent or not hmac.compare_digest(sent.encode(), sess.csrf.encode()):
        raise Denied(403, "the form has expired or did not come from this site (CSRF check failed); reload the page and try again")
    return data
