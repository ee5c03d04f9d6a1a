"""Pure diff of two extracted texts at sentence granularity: what was added, removed or reworded.

Units are compared as a multiset, so moved or re-ordered blocks and whitespace edits are no change.
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field

from diff_match_patch import diff_match_patch

# Pairing rewordings compares every removed unit with every added one: cap both sides so a
# rewritten 5 MB page stays bounded (200 x 200 word-level comparisons at most).
MAX_PAIRING_UNITS = 200
REWORD_SIMILARITY = 0.5
# unified() aligns the differing middle of the two unit lists with SequenceMatcher, whose cost
# grows with repeated units; past this size it lists the changes without alignment.
MAX_ALIGN_UNITS = 20_000

# Lower-cased words that end with a dot without ending a sentence. Dotted forms (U.S., a.m.,
# e.g., D.C.) and single letters (initials, "v.") are recognised by shape, not listed.
_ABBREVIATIONS = frozenset({
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "sec", "secs", "dr", "mr", "mrs", "ms", "vs", "al", "inc", "corp", "co", "ltd", "jr",
    "sr", "st", "gen", "gov", "sen", "rep", "reps", "hon", "pub", "stat", "fed", "reg", "art",
    "para", "pp", "vol", "ch", "cf", "fig", "dept", "approx", "est", "lt", "col", "capt",
    "sgt", "adm", "cmdr", "supp", "amend", "exec", "admin", "assn", "div", "cir",
})
# "No." is an abbreviation only before a number ("No. 5"); "The answer is no. Then" ends a sentence.
_NUMBER_ABBREVIATIONS = frozenset({"no", "nos"})
_BOUNDARY = re.compile(r"([.!?]+)[\"'\u201d\u2019)\]]*\s+")
_SENTENCE_START = re.compile(r"[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u024f]")
_DOTTED = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")       # U.S  a.m  e.g  D.C  (last dot excluded)
_BLOCK_LINE = re.compile(r"^(?:\||[-*\u2022\u25aa]\s|\d{1,3}[.)]\s)")   # table row, bullet, numbered item
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class Diff:
    """The sentence-level difference between two texts."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    replaced: tuple[tuple[str, str], ...]
    # The unit lists, kept for unified(); not part of equality.
    old_units: tuple[str, ...] = field(default=(), repr=False, compare=False)
    new_units: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    @property
    def added_text(self) -> str:
        return "\n".join(self.added)

    @property
    def removed_text(self) -> str:
        return "\n".join(self.removed)

    def unified(self, context: int = 1) -> str:
        """Readable "- old" / "+ new" / "  context" lines; hunks separated by "...".

        Moved units are no change and are left out; unchanged units appear only as context.
        """
        if not self.changed:
            return ""
        if self.old_units or self.new_units:
            rows = _aligned_rows(self.old_units, self.new_units, self.added, self.removed)
        else:                                            # a Diff built by hand: no order to follow
            rows = [("-", u) for u in self.removed] + [("+", u) for u in self.added]
        changed_at = [i for i, (tag, _) in enumerate(rows) if tag != " "]
        keep = set()
        for i in changed_at:
            keep.update(range(max(0, i - context), min(len(rows), i + context + 1)))
        out: list[str] = []
        previous = None
        for i in sorted(keep):
            if previous is not None and i != previous + 1:
                out.append("...")
            tag, unit = rows[i]
            out.append(f"{tag} {unit}")
            previous = i
        return "\n".join(out)


def _normalise_ws(text: str) -> str:
    return " ".join(text.split())


def _is_abbreviation(token: str, following: str) -> bool:
    word = token.lstrip("\"'(\u201c\u2018[")
    if not word:
        return False
    if len(word) == 1 and word.isalpha():               # initials (John F. Kennedy), "v.", "L."
        return True
    if _DOTTED.match(word):
        return True
    lower = word.lower()
    if lower in _ABBREVIATIONS:
        return True
    return lower in _NUMBER_ABBREVIATIONS and following[:1].isdigit()


def _split_sentences(paragraph: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(paragraph):
        # Match in place: slicing the rest of the paragraph per boundary would be quadratic.
        if not _SENTENCE_START.match(paragraph, m.end()):
            continue
        if m.group(1) == ".":
            # A single dot: the word before it may be an abbreviation rather than a sentence end.
            token = paragraph[paragraph.rfind(" ", start, m.start()) + 1:m.start()]
            if _is_abbreviation(token, paragraph[m.end():m.end() + 1]):
                continue
        sentences.append(paragraph[start:m.end()].strip())
        start = m.end()
    tail = paragraph[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _paragraph_lines(paragraph: str) -> list[str]:
    """Lines of a paragraph joined back into flowing text, except table rows and list items.

    PDFs wrap sentences across lines; re-joining keeps a re-flowed paragraph equal to the old one.
    """
    blocks: list[str] = []
    current: list[str] = []
    for raw in paragraph.split("\n"):
        line = raw.strip()
        if not line:
            continue
        if _BLOCK_LINE.match(line):
            if current:
                blocks.append(" ".join(current))
                current = []
            blocks.append(line)
        else:
            current.append(line)
    if current:
        blocks.append(" ".join(current))
    return blocks


def split_units(text: str) -> list[str]:
    """Paragraphs, then sentences, each whitespace-normalised; table rows and list items stay whole."""
    units: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        for block in _paragraph_lines(paragraph):
            block = _normalise_ws(block)
            if block.startswith("|"):                    # a table row is one unit
                units.append(block)
            elif block:
                units.extend(_split_sentences(block))
    return units


def _multiset_minus(units: list[str], other: Counter) -> tuple[str, ...]:
    """Units of `units` (in order) beyond their count in `other`."""
    budget = Counter(units)
    budget.subtract(other)
    out = []
    for u in units:
        if budget[u] > 0:
            out.append(u)
            budget[u] -= 1
    return tuple(out)


def _similarity(a: list[str], b: list[str]) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _pair_rewordings(removed: tuple[str, ...], added: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Greedy best-first pairing of removed and added units whose word-level similarity >= 0.5."""
    rem = removed[:MAX_PAIRING_UNITS]
    add = added[:MAX_PAIRING_UNITS]
    if not rem or not add:
        return ()
    rem_tokens = [_TOKEN.findall(u.lower()) for u in rem]
    add_tokens = [_TOKEN.findall(u.lower()) for u in add]
    rem_sets = [set(t) for t in rem_tokens]
    add_sets = [set(t) for t in add_tokens]
    candidates = []
    for i, (rt, rs) in enumerate(zip(rem_tokens, rem_sets)):
        for j, (at, as_) in enumerate(zip(add_tokens, add_sets)):
            la, lb = len(rt), len(at)
            # Cheap upper bounds first (SequenceMatcher.real_quick_ratio's length bound, then
            # shared vocabulary) so the 200 x 200 worst case costs set operations, not matchers.
            if 2 * min(la, lb) < REWORD_SIMILARITY * (la + lb):
                continue
            if 2 * len(rs & as_) < 0.4 * (len(rs) + len(as_)):
                continue
            score = _similarity(rt, at)
            if score >= REWORD_SIMILARITY:
                # Ties go to the pair nearest in relative position.
                skew = abs(i / len(rem) - j / len(add))
                candidates.append((-score, skew, i, j))
    candidates.sort()
    used_r: set[int] = set()
    used_a: set[int] = set()
    pairs = []
    for _, _, i, j in candidates:
        if i in used_r or j in used_a:
            continue
        used_r.add(i)
        used_a.add(j)
        pairs.append((i, j))
    pairs.sort(key=lambda p: p[1])                       # in new's order, like `added`
    return tuple((rem[i], add[j]) for i, j in pairs)


def diff(old: str, new: str) -> Diff:
    """Sentences added to and removed from `old` to make `new`, with likely rewordings paired."""
    if old == new:              # most fetched versions: nothing to split or compare
        return Diff(added=(), removed=(), replaced=())
    old_units = split_units(old)
    new_units = split_units(new)
    added = _multiset_minus(new_units, Counter(old_units))
    removed = _multiset_minus(old_units, Counter(new_units))
    return Diff(
        added=added,
        removed=removed,
        replaced=_pair_rewordings(removed, added),
        old_units=tuple(old_units),
        new_units=tuple(new_units),
    )


def _opcodes(a: tuple[str, ...], b: tuple[str, ...]) -> list[tuple[str, int, int, int, int]]:
    """SequenceMatcher opcodes on unit lists, with the common prefix/suffix trimmed first."""
    lo = 0
    n = min(len(a), len(b))
    while lo < n and a[lo] == b[lo]:
        lo += 1
    hi_a, hi_b = len(a), len(b)
    while hi_a > lo and hi_b > lo and a[hi_a - 1] == b[hi_b - 1]:
        hi_a -= 1
        hi_b -= 1
    ops: list[tuple[str, int, int, int, int]] = []
    if lo:
        ops.append(("equal", 0, lo, 0, lo))
    mid_a, mid_b = a[lo:hi_a], b[lo:hi_b]
    if len(mid_a) + len(mid_b) <= MAX_ALIGN_UNITS:
        matcher = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            ops.append((tag, i1 + lo, i2 + lo, j1 + lo, j2 + lo))
    elif mid_a or mid_b:
        ops.append(("replace", lo, hi_a, lo, hi_b))
    if hi_a < len(a):
        ops.append(("equal", hi_a, len(a), hi_b, len(b)))
    return ops


def _aligned_rows(old_units, new_units, added, removed) -> list[tuple[str, str]]:
    """(tag, unit) rows in reading order; units that merely moved are dropped."""
    rem_budget = Counter(removed)
    add_budget = Counter(added)
    rows: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in _opcodes(tuple(old_units), tuple(new_units)):
        if tag == "equal":
            rows.extend((" ", u) for u in old_units[i1:i2])
            continue
        for u in old_units[i1:i2]:
            if rem_budget[u] > 0:
                rem_budget[u] -= 1
                rows.append(("-", u))
        for u in new_units[j1:j2]:
            if add_budget[u] > 0:
                add_budget[u] -= 1
                rows.append(("+", u))
    return rows


def highlight(old: str, new: str) -> list[tuple[int, str]]:
    """Character-level difference of two sentences as (-1 removed | 0 same | 1 added, text) runs."""
    dmp = diff_match_patch()
    dmp.Diff_Timeout = 1.0                               # seconds; bounds pathological inputs
    diffs = dmp.diff_main(old, new)
    dmp.diff_cleanupSemantic(diffs)                      # phrase-level runs instead of letter soup
    return [(op, text) for op, text in diffs]
