"""Watches managed in the browser (admin role): add a source (validated exactly as a `sources:`
entry of the configuration file, each problem shown next to its field), pause and resume any
source, ask for a check now (queued for the scheduler), remove a watch made here. Every action is
in the source's admin audit trail (monitor/watches.py, state/watches.py)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from monitor import watches
from monitor.web.auth import Denied, form_with_csrf, require
from monitor.web.context import web_of
from state.errors import GovwatchError

logger = logging.getLogger("monitor.web")

router = APIRouter()
FORM_FIELDS = ("id", "name", "url", "kind", "every", "select", "items", "agency", "render")


def watch_form(data: dict) -> dict:
    """The form as a `sources:` entry: text fields as they are, `ignore` one pattern per line."""
    raw = {k: data.get(k, "").strip() for k in FORM_FIELDS}
    ignore = [x.strip() for x in data.get("ignore", "").splitlines() if x.strip()]
    if ignore:
        raw["ignore"] = ignore
    return raw


@router.post("/sources")
async def add_watch(request: Request):
    from monitor.web.sources import render_sources

    data = await form_with_csrf(request)
    who = require(request, "admin")
    w = web_of(request)
    raw = watch_form(data)
    src, problems = watches.add_watch(w.store, w.cfg, raw, who.name)
    if src is None:
        return render_sources(request, form={**raw, "ignore": data.get("ignore", "")}, problems=problems, status=400)
    watches.merge(w.cfg, w.store)  # listed at once; a new source is due at once (`run` takes it within 30 s)
    logger.info("web: watch %s added by %s", src.id, who.name)
    return RedirectResponse(f"/sources/{src.id}", status_code=303)


@router.post("/sources/{source_id}/{action}")
async def source_action(request: Request, source_id: str, action: str):
    await form_with_csrf(request)
    who = require(request, "admin")
    w = web_of(request)
    try:
        if action == "pause":
            watches.set_paused(w.store, source_id, True, who.name)
        elif action == "resume":
            watches.set_paused(w.store, source_id, False, who.name)
        elif action == "check":
            watches.check_now(w.store, source_id, who.name)
        elif action == "remove":
            watches.remove_watch(w.store, source_id, who.name)
        else:
            raise Denied(404, f"no action '{action}' (pause, resume, check, remove)")
    except GovwatchError as e:
        raise Denied(404, str(e)) from None
    logger.info("web: source %s: %s by %s", source_id, action, who.name)
    return RedirectResponse("/sources" if action == "remove" else f"/sources/{source_id}#admin", status_code=303)
