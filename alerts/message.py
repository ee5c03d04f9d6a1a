"""Alert messages: title names topic and source; body (Markdown, turned into HTML for email by
Apprise) carries URL, detection time, evidence and an excerpt of the added text."""
from __future__ import annotations

import re
from dataclasses import dataclass

from state.models import ChangeRecord, TopicMatchRecord
from state.store import evidence_of

EXCERPT_CHARS = 1200
EVIDENCE_SENTENCES = 4
SENTENCE_CHARS = 400


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary and say how much was left out (never mid-word, never silently)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    rest = len(text) - len(cut)
    return f"{cut.rstrip()} … [shortened: {rest:,} more characters in the change log]"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md_escape(text: str) -> str:
    """Page-derived text must not become markup in Slack or e-mail."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def marked_to_md(marked: str) -> str:
    """«term» markers (from the classifier) become bold; everything else is escaped."""
    parts = re.split(r"«([^»]*)»", marked)
    return "".join(f"**{md_escape(p)}**" if i % 2 else md_escape(p) for i, p in enumerate(parts))


@dataclass
class Message:
    title: str
    body: str  # Markdown


def change_message(change: ChangeRecord, matches: list[TopicMatchRecord], source_name: str, public_url: str = "",
                   archived: list[str] = ()) -> Message:
    topics = [m.topic for m in matches] or ["change"]
    what = {"new_item": "new document", "changed": "page changed", "removed": "removed", "new": "new"}.get(change.kind, change.kind)
    doc = f": {shorten(change.title, 120)}" if change.title and change.kind in ("new_item", "removed") else ""
    sev = max((m.severity for m in matches), key=["low", "medium", "high"].index, default="")
    title = f"[{', '.join(topics)}] {source_name} ({change.source_id}): {what}{doc}"
    if sev == "high":
        title = "HIGH " + title
    lines = [
        f"**Source:** {md_escape(source_name)} (`{change.source_id}`)",
        f"**URL:** {change.url}",
        f"**Detected:** {change.detected_at.strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    for link in archived:  # a Wayback capture that was ready before this message was sent
        lines.append(f"**Archived:** {link}")
    if change.note:
        lines.append(f"**Note:** {md_escape(change.note)}")
    if change.kind == "new_item" and change.title:
        lines.append(f"**Document:** {md_escape(change.title)}" + (f" ({md_escape(change.item_published)})" if change.item_published else ""))
    for m in matches:
        lines.append("")
        lines.append(f"**Topic {m.topic}**: severity {m.severity}, score {m.score:g}")
        payload = evidence_of(m)
        evidence = payload["evidence"]
        for ev in evidence[:EVIDENCE_SENTENCES]:
            marked = ev.get("marked") or ev.get("sentence") or ""
            lines.append(f"> {marked_to_md(shorten(marked, SENTENCE_CHARS))}" + (f" _(rule {md_escape(ev['rule'])})_" if ev.get("rule") else ""))
        if len(evidence) > EVIDENCE_SENTENCES:
            lines.append(f"_…and {len(evidence) - EVIDENCE_SENTENCES} more evidence sentences in the change log_")
        for dc in payload["definition_changes"]:
            lines.append(f"Definition of **{md_escape(dc.get('term', ''))}** {dc.get('change', 'changed')}:")
            if dc.get("old"):
                lines.append(f"> was: {md_escape(shorten(dc['old'], SENTENCE_CHARS))}")
            if dc.get("new"):
                lines.append(f"> now: {md_escape(shorten(dc['new'], SENTENCE_CHARS))}")
    if change.added_text:
        lines += ["", "**Added text (excerpt):**", md_escape(shorten(change.added_text, EXCERPT_CHARS))]
    elif change.removed_text:
        lines += ["", "**Removed text (excerpt):**", md_escape(shorten(change.removed_text, EXCERPT_CHARS))]
    if public_url:
        lines += ["", f"[Open change {change.id} in govwatch]({public_url}/changes/{change.id})"]
    else:
        lines += ["", f"Change {change.id}: `govwatch show {change.id}`"]
    return Message(title=shorten(title, 240), body="\n".join(lines))
