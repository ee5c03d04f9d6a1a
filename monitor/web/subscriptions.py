"""Subscriptions in the web change log (`/subscriptions`): every analyst sees the configuration's
and their own; they create, edit and delete their own (admins: any made in the web UI). The form
is validated exactly as the configuration's `subscriptions:` (monitor.subscriptions.validate),
each problem shown next to its field. Targets, once saved, are never shown again (tokens)."""
from __future__ import annotations

import logging
import re

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from monitor import subscriptions as subs_mod
from monitor.config import private_host, valid_apprise_url
from monitor.web.auth import Denied, Principal, form_with_csrf, require
from monitor.web.context import WebContext, render, web_of
from state import subscriptions as subs_state
from state.errors import StateError
from state.subscriptions import SubscriptionRecord

logger = logging.getLogger("monitor.web")

router = APIRouter()
KEEP = ""  # an empty notify field on edit keeps the saved targets


def _rows(w: WebContext, who: Principal) -> list[dict]:
    rows = subs_mod.subscription_rows(w.store, w.cfg)
    return [r for r in rows if r["enabled"] and (r["origin"] == "config" or r["owner"] == who.name or who.can("admin"))]


def _editable(rec: SubscriptionRecord | None, who: Principal) -> SubscriptionRecord:
    if rec is None or rec.origin != "web" or not rec.enabled:
        raise Denied(404, "no such subscription made in the web UI (the configuration's are edited in its file)")
    if rec.owner != who.name and not who.can("admin"):
        raise Denied(403, f"this subscription is {rec.owner}'s; only they or an admin can change it")
    return rec


def _load_editable(w: WebContext, sub_id: int | None, who: Principal) -> SubscriptionRecord | None:
    if sub_id is None:
        return None
    with w.store.session() as s:
        rec = _editable(s.get(SubscriptionRecord, sub_id), who)
        s.expunge(rec)
        return rec


def _form_values(rec: SubscriptionRecord | None, w: WebContext) -> dict:
    if rec is None:
        return {"name": "", "query": "", "every": "daily@08:00", "timezone": w.display_timezone, "notify": "",
                "topics": [], "sources": "", "min_severity": ""}
    return {"name": rec.name, "query": rec.query, "every": rec.every, "timezone": rec.timezone, "notify": KEEP,
            "topics": [t for t in rec.topics.split(",") if t], "sources": rec.sources.replace(",", ", "),
            "min_severity": rec.min_severity}


def _page(request: Request, values: dict, problems: dict, editing: SubscriptionRecord | None, status: int = 200) -> HTMLResponse:
    w = web_of(request)
    who = require(request, "analyst")
    return render(request, "subscriptions.html", status=status, rows=_rows(w, who), values=values, problems=problems,
                  editing=editing, targets_kept=len(subs_state.targets_of(editing)) if editing else 0,
                  named_targets=sorted(_named(w)), severities=subs_state.SEVERITIES)


def _named(w: WebContext) -> dict[str, str]:
    return {t.name: t.url.get_secret_value() for t in getattr(w.cfg, "notify", []) or []}


@router.get("/subscriptions", response_class=HTMLResponse)
def subscriptions_page(request: Request, edit: int | None = None):
    who = require(request, "analyst")
    w = web_of(request)
    editing = _load_editable(w, edit, who)
    return _page(request, _form_values(editing, w), {}, editing)


async def _save(request: Request, existing_id: int | None):
    data = await form_with_csrf(request)
    who = require(request, "analyst")
    w = web_of(request)
    editing = _load_editable(w, existing_id, who)
    raw = {k: data.get(k, "") for k in ("name", "query", "every", "timezone", "sources", "min_severity")}
    raw["topics"] = [k.split(":", 1)[1] for k in data if k.startswith("topic:")]
    notify = data.get("notify", "").strip()
    raw["notify"] = notify if notify or editing is None else subs_state.targets_of(editing)
    # the form comes back with its problems, but never with a URL typed in it (it may hold a token)
    shown = "\n".join(x for x in notify.splitlines() if re.fullmatch(r"[\w .-]*", x))  # target names only
    values = {**raw, "notify": shown, "topics": raw["topics"]}
    allowed = getattr(getattr(w.cfg, "fetch", None), "allow_private_networks", False)

    def url_ok(url: str) -> bool:
        # an analyst's URL must not make the server post to the machine's own or private network
        # (a cloud metadata address, the database port); the operator's configuration may
        return valid_apprise_url(url) and not private_host(url, allowed)

    sub, problems = subs_mod.validate(raw, topic_ids=set(w.topic_title), source_ids=set(w.source_names()),
                                      named_targets=_named(w), url_ok=url_ok, default_timezone=w.display_timezone)
    if sub is not None:
        try:
            sid = subs_mod.save_web(w.store, sub, who.name, existing_id=existing_id)
        except StateError as e:
            problems = {"name": str(e)}
        else:
            logger.info("web: subscription %r (%s) %s by %s", sub.name, sid, "updated" if existing_id else "created", who.name)
            return RedirectResponse(f"/subscriptions#sub-{sid}", status_code=303)
    return _page(request, values, problems, editing, status=400)


@router.post("/subscriptions")
async def create_subscription(request: Request):
    return await _save(request, None)


@router.post("/subscriptions/{sub_id}")
async def update_subscription(request: Request, sub_id: int):
    return await _save(request, sub_id)


@router.post("/subscriptions/{sub_id}/delete")
async def delete_subscription(request: Request, sub_id: int):
    await form_with_csrf(request)
    who = require(request, "analyst")
    w = web_of(request)
    with w.store.session() as s:
        name = _editable(s.get(SubscriptionRecord, sub_id), who).name
    subs_mod.delete_web(w.store, sub_id)
    logger.info("web: subscription %r (%s) deleted by %s", name, sub_id, who.name)
    return RedirectResponse("/subscriptions", status_code=303)
