"""Operator regexes (a source's `ignore:`, the patterns of a topic in govwatch.yaml) run on RE2, whose
matching time is linear in the text: no pattern can freeze a check. What RE2 cannot run (lookaround,
backreferences) is refused at load with the reason; the built-in topics keep Python's `re`."""
from __future__ import annotations

import re
from typing import Iterator

import re2

# How the classifier's `(?<![\w-])` and `(?!\w)` word boundaries are spelled without lookaround:
# the neighbouring character is consumed (or is the edge of the text) and kept out of the match.
_WORD = r"\pL\pN_"
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 64 << 20        # a pattern whose program needs more than this is refused
_RE2_OPTIONS.log_errors = False        # a refused pattern is reported by validation, not on stderr


class PatternError(ValueError):
    """An operator pattern that cannot be compiled, or not run in bounded time."""


def _compile(pattern: str) -> "re2._Regexp":
    return re2.compile(pattern, options=_RE2_OPTIONS)


def check(pattern: str) -> str | None:
    """Why `pattern` cannot be an operator pattern (the reason alone), or None."""
    try:
        re.compile(pattern)
    except re.error as e:
        return str(e)
    try:
        _compile(pattern)
    except re2.error as e:
        why = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        return (f"cannot be run in bounded time ({why}); operator patterns run on RE2, which has no "
                "lookaround ((?=, (?!, (?<=, (?<!) and no backreferences")
    return None


class _Span:
    __slots__ = ("_start", "_end", "_text")

    def __init__(self, text: str, start: int, end: int):
        self._text, self._start, self._end = text, start, end

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._end

    def span(self) -> tuple[int, int]:
        return self._start, self._end

    def group(self, n: int = 0) -> str:
        if n:
            raise IndexError("only the whole match is kept")
        return self._text[self._start:self._end]


class BoundedPattern:
    """An operator pattern on RE2 with the parts of `re.Pattern` that govwatch uses: `sub` (ignore
    patterns) and, with `words=True`, `match`/`finditer` between the classifier's word boundaries.

    `pattern` and `flags` spell it in Python's syntax (with the boundaries as lookarounds), so the
    classifier's first-character screen reads it like its other patterns.
    """

    def __init__(self, pattern: str, *, ignorecase: bool = False, words: bool = False):
        problem = check(pattern)
        if problem:
            raise PatternError(f"bad pattern '{pattern}': {problem}")
        self.source = pattern
        self.words = words
        self.flags = (re.IGNORECASE if ignorecase else 0) | re.UNICODE
        self.pattern = rf"(?<![\w-])(?:{pattern})(?!\w)" if words else pattern
        fl = "(?i)" if ignorecase else ""
        self._plain = _compile(f"{fl}(?:{pattern})")
        if words:
            right = rf"(?:[^{_WORD}]|$)"
            self._anchored = _compile(rf"{fl}((?:{pattern})){right}")
            self._at_start = _compile(rf"{fl}(?:^|[^{_WORD}-])((?:{pattern})){right}")
            self._after = _compile(rf"{fl}[^{_WORD}-]((?:{pattern})){right}")

    def __repr__(self) -> str:
        return f"BoundedPattern({self.source!r})"

    def sub(self, repl: str, string: str, count: int = 0) -> str:
        return self._plain.sub(repl, string, count)

    def search(self, string: str):
        return self._plain.search(string)

    @staticmethod
    def _left_ok(text: str, pos: int) -> bool:
        if pos == 0:
            return True
        c = text[pos - 1]
        return not (c.isalnum() or c in "_-")

    def match(self, text: str, pos: int = 0, endpos: int | None = None) -> _Span | None:
        """A match starting at `pos` and ending by `endpos`, between word boundaries (words=True)."""
        end = len(text) if endpos is None else min(endpos, len(text))
        if not self.words:
            m = self._plain.match(text[pos:end])
            return None if m is None else _Span(text, pos + m.start(), pos + m.end())
        if not self._left_ok(text, pos):
            return None
        m = self._anchored.match(text[pos:end])
        return None if m is None else _Span(text, pos + m.start(1), pos + m.end(1))

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None) -> Iterator[_Span]:
        """Non-overlapping matches in text[pos:endpos], leftmost first, like re's finditer."""
        end = len(text) if endpos is None else min(endpos, len(text))
        if not self.words:
            for m in self._plain.finditer(text[pos:end]):
                yield _Span(text, pos + m.start(), pos + m.end())
            return
        i = pos
        while i <= end:
            if i == 0:
                m, base = self._at_start.search(text[:end]), 0
            else:                     # the character before i is consumed as the left boundary
                m, base = self._after.search(text[i - 1:end]), i - 1
            if m is None:
                return
            s, e = base + m.start(1), base + m.end(1)
            yield _Span(text, s, e)
            i = e if e > s else e + 1
