"""The change log's pages: the filtered list (`/`) and one change (`/changes/{id}`) with its
evidence, inline and side-by-side diff, captures, triage trail and alert deliveries."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from sqlalchemy import select

from monitor.web.auth import Denied, require
from monitor.web.context import render, web_of
from monitor.web.presentation import inline_rows, side_by_side
from monitor.queries import REVIEW_STATES, SEVERITIES, Filters, page_of_changes
from monitor.records import headline
from state import search
from state.custody import archives_of, pruned_of
from state.models import ChangeRecord, DeliveryRecord, SnapshotRecord, SourceRecord
from state.store import evidence_of
from state.triage import ACTIONS, MAX_NOTE_CHARS, actions_of, assignees_of, states_of

PAGE_SIZE = 50

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def change_log(request: Request):
    require(request, "viewer")
    w = web_of(request)
    f = Filters.parse(request.query_params)
    page = page_of_changes(w.store, f, PAGE_SIZE, (f.page - 1) * PAGE_SIZE)
    menu, agencies, names = w.source_directory({row.change.source_id for row in page.rows})
    items = []
    for row in page.rows:
        c, ms = row.change, row.matches
        ev = next((e for m in ms for e in evidence_of(m)["evidence"]), None)
        items.append({"change": c, "matches": ms, "state": row.state, "source_name": names.get(c.source_id, c.source_id),
                      "evidence": ev, "excerpt": " ".join(c.added_text[:1_000].split())[:240],
                      "snippet": Markup(search.snippet_html(row.snippet)) if row.snippet else "",
                      "headline": headline(c), "assignee": row.assignee})
    # a capped count (monitor.queries.count_cap) has more pages: one more is always offered
    pages = max(1, (page.total + PAGE_SIZE - 1) // PAGE_SIZE + (1 if page.capped else 0))
    return render(request, "changes.html", f=f, items=items, total=page.total, capped=page.capped, pages=pages, counts=page.counts,
                  sources=menu, agencies=agencies,
                  severities=SEVERITIES, states=REVIEW_STATES)


@router.get("/changes/{change_id}", response_class=HTMLResponse)
def change_page(request: Request, change_id: int):
    require(request, "viewer")
    store = web_of(request).store
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
        assignee = assignees_of(s, [c.id]).get(c.id, "")
        deliveries = list(s.scalars(select(DeliveryRecord).where(DeliveryRecord.change_id == c.id).order_by(DeliveryRecord.id)))
        archived = archives_of(s, [c.id])[c.id]
        prev_text = store.get_text(prev.text_sha256, s) if prev else ""
        new_text = store.get_text(new.text_sha256, s) if new else ""
        # a capture whose text retention deleted: said, never shown as an empty text to diff against
        pruned = pruned_of(s, [x.text_sha256 for x in (prev, new) if x is not None and x.text_sha256])
    prev_pruned = pruned.get(prev.text_sha256) if prev else None
    new_pruned = pruned.get(new.text_sha256) if new else None
    shown = [{"match": m, **evidence_of(m)} for m in matches]
    # A new item's snapshots are the whole listing, not the document: its diff is the item itself.
    whole = not (prev_pruned or new_pruned)
    sbs = side_by_side(prev_text, new_text) if whole and c.kind in ("changed", "removed") and (prev or new) else None
    return render(request, "change.html", c=c, src=src, source_name=web_of(request).source_names([c.source_id]).get(c.source_id, c.source_id),
                  shown=shown, prev=prev, new=new, prev_text=prev_text, new_text=new_text, trail=trail, state=state,
                  inline=inline_rows(c.diff_text), sbs=sbs, sbs_too_large=whole and sbs is None and c.kind in ("changed", "removed"),
                  prev_pruned=prev_pruned, new_pruned=new_pruned,
                  deliveries=deliveries, archived=archived, actions=ACTIONS, max_note=MAX_NOTE_CHARS,
                  assignee=assignee, assignable=web_of(request).assignable(), headline=headline(c))
