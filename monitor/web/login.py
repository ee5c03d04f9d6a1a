"""Signing in and out: the sign-in form (an account's name and password, or the shared token),
throttled per client address, a fresh session id on every sign-in, and sign-out."""
from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from monitor.web.auth import (_DUMMY_HASH, Denied, Throttled, client_address, form_with_csrf, token_matches, token_session_role,
                              verify_password)
from monitor.web.context import render, web_of

logger = logging.getLogger("monitor.web")  # one logger name for the web app, as before the split

router = APIRouter()


def _safe_next(nxt: str) -> str:
    """Only a path on this site: no //host, no scheme, no backslash tricks (open redirect)."""
    if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt or any(ord(c) < 32 for c in nxt):
        return "/"
    return nxt


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/"):
    settings = web_of(request).settings
    return render(request, "login.html", next=_safe_next(next), has_users=bool(settings.users),
                  has_token=bool(settings.token), failed=False)


@router.post("/login")
async def login(request: Request):
    data = await form_with_csrf(request)
    w = web_of(request)
    settings = w.settings
    nxt = _safe_next(data.get("next", "/"))
    client = client_address(request)
    now = time.time()
    if w.throttle.blocked(client, now):
        raise Denied(429, Throttled.message)
    who: tuple[str, str] | None = None
    name, password = data.get("name", "").strip(), data.get("password", "")
    if settings.users and name:
        u = settings.users.get(name)
        # Verify against a dummy hash for unknown names so timing does not reveal them.
        if verify_password(password, u.password_hash if u else _DUMMY_HASH) and u is not None:
            who = (u.name, u.role)
    elif settings.token and password:
        if token_matches(password, settings):
            who = ("token", token_session_role(settings))
    if who is None:
        w.throttle.failed(client, now)
        logger.warning("web: failed sign-in from %s", client)
        return render(request, "login.html", status=401, next=nxt, has_users=bool(settings.users),
                      has_token=bool(settings.token), failed=True)
    w.sessions.drop(request.state.sid)  # a fresh session id on sign-in: no fixation
    sid, _ = w.sessions.new(*who)
    request.state.new_sid = sid
    return RedirectResponse(nxt, status_code=303)


@router.post("/logout")
async def logout(request: Request):
    data = await form_with_csrf(request)
    w = web_of(request)
    w.sessions.drop(request.state.sid)
    principal = request.state.principal
    if data.get("everywhere") and principal is not None and principal.via == "session":
        n = w.sessions.drop_user(principal.name)
        logger.info("web: %s signed out everywhere (%d other session(s) ended)", principal.name, n)
    sid, _ = w.sessions.anonymous(None)  # a new id, so the old page's CSRF token is void too
    request.state.new_sid = sid
    return RedirectResponse("/login" if w.settings.auth_required else "/", status_code=303)
