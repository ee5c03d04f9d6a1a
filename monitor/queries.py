"""The change log's filters (topic, severity, source, agency, dates, review state, full-text search)
and the one query behind its pages, exports, the Atom feed and `govwatch search`."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, time as dtime, timezone
from urllib.parse import urlencode

from sqlalchemy import String, cast, func, literal, select, union_all

from state import search
from state.models import ChangeRecord, SourceRecord, TopicMatchRecord
from state.store import Store, chunks, one_of
from state.triage import ACTIONS, AssignmentRecord, TriageStateRecord, assignees_of, states_of

SEVERITIES = ("low", "medium", "high")
REVIEW_STATES = ("unreviewed",) + ACTIONS


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
    assignee: str = ""
    matched: bool = False
    page: int = 1
    _since: datetime | None = None
    _until: datetime | None = None
    _search: search.Query | None = None

    KEYS = ("topic", "severity", "source", "agency", "since", "until", "state", "q", "assignee", "matched")

    @classmethod
    def parse(cls, params) -> "Filters":
        get = lambda k: (params.get(k) or "").strip()[:500]  # noqa: E731
        f = cls(topic=get("topic"), severity=get("severity"), source=get("source"), agency=get("agency"),
                since=get("since"), until=get("until"), state=get("state"), q=get("q"), assignee=get("assignee"),
                matched=get("matched") in ("1", "true", "on", "yes"))
        if f.severity and f.severity not in SEVERITIES:
            raise BadRequest(f"severity: '{f.severity}' is not one of {', '.join(SEVERITIES)}")
        if f.state and f.state not in REVIEW_STATES:
            raise BadRequest(f"state: '{f.state}' is not one of {', '.join(REVIEW_STATES)}")
        f._since = _parse_day("since", f.since, end=False) if f.since else None
        f._until = _parse_day("until", f.until, end=True) if f.until else None
        if f.q:
            try:
                f._search = search.parse(f.q)
            except search.QueryError as e:
                raise BadRequest(f"q: {e}") from None
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

    def narrows(self, *, skip_topic: bool = False) -> bool:
        """Whether a filter other than the search restricts the changes (with `skip_topic`, other
        than the topic too): without one, counts read the search index or the topic matches alone."""
        return bool(self.severity or self.source or self.agency or self._since or self._until or self.matched
                    or self.state or self.assignee or (self.topic and not skip_topic))

    @property
    def active(self) -> bool:
        return bool(self.items())

    @property
    def searching(self) -> search.Query | None:
        if self.q and self._search is None:
            self._search = search.parse(self.q)
        return self._search if self.q else None

    def apply(self, q, dialect: str, *, skip_topic: bool = False, cutoff: int | None = None,
              lo: int | None = None, hi: int | None = None, sparse: bool = False):
        """The statement restricted to the changes these filters keep, and the search's rank
        (ascending is best first; None without a search or without a `cutoff`, see
        search.rank_cutoff)."""
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
        if self.assignee:
            q = q.where(ChangeRecord.id.in_(select(AssignmentRecord.change_id).where(AssignmentRecord.assignee == self.assignee)))
        query = self.searching
        if query is None:
            return q, None
        return search.matching(q, dialect, query, cutoff, lo=lo, hi=hi, sparse=sparse)


@dataclass
class Row:
    change: ChangeRecord
    matches: list
    state: object  # the triage state, None when unreviewed
    snippet: str = ""  # with a search: the passage found, its words between search.MARK_START/END
    assignee: str = ""


# A search's matches are counted up to this many for its first pages ("2,000+"), and up to the end
# of the page for later ones: counting them all reads them all (PostgreSQL, 10,001 of a common
# word's matches: 15-25 ms of a first page's 50). At least RANK_WINDOW: the count's reading is
# where the rank cutoff is found.
COUNT_CAP = 2_000
SPARSE_MAX = 10_000  # with other filters: the search alone is counted this far to choose how to read it (_pg_id)


@dataclass
class Page:
    total: int
    rows: list[Row]
    counts: dict[str, int] | None  # matched changes per topic (None: a search with more matches than counted)
    capped: bool = False  # total is where the count stopped (count_cap), and there are more


def page_of_changes(store: Store, f: Filters, limit: int, offset: int) -> Page:
    """One page of the change log: newest first, or with a search best first among the newest
    RANK_WINDOW matches and then the older ones newest first."""
    with store.session() as s:
        capped = False
        cap = count_cap(limit, offset)
        if f.searching:
            try:
                f._search = search.prepare(s, store.dialect, f.searching)
            except search.QueryError as e:
                raise BadRequest(f"q: {e}") from None
            if f.narrows():
                hits = search.hit_ids(store.dialect, f.searching)
                # how the page is read depends on how many changes the words are in, whatever else filters
                sparse = _capped_count(s, select(hits.c.change_id), SPARSE_MAX) <= SPARSE_MAX  # the index counts
                total, cutoff, counts, ids = _capped_count(s, f.apply(select(ChangeRecord.id), store.dialect)[0], cap), None, None, None
            else:  # the search alone: its count, rank cutoff and topic counts in one reading of its index
                total, cutoff, counts, sparse, ids = _search_summary(s, store.dialect, f.searching, cap, limit, offset)
            capped, total = total > cap, min(total, cap)
            if ids is None:
                ids = _search_page(s, store.dialect, f, limit, offset, sparse=sparse, cutoff=cutoff)
        else:
            counts = None
            total = s.scalar(f.apply(select(func.count()).select_from(ChangeRecord), store.dialect)[0]) or 0
            q, _ = f.apply(select(ChangeRecord.id), store.dialect)
            ids = list(s.scalars(q.order_by(*NEWEST_FIRST).offset(offset).limit(limit)))
        # the page's ids first, then their rows (a sort carries ids, not whole changes); in
        # bounded statements (an export of 50,000 stays under SQLite's limit)
        by_id = {c.id: c for part in chunks(ids) for c in s.scalars(select(ChangeRecord).where(one_of(s, ChangeRecord.id, part)))}
        changes = [by_id[i] for i in ids]
        matches = store.matches_by_change(s, ids)
        states = states_of(s, ids)
        assignees = assignees_of(s, ids)
        snippets = search.snippets(s, store.dialect, f.searching, ids) if f.searching else {}
        if capped:
            counts = None
        elif counts is None:
            counts = dict(s.execute(_topic_counts(f, store.dialect)).all())
    rows = [Row(c, matches[c.id], states.get(c.id), snippets.get(c.id, ""), assignees.get(c.id, "")) for c in changes]
    return Page(total, rows, counts, capped)


NEWEST_FIRST = (ChangeRecord.detected_at.desc(), ChangeRecord.id.desc())


def count_cap(limit: int, offset: int) -> int:
    """How far a search's matches are counted for this page: COUNT_CAP, or to the end of the page
    (so "next" always leads on while there are more; an export counts what it reads)."""
    return max(COUNT_CAP, search.RANK_WINDOW, offset + limit)


def _capped_count(s, stmt, cap: int) -> int:
    """How many rows `stmt` gives, counted up to cap + 1 (counting them all reads them all); the
    search alone is counted from its index (9 ms -> 0.3 ms for 6,000 of 100,000 on SQLite)."""
    return s.scalar(select(func.count()).select_from(stmt.limit(cap + 1).subquery())) or 0


def _topic_counts(f: Filters, dialect: str):
    """Matched changes per topic under the filters (the topic filter aside). A change has at most
    one match per topic (the recorder replaces a topic's match, never adds a second), so a count of
    matches is a count of changes."""
    counted = select(TopicMatchRecord.topic, func.count()).group_by(TopicMatchRecord.topic)
    if not f.narrows(skip_topic=True):
        # the search alone, or nothing: the topic matches (and the search index) are enough, no
        # change is read (18 ms -> 0.4 ms at 100,000 changes on SQLite)
        if f.searching:
            hits = search.hit_ids(dialect, f.searching)
            counted = counted.join(hits, hits.c.change_id == TopicMatchRecord.change_id)
        return counted
    # A join, not "change_id IN (the filtered changes)": SQLite would walk every change of the log
    # for that; this walks the topic matches and looks each change up by its key.
    return f.apply(counted.join(ChangeRecord, ChangeRecord.id == TopicMatchRecord.change_id), dialect, skip_topic=True)[0]


DENSE_SHARE = 0.1  # PostgreSQL: a search estimated in this share of the changes is read along the ids


def _search_summary(s, dialect: str, q: search.Query, cap: int, limit: int = 0,
                    offset: int = 0) -> tuple[int, int | None, dict[str, int], bool, list[int] | None]:
    """For a search and no other filter, in one statement that reads the index once: how many
    changes it finds (up to cap + 1), its rank cutoff (search.rank_cutoff), its matched changes per
    topic (only when the count is complete), whether its matches are sparse (see _pg_id), and on
    PostgreSQL the page's ids when the page lies in the rank window (else None: _search_page reads
    it). Ranked from the matches this statement holds already, the page costs no second reading of
    the text index (a phrase in 1,565 of 100,000 changes: 8 ms for that reading).

    What it reads is the newest cap + 1 matches (cap >= RANK_WINDOW), so the cutoff, the
    RANK_WINDOW-th newest, is among them even when there are more. Sparse: all were counted, or the
    newest RANK_WINDOW matches are spread so thinly that walking their ids would read more rows
    than the text index holds matches (ids walked^2 > RANK_WINDOW x the newest id: a word in 6% of
    100,000 changes is read from the index, one in half of them along the ids).

    On PostgreSQL how the newest matches are read is chosen here, not by the planner, which prices
    a row's text match far below its cost: a word it estimates (search.pg_share) in DENSE_SHARE of
    the changes or more is read newest first along the id index, at most four times the ids its
    share needs (a phrase of common words, estimated high and found rarely, would otherwise walk the
    whole log) and from the text index when that was not enough; a rarer one from the text index.
    At 100,000 changes: 53,653 matches 15-29 ms to count 10,001 -> 5 ms for 2,001 along the ids;
    6,326 matches 43 ms along the ids (the planner's choice) -> ~10 ms from the text index."""
    along_ids, lo = True, None
    if dialect == "postgresql":
        share, newest_id = search.pg_share(s, q)
        along_ids = share >= DENSE_SHARE
        lo = newest_id - int(4 * (cap + 1) / share) if along_ids else None
    # only a page inside the window is ranked here: one past it or across its end is _search_page's
    page = (limit, offset) if dialect == "postgresql" and limit and offset + limit <= search.RANK_WINDOW else None
    out = _summary_read(s, dialect, q, cap, along_ids, lo, page)
    if lo is not None and lo > 0 and out[0] <= cap:  # the bounded walk did not find them all: the text index
        out = _summary_read(s, dialect, q, cap, False, None, page)
    total, cutoff, newest, counts, ids = out
    walked = newest - cutoff + 1
    sparse = total <= cap or walked * walked > search.RANK_WINDOW * newest
    # the window's part of the page is the whole page when it filled the page or every match is ranked
    whole = ids is not None and (len(ids) == limit or not cutoff)
    return total, cutoff, counts, sparse, ids if whole else None


def _summary_read(s, dialect: str, q: search.Query, cap: int, along_ids: bool, lo: int | None,
                  page: tuple[int, int] | None = None):
    """_search_summary's statement: (count up to cap + 1, the RANK_WINDOW-th newest id, the newest
    id, matched changes per topic when the count is complete, the rank window's part of the page
    (limit, offset) best first, or None without `page`)."""
    hits = search.hit_ids(dialect, q)
    found = select(hits.c.change_id)
    if lo is not None and lo > 0:
        found = found.where(hits.c.change_id >= lo)
    # along the ids (their index, newest first), or the text index's matches sorted (id + 0: no index)
    found = found.order_by((hits.c.change_id if along_ids else hits.c.change_id + 0).desc()).limit(cap + 1).cte("found")
    if dialect == "postgresql" or sqlite3.sqlite_version_info >= (3, 35):  # (older SQLite: read twice, same rows)
        found = found.prefix_with("MATERIALIZED")
    nth = (select(found.c.change_id).order_by(found.c.change_id.desc())
           .offset(search.RANK_WINDOW - 1).limit(1).scalar_subquery())
    complete = select(func.count()).select_from(found).scalar_subquery() <= cap  # else the counts are not used
    stmt = union_all(
        select(literal(0).label("part"), literal("").label("topic"), func.count().label("n")).select_from(found),
        select(literal(1), literal(""), func.coalesce(nth, 0)),
        select(literal(3), literal(""), func.coalesce(func.max(found.c.change_id), 0)),
        select(literal(2), TopicMatchRecord.topic, func.count())
        .join(found, found.c.change_id == TopicMatchRecord.change_id).where(complete)
        .group_by(TopicMatchRecord.topic),
        *_window_page(q, found, nth, page))
    total, cutoff, newest, counts, ranked = 0, 0, 0, {}, []
    for part, topic, n in s.execute(stmt):
        if part == 0:
            total = n
        elif part == 1:
            cutoff = n
        elif part == 3:
            newest = n
        elif part == 4:
            ranked.append((int(topic), n))
        else:
            counts[topic] = n
    return total, cutoff, newest, counts, [i for _, i in sorted(ranked)] if page else None


def _window_page(q: search.Query, found, nth, page: tuple[int, int] | None) -> list:
    """PostgreSQL: the page (limit, offset) of the rank window's matches, best first as
    _search_page orders them, as rows (4, position, id) of _summary_read's statement."""
    if page is None:
        return []
    limit, offset = page
    order = (search.pg_rank(q), *NEWEST_FIRST)
    window = (select(ChangeRecord.id, func.row_number().over(order_by=order).label("pos"))
              .join(found, found.c.change_id == ChangeRecord.id).where(found.c.change_id >= func.coalesce(nth, 0))
              .order_by(*order).offset(offset).limit(limit).subquery("window"))
    return [select(literal(4), cast(window.c.pos, String), window.c.id)]


def _search_page(s, dialect: str, f: Filters, limit: int, offset: int, *, sparse: bool = False,
                 cutoff: int | None = None) -> list[int]:
    """A search's page of ids: first the matches in the rank window (ids >= the cutoff), best first;
    then the older ones, newest first. Each part reads only its own range of the index, so the
    first pages never read every match of a common word. `cutoff`: search.rank_cutoff's, when
    already known."""
    if cutoff is None:
        cutoff = search.rank_cutoff(s, dialect, f.searching, sparse=sparse)
    window, rank = f.apply(select(ChangeRecord.id), dialect, cutoff=cutoff, lo=cutoff, sparse=sparse)
    ids = list(s.scalars(window.order_by(rank, *NEWEST_FIRST).offset(offset).limit(limit)))
    if len(ids) == limit or not cutoff:
        return ids
    n_window = s.scalar(select(func.count()).select_from(f.apply(select(ChangeRecord.id), dialect, lo=cutoff, sparse=sparse)[0].subquery())) or 0
    older, _ = f.apply(select(ChangeRecord.id), dialect, hi=cutoff, sparse=sparse)
    return ids + list(s.scalars(older.order_by(*NEWEST_FIRST).offset(max(0, offset - n_window)).limit(limit - len(ids))))
