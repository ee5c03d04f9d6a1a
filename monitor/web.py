"""`govwatch serve`: the analyst change log, a server-rendered FastAPI app (Jinja2 with autoescape,
no JavaScript) with triage, exports, Atom feeds and evidence downloads. Captured content is
untrusted: it is escaped, never linked unless http(s), and shown rendered only in a sandbox."""
from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import ipaddress
import logging
import os
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timezone
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitor.diff import diff as text_diff, highlight
from monitor.escaping import csv_cell
from monitor.evidence import EvidenceError, capture, export_warc
from state.errors import GovwatchError
from state.models import ChangeRecord, DeliveryRecord, FetchAttemptRecord, SnapshotRecord, SourceRecord, TopicMatchRecord
from state.store import Store
from state.triage import (ACTION_LABELS, ACTIONS, MAX_NOTE_CHARS, TriageStateRecord, actions_of, not_relevant_actions,
                          record_action, states_of)

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STYLESHEET = HERE / "static" / "style.css"

PAGE_SIZE = 50
EXPORT_LIMIT = 5000
FEED_ENTRIES = 100
SIDE_BY_SIDE_MAX_CHARS = 400_000  # larger texts: inline diff only (the side-by-side table would be huge)
SEVERITIES = ("low", "medium", "high")
REVIEW_STATES = ("unreviewed",) + ACTIONS
ROLES = ("viewer", "analyst", "admin")
SESSION_COOKIE = "govwatch_session"
SESSION_TTL = 12 * 3600
LOGIN_FAILURES_ALLOWED = 10
LOGIN_FAILURE_WINDOW = 600

# Every page: no script at all, styles and images only from here, forms only to here, never framed.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# A captured page rendered for an analyst: an opaque-origin sandbox, no scripts, nothing loaded
# from the monitored site (which would tell it who is looking), framable only by us.
PREVIEW_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
DOWNLOAD_CSP = "sandbox; default-src 'none'"
PUBLIC_PATHS = {"/healthz", "/login", "/static/style.css"}


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


def web_settings(env: dict[str, str] | None = None) -> WebSettings:
    """Read GOVWATCH_WEB_TOKEN and GOVWATCH_WEB_USERS (a YAML/JSON file of accounts) once."""
    env = os.environ if env is None else env
    token = env.get("GOVWATCH_WEB_TOKEN", "").strip()
    if token and len(token) < 16:
        raise GovwatchError("GOVWATCH_WEB_TOKEN is too short: use at least 16 random characters "
                            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    path = env.get("GOVWATCH_WEB_USERS", "").strip()
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- sessions (server-side, in memory: a restart logs everyone out, nothing to forge) ---------
@dataclass
class WebSession:
    csrf: str
    expires: float
    user: str = ""
    role: str = ""


class Sessions:
    def __init__(self, limit: int = 10_000):
        self._data: dict[str, WebSession] = {}
        self._lock = threading.Lock()
        self.limit = limit

    def get(self, sid: str | None) -> WebSession | None:
        if not sid:
            return None
        with self._lock:
            s = self._data.get(sid)
            if s is None or s.expires < time.time():
                self._data.pop(sid, None)
                return None
            return s

    def new(self, user: str = "", role: str = "") -> tuple[str, WebSession]:
        sid = secrets.token_urlsafe(32)
        s = WebSession(csrf=secrets.token_urlsafe(32), expires=time.time() + SESSION_TTL, user=user, role=role)
        with self._lock:
            if len(self._data) >= self.limit:  # drop the oldest rather than grow without bound
                for k in sorted(self._data, key=lambda k: self._data[k].expires)[: self.limit // 10]:
                    del self._data[k]
            self._data[sid] = s
        return sid, s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._data.pop(sid or "", None)


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


from monitor.records import change_dict, iso  # noqa: E402  (shared with the CLI)
from state.store import evidence_of  # noqa: E402


# -- presentation helpers -----------------------------------------------------------------
def human_time(dt: datetime | None) -> str:
    return iso(dt).replace("T", " ").replace("Z", " UTC") if dt else "never"


def safe_url(url: str | None) -> str | None:
    """The URL if it may become a link (http/https, no control characters), else None."""
    if not url or any(ord(c) < 33 or c == "\x7f" for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def marked_segments(marked: str) -> list[tuple[str, bool]]:
    """«term» markers of the classifier -> [(text, is_term)]; the template escapes each piece."""
    out: list[tuple[str, bool]] = []
    rest = marked or ""
    while rest:
        a = rest.find("«")
        b = rest.find("»", a + 1) if a >= 0 else -1
        if a < 0 or b < 0:
            out.append((rest, False))
            break
        if a:
            out.append((rest[:a], False))
        out.append((rest[a + 1 : b], True))
        rest = rest[b + 1 :]
    return out


def _pair_segments(old: str, new: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    runs = highlight(old, new)
    left = [(t, op == -1) for op, t in runs if op in (0, -1)]
    right = [(t, op == 1) for op, t in runs if op in (0, 1)]
    return left, right


@dataclass
class DiffLine:
    kind: str  # add | del | ctx | gap
    segments: list[tuple[str, bool]]


def inline_rows(unified: str) -> list[DiffLine]:
    """The stored "+ / - /   / ..." diff as rows; a removed line directly followed by an added one
    is a rewording, highlighted inside the sentence."""
    lines = unified.splitlines()
    rows: list[DiffLine] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "...":
            rows.append(DiffLine("gap", [("…", False)]))
        elif line.startswith("- ") and i + 1 < len(lines) and lines[i + 1].startswith("+ "):
            left, right = _pair_segments(line[2:], lines[i + 1][2:])
            rows += [DiffLine("del", left), DiffLine("add", right)]
            i += 1
        elif line.startswith("- "):
            rows.append(DiffLine("del", [(line[2:], False)]))
        elif line.startswith("+ "):
            rows.append(DiffLine("add", [(line[2:], False)]))
        else:
            rows.append(DiffLine("ctx", [(line[2:] if line.startswith("  ") else line, False)]))
        i += 1
    return rows


@dataclass
class SideRow:
    kind: str  # equal | replace | delete | insert | gap
    old_no: int | None = None
    old: list[tuple[str, bool]] | None = None
    new_no: int | None = None
    new: list[tuple[str, bool]] | None = None


def side_by_side(old_text: str, new_text: str, context: int = 2) -> list[SideRow] | None:
    """Paragraph-aligned two-column diff with changed words marked; None when too large."""
    if len(old_text) + len(new_text) > SIDE_BY_SIDE_MAX_CHARS:
        return None
    a = [ln for ln in old_text.splitlines() if ln.strip()]
    b = [ln for ln in new_text.splitlines() if ln.strip()]
    rows: list[SideRow] = []
    for g, group in enumerate(SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context)):
        if g or (group and (group[0][1] or group[0][3])):
            rows.append(SideRow("gap"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [SideRow("equal", i1 + k + 1, [(a[i1 + k], False)], j1 + k + 1, [(b[j1 + k], False)]) for k in range(i2 - i1)]
                continue
            n = max(i2 - i1, j2 - j1)
            for k in range(n):
                oi, nj = i1 + k, j1 + k
                has_old, has_new = oi < i2, nj < j2
                if has_old and has_new:
                    left, right = _pair_segments(a[oi], b[nj])
                    rows.append(SideRow("replace", oi + 1, left, nj + 1, right))
                elif has_old:
                    rows.append(SideRow("delete", oi + 1, [(a[oi], False)]))  # the row colour says it all
                else:
                    rows.append(SideRow("insert", None, None, nj + 1, [(b[nj], False)]))
    return rows


def _xml_text(s: str) -> str:
    """XML 1.0 cannot carry most control characters; captured text may contain them."""
    return "".join(c for c in s if c in "\t\n\r" or (ord(c) >= 32 and not 0xD800 <= ord(c) <= 0xDFFF and c not in "\ufffe\uffff"))


# -- filters of the change log --------------------------------------------------------------
class BadRequest(Exception):
    pass


def _parse_day(name: str, value: str, end: bool) -> datetime:
    v = value.strip()
    try:
        if len(v) == 10:  # a date: the whole day
            d = datetime.fromisoformat(v)
            dt = datetime.combine(d.date(), dtime.max if end else dtime.min)
        else:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: '{value}' is not a date (2026-11-01) or an ISO 8601 time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass
class Filters:
    topic: str = ""
    severity: str = ""
    source: str = ""
    agency: str = ""
    since: str = ""
    until: str = ""
    state: str = ""
    q: str = ""
    matched: bool = False
    page: int = 1
    _since: datetime | None = None
    _until: datetime | None = None

    KEYS = ("topic", "severity", "source", "agency", "since", "until", "state", "q", "matched")

    @classmethod
    def parse(cls, params) -> "Filters":
        get = lambda k: (params.get(k) or "").strip()[:500]  # noqa: E731
        f = cls(topic=get("topic"), severity=get("severity"), source=get("source"), agency=get("agency"),
                since=get("since"), until=get("until"), state=get("state"), q=get("q"),
                matched=get("matched") in ("1", "true", "on", "yes"))
        if f.severity and f.severity not in SEVERITIES:
            raise BadRequest(f"severity: '{f.severity}' is not one of {', '.join(SEVERITIES)}")
        if f.state and f.state not in REVIEW_STATES:
            raise BadRequest(f"state: '{f.state}' is not one of {', '.join(REVIEW_STATES)}")
        f._since = _parse_day("since", f.since, end=False) if f.since else None
        f._until = _parse_day("until", f.until, end=True) if f.until else None
        page = get("page") or "1"
        if not page.isdigit() or not 1 <= int(page) <= 100_000:
            raise BadRequest(f"page: '{page}' is not a page number")
        f.page = int(page)
        return f

    def items(self, **override) -> list[tuple[str, str]]:
        d = {k: getattr(self, k) for k in self.KEYS}
        d["matched"] = "1" if d["matched"] else ""
        d.update(override)
        return [(k, str(v)) for k, v in d.items() if v not in ("", None, False)]

    def qs(self, **override) -> str:
        items = self.items(**override)
        return "?" + urlencode(items) if items else ""

    @property
    def active(self) -> bool:
        return bool(self.items())

    def apply(self, q, *, skip_topic: bool = False):
        # A topic or a severity is only ever on a matched change: saying so lets the index
        # (matched, detected_at) give the newest first instead of a scan or a sort of the log.
        if self.topic and not skip_topic:
            q = q.where(ChangeRecord.matched.is_(True),
                        ChangeRecord.id.in_(select(TopicMatchRecord.change_id).where(TopicMatchRecord.topic == self.topic)))
        if self.severity:
            q = q.where(ChangeRecord.matched.is_(True),
                        ChangeRecord.severity.in_(SEVERITIES[SEVERITIES.index(self.severity):]))
        if self.source:
            q = q.where(ChangeRecord.source_id == self.source)
        if self.agency:
            q = q.where(ChangeRecord.source_id.in_(select(SourceRecord.id).where(SourceRecord.agency == self.agency)))
        if self._since:
            q = q.where(ChangeRecord.detected_at >= self._since)
        if self._until:
            q = q.where(ChangeRecord.detected_at <= self._until)
        if self.matched:
            q = q.where(ChangeRecord.matched.is_(True))
        if self.state == "unreviewed":
            q = q.where(ChangeRecord.id.not_in(select(TriageStateRecord.change_id)))
        elif self.state:
            q = q.where(ChangeRecord.id.in_(select(TriageStateRecord.change_id).where(TriageStateRecord.state == self.state)))
        if self.q:
            needle = self.q.lower()
            q = q.where(func.lower(ChangeRecord.added_text).contains(needle, autoescape=True)
                        | func.lower(ChangeRecord.title).contains(needle, autoescape=True))
        return q


# -- data shaping shared by pages, exports and the CLI -----------------------------------
def not_relevant_feedback(store: Store) -> list[dict]:
    """Changes an analyst marked "not relevant": topic, evidence and note, to tune the rules."""
    out = []
    with store.session() as s:
        for action, change in not_relevant_actions(s):
            matches = store.matches_of(s, change.id)
            d = change_dict(change, matches, excerpt=1000)
            out.append({
                "change_id": change.id, "detected_at": d["detected_at"], "source_id": change.source_id,
                "url": change.url, "kind": change.kind, "title": change.title, "topics": d["topics"],
                "severity": change.severity, "scores": d["scores"],
                "evidence": [{"topic": e["topic"], "rule": e["rule"], "sentence": e["sentence"], "terms": e["terms"]} for e in d["evidence"]],
                "note": action.note, "marked_by": action.actor, "marked_at": iso(action.created_at),
                "added_text": d["added_text"],
            })
    return out


FEEDBACK_COLUMNS = ["change_id", "detected_at", "source_id", "url", "kind", "title", "topics", "severity", "rules",
                    "evidence", "note", "marked_by", "marked_at", "added_text"]


def feedback_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(FEEDBACK_COLUMNS)
    for r in rows:
        w.writerow([csv_cell(x) for x in (
            r["change_id"], r["detected_at"], r["source_id"], r["url"], r["kind"], r["title"], " ".join(r["topics"]),
            r["severity"], " ".join(sorted({e["rule"] for e in r["evidence"]})),
            " | ".join(f"[{e['topic']}/{e['rule']}] {e['sentence']}" for e in r["evidence"]),
            r["note"], r["marked_by"], r["marked_at"], r["added_text"])])
    return buf.getvalue()


# -- the application ------------------------------------------------------------------------
def _templates() -> jinja2.Environment:
    # Autoescape on for every template: jinja2.Environment() alone defaults to OFF.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = human_time
    env.filters["iso"] = iso
    env.globals.update(safe_url=safe_url, marked_segments=marked_segments, action_labels=ACTION_LABELS)
    return env


def create_app(cfg, store: Store, *, settings: WebSettings | None = None) -> FastAPI:
    """The web change log for one configuration and store."""
    settings = settings if settings is not None else web_settings()
    env = _templates()
    css = STYLESHEET.read_bytes()
    css_etag = '"' + hashlib.sha256(css).hexdigest()[:16] + '"'
    sessions = Sessions()
    failures: dict[str, deque] = {}
    topics = [(t.id, t.title) for t in cfg.topics]
    topic_title = dict(topics)
    cfg_names = {s.id: s.display_name for s in cfg.sources}
    public_url = (getattr(cfg, "public_url", "") or "").rstrip("/")

    app = FastAPI(title="govwatch", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sessions = sessions
    app.state.settings = settings

    def source_names() -> dict[str, str]:
        names = {r.id: (r.name or r.id) for r in store.sources()}
        names.update(cfg_names)
        return names

    def render(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
        sess: WebSession = request.state.session
        ctx.update(request=request, principal=request.state.principal, csrf=sess.csrf if sess else "",
                   auth_required=settings.auth_required, topics=topics, topic_title=topic_title)
        return HTMLResponse(env.get_template(template).render(**ctx), status_code=status)

    def error_page(request: Request, status: int, message: str) -> HTMLResponse:
        return render(request, "error.html", status=status, status_code=status, message=message)

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

    def _authenticate(request: Request, sess: WebSession | None) -> Principal | None:
        if not settings.auth_required:
            return Principal("local", "admin", "local")
        auth = request.headers.get("authorization", "")
        if settings.token and auth.lower().startswith("bearer "):
            if hmac.compare_digest(auth[7:].strip().encode(), settings.token.encode()):
                return Principal("token", "admin", "bearer")
        qtoken = request.query_params.get("token")
        if settings.token and qtoken and request.method == "GET":
            if hmac.compare_digest(qtoken.encode(), settings.token.encode()):
                return Principal("token", "admin", "bearer")
        if sess is not None and sess.user:
            return Principal(sess.user, sess.role, "session")
        return None

    @app.middleware("http")
    async def guard(request: Request, call_next):
        started = time.monotonic()
        path = request.url.path
        new_sid = None
        try:
            try:
                host = urlsplit("//" + (request.headers.get("host") or "")).hostname or ""
            except ValueError:
                host = ""
            # Without accounts the server only listens on loopback; refusing other Host names stops
            # a DNS-rebinding page from reading or triaging through the analyst's browser.
            if not settings.auth_required and not is_loopback(host):
                response = PlainTextResponse("Host not allowed: open this service as http://127.0.0.1:<port>/", status_code=421)
            else:
                sid = request.cookies.get(SESSION_COOKIE)
                sess = sessions.get(sid)
                if sess is None:
                    new_sid, sess = sessions.new()
                request.state.session = sess
                request.state.sid = new_sid or sid
                request.state.principal = _authenticate(request, sess)
                if request.state.principal is None and path not in PUBLIC_PATHS:
                    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                        nxt = path + (f"?{request.url.query}" if request.url.query else "")
                        response = RedirectResponse("/login?" + urlencode({"next": nxt}), status_code=303)
                    else:
                        response = PlainTextResponse("authentication required", status_code=401,
                                                     headers={"WWW-Authenticate": 'Bearer realm="govwatch"'})
                else:
                    response = await call_next(request)
                    new_sid = getattr(request.state, "new_sid", None) or new_sid
        except Exception:
            logger.exception("web: %s %s failed", request.method, path)
            response = PlainTextResponse("internal error; see the server log", status_code=500)
        h = response.headers
        h.setdefault("Content-Security-Policy", CSP)
        h["X-Content-Type-Options"] = "nosniff"
        h["Referrer-Policy"] = "no-referrer"  # never tell a monitored site which change an analyst opened
        h.setdefault("X-Frame-Options", "DENY")
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Cross-Origin-Resource-Policy"] = "same-origin"
        if path != "/static/style.css":
            h["Cache-Control"] = "no-store"
        if new_sid:
            response.set_cookie(SESSION_COOKIE, new_sid, max_age=SESSION_TTL, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https", path="/")
        # The path only: a ?token= query string must never reach a log.
        logger.info("web: %s %s %s %.0fms", request.method, path, response.status_code, (time.monotonic() - started) * 1000)
        return response

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied):
        return error_page(request, exc.status, exc.message)

    @app.exception_handler(BadRequest)
    async def _bad(request: Request, exc: BadRequest):
        return error_page(request, 400, str(exc))

    @app.exception_handler(EvidenceError)
    async def _evidence_missing(request: Request, exc: EvidenceError):
        return error_page(request, 404, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return error_page(request, exc.status_code, "page not found" if exc.status_code == 404 else str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        where = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()) or "request"
        return error_page(request, 400, f"invalid {where}")

    # -- static and health ------------------------------------------------------------------
    @app.get("/static/style.css")
    def stylesheet():
        return Response(css, media_type="text/css; charset=utf-8", headers={"ETag": css_etag, "Cache-Control": "max-age=3600"})

    @app.get("/healthz")
    def healthz():
        try:
            n = store.count_changes()
            version = store.schema_version()
        except GovwatchError as e:
            logger.error("web: health check failed: %s", e)
            return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)
        return {"status": "ok", "changes": n, "schema": version}

    # -- login ----------------------------------------------------------------------------------
    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/"):
        return render(request, "login.html", next=_safe_next(next), has_users=bool(settings.users),
                      has_token=bool(settings.token), failed=False)

    @app.post("/login")
    async def login(request: Request):
        data = await form_with_csrf(request)
        nxt = _safe_next(data.get("next", "/"))
        client = request.client.host if request.client else "?"
        now = time.time()
        fails = failures.setdefault(client, deque(maxlen=LOGIN_FAILURES_ALLOWED))
        while fails and fails[0] < now - LOGIN_FAILURE_WINDOW:
            fails.popleft()
        if len(fails) >= LOGIN_FAILURES_ALLOWED:
            raise Denied(429, "too many failed sign-ins; wait ten minutes")
        who: tuple[str, str] | None = None
        name, password = data.get("name", "").strip(), data.get("password", "")
        if settings.users and name:
            u = settings.users.get(name)
            # Verify against a dummy hash for unknown names so timing does not reveal them.
            if verify_password(password, u.password_hash if u else _DUMMY_HASH) and u is not None:
                who = (u.name, u.role)
        elif settings.token and password:
            if hmac.compare_digest(password.encode(), settings.token.encode()):
                who = ("token", "admin")
        if who is None:
            fails.append(now)
            logger.warning("web: failed sign-in from %s", client)
            return render(request, "login.html", status=401, next=nxt, has_users=bool(settings.users),
                          has_token=bool(settings.token), failed=True)
        sessions.drop(request.state.sid)  # a fresh session id on sign-in: no fixation
        sid, _ = sessions.new(*who)
        request.state.new_sid = sid
        return RedirectResponse(nxt, status_code=303)

    @app.post("/logout")
    async def logout(request: Request):
        await form_with_csrf(request)
        sessions.drop(request.state.sid)
        sid, _ = sessions.new()
        request.state.new_sid = sid
        return RedirectResponse("/login" if settings.auth_required else "/", status_code=303)

    # -- the change log -------------------------------------------------------------------
    def _page_of_changes(f: Filters, limit: int, offset: int):
        with store.session() as s:
            total = s.scalar(f.apply(select(func.count()).select_from(ChangeRecord))) or 0
            q = f.apply(select(ChangeRecord)).order_by(ChangeRecord.detected_at.desc(), ChangeRecord.id.desc())
            changes = list(s.scalars(q.offset(offset).limit(limit)))
            ids = [c.id for c in changes]
            matches = store.matches_by_change(s, ids)
            states = states_of(s, ids)
            # A join, not "change_id IN (the filtered changes)": SQLite would walk every change of
            # the log for that; this walks the topic matches and looks each change up by its key.
            counts_q = (f.apply(select(TopicMatchRecord.topic, func.count(func.distinct(TopicMatchRecord.change_id)))
                                .join(ChangeRecord, ChangeRecord.id == TopicMatchRecord.change_id), skip_topic=True)
                        .group_by(TopicMatchRecord.topic))
            counts = dict(s.execute(counts_q).all())
            agencies = sorted({a for (a,) in s.execute(select(SourceRecord.agency).distinct()) if a})
        return total, [(c, matches[c.id], states.get(c.id)) for c in changes], counts, agencies

    @app.get("/", response_class=HTMLResponse)
    def change_log(request: Request):
        require(request, "viewer")
        f = Filters.parse(request.query_params)
        total, rows, counts, agencies = _page_of_changes(f, PAGE_SIZE, (f.page - 1) * PAGE_SIZE)
        names = source_names()
        items = []
        for c, ms, st in rows:
            ev = next((e for m in ms for e in evidence_of(m)["evidence"]), None)
            items.append({"change": c, "matches": ms, "state": st, "source_name": names.get(c.source_id, c.source_id),
                          "evidence": ev, "excerpt": " ".join(c.added_text.split())[:240]})
        pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
        return render(request, "changes.html", f=f, items=items, total=total, pages=pages, counts=counts,
                      sources=sorted(names.items(), key=lambda kv: kv[1].lower()), agencies=agencies,
                      severities=SEVERITIES, states=REVIEW_STATES)

    def _export_rows(request: Request) -> list[dict]:
        require(request, "viewer")
        f = Filters.parse(request.query_params)
        limit = request.query_params.get("limit", "")
        n = int(limit) if limit.isdigit() and 0 < int(limit) <= 50_000 else EXPORT_LIMIT
        _, rows, _, _ = _page_of_changes(f, n, (f.page - 1) * n)
        names = source_names()
        return [change_dict(c, ms, st, names.get(c.source_id, "")) for c, ms, st in rows]

    @app.get("/changes.json")
    def changes_json(request: Request):
        return JSONResponse(_export_rows(request))

    @app.get("/changes.csv")
    def changes_csv(request: Request):
        rows = _export_rows(request)
        buf = io.StringIO()
        w = csv.writer(buf)
        cols = ["id", "detected_at", "source_id", "kind", "topics", "severity", "review_state", "title", "url",
                "evidence", "added_text"]
        w.writerow(cols)
        for d in rows:
            w.writerow([csv_cell(x) for x in (d["id"], d["detected_at"], d["source_id"], d["kind"], " ".join(d["topics"]),
                        d["severity"], d["review_state"], d["title"], d["url"],
                        " | ".join(e["sentence"] for e in d["evidence"]), d["added_text"])])
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="govwatch-changes.csv"'})

    @app.get("/changes/{change_id}", response_class=HTMLResponse)
    def change_page(request: Request, change_id: int):
        require(request, "viewer")
        with store.session() as s:
            c = s.get(ChangeRecord, change_id)
            if c is None:
                raise Denied(404, f"no change with id {change_id}")
            matches = store.matches_of(s, c.id)
            src = s.get(SourceRecord, c.source_id)
            prev = s.get(SnapshotRecord, c.prev_snapshot_id) if c.prev_snapshot_id else None
            new = s.get(SnapshotRecord, c.new_snapshot_id) if c.new_snapshot_id else None
            trail = actions_of(s, c.id)
            state = states_of(s, [c.id]).get(c.id)
            deliveries = list(s.scalars(select(DeliveryRecord).where(DeliveryRecord.change_id == c.id).order_by(DeliveryRecord.id)))
            prev_text = store.get_text(prev.text_sha256, s) if prev else ""
            new_text = store.get_text(new.text_sha256, s) if new else ""
        shown = [{"match": m, **evidence_of(m)} for m in matches]
        # A new item's snapshots are the whole listing, not the document: its diff is the item itself.
        sbs = side_by_side(prev_text, new_text) if c.kind in ("changed", "removed") and (prev or new) else None
        return render(request, "change.html", c=c, src=src, source_name=source_names().get(c.source_id, c.source_id),
                      shown=shown, prev=prev, new=new, prev_text=prev_text, new_text=new_text, trail=trail, state=state,
                      inline=inline_rows(c.diff_text), sbs=sbs, sbs_too_large=sbs is None and c.kind in ("changed", "removed"),
                      deliveries=deliveries, actions=ACTIONS, max_note=MAX_NOTE_CHARS)

    @app.post("/changes/{change_id}/triage")
    async def triage(request: Request, change_id: int):
        data = await form_with_csrf(request)
        who = require(request, "analyst")
        action = data.get("action", "")
        if action not in ACTIONS:
            raise BadRequest(f"action: '{action}' is not one of {', '.join(ACTIONS)}")
        note = data.get("note", "").strip()
        if len(note) > MAX_NOTE_CHARS:
            raise BadRequest(f"note: at most {MAX_NOTE_CHARS} characters")
        with store.session() as s:
            if s.get(ChangeRecord, change_id) is None:
                raise Denied(404, f"no change with id {change_id}")
            record_action(s, change_id, action, who.name, note)
        logger.info("web: change %s marked %s by %s", change_id, action, who.name)
        return RedirectResponse(f"/changes/{change_id}#triage", status_code=303)

    @app.get("/changes/{change_id}/warc")
    def change_warc(request: Request, change_id: int):
        require(request, "viewer")
        buf = io.BytesIO()
        export_warc(store, buf, change_id=change_id)
        return _download(buf.getvalue(), "application/warc", f"govwatch-change-{change_id}.warc.gz")

    # -- feedback for rule tuning ------------------------------------------------------------
    @app.get("/feedback.json")
    def feedback_json(request: Request):
        require(request, "analyst")
        return JSONResponse(not_relevant_feedback(store))

    @app.get("/feedback.csv")
    def feedback_csv_route(request: Request):
        require(request, "analyst")
        return Response(feedback_csv(not_relevant_feedback(store)), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="govwatch-not-relevant.csv"'})

    # -- Atom feed ------------------------------------------------------------------------------
    @app.get("/feed.atom")
    def feed(request: Request, topic: str = ""):
        require(request, "viewer")
        if topic and topic not in topic_title:
            raise Denied(404, f"no topic '{topic}'; known: {', '.join(topic_title)}")
        f = Filters(topic=topic, matched=True)
        _, rows, _, _ = _page_of_changes(f, FEED_ENTRIES, 0)
        base = public_url or str(request.base_url).rstrip("/")
        return Response(_atom(rows, topic, base, source_names(), topic_title), media_type="application/atom+xml; charset=utf-8")

    # -- sources -----------------------------------------------------------------------------------
    @app.get("/sources", response_class=HTMLResponse)
    def sources_page(request: Request):
        require(request, "viewer")
        recs = {r.id: r for r in store.sources()}
        with store.session() as s:
            counts = dict(s.execute(select(ChangeRecord.source_id, func.count()).group_by(ChangeRecord.source_id)).all())
        rows = []
        for sid in sorted(set(recs) | set(cfg_names)):
            r = recs.get(sid)
            conf = next((x for x in cfg.sources if x.id == sid), None)
            rows.append({"id": sid, "name": cfg_names.get(sid) or (r.name if r else sid), "rec": r, "conf": conf,
                         "agency": (conf.agency if conf else "") or (r.agency if r else ""), "changes": counts.get(sid, 0)})
        return render(request, "sources.html", rows=rows)

    def _source(s, source_id: str) -> SourceRecord:
        rec = s.get(SourceRecord, source_id)
        if rec is None:
            raise Denied(404, f"no source with id '{source_id}'")
        return rec

    @app.get("/sources/{source_id}", response_class=HTMLResponse)
    def source_page(request: Request, source_id: str):
        require(request, "viewer")
        with store.session() as s:
            rec = _source(s, source_id)
            snaps = list(s.scalars(select(SnapshotRecord).where(SnapshotRecord.source_id == source_id)
                                   .order_by(SnapshotRecord.fetched_at.desc(), SnapshotRecord.id.desc()).limit(200)))
            changes = list(s.scalars(select(ChangeRecord).where(ChangeRecord.source_id == source_id)
                                     .order_by(ChangeRecord.detected_at.desc(), ChangeRecord.id.desc()).limit(200)))
            attempts = list(s.scalars(select(FetchAttemptRecord).where(FetchAttemptRecord.source_id == source_id)
                                      .order_by(FetchAttemptRecord.started_at.desc(), FetchAttemptRecord.id.desc()).limit(30)))
        timeline = sorted([("snapshot", x.fetched_at, x) for x in snaps] + [("change", x.detected_at, x) for x in changes],
                          key=lambda t: (_aware(t[1]), t[0] == "change"), reverse=True)
        return render(request, "source.html", rec=rec, name=cfg_names.get(source_id) or rec.name or rec.id,
                      snaps=snaps, timeline=timeline, attempts=attempts)

    @app.get("/sources/{source_id}/compare", response_class=HTMLResponse)
    def compare(request: Request, source_id: str, a: int, b: int):
        require(request, "viewer")
        with store.session() as s:
            rec = _source(s, source_id)
            sa, sb = s.get(SnapshotRecord, a), s.get(SnapshotRecord, b)
            if sa is None or sb is None or sa.source_id != source_id or sb.source_id != source_id:
                raise Denied(404, f"both snapshots must belong to source '{source_id}'")
            if _aware(sa.fetched_at) > _aware(sb.fetched_at):
                sa, sb = sb, sa  # always old -> new
            ta, tb = store.get_text(sa.text_sha256, s), store.get_text(sb.text_sha256, s)
        d = text_diff(ta, tb)
        sbs = side_by_side(ta, tb)
        return render(request, "compare.html", rec=rec, name=cfg_names.get(source_id) or rec.name or rec.id,
                      a=sa, b=sb, inline=inline_rows(d.unified(context=1)), sbs=sbs, changed=d.changed,
                      added=len(d.added), removed=len(d.removed))

    @app.get("/sources/{source_id}/warc")
    def source_warc(request: Request, source_id: str):
        require(request, "viewer")
        with store.session() as s:
            _source(s, source_id)
        buf = io.BytesIO()
        export_warc(store, buf, source_id=source_id)
        # the file name is built from the id only after it was found in the database
        return _download(buf.getvalue(), "application/warc", f"govwatch-source-{_filename_safe(source_id)}.warc.gz")

    # -- captures --------------------------------------------------------------------------------
    @app.get("/snapshots/{snapshot_id}", response_class=HTMLResponse)
    def snapshot_page(request: Request, snapshot_id: int):
        require(request, "viewer")
        cap = capture(store, snapshot_id)
        return render(request, "snapshot.html", snap=cap.snapshot, cap=cap, headers=sorted(cap.headers.items()),
                      is_html="html" in (cap.snapshot.content_type or "").lower(),
                      source_name=source_names().get(cap.snapshot.source_id, cap.snapshot.source_id))

    @app.get("/snapshots/{snapshot_id}/raw")
    def snapshot_raw(request: Request, snapshot_id: int):
        require(request, "viewer")
        cap = capture(store, snapshot_id)
        ext = _extension(cap.snapshot.content_type)
        resp = _download(cap.body, "application/octet-stream", f"snapshot-{snapshot_id}-{cap.sha256[:12]}.{ext}")
        resp.headers["X-Govwatch-SHA256"] = cap.sha256
        resp.headers["X-Govwatch-Fetched-At"] = iso(cap.snapshot.fetched_at)
        resp.headers["X-Govwatch-Content-Type"] = _header_safe(cap.snapshot.content_type)
        return resp

    @app.get("/snapshots/{snapshot_id}/headers.json")
    def snapshot_headers(request: Request, snapshot_id: int):
        require(request, "viewer")
        cap = capture(store, snapshot_id)
        body = {"snapshot_id": snapshot_id, "source_id": cap.snapshot.source_id, "url": cap.snapshot.url,
                "fetched_at": iso(cap.snapshot.fetched_at), "status": cap.snapshot.status, "sha256": cap.sha256,
                "sha256_verified": cap.verified, "bytes": len(cap.body), "headers": cap.headers}
        return JSONResponse(body, headers={"Content-Disposition": f'attachment; filename="snapshot-{snapshot_id}-headers.json"'})

    @app.get("/snapshots/{snapshot_id}/text")
    def snapshot_text(request: Request, snapshot_id: int):
        require(request, "viewer")
        with store.session() as s:
            snap = s.get(SnapshotRecord, snapshot_id)
            if snap is None:
                raise Denied(404, f"no snapshot with id {snapshot_id}")
            text = store.get_text(snap.text_sha256, s)
        return PlainTextResponse(text, headers={"Content-Security-Policy": DOWNLOAD_CSP})

    @app.get("/snapshots/{snapshot_id}/preview")
    def snapshot_preview(request: Request, snapshot_id: int):
        require(request, "viewer")
        cap = capture(store, snapshot_id)
        if "html" not in (cap.snapshot.content_type or "").lower():
            return PlainTextResponse(cap.body.decode("utf-8", "replace"), headers={"Content-Security-Policy": DOWNLOAD_CSP})
        return Response(cap.body, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"})

    return app


_DUMMY_HASH = hash_password("govwatch-dummy", n=2**14)
_EXTENSIONS = {"text/html": "html", "application/pdf": "pdf", "application/rss+xml": "xml", "application/atom+xml": "xml",
               "application/xml": "xml", "text/xml": "xml", "application/json": "json", "text/plain": "txt"}


def _extension(content_type: str) -> str:
    return _EXTENSIONS.get((content_type or "").split(";")[0].strip().lower(), "bin")


def _filename_safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)[:100]


def _header_safe(s: str) -> str:
    return "".join(c for c in (s or "") if 32 <= ord(c) < 127)[:200]


def _download(body: bytes, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{_filename_safe(filename)}"',
        "Content-Security-Policy": DOWNLOAD_CSP})


def _safe_next(nxt: str) -> str:
    """Only a path on this site: no //host, no scheme, no backslash tricks (open redirect)."""
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt or any(ord(c) < 32 for c in nxt):
        return "/"
    return nxt


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


ATOM = "http://www.w3.org/2005/Atom"


def _atom(rows, topic: str, base: str, names: dict[str, str], topic_title: dict[str, str]) -> bytes:
    """An Atom 1.0 feed of matched changes; ids are stable tag: URIs, so readers never repeat one."""
    ET.register_namespace("", ATOM)
    q = lambda t: f"{{{ATOM}}}{t}"  # noqa: E731
    feed = ET.Element(q("feed"))
    ET.SubElement(feed, q("id")).text = f"tag:govwatch,2026:feed:{topic or 'all'}"
    ET.SubElement(feed, q("title")).text = "govwatch: " + (topic_title.get(topic, topic) if topic else "matched changes")
    newest = max((_aware(c.detected_at) for c, _, _ in rows), default=datetime(2026, 1, 1, tzinfo=timezone.utc))
    ET.SubElement(feed, q("updated")).text = iso(newest)
    ET.SubElement(feed, q("link"), rel="self", href=base + "/feed.atom" + (f"?{urlencode({'topic': topic})}" if topic else ""))
    ET.SubElement(feed, q("link"), rel="alternate", type="text/html", href=base + "/" + (f"?{urlencode({'topic': topic, 'matched': '1'})}" if topic else "?matched=1"))
    ET.SubElement(ET.SubElement(feed, q("author")), q("name")).text = "govwatch"
    for c, ms, _st in rows:
        e = ET.SubElement(feed, q("entry"))
        ET.SubElement(e, q("id")).text = f"tag:govwatch,2026:change:{c.id}"
        topics = ", ".join(m.topic for m in ms)
        ET.SubElement(e, q("title")).text = _xml_text(f"[{topics}] {names.get(c.source_id, c.source_id)}: {c.title or c.kind}")
        ET.SubElement(e, q("updated")).text = iso(c.detected_at)
        ET.SubElement(e, q("published")).text = iso(c.detected_at)
        ET.SubElement(e, q("link"), rel="alternate", type="text/html", href=f"{base}/changes/{c.id}")
        if safe_url(c.url):
            ET.SubElement(e, q("link"), rel="related", href=c.url)
        for m in ms:
            ET.SubElement(e, q("category"), term=m.topic, label=topic_title.get(m.topic, m.topic))
        lines = [f"{c.kind} on {names.get(c.source_id, c.source_id)} ({c.source_id}), detected {iso(c.detected_at)}",
                 f"URL: {c.url}"]
        for m in ms:
            lines.append(f"{m.topic}: severity {m.severity}, score {m.score:g}")
            lines += ["  " + ev.get("sentence", "") for ev in evidence_of(m)["evidence"]]
        lines.append("")
        lines.append(" ".join(c.added_text.split())[:1000])
        # type="text": feed readers show it as text, so captured markup cannot run in them either.
        ET.SubElement(e, q("summary"), type="text").text = _xml_text("\n".join(lines))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def serve(cfg, store: Store, host: str = "127.0.0.1", port: int = 8080, *, settings: WebSettings | None = None) -> None:
    """Run the change log with uvicorn; a non-loopback address needs accounts or a token."""
    import uvicorn

    settings = settings if settings is not None else web_settings()
    if not is_loopback(host) and not settings.auth_required:
        raise GovwatchError(
            f"refusing to serve on {host} without accounts or a token: anyone who can reach it could read and "
            "triage the change log. Set GOVWATCH_WEB_TOKEN (a long random string) or GOVWATCH_WEB_USERS "
            "(a YAML/JSON file of {name, role, password_hash}; make hashes with `govwatch hash-password`), "
            "or bind 127.0.0.1.")
    app = create_app(cfg, store, settings=settings)
    logger.info("web: serving the change log on http://%s:%s/%s", host if ":" not in host else f"[{host}]", port,
                " (sign-in required)" if settings.auth_required else " (loopback, no sign-in)")
    # access_log off: uvicorn would log query strings (?token=); the guard middleware logs paths.
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, server_header=False,
                proxy_headers=False, date_header=True)
