"""Operator patterns run on RE2 (issue 16.6): the classifier's word boundaries behave as with re,
and what RE2 cannot run in bounded time is refused with the reason."""
from __future__ import annotations

import re

import pytest

from monitor.classify import classify, load_topics
from monitor.patterns import BoundedPattern, PatternError
from state.errors import TopicError

TEXTS = ["He was SUSPENDED today.", "unsuspended x", "suspended-", "pre-suspended suspended suspendedx suspend",
         "suspend", "x_suspended suspended_x", "Employés suspendus; suspended!", ""]


@pytest.mark.parametrize("pattern", [r"suspend(?:ed|ing)?", r"suspend\w*", r"sus.{0,3}ed", r"(?:pre-)?suspended"])
def test_word_boundaries_match_like_re(pattern):
    bounded = BoundedPattern(pattern, ignorecase=True, words=True)
    py = re.compile(bounded.pattern, bounded.flags)
    for text in TEXTS:
        assert [m.span() for m in bounded.finditer(text)] == [m.span() for m in py.finditer(text)], text
        for i in range(len(text)):
            for end in (len(text), max(i, len(text) - 3)):
                a, b = bounded.match(text, i, end), py.match(text, i, end)
                assert (a and a.span()) == (b and b.span()), (text, i, end)


@pytest.mark.parametrize("pattern", [r"(?<=x)y", r"x(?!y)", r"(a)\1", r"(?P<q>a)(?P=q)"],
                         ids=["lookbehind", "lookahead", "backreference", "named-backreference"])
def test_what_re2_cannot_run_is_refused(pattern):
    with pytest.raises(PatternError, match="cannot be run in bounded time"):
        BoundedPattern(pattern)
    with pytest.raises(TopicError) as ei:
        load_topics([{"id": "t", "title": "T", "rules": [{"id": "r", "patterns": [pattern]}]}])
    assert ei.value.problems == [f"topics[0] 't': bad pattern '{pattern}': " + ei.value.problems[0].split(": ", 2)[2]]
    assert "operator patterns run on RE2" in ei.value.problems[0]


def test_backtracking_bomb_in_a_user_topic_runs_in_linear_time():
    import time

    topic = load_topics([{"id": "bomb", "title": "Bomb", "rules": [{"id": "r", "patterns": ["(a|a?)+b"]}]}])[0]
    t0 = time.perf_counter()
    assert classify(("a" * 990 + " ") * 30 + "aab", [topic])[0].topic == "bomb"
    assert time.perf_counter() - t0 < 2.0


def test_builtin_topics_keep_their_lookarounds():
    from monitor.classify import builtin_topics

    assert any("(?<!" in rx.pattern for t in builtin_topics() for g in t.groups.values() for rx, _ in g.regexes)
