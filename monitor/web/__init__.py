"""The analyst change log (`govwatch serve`): `create_app` in app.py, sign-in in auth.py, and one
router per area: changes, exports (CSV, JSON, Atom), triage, sources, captures, login.
The names below are the package's interface (the CLI, tests and bench import them from here)."""
from monitor.web.app import CSP, PUBLIC_PATHS, STYLESHEET, create_app, serve
from monitor.web.auth import (ROLES, SESSION_COOKIE, SESSION_TTL, Denied,
                              Principal, Sessions, User, WebSession, WebSettings, hash_password, is_loopback, load_users,
                              verify_password, web_settings)
from monitor.web.captures import DOWNLOAD_CSP, PREVIEW_CSP
from monitor.web.login import _safe_next
from monitor.web.presentation import (TEMPLATES, _templates, csv_cell, human_time, inline_rows, marked_segments, safe_url,
                                      side_by_side)
from monitor.queries import BadRequest, Filters
from monitor.web.triage import feedback_csv, not_relevant_feedback

__all__ = [
    "BadRequest", "CSP", "DOWNLOAD_CSP", "Denied", "Filters", "PREVIEW_CSP", "PUBLIC_PATHS", "Principal", "ROLES", "SESSION_COOKIE", "SESSION_TTL", "STYLESHEET", "Sessions",
    "TEMPLATES", "User", "WebSession", "WebSettings", "_safe_next", "_templates", "create_app", "csv_cell",
    "feedback_csv", "hash_password", "human_time", "inline_rows", "is_loopback", "load_users", "marked_segments",
    "not_relevant_feedback", "safe_url", "serve", "side_by_side", "verify_password", "web_settings",
]
