"""Full-text search of the change log: one query syntax, two engines.

What is searched: a change's title, its added text and its removed text. A new document's change
carries the document's whole text as its added text, so a document is searched in full; a page's
change carries what its new version added and removed (the unchanged rest of the page is not
indexed again with every change). The first MAX_INDEXED_CHARS of each text are indexed.

- SQLite: an FTS5 table over `changes` (external content: no second copy of the texts), kept in
  step by triggers on `changes`, Porter stemming; ranked by bm25.
- PostgreSQL: a stored generated tsvector column `changes.search_vector` (English stemming, the
  title weighted above added text above removed text) with a GIN index; ranked by ts_rank_cd.

Both are made by Alembic (migration 0007) and maintained by the database itself, whichever code
writes a change. The syntax (as on most search boxes): words (all must occur, any form: "report"
finds "reports"), "a phrase", `a OR b`, `-word` or `-"a phrase"` to exclude.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import reduce

from sqlalchemy import Float, Integer, case, func, literal_column, select, text

from state.errors import StateError
from state.models import ChangeRecord
from state.store import one_of

MAX_INDEXED_CHARS = 200_000
FTS_TABLE = "changes_fts"
PG_COLUMN = "search_vector"
PG_INDEX = "ix_changes_search_vector"
PG_CONFIG = "english"
# The database objects of the search index: not in the models (SQLite's FTS5 table and its shadow
# tables, PostgreSQL's generated column and its index), so schema comparisons leave them out.
SEARCH_TABLES = {FTS_TABLE, *(f"{FTS_TABLE}_{s}" for s in ("data", "idx", "content", "docsize", "config"))}
SEARCH_COLUMNS = {PG_COLUMN}
SEARCH_INDEXES = {PG_INDEX}
# Column weights: the title counts most, then what was added, then what was removed.
_BM25 = f"bm25({FTS_TABLE}, 10.0, 4.0, 2.0)"
# Marks of a matched word in a snippet: characters no government page uses, replaced on output.
MARK_START, MARK_END = "\ue000", "\ue001"
SNIPPET_WORDS = 24


class QueryError(StateError):
    """A search that cannot be run; the message says why and how to write it."""


@dataclass(frozen=True)
class Term:
    text: str
    phrase: bool = False

    def __str__(self) -> str:
        return f'"{self.text}"' if self.phrase else self.text


@dataclass
class Query:
    """Every group must match (a group is one term or several joined by OR); no excluded term may."""

    groups: list[list[Term]] = field(default_factory=list)
    excluded: list[Term] = field(default_factory=list)
    raw: str = ""
    # PostgreSQL, read by prepare() in the same statement as the stop words: (the planner's count
    # of changes, the newest change id), for pg_share
    pg_counts: tuple[float, int] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        parts = [" OR ".join(map(str, g)) for g in self.groups] + [f"-{t}" for t in self.excluded]
        return " ".join(parts)


_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')
_WORDY = re.compile(r"\w")


MAX_TERMS = 32
MAX_QUERY_CHARS = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def parse(query: str) -> Query:
    """The query as groups of terms; a QueryError for a search with nothing to look for, or one too
    big for the engines (more than MAX_TERMS terms, control characters)."""
    if _CONTROL.search(query):
        raise QueryError("the search holds a control character")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"the search is longer than {MAX_QUERY_CHARS} characters")
    q = Query(raw=query)
    pending_or = after_term = False  # an OR joins the terms either side of it; both must be wanted
    for m in _TOKEN.finditer(query):
        minus, phrase, word = m.group(1), m.group(2), m.group(3)
        if word is not None:
            if word == "OR":
                pending_or = after_term
                continue
            minus, word = ("-", word[1:]) if word.startswith("-") else ("", word)
            term = Term(word)
        else:
            term = Term(" ".join(phrase.split()), phrase=True)
        if not _WORDY.search(term.text):  # punctuation alone finds nothing in either engine
            pending_or = after_term = False
            continue
        if minus:
            q.excluded.append(term)
        elif pending_or:
            q.groups[-1].append(term)
        else:
            q.groups.append([term])
        pending_or, after_term = False, not minus
    if not q.groups:
        raise QueryError("a search needs at least one word or \"phrase\" to look for (-word only excludes)"
                         if q.excluded else "the search is empty: give words, \"a phrase\", a OR b, -excluded")
    if sum(map(len, q.groups)) + len(q.excluded) > MAX_TERMS:
        raise QueryError(f"the search has more than {MAX_TERMS} words and phrases")
    return q


def prepare(session, dialect: str, q: Query) -> Query:
    """The query as the engine will run it. PostgreSQL drops English stop words ("the", "of"): a
    term that is only stop words is dropped here, so that "-report the" does not become "every
    change without report"; a QueryError when nothing is left to look for. SQLite keeps every word."""
    if dialect != "postgresql":
        return q
    terms = sorted({t.text for g in q.groups for t in g} | {t.text for t in q.excluded})
    *nodes, changes, newest = session.execute(select(*(func.numnode(func.phraseto_tsquery(PG_CONFIG, t)) for t in terms),
                                                     *_pg_counts())).one()
    empty = {t for t, n in zip(terms, nodes) if not n}
    out = q
    if empty:
        groups = [[t for t in g if t.text not in empty] for g in q.groups]
        out = Query(groups=[g for g in groups if g], excluded=[t for t in q.excluded if t.text not in empty], raw=q.raw)
        if not out.groups:
            raise QueryError("the search has only common words (" + ", ".join(sorted(empty)) + "), which are not indexed")
    out.pg_counts = (float(changes or 0), newest or 0)
    return out


def _pg_counts():
    """The planner's count of changes (kept by ANALYZE) and the newest change id, as two columns."""
    return (literal_column(f"(SELECT reltuples FROM pg_class WHERE oid = to_regclass('{ChangeRecord.__tablename__}'))"),
            func.max(ChangeRecord.id))


def pg_vector():
    """PostgreSQL's search column of `changes` (not in the model: see SEARCH_COLUMNS)."""
    return literal_column(f"{ChangeRecord.__tablename__}.{PG_COLUMN}")


def pg_rank(q: Query, tsq=None):
    """A change's rank for the query on PostgreSQL, ascending best first (as on SQLite)."""
    return -func.ts_rank_cd(pg_vector(), pg_tsquery(q) if tsq is None else tsq)


def fts5_expression(q: Query) -> str:
    """The FTS5 MATCH expression: every term quoted, so no user text is read as FTS5 syntax."""
    def quoted(t: Term) -> str:
        return '"' + t.text.replace('"', '""') + '"'

    expr = " AND ".join("(" + " OR ".join(map(quoted, g)) + ")" for g in q.groups)
    if q.excluded:  # one NOT of them all: flat, however many
        expr = f"({expr}) NOT (" + " OR ".join(map(quoted, q.excluded)) + ")"
    return expr


def pg_tsquery(q: Query):
    """The tsquery as SQL: phraseto_tsquery per term (a word is a one-word phrase), combined."""
    def one(t: Term):
        return func.phraseto_tsquery(PG_CONFIG, t.text)

    groups = [reduce(func.tsquery_or, map(one, g)) for g in q.groups]
    expr = reduce(func.tsquery_and, groups)
    for t in q.excluded:
        expr = func.tsquery_and(expr, func.tsquery_not(one(t)))
    return expr


RANK_WINDOW = 1000  # ranked: the newest this many matches; older ones follow them, newest first (2,000: +4 ms on PostgreSQL for a common word)
_UNRANKED = 1e9


def _pg_id(sparse: bool):
    """The id column as PostgreSQL's planner should use it. `sparse` (the query finds at most a few
    thousand changes): `id + 0`, which no index serves, so the matches come from the text index
    (a bitmap of exactly them) and are then sorted or bounded; otherwise the id's own index, walked
    newest first, which soon meets enough matches of a common word. At 100,000 changes, 6,300
    matches: 32 -> 11 ms for the cutoff, 76 -> 20 ms for the ranked window; for a word in half the
    changes the walk is the fast one (3 ms against 120)."""
    return ChangeRecord.id + 0 if sparse else ChangeRecord.id


def pg_share(session, q: Query) -> tuple[float, int]:
    """PostgreSQL's estimate of the share of changes the query finds (from the statistics ANALYZE
    keeps of the search column: within a few percent for words, high for a phrase of common words)
    and the newest change id. Two reads of the catalogue and the id index, well under a millisecond
    (the second made by prepare() already, with the stop words)."""
    vector = pg_vector()
    stmt = select(ChangeRecord.id).where(vector.op("@@")(pg_tsquery(q))).compile(dialect=session.bind.dialect)
    conn = session.connection()
    plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + str(stmt), stmt.params).scalar()
    rows = float((plan[0] if isinstance(plan, list) else plan)["Plan"]["Plan Rows"])
    changes, newest = q.pg_counts or conn.execute(select(*_pg_counts())).one()
    return (rows / changes if changes and changes > 0 else 1.0), newest or 0


def rank_cutoff(session, dialect: str, q: Query, *, sparse: bool = False) -> int:
    """The change id from which matches are ranked: the RANK_WINDOW-th newest match (0: all are).
    Ranking every match of a common word would read every one of its rows; a change log is read
    newest first, so relevance orders the recent matches and the old ones follow."""
    if dialect == "postgresql":
        vector = pg_vector()
        stmt = (select(ChangeRecord.id).where(vector.op("@@")(pg_tsquery(q)))
                .order_by(_pg_id(sparse).desc()).offset(RANK_WINDOW - 1).limit(1))
        return session.scalar(stmt) or 0
    stmt = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :fts ORDER BY rowid DESC LIMIT 1 OFFSET :n")
    return session.scalar(stmt, {"fts": fts5_expression(q), "n": RANK_WINDOW - 1}) or 0


def matching(stmt, dialect: str, q: Query, cutoff: int | None = None, lo: int | None = None, hi: int | None = None,
             *, sparse: bool = False):
    """`stmt` (a select over `changes`) restricted to the changes the query finds (with ids in
    [lo, hi) when given), and the rank expression (ascending is best first on both engines; None
    when `cutoff` is None: a count needs no rank). Matches older than `cutoff` (rank_cutoff) are
    not ranked: they sort last. `sparse`: see _pg_id (SQLite's FTS5 bounds its own walk)."""
    if dialect == "postgresql":
        tsq = pg_tsquery(q)
        vector = pg_vector()
        rank = None if cutoff is None else case((ChangeRecord.id >= cutoff, pg_rank(q, tsq)), else_=_UNRANKED)
        stmt = stmt.where(vector.op("@@")(tsq))
        if lo:
            stmt = stmt.where(_pg_id(sparse) >= lo)
        if hi is not None:
            stmt = stmt.where(_pg_id(sparse) < hi)
        return stmt, rank
    # the id range inside the FTS5 query: it walks only that part of the index
    bounds = (" AND rowid >= :lo" if lo else "") + (" AND rowid < :hi" if hi is not None else "")
    params = {"fts": fts5_expression(q), **({"lo": lo} if lo else {}), **({"hi": hi} if hi is not None else {})}
    if cutoff is None:
        hits = (text(f"SELECT rowid AS change_id FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :fts{bounds}")
                .bindparams(**params).columns(change_id=Integer).subquery("hits"))
        return stmt.join(hits, hits.c.change_id == ChangeRecord.id), None
    hits = (text(f"SELECT rowid AS change_id, CASE WHEN rowid >= :cutoff THEN {_BM25} ELSE {_UNRANKED} END AS rank "
                 f"FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :fts{bounds}")
            .bindparams(cutoff=cutoff, **params).columns(change_id=Integer, rank=Float).subquery("hits"))
    return stmt.join(hits, hits.c.change_id == ChangeRecord.id), hits.c.rank


def hit_ids(dialect: str, q: Query):
    """The ids of the changes the query finds, as a subquery with one column, `change_id`, read
    from the index alone (no join to the changes: on SQLite the FTS5 table's rowids): what a count
    of the matches, or of their topics, needs when no other filter applies."""
    if dialect == "postgresql":
        vector = pg_vector()
        return select(ChangeRecord.id.label("change_id")).where(vector.op("@@")(pg_tsquery(q))).subquery("hits")
    return (text(f"SELECT rowid AS change_id FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :fts")
            .bindparams(fts=fts5_expression(q)).columns(change_id=Integer).subquery("hits"))


def matches_change(session, dialect: str, q: Query, change_id: int) -> bool:
    """Whether the query finds this change (in the transaction that records it: the index already
    holds it, on both engines)."""
    if dialect == "postgresql":
        vector = pg_vector()
        stmt = select(ChangeRecord.id).where(ChangeRecord.id == change_id, vector.op("@@")(pg_tsquery(q)))
        return session.execute(stmt).first() is not None
    stmt = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :fts AND rowid = :id")
    return session.execute(stmt, {"fts": fts5_expression(q), "id": change_id}).first() is not None


def snippets(session, dialect: str, q: Query, change_ids: list[int]) -> dict[int, str]:
    """A short passage of each change around what the query found, its words between MARK_START
    and MARK_END (snippet_html and snippet_text turn them into <mark> or **)."""
    if not change_ids:
        return {}
    if dialect == "postgresql":
        tsq = pg_tsquery(q)
        body = func.concat_ws(" … ", ChangeRecord.title, func.left(ChangeRecord.added_text, 20_000),
                              func.left(ChangeRecord.removed_text, 5_000))
        opts = f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords={SNIPPET_WORDS}, MinWords=8, MaxFragments=2, FragmentDelimiter=\" … \""
        rows = session.execute(select(ChangeRecord.id, func.ts_headline(PG_CONFIG, body, tsq, opts))
                               .where(one_of(session, ChangeRecord.id, change_ids)))
    else:
        stmt = text(f"SELECT rowid, snippet({FTS_TABLE}, -1, :a, :b, ' … ', {SNIPPET_WORDS}) FROM {FTS_TABLE} "
                    f"WHERE {FTS_TABLE} MATCH :fts AND rowid IN ({','.join(str(int(i)) for i in change_ids)})")
        rows = session.execute(stmt, {"a": MARK_START, "b": MARK_END, "fts": fts5_expression(q)})
    return {cid: " ".join((snip or "").split()) for cid, snip in rows}


def snippet_html(snippet: str) -> str:
    """The snippet as safe HTML: its text escaped, its matched words in <mark>."""
    return html.escape(snippet).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def snippet_text(snippet: str, start: str = "**", end: str = "**") -> str:
    return snippet.replace(MARK_START, start).replace(MARK_END, end)


# -- the index: made by migration 0007 ------------------------------------------------------------
_COLS = "title, added_text, removed_text"


def _fts_values(prefix: str) -> str:
    return (f"{prefix}.title, substr({prefix}.added_text, 1, {MAX_INDEXED_CHARS}), "
            f"substr({prefix}.removed_text, 1, {MAX_INDEXED_CHARS})")


def sqlite_ddl() -> list[str]:
    """FTS5 over `changes` (external content) and the triggers that keep it in step."""
    delete = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {_COLS}) VALUES ('delete', old.id, {_fts_values('old')});"
    insert = f"INSERT INTO {FTS_TABLE}(rowid, {_COLS}) VALUES (new.id, {_fts_values('new')});"
    return [
        f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({_COLS}, content='changes', content_rowid='id', "
        "tokenize='porter unicode61 remove_diacritics 2')",
        f"CREATE TRIGGER changes_fts_insert AFTER INSERT ON changes BEGIN {insert} END",
        f"CREATE TRIGGER changes_fts_delete AFTER DELETE ON changes BEGIN {delete} END",
        f"CREATE TRIGGER changes_fts_update AFTER UPDATE OF {_COLS} ON changes BEGIN {delete} {insert} END",
        # the changes recorded before the index existed
        f"INSERT INTO {FTS_TABLE}(rowid, {_COLS}) SELECT id, {_fts_values('changes')} FROM changes",
    ]


def sqlite_drop_ddl() -> list[str]:
    return [*(f"DROP TRIGGER IF EXISTS changes_fts_{op}" for op in ("insert", "delete", "update")),
            f"DROP TABLE IF EXISTS {FTS_TABLE}"]


def postgres_ddl() -> list[str]:
    def weighted(col: str, weight: str) -> str:
        return f"setweight(to_tsvector('{PG_CONFIG}'::regconfig, left(coalesce({col}, ''), {MAX_INDEXED_CHARS})), '{weight}')"

    vector = " || ".join([weighted("title", "A"), weighted("added_text", "B"), weighted("removed_text", "C")])
    return [f"ALTER TABLE changes ADD COLUMN {PG_COLUMN} tsvector GENERATED ALWAYS AS ({vector}) STORED",
            f"CREATE INDEX {PG_INDEX} ON changes USING gin ({PG_COLUMN})"]


def postgres_drop_ddl() -> list[str]:
    return [f"DROP INDEX IF EXISTS {PG_INDEX}", f"ALTER TABLE changes DROP COLUMN IF EXISTS {PG_COLUMN}"]
