"""How a change looks outside the database: one shape for the CLI, the web pages and the exports
(JSON/CSV), so `govwatch changes --format json|csv` and `/changes.json|csv` always agree."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any, Iterable

from monitor.escaping import csv_cell
from state.models import ChangeRecord, TopicMatchRecord
from state.store import evidence_of


def iso(dt: datetime | None) -> str:
    """ISO 8601 in UTC with a Z ("" for None); SQLite hands back naive UTC datetimes."""
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


HEADLINE_CHARS = 200


def headline(change: ChangeRecord) -> str:
    """What a change is about, in a line: a page's change by its first added sentence (its first
    removed one when it only removed text), since every change of a page shares the page's title;
    an item or a document by its own title."""
    from monitor.diff import split_units

    if change.kind in ("changed", "removed") and not change.item_key:
        for text, prefix in ((change.added_text, ""), (change.removed_text, "Removed: ")):
            units = split_units(text[:2_000]) if text else []
            if units:
                first = " ".join(units[0].split())
                cut = first if len(first) <= HEADLINE_CHARS else first[:HEADLINE_CHARS - 1].rsplit(" ", 1)[0] + "…"
                return prefix + cut
    return change.title or change.url


def change_dict(change: ChangeRecord, matches: list[TopicMatchRecord], state: Any = None,
                source_name: str = "", excerpt: int | None = 2000) -> dict:
    evidence = []
    for m in matches:
        for ev in evidence_of(m)["evidence"]:
            evidence.append({"topic": m.topic, "rule": ev.get("rule", ""), "sentence": ev.get("sentence", ""),
                             "marked": ev.get("marked", ""), "terms": ev.get("terms", [])})
    added = change.added_text if excerpt is None else change.added_text[:excerpt]
    return {
        "id": change.id, "source_id": change.source_id, "source_name": source_name, "url": change.url,
        "detected_at": iso(change.detected_at), "kind": change.kind, "title": change.title,
        "item_published": change.item_published, "topics": [m.topic for m in matches], "severity": change.severity,
        "scores": {m.topic: m.score for m in matches}, "review_state": state.state if state else "unreviewed",
        "added_text": added, "added_text_truncated": excerpt is not None and len(change.added_text) > excerpt,
        "evidence": evidence, "note": change.note,
    }


# The CSV export's columns, for `govwatch changes --format csv` and the web's /changes.csv.
CSV_COLUMNS = ["id", "detected_at", "source_id", "kind", "topics", "severity", "review_state", "title", "url",
               "evidence", "added_text"]
def changes_csv(records: Iterable[dict]) -> str:
    """Records of change_dict as CSV: CSV_COLUMNS, text never cut (build them with excerpt=None),
    every cell escaped against formula injection."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for d in records:
        w.writerow([csv_cell(x) for x in (d["id"], d["detected_at"], d["source_id"], d["kind"], " ".join(d["topics"]),
                                          d["severity"], d["review_state"], d["title"], d["url"],
                                          " | ".join(e["sentence"] for e in d["evidence"]), d["added_text"])])
    return buf.getvalue()


def parse_since(value: str) -> datetime:
    """A `--since` value: an ISO 8601 date or time, UTC when it has no offset."""
    from state.errors import GovwatchError

    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GovwatchError(f"--since: '{value}' is not an ISO 8601 date or time (e.g. 2026-11-01 or 2026-11-01T12:00:00Z)") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
