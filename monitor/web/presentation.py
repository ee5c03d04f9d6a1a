"""How captured content is shown: the Jinja2 environment (autoescape on, strict), links only for
http(s) URLs, the classifier's term marks, inline and side-by-side diff rows, and cells of CSV exports."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup, escape
from zoneinfo import ZoneInfo

from monitor.escaping import csv_cell  # noqa: F401  (one escaping for the CLI and the web)
from monitor.diff import highlight
from monitor.records import iso
from state.models import as_utc
from state.triage import ACTION_LABELS

TEMPLATES = Path(__file__).resolve().parent / "templates"
SIDE_BY_SIDE_MAX_CHARS = 400_000  # larger texts: inline diff only (the side-by-side table would be huge)


def _templates(display_timezone: str = "UTC") -> jinja2.Environment:
    # Autoescape on for every template: jinja2.Environment() alone defaults to OFF.
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    tz = ZoneInfo(display_timezone)
    env.filters["when"] = lambda dt: time_element(dt, tz)
    env.filters["when_text"] = lambda dt: local_time(dt, tz)
    env.filters["iso"] = iso
    env.globals.update(safe_url=safe_url, marked_segments=marked_segments, action_labels=ACTION_LABELS)
    return env


def human_time(dt: datetime | None) -> str:
    return iso(dt).replace("T", " ").replace("Z", " UTC") if dt else "never"


def local_time(dt: datetime | None, tz: ZoneInfo) -> str:
    """The time in the display time zone, named by its abbreviation (EST, EDT, UTC)."""
    if dt is None:
        return "never"
    local = as_utc(dt).astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "")


def time_element(dt: datetime | None, tz: ZoneInfo) -> Markup:
    """<time> in the display time zone, with the machine-readable instant and UTC in its tooltip."""
    if dt is None:
        return Markup("never")
    # escape() and an f-string: Markup.format's formatter took a tenth of a change log page's rendering
    return Markup(f'<time datetime="{escape(iso(dt))}" title="{escape(human_time(dt))}">{escape(local_time(dt, tz))}</time>')


def safe_url(url: str | None) -> str | None:
    """The URL if it may become a link (http/https, no control characters), else None."""
    if not url or any(ord(c) < 33 or c == "\x7f" for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def marked_segments(marked: str) -> list[tuple[str, bool]]:
    """«term» markers of the classifier -> [(text, is_term)]; the template escapes each piece."""
    out: list[tuple[str, bool]] = []
    rest = marked or ""
    while rest:
        a = rest.find("«")
        b = rest.find("»", a + 1) if a >= 0 else -1
        if a < 0 or b < 0:
            out.append((rest, False))
            break
        if a:
            out.append((rest[:a], False))
        out.append((rest[a + 1 : b], True))
        rest = rest[b + 1 :]
    return out


def _pair_segments(old: str, new: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    runs = highlight(old, new)
    left = [(t, op == -1) for op, t in runs if op in (0, -1)]
    right = [(t, op == 1) for op, t in runs if op in (0, 1)]
    return left, right


@dataclass
class DiffLine:
    kind: str  # add | del | ctx | gap
    segments: list[tuple[str, bool]]


def inline_rows(unified: str) -> list[DiffLine]:
    """The stored "+ / - /   / ..." diff as rows; a removed line directly followed by an added one
    is a rewording, highlighted inside the sentence."""
    lines = unified.splitlines()
    rows: list[DiffLine] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "...":
            rows.append(DiffLine("gap", [("…", False)]))
        elif line.startswith("- ") and i + 1 < len(lines) and lines[i + 1].startswith("+ "):
            left, right = _pair_segments(line[2:], lines[i + 1][2:])
            rows += [DiffLine("del", left), DiffLine("add", right)]
            i += 1
        elif line.startswith("- "):
            rows.append(DiffLine("del", [(line[2:], False)]))
        elif line.startswith("+ "):
            rows.append(DiffLine("add", [(line[2:], False)]))
        else:
            rows.append(DiffLine("ctx", [(line[2:] if line.startswith("  ") else line, False)]))
        i += 1
    return rows


@dataclass
class SideRow:
    kind: str  # equal | replace | delete | insert | gap
    old_no: int | None = None
    old: list[tuple[str, bool]] | None = None
    new_no: int | None = None
    new: list[tuple[str, bool]] | None = None


def side_by_side(old_text: str, new_text: str, context: int = 2) -> list[SideRow] | None:
    """Paragraph-aligned two-column diff with changed words marked; None when too large."""
    if len(old_text) + len(new_text) > SIDE_BY_SIDE_MAX_CHARS:
        return None
    a = [ln for ln in old_text.splitlines() if ln.strip()]
    b = [ln for ln in new_text.splitlines() if ln.strip()]
    rows: list[SideRow] = []
    for g, group in enumerate(SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context)):
        if g or (group and (group[0][1] or group[0][3])):
            rows.append(SideRow("gap"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [SideRow("equal", i1 + k + 1, [(a[i1 + k], False)], j1 + k + 1, [(b[j1 + k], False)]) for k in range(i2 - i1)]
                continue
            n = max(i2 - i1, j2 - j1)
            for k in range(n):
                oi, nj = i1 + k, j1 + k
                has_old, has_new = oi < i2, nj < j2
                if has_old and has_new:
                    left, right = _pair_segments(a[oi], b[nj])
                    rows.append(SideRow("replace", oi + 1, left, nj + 1, right))
                elif has_old:
                    rows.append(SideRow("delete", oi + 1, [(a[oi], False)]))  # the row colour says it all
                else:
                    rows.append(SideRow("insert", None, None, nj + 1, [(b[nj], False)]))
    return rows


