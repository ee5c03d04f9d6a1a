"""The sources of the change log: their health (`/sources`), one source's timeline of snapshots,
changes and fetch attempts (`/sources/{id}`), and the comparison of any two of its snapshots."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from monitor.diff import diff as text_diff
from monitor.web.auth import Denied, require
from monitor.web.context import render, web_of
from monitor.web.presentation import inline_rows, side_by_side
from state.custody import pruned_of
from state.models import ChangeRecord, FetchAttemptRecord, SnapshotRecord, SourceRecord, as_utc
from state.watches import trail_of

router = APIRouter()


def source_or_404(s, source_id: str) -> SourceRecord:
    rec = s.get(SourceRecord, source_id)
    if rec is None:
        raise Denied(404, f"no source with id '{source_id}'")
    return rec


@router.get("/sources", response_class=HTMLResponse)
def sources_page(request: Request):
    return render_sources(request)


def render_sources(request: Request, form: dict | None = None, problems: dict | None = None, status: int = 200):
    """The sources with their health; for an admin, the form that adds a watch (with its problems)."""
    from spiders import source_kinds

    require(request, "viewer")
    w = web_of(request)
    recs = {r.id: r for r in w.store.sources()}
    with w.store.session() as s:
        counts = dict(s.execute(select(ChangeRecord.source_id, func.count()).group_by(ChangeRecord.source_id)).all())
    rows = []
    for sid in sorted(set(recs) | set(w.cfg_names)):
        r = recs.get(sid)
        conf = w.source_config(sid)
        rows.append({"id": sid, "name": w.cfg_names.get(sid) or (r.name if r else sid), "rec": r, "conf": conf,
                     "agency": (conf.agency if conf else "") or (r.agency if r else ""), "changes": counts.get(sid, 0)})
    form = form or {"kind": "page", "every": "6h", "render": "auto"}
    return render(request, "sources.html", status=status, rows=rows, form=form, problems=problems or {},
                  kinds=source_kinds.names(), web_sources=getattr(w.cfg, "web_sources", set()))


@router.get("/sources/{source_id}", response_class=HTMLResponse)
def source_page(request: Request, source_id: str):
    require(request, "viewer")
    w = web_of(request)
    with w.store.session() as s:
        rec = source_or_404(s, source_id)
        snaps = list(s.scalars(select(SnapshotRecord).where(SnapshotRecord.source_id == source_id)
                               .order_by(SnapshotRecord.fetched_at.desc(), SnapshotRecord.id.desc()).limit(200)))
        changes = list(s.scalars(select(ChangeRecord).where(ChangeRecord.source_id == source_id)
                                 .order_by(ChangeRecord.detected_at.desc(), ChangeRecord.id.desc()).limit(200)))
        attempts = list(s.scalars(select(FetchAttemptRecord).where(FetchAttemptRecord.source_id == source_id)
                                  .order_by(FetchAttemptRecord.started_at.desc(), FetchAttemptRecord.id.desc()).limit(30)))
        trail = trail_of(s, source_id)
    timeline = sorted([("snapshot", x.fetched_at, x) for x in snaps] + [("change", x.detected_at, x) for x in changes],
                      key=lambda t: (as_utc(t[1]), t[0] == "change"), reverse=True)
    return render(request, "source.html", rec=rec, name=w.cfg_names.get(source_id) or rec.name or rec.id,
                  snaps=snaps, timeline=timeline, attempts=attempts, trail=trail,
                  web_made=source_id in getattr(w.cfg, "web_sources", set()))


@router.get("/sources/{source_id}/compare", response_class=HTMLResponse)
def compare(request: Request, source_id: str, a: int, b: int):
    require(request, "viewer")
    w = web_of(request)
    with w.store.session() as s:
        rec = source_or_404(s, source_id)
        sa, sb = s.get(SnapshotRecord, a), s.get(SnapshotRecord, b)
        if sa is None or sb is None or sa.source_id != source_id or sb.source_id != source_id:
            raise Denied(404, f"both snapshots must belong to source '{source_id}'")
        if as_utc(sa.fetched_at) > as_utc(sb.fetched_at):
            sa, sb = sb, sa  # always old -> new
        gone = pruned_of(s, [x.text_sha256 for x in (sa, sb) if x.text_sha256])
        for x in (sa, sb):
            if x.text_sha256 in gone:  # retention deleted it: no diff against an empty text
                raise Denied(410, f"capture #{x.id}'s text was deleted by `govwatch prune` on "
                                  f"{gone[x.text_sha256]:%Y-%m-%d}: it cannot be compared")
        ta, tb = w.store.get_text(sa.text_sha256, s), w.store.get_text(sb.text_sha256, s)
    d = text_diff(ta, tb)
    sbs = side_by_side(ta, tb)
    return render(request, "compare.html", rec=rec, name=w.cfg_names.get(source_id) or rec.name or rec.id,
                  a=sa, b=sb, inline=inline_rows(d.unified(context=1)), sbs=sbs, changed=d.changed,
                  added=len(d.added), removed=len(d.removed))
