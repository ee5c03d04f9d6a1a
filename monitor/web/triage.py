"""Triage: an analyst marks a change (reviewed, significant, not relevant, ...) with a note, and
the changes marked "not relevant" come back as feedback (JSON, CSV, `govwatch feedback`) to tune the rules."""
from __future__ import annotations

import csv
import io
import logging
import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from monitor.records import change_dict, iso
from monitor.web.auth import Denied, form_with_csrf, require
from monitor.web.context import web_of
from monitor.web.presentation import csv_cell
from monitor.queries import BadRequest
from state.models import ChangeRecord, DeliveryRecord
from state.store import Store
from state.triage import ACTIONS, MAX_NOTE_CHARS, assign, not_relevant_actions, record_action

logger = logging.getLogger("monitor.web")  # one logger name for the web app, as before the split

router = APIRouter()


@router.post("/changes/{change_id}/triage")
async def triage(request: Request, change_id: int):
    data = await form_with_csrf(request)
    who = require(request, "analyst")
    action = data.get("action", "")
    if action not in ACTIONS:
        raise BadRequest(f"action: '{action}' is not one of {', '.join(ACTIONS)}")
    note = data.get("note", "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise BadRequest(f"note: at most {MAX_NOTE_CHARS} characters")
    with web_of(request).store.session() as s:
        if s.get(ChangeRecord, change_id) is None:
            raise Denied(404, f"no change with id {change_id}")
        record_action(s, change_id, action, who.name, note)
    logger.info("web: change %s marked %s by %s", change_id, action, who.name)
    return RedirectResponse(f"/changes/{change_id}#triage", status_code=303)


_ASSIGNEE = re.compile(r"[\w.@+-]{1,64}")


@router.post("/changes/{change_id}/assign")
async def assign_route(request: Request, change_id: int):
    """Assign a change to an analyst (or take the assignment away), in the audit trail. With a
    users file the assignee is one of its analysts or admins; without one, any plain name."""
    data = await form_with_csrf(request)
    who = require(request, "analyst")
    w = web_of(request)
    assignee = who.name if data.get("me") else data.get("assignee", "").strip()
    if assignee:
        allowed = w.assignable()
        if allowed and assignee not in allowed:
            raise BadRequest(f"assignee: '{assignee}' is not an analyst or admin of the users file ({', '.join(allowed)})")
        if not _ASSIGNEE.fullmatch(assignee):
            raise BadRequest("assignee: a name of at most 64 letters, digits and . @ + - _")
    with w.store.session() as s:
        if s.get(ChangeRecord, change_id) is None:
            raise Denied(404, f"no change with id {change_id}")
        assign(s, change_id, assignee, who.name)
    logger.info("web: change %s assigned to %s by %s", change_id, assignee or "nobody", who.name)
    return RedirectResponse(f"/changes/{change_id}#triage", status_code=303)


@router.post("/changes/{change_id}/deliveries/{delivery_id}/retry")
async def retry_delivery(request: Request, change_id: int, delivery_id: int):
    """An analyst sends a given-up alert again once its target works (`govwatch deliveries retry`
    on the command line): the same function, audited in the change's trail."""
    from alerts.outbox import requeue_failed

    await form_with_csrf(request)
    who = require(request, "analyst")
    store = web_of(request).store
    with store.session() as s:
        row = s.get(DeliveryRecord, delivery_id)
        if row is None or row.change_id != change_id:
            raise Denied(404, f"no delivery {delivery_id} of change {change_id}")
    queued, problems = requeue_failed(store, [delivery_id], who.name)
    if problems:
        raise BadRequest("; ".join(problems))
    logger.info("web: delivery %s of change %s queued again by %s", delivery_id, change_id, who.name)
    return RedirectResponse(f"/changes/{change_id}#alerts", status_code=303)


@router.get("/feedback.json")
def feedback_json(request: Request):
    require(request, "analyst")
    return JSONResponse(not_relevant_feedback(web_of(request).store))


@router.get("/feedback.csv")
def feedback_csv_route(request: Request):
    require(request, "analyst")
    return Response(feedback_csv(not_relevant_feedback(web_of(request).store)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="govwatch-not-relevant.csv"'})


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
