"""What every router of the web change log shares (the configuration, the store, who may sign in,
the sessions and the sign-in throttle) and how a page is rendered for the request's principal."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from monitor.web.auth import Sessions, Throttle, WebSession, WebSettings
from monitor.web.presentation import _templates
from state.models import SourceRecord
from state.store import Store, chunks, one_of

SOURCE_MENU_MAX = 500  # sources listed in the change log's source menu; more: a text box


@dataclass
class WebContext:
    cfg: object
    store: Store
    settings: WebSettings
    sessions: Sessions | None = None  # in the database (made from the store)
    throttle: Throttle = field(default_factory=Throttle)
    templates: jinja2.Environment | None = None  # made for the configuration's display_timezone

    def __post_init__(self):
        self.sessions = self.sessions or Sessions(self.store)
        self.templates = self.templates or _templates(getattr(self.cfg, "display_timezone", "UTC") or "UTC")

        self.topics = [(t.id, t.title) for t in self.cfg.topics]
        self.topic_title = dict(self.topics)
        self.public_url = (getattr(self.cfg, "public_url", "") or "").rstrip("/")
        self.display_timezone = getattr(self.cfg, "display_timezone", "UTC") or "UTC"

    @property
    def cfg_names(self) -> dict[str, str]:
        """The configuration's names of its sources (and of the web UI's watches, merged in)."""
        return {s.id: s.display_name for s in self.cfg.sources}

    def source_names(self, ids: Iterable[str] | None = None) -> dict[str, str]:
        """Display names: of these sources (a page's rows), or of every source when `ids` is None.
        Only the two columns are read: at 20,000 sources, loading every row for a page of 50
        changes took most of a 560 ms change log."""
        q = select(SourceRecord.id, SourceRecord.name)
        with self.store.session() as s:
            if ids is None:
                return self._named(s.execute(q).all())
            ids = set(ids)  # (an export of 50,000 rows may name more sources than one statement takes)
            rows = [row for part in chunks(sorted(ids)) for row in s.execute(q.where(one_of(s, SourceRecord.id, part)))]
            return self._named(rows, ids)

    def source_directory(self, ids: Iterable[str]) -> tuple[list[tuple[str, str]] | None, list[str], dict[str, str]]:
        """What the change log shows of the sources: its source filter as a menu of (id, name), by
        name (None when there are more than SOURCE_MENU_MAX sources, a menu nobody can scroll: the
        filter is then a text box), the agencies to filter by, and the display names of `ids` (a
        page's rows). One read of the sources table when the menu holds them all (three before)."""
        rows = None
        with self.store.session() as s:
            if len(self.cfg.sources) <= SOURCE_MENU_MAX:  # one more than the menu holds tells that there are too many
                rows = s.execute(select(SourceRecord.id, SourceRecord.name, SourceRecord.agency)
                                 .limit(SOURCE_MENU_MAX + 1)).all()
            if rows is None or len(rows) > SOURCE_MENU_MAX:
                agencies = sorted({a for (a,) in s.execute(select(SourceRecord.agency).distinct()) if a})
        if rows is None or len(rows) > SOURCE_MENU_MAX:
            return None, agencies, self.source_names(ids)
        named = self._named([(sid, name) for sid, name, _ in rows])
        return (sorted(named.items(), key=lambda kv: kv[1].lower()), sorted({a for *_, a in rows if a}),
                {sid: named[sid] for sid in ids if sid in named})

    def _named(self, rows, ids: set[str] | None = None) -> dict[str, str]:
        """(id, name) rows of the sources table, named as shown: the configuration's name first
        (watches added in the web UI are merged into it); `ids`: only those."""
        names = {sid: (name or sid) for sid, name in rows if ids is None or sid in ids}
        names.update((s.id, s.display_name) for s in self.cfg.sources if ids is None or s.id in ids)
        return names

    def assignable(self) -> list[str]:
        """Who a change can be assigned to: the analysts and admins of the users file (none without
        one: then any name, see triage.assign_route)."""
        return sorted(u.name for u in self.settings.users.values() if u.role in ("analyst", "admin"))

    def source_config(self, source_id: str):
        return next((x for x in self.cfg.sources if x.id == source_id), None)


def web_of(request: Request) -> WebContext:
    return request.app.state.web


def render(request: Request, template: str, status: int = 200, **ctx) -> HTMLResponse:
    w = web_of(request)
    sess: WebSession = request.state.session
    ctx.update(request=request, principal=request.state.principal, csrf=sess.csrf if sess else "",
               auth_required=w.settings.auth_required, topics=w.topics, topic_title=w.topic_title)
    return HTMLResponse(w.templates.get_template(template).render(**ctx), status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, message=message)
