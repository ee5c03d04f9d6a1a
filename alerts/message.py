"""Alert messages: title names topic and source (REMOVED for what disappeared, UPDATE for a full
text come later); body (Markdown, turned into HTML and plain text for e-mail by Apprise) carries
the evidence first, then URL, detection time, a link to the last capture and an excerpt."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from state.models import ChangeRecord, TopicMatchRecord
from state.store import evidence_of

EXCERPT_CHARS = 1200
EVIDENCE_SENTENCES = 4
SENTENCE_CHARS = 400


def shorten(text: str, limit: int, *, note: bool = True) -> str:
    """Cut at a word boundary and say how much was left out (never mid-word, never silently). A
    title (`note=False`) ends in "…" only: a note there would be cut again by the title's own limit."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    rest = len(text) - len(cut)
    return f"{cut.rstrip()} …" + (f" [shortened: {rest:,} more characters in the change log]" if note else "")


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md_escape(text: str) -> str:
    """Page-derived text must not become markup in Slack or e-mail."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def marked_to_md(marked: str) -> str:
    """«term» markers (from the classifier) become bold; everything else is escaped."""
    parts = re.split(r"«([^»]*)»", marked)
    return "".join(f"**{md_escape(p)}**" if i % 2 else md_escape(p) for i, p in enumerate(parts))


_DIGIT = re.compile(r"\d")
CONTEXT_CHARS = 80  # kept either side of the facts when a long evidence sentence is trimmed


def fact_excerpt(marked: str, limit: int = SENTENCE_CHARS) -> str:
    """An evidence text for a message, its facts whole: of sentences joined by " … ", those with
    matched terms are kept (the others are dropped); a long sentence loses only what lies before
    its first and after its last number or matched term, never the span between them."""
    parts = [p.strip() for p in marked.split(" … ") if p.strip()]
    kept = [p for p in parts if "«" in p] or parts[:1]
    out = []
    for part in kept:
        plain = part.replace("«", "").replace("»", "")
        if len(plain) <= limit:
            out.append(part)
            continue
        spots = [m.start() for m in _DIGIT.finditer(part)] + [i for i, ch in enumerate(part) if ch in "«»"]
        if not spots:
            out.append(shorten(part, limit))
            continue
        a, b = min(spots), max(spots) + 1
        lo = part.rfind(" ", 0, max(0, a - CONTEXT_CHARS)) + 1 if a > CONTEXT_CHARS else 0
        hi = part.find(" ", min(len(part), b + CONTEXT_CHARS))
        hi = len(part) if hi < 0 else hi
        out.append(("… " if lo else "") + part[lo:hi].strip() + (" …" if hi < len(part) else ""))
    text = " … ".join(out)
    return text if len(kept) == len(parts) else text + " …"


def _key(sentence: str) -> str:
    """A sentence as compared for repeats: marks, bullets, spacing, case and closing dot aside."""
    return " ".join(sentence.replace("«", "").replace("»", "").split()).lower().lstrip("•*-–· ").rstrip(". ")


@dataclass
class Message:
    title: str
    body: str  # Markdown


def change_message(change: ChangeRecord, matches: list[TopicMatchRecord], source_name: str, public_url: str = "",
                   archived: list[str] = (), *, update: bool = False) -> Message:
    """The alert of a change; `update` is the follow-up when a new item's full text, come after its
    first alert, adds a topic or raises the severity. The facts come first: the evidence (each
    sentence once, never cut between its numbers and outcome words; a reworded one old -> new;
    a removed one as removed), then where and when; every line is a paragraph and every link a
    bare URL, so that the plain-text part of an e-mail keeps both."""
    payloads = [(m, evidence_of(m)) for m in matches]
    removed = [m.topic for m, p in payloads if p["removed"]]
    kept = [m.topic for m, p in payloads if not p["removed"]]
    what = {"new_item": "new document", "changed": "page changed", "new": "new",
            "removed": "taken off the listing" if change.item_key else "page removed"}.get(change.kind, change.kind)
    short_title = shorten(change.title, 120, note=False) if change.title else ""
    doc = f": {short_title}" if short_title and change.kind in ("new_item", "removed") else ""
    sev = max((m.severity for m in matches), key=["low", "medium", "high"].index, default="")
    tags = ([f"[{', '.join(kept)}]"] if kept else []) + ([f"REMOVED [{', '.join(removed)}]"] if removed else [])
    title = f"{' '.join(tags) or '[change]'} {source_name} ({change.source_id}): {what}{doc}"
    if update:
        title = "UPDATE " + title.replace(": new document:", ": full text of new document:", 1)
    if sev == "high":
        title = "HIGH " + title
    lines: list[str] = []
    if update:
        lines += ["**Update:** the full text of this document arrived after its first alert, which was sent on what the "
                  "listing said; this alert is for what the full text adds.", ""]
    seen = {_key(change.title)} if change.title else set()
    shown = 0
    for m, payload in payloads:
        head = f"**{'REMOVED ' if payload['removed'] else ''}{md_escape(m.topic)}**: severity {m.severity}, score {m.score:g}"
        lines += [head, ""]
        definitions = payload["definition_changes"]
        evidence = [ev for ev in payload["evidence"] if not (definitions and str(ev.get("rule", "")).startswith("definition-"))]
        fresh = []
        for ev in evidence:  # each sentence once in the whole message, under its first (best) rule
            key = _key(ev.get("sentence") or ev.get("marked") or "")
            if key not in seen and key not in {_key(f.get("sentence") or f.get("marked") or "") for f in fresh}:
                fresh.append(ev)
        if not fresh and evidence and not definitions:
            fresh = evidence[:1]  # the title is this topic's only evidence: said once, here
        for ev in fresh[:EVIDENCE_SENTENCES]:
            marked = (ev.get("marked") or ev.get("sentence") or "").lstrip("•*-–· ")
            seen.update({_key(marked), _key(ev.get("sentence") or "")})
            rule = f" _(rule {md_escape(ev['rule'])})_" if ev.get("rule") else ""
            if ev.get("old"):
                seen.add(_key(ev["old"]))
                lines += [f"• now: {marked_to_md(fact_excerpt(marked))}{rule}", "",
                          f"was: {md_escape(fact_excerpt(ev['old']))}", ""]
            else:
                gone = "removed: " if ev.get("removed") and not payload["removed"] else ""
                lines += [f"• {gone}{marked_to_md(fact_excerpt(marked))}{rule}", ""]
            shown += len(marked)
        if len(fresh) > EVIDENCE_SENTENCES:
            lines += [f"_…and {len(fresh) - EVIDENCE_SENTENCES} more evidence sentences in the change log_", ""]
        for dc in definitions:
            if all(_key(dc[k]) in seen for k in ("old", "new") if dc.get(k)):
                continue  # a title or a sentence already shown is not a definition (older stored evidence)
            lines += [f"Definition of **{md_escape(dc.get('term', ''))}** {dc.get('change', 'changed')}:", ""]
            for label in ("old", "new"):
                if dc.get(label):
                    seen.add(_key(dc[label]))
                    lines += [f"{'was' if label == 'old' else 'now'}: {md_escape(fact_excerpt(dc[label]))}", ""]
                    shown += len(dc[label])
    lines += [
        f"**Source:** {md_escape(source_name)} ({md_escape(change.source_id)})", "",
        f"**URL:** <{change.url}>", "",
        f"**Detected:** {change.detected_at.strftime('%Y-%m-%d %H:%M UTC')}", "",
    ]
    for link in archived:  # a Wayback capture that was ready before this message was sent
        lines += [f"**Archived:** <{link}>", ""]
    if change.note:
        lines += [f"**Note:** {md_escape(change.note)}", ""]
    if change.title and (change.item_published or short_title != change.title.strip() or not doc):
        label = "Document" if change.kind == "new_item" else "Title"
        lines += [f"**{label}:** {md_escape(change.title)}" + (f" ({md_escape(change.item_published)})" if change.item_published else ""), ""]
    capture = _last_capture(change) if removed or change.kind == "removed" else None
    if capture is not None:
        where = f"<{public_url}/snapshots/{capture}>" if public_url else f"snapshot {capture} (`govwatch show {change.id}`)"
        lines += [f"**Last capture:** {where}", ""]
    excerpt = max(EXCERPT_CHARS - shown, 300)  # long evidence: a shorter excerpt, never shorter facts
    text, label = (change.added_text, "Added") if change.added_text and not removed else (change.removed_text, "Removed")
    text = _unseen(text, seen)
    if text:
        cut = shorten(text, excerpt)
        lines += [f"**{label} text (excerpt):**", ""] + [x for line in cut.splitlines() if line.strip() for x in (md_escape(line.strip()), "")]
    if public_url:
        lines += [f"Open change {change.id} in govwatch: <{public_url}/changes/{change.id}>"]
    else:
        lines += [f"Change {change.id}: govwatch show {change.id}"]
    return Message(title=shorten(title, 240, note=False), body="\n".join(lines))


def _unseen(text: str, seen: set[str]) -> str:
    """A text without the lines the message already shows: the title (a document's text opens
    with it) and the evidence sentences (a changed page's added text is one sentence a line)."""
    return "\n".join(line for line in text.strip().splitlines() if _key(line) not in seen).strip()


def _last_capture(change: ChangeRecord) -> int | None:
    """The last stored capture of what disappeared: a removed item's document, else the page's
    previous snapshot."""
    try:
        meta = json.loads(change.meta_json or "{}")
    except ValueError:
        meta = {}
    capture = meta.get("last_capture_id") if isinstance(meta, dict) else None
    return capture if isinstance(capture, int) else change.prev_snapshot_id


# -- health alerts ---------------------------------------------------------------------
HEALTH_PREFIX = "govwatch health: "


def health_alert(name: str, source_id: str, url: str, problem: str, detail: str = "", was: str = "") -> Message:
    """One source's health problem (or its recovery, problem="ok"): a row of the outbox. Its body is
    one line, so that the rows found in one pass can be listed in one message (health_digest)."""
    who = f"{name or source_id} ({source_id})"  # like a change alert's title: the name, and the id
    if problem == "ok":
        return Message(title=f"{HEALTH_PREFIX}{who} recovered",
                       body=f"**{md_escape(name or source_id)}** (`{source_id}`, {url}) recovered (was {was}).")
    return Message(title=f"{HEALTH_PREFIX}{who} is {problem}",
                   body=f"**{md_escape(name or source_id)}** (`{source_id}`, {url}) is **{problem}**: {md_escape(detail)}")


_HEALTH_TITLE = re.compile(rf"^{re.escape(HEALTH_PREFIX)}(?P<who>.+?) (?:is (?P<problem>[\w-]+)|(?P<recovered>recovered))$")


def health_digest(rows: list[Message]) -> Message:
    """The health rows due for one target, as one message: "7 sources failing", each source with its
    name and reason; recoveries in their own list; anything else (a delivery given up) after them."""
    if len(rows) == 1:
        return rows[0]
    problems: dict[str, list[Message]] = {}
    recovered: list[Message] = []
    other: list[Message] = []
    for m in rows:
        hit = _HEALTH_TITLE.match(m.title)
        if hit is None:
            other.append(m)
        elif hit.group("recovered"):
            recovered.append(m)
        else:
            problems.setdefault(hit.group("problem"), []).append(m)
    n_problems = sum(len(v) for v in problems.values())
    parts = []
    if n_problems:
        kinds = sorted(problems, key=lambda k: (-len(problems[k]), k))
        noun = "source" if n_problems == 1 else "sources"
        parts.append(f"{n_problems} {noun} {kinds[0]}" if len(kinds) == 1 else
                     f"{n_problems} {noun} need attention (" + ", ".join(f"{len(problems[k])} {k}" for k in kinds) + ")")
    if recovered:
        parts.append(f"{len(recovered)} {'source' if len(recovered) == 1 else 'sources'} recovered")
    if other:
        parts.append(f"{len(other)} other {'notice' if len(other) == 1 else 'notices'}")
    lines: list[str] = []
    for kind in sorted(problems, key=lambda k: (-len(problems[k]), k)):
        lines += [f"**{len(problems[kind])} {kind}:**"] + [f"- {m.body}" for m in problems[kind]] + [""]
    if recovered:
        lines += [f"**{len(recovered)} recovered:**"] + [f"- {m.body}" for m in recovered] + [""]
    for m in other:
        lines += [f"**{md_escape(m.title)}**", m.body, ""]
    return Message(title=HEALTH_PREFIX + "; ".join(parts), body="\n".join(lines).strip())


DIGEST_EXCERPT_CHARS = 240


def digest_message(name: str, query: str, every: str, entries: list[tuple[ChangeRecord, str, str]], *,
                   public_url: str = "", more: int = 0) -> Message:
    """A subscription's digest: every change listed once, most severe first, each with its headline,
    source, severity, topics, time, URL and a short excerpt (Markdown: chat targets show it as it
    is, e-mail gets it as HTML and as plain text)."""
    rank = {"high": 0, "medium": 1, "low": 2, "": 3}
    ordered = sorted(entries, key=lambda e: (rank.get(e[0].severity, 3), -(e[0].id or 0)))
    n = len(ordered)
    title = f"govwatch digest: {name}: {n} change{'s' if n != 1 else ''}"
    head = f"Subscription **{md_escape(name)}** ({every}" + (f", search `{md_escape(query)}`" if query else "") + ")."
    lines = [head, ""]
    for i, (c, headline, source_name) in enumerate(ordered, 1):
        tags = " · ".join(x for x in (c.severity.upper() if c.severity else "", c.topics.replace(",", ", ")) if x)
        when = c.detected_at.strftime("%Y-%m-%d %H:%M UTC") if c.detected_at else ""
        lines.append(f"{i}. **{md_escape(shorten(headline, 160))}**" + (f" [{md_escape(tags)}]" if tags else ""))
        lines.append(f"   {md_escape(source_name)}, {when}: {c.url}")
        excerpt = " ".join((c.added_text or c.removed_text or "").split())
        if excerpt and excerpt != headline:
            lines.append(f"   > {md_escape(shorten(excerpt, DIGEST_EXCERPT_CHARS))}")
        if public_url:
            lines.append(f"   {public_url}/changes/{c.id}")
        lines.append("")
    if more:
        lines.append(f"{more} more matching change{'s' if more != 1 else ''} will be in the next digest.")
    return Message(title=title, body="\n".join(lines).strip())
