"""`govwatch serve`: the analyst change log, a server-rendered FastAPI app (Jinja2 with autoescape,
no JavaScript). This module builds it: the routers of each area, the guard middleware (host check,
sign-in, security headers, the access log without query strings) and the error pages."""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from monitor.evidence import EvidenceError
from monitor.web.auth import (LOGIN_FAILURE_WINDOW, SESSION_COOKIE, SESSION_TTL, Denied, Throttled, WebSettings, authenticate, is_loopback,
                              web_settings)
from monitor.web.captures import router as captures_router
from monitor.web.subscriptions import router as subscriptions_router
from monitor.web.watches import router as watches_router
from monitor.web.changes import router as changes_router
from monitor.web.exports import router as exports_router
from monitor.web.login import router as login_router
from monitor.web.sources import router as sources_router
from monitor.web.triage import router as triage_router
from monitor.web.context import WebContext, error_page, web_of
from monitor.queries import BadRequest
from state.errors import GovwatchError
from state.store import Store

logger = logging.getLogger("monitor.web")  # one logger name for the web app, as before the split

STYLESHEET = Path(__file__).resolve().parent / "static" / "style.css"
# Every page: no script at all, styles and images only from here, forms only to here, never framed.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
PUBLIC_PATHS = {"/healthz", "/login", "/static/style.css"}


def create_app(cfg, store: Store, *, settings: WebSettings | None = None) -> FastAPI:
    """The web change log for one configuration and store (settings None: from the GOVWATCH_WEB_*
    environment that load_config read, cfg.environment)."""
    settings = settings if settings is not None else web_settings(getattr(cfg, "environment", None))
    if hasattr(cfg, "web_sources"):  # a real configuration: the web UI's watches join its sources
        from monitor import watches

        watches.merge(cfg, store)
    web = WebContext(cfg, store, settings)
    app = FastAPI(title="govwatch", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.web = web
    app.state.sessions = web.sessions
    app.state.settings = settings
    app.middleware("http")(guard)
    _error_pages(app)
    for router in (_basics(), login_router, changes_router, exports_router, triage_router, sources_router,
                   captures_router, subscriptions_router, watches_router):
        app.include_router(router)
    return app


async def guard(request: Request, call_next):
    """Every request: the Host check without accounts, the session and principal, sign-in where
    needed, security headers on every response, and one log line with the path only."""
    started = time.monotonic()
    path = request.url.path
    new_sid = None
    try:
        w = web_of(request)
        try:
            host = urlsplit("//" + (request.headers.get("host") or "")).hostname or ""
        except ValueError:
            host = ""
        # Without accounts the server only listens on loopback; refusing other Host names stops
        # a DNS-rebinding page from reading or triaging through the analyst's browser.
        if not w.settings.auth_required and not is_loopback(host):
            response = PlainTextResponse("Host not allowed: open this service as http://127.0.0.1:<port>/", status_code=421)
        else:
            response, new_sid = await _admit(request, w, call_next)
    except Exception:
        logger.exception("web: %s %s failed", request.method, path)
        response = PlainTextResponse("internal error; see the server log", status_code=500)
    _secure_headers(response, path)
    if new_sid:
        response.set_cookie(SESSION_COOKIE, new_sid, max_age=SESSION_TTL, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
    # The path only: a ?token= query string must never reach a log.
    logger.info("web: %s %s %s %.0fms", request.method, path, response.status_code, (time.monotonic() - started) * 1000)
    return response


async def _admit(request: Request, w: WebContext, call_next) -> tuple[Response, str | None]:
    """The request's session and principal, then its route, a sign-in prompt or a 429 (a token
    from a throttled address); with the session id to set as a cookie, if any."""
    sid = request.cookies.get(SESSION_COOKIE)
    new_sid = None
    sess = w.sessions.get(sid)
    if sess is None:  # not signed in: a session that is not stored (see Sessions)
        anonymous_sid, sess = w.sessions.anonymous(sid)
        new_sid = anonymous_sid if anonymous_sid != sid else None
    request.state.session = sess
    request.state.sid = new_sid or sid
    try:
        request.state.principal = authenticate(request, sess, w.settings, w.throttle)
    except Throttled as e:
        return PlainTextResponse(e.message, status_code=429, headers={"Retry-After": str(LOGIN_FAILURE_WINDOW)}), new_sid
    if request.state.principal is None and request.url.path not in PUBLIC_PATHS:
        return _sign_in_first(request), new_sid
    response = await call_next(request)
    return response, getattr(request.state, "new_sid", None) or new_sid


def _sign_in_first(request: Request) -> Response:
    if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": nxt}), status_code=303)
    return PlainTextResponse("authentication required", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="govwatch"'})


def _secure_headers(response: Response, path: str) -> None:
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"  # never tell a monitored site which change an analyst opened
    h.setdefault("X-Frame-Options", "DENY")
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    if path != "/static/style.css":
        h["Cache-Control"] = "no-store"


def _error_pages(app: FastAPI) -> None:
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


def _basics() -> APIRouter:
    """The stylesheet (read once per app, with an ETag) and the health check."""
    router = APIRouter()
    css = STYLESHEET.read_bytes()
    css_etag = '"' + hashlib.sha256(css).hexdigest()[:16] + '"'

    @router.get("/static/style.css")
    def stylesheet():
        return Response(css, media_type="text/css; charset=utf-8", headers={"ETag": css_etag, "Cache-Control": "max-age=3600"})

    @router.get("/healthz")
    def healthz(request: Request):
        try:
            n = web_of(request).store.count_changes()
            version = web_of(request).store.schema_version()
        except GovwatchError as e:
            logger.error("web: health check failed: %s", e)
            return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)
        return {"status": "ok", "changes": n, "schema": version}

    return router


def serve(cfg, store: Store, host: str = "127.0.0.1", port: int = 8080, *, settings: WebSettings | None = None) -> None:
    """Run the change log with uvicorn; a non-loopback address needs accounts or a token."""
    import uvicorn

    settings = settings if settings is not None else web_settings(getattr(cfg, "environment", None))
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
