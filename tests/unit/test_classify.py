"""Relevance engine: built-in topics on our own example texts, definitions, errors, bad input."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from monitor.classify import (
    SEVERITIES, DefinitionChange, Evidence, TopicMatch, builtin_topics, classify, load_topics,
    severity_at_least,
)
from state.errors import TopicError

CASES = yaml.safe_load((Path(__file__).parents[1] / "data" / "classify" / "cases.yaml").read_text())


def topics_of(matches: list[TopicMatch]) -> list[str]:
    return sorted(m.topic for m in matches)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_example_texts(case):
    matches = classify(case["text"])
    assert topics_of(matches) == sorted(case["expect"])
    for m in matches:
        assert m.score >= next(t.threshold for t in builtin_topics() if t.id == m.topic)
        assert m.evidence, "every match carries evidence"
        for e in m.evidence:
            assert e.terms and all(f"«{t}»" in e.marked for t in e.terms)
            assert e.marked.replace("«", "").replace("»", "") == e.sentence
    for topic, minimum in (case.get("severity") or {}).items():
        got = next(m for m in matches if m.topic == topic)
        assert severity_at_least(got.severity, minimum), (topic, got.severity)


def test_builtin_topics_are_the_two_documented_ones_and_cached():
    assert [t.id for t in builtin_topics()] == ["extremism-definitions", "opr-outcomes"]
    assert builtin_topics()[0] is builtin_topics()[0]


def test_match_to_dict_shape():
    [m] = classify("ICE OPR substantiated allegations against 12 ICE employees; 4 were suspended for 30 days.")
    d = m.to_dict()
    assert set(d) == {"id", "title", "score", "severity", "evidence", "definition_changes"}
    assert d["id"] == "opr-outcomes" and d["severity"] in SEVERITIES
    assert set(d["evidence"][0]) == {"rule", "sentence", "marked", "terms"}
    assert "«ICE OPR»" in d["evidence"][0]["marked"] or "«ICE»" in d["evidence"][0]["marked"]


def test_results_are_best_first():
    text = ("ICE OPR substantiated misconduct allegations against 40 ICE employees linked to a white "
            "supremacist group; 12 were removed from federal service. The NTAS bulletin mentions "
            "domestic violent extremists.")
    matches = classify(text)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert topics_of(matches) == ["extremism-definitions", "opr-outcomes"]


DEF_OLD = "Domestic violent extremism means violence by individuals based in the United States."
DEF_NEW = "Domestic violent extremism means violence by lone offenders or groups in the United States."


@pytest.mark.parametrize(
    "added, removed, change, old, new",
    [
        (DEF_NEW, "", "added", None, DEF_NEW),
        ("", DEF_OLD, "removed", DEF_OLD, None),
        (DEF_NEW, DEF_OLD, "reworded", DEF_OLD, DEF_NEW),
        ('For this policy, the term "domestic terrorism" refers to acts dangerous to human life.', "",
         "added", None, 'For this policy, the term "domestic terrorism" refers to acts dangerous to human life.'),
    ],
    ids=["added", "removed", "reworded", "the-term-refers-to"],
)
def test_definition_changes_are_explicit_and_high(added, removed, change, old, new):
    [m] = classify(added, removed=removed)
    assert m.topic == "extremism-definitions" and m.severity == "high"
    [d] = m.definition_changes
    assert (d.change, d.old, d.new) == (change, old, new)
    assert m.to_dict()["definition_changes"][0]["change"] == change
    assert m.evidence[0].rule == f"definition-{change}"


def test_unchanged_definition_is_not_a_change():
    # the same sentence on both sides (moved, re-wrapped): nothing was added, removed or reworded
    assert classify(DEF_OLD, removed=DEF_OLD.replace("individuals ", "individuals\n")) == []
    assert classify("", removed="") == []


def test_removed_banner_matches_nothing():
    removed = "Official website of the Department of Homeland Security. OIG employees are working remotely."
    assert classify("", removed=removed) == []


def test_context_already_on_the_page_is_not_passed_in():
    # A change that adds only a contact line to an OPR outcomes page is not itself an outcome.
    assert classify("Call OPR at 833-4ICE-OPR.") == []


@pytest.mark.parametrize(
    "text",
    ["", "   \n\n  ", "\x00\x01\x02\xff" * 1000, bytes(range(256)).decode("latin-1") * 200,
     "\ud7ff" * 10, "İ" * 5000 + " DHS"],
    ids=["empty", "whitespace", "control-chars", "latin1-junk", "odd-unicode", "lowercase-grows"],
)
def test_bad_input_matches_nothing_and_does_not_fail(text):
    assert classify(text) == []


def test_binary_junk_around_a_relevant_sentence_still_matches():
    text = "\x00\x07" * 500 + " The Secretary signed a new Executive Order defining domestic terrorism. " + "\x1b" * 500
    assert topics_of(classify(text)) == ["extremism-definitions"]


ONE_MB_SOURCE = " ".join(c["text"] for c in CASES)


@pytest.mark.parametrize(
    "text",
    [
        (ONE_MB_SOURCE * (1_000_000 // len(ONE_MB_SOURCE) + 1))[:1_000_000],
        "a" * 1_000_000,
        "review of " * 100_000,
        "(" * 500_000 + "1" * 500_000,
    ],
    ids=["corpus-like", "one-long-word", "repeated-trigger", "punctuation-and-digits"],
)
def test_one_megabyte_is_bounded(text):
    """No catastrophic backtracking or quadratic work: a generous bound, not a speed target
    (speed is measured by bench/relevance.py, which reports the 1 MB figure; ~0.4-0.6 s here)."""
    classify("warm up")
    assert _best_of_three(lambda: classify(text)) < 10.0


def _best_of_three(fn) -> float:
    """Seconds of the fastest of three runs: a guard against a busy test machine, not a benchmark
    (bench/relevance.py reports the real figure)."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def test_one_megabyte_of_nothing_but_hits_is_bounded():
    # every word a hit in one endless paragraph: the worst case for evidence and proximity
    text = "DHS ICE OPR misconduct 1,000 cases " * 30_000
    t0 = time.perf_counter()
    [m] = classify(text)
    assert time.perf_counter() - t0 < 20.0  # bounded, not a speed target
    assert m.topic == "opr-outcomes" and len(m.evidence) <= 3 * len(builtin_topics()[1].rules)


def test_fifty_megabytes_is_bounded():
    text = "Nothing to see here. " * 2_500_000  # 52 MB
    t0 = time.perf_counter()
    assert classify(text) == []
    assert time.perf_counter() - t0 < 30.0  # bounded (the first 3 MB are read), not a speed target


def test_custom_topic_same_schema_as_builtins():
    [topic] = load_topics([{
        "id": "grants", "title": "Grant terminations", "threshold": 2,
        "groups": {"grant": {"phrases": ["grant", "cooperative agreement"]},
                   "ended": {"phrases": ["terminated", "rescinded"], "acronyms": ["TVTP"]}},
        "rules": [{"id": "terminated", "all": ["grant", "ended"], "within": "6 words", "weight": 2}],
    }])
    assert topics_of(classify("FEMA terminated the TVTP grant program.", [topic])) == ["grants"]
    assert classify("The grant was awarded in 2020 and renewed for three years before it was terminated.", [topic]) == []
    assert classify("the tvtp grant", [topic]) == []  # acronyms are case-sensitive


def test_exclusion_and_unless_scopes():
    [topic] = load_topics([{
        "id": "t", "title": "T",
        "groups": {"a": {"phrases": ["alpha"]}, "b": {"phrases": ["beta"]}, "x": {"phrases": ["noise"]}},
        "rules": [{"id": "r", "all": ["a", "b"], "within": "paragraph", "unless": {"x": "sentence"}}],
        "exclude": {"x": "document"},
    }])
    assert topics_of(classify("Alpha here. Beta there.", [topic])) == ["t"]
    assert classify("Alpha here.\n\nBeta there.", [topic]) == []
    assert classify("Alpha here. Beta there.\n\nSome noise.", [topic]) == []


@pytest.mark.parametrize(
    "data, topic, problems",
    [
        (
            [{"id": "my-topic", "title": "T", "rules": [{"id": "outcome", "patterns": ["(unclosed"]}]}],
            "my-topic",
            ["topics[0] 'my-topic' rule 'outcome': bad pattern '(unclosed': missing ), unterminated subpattern at position 0"],
        ),
        (
            [{"id": "my-topic", "title": "T", "groups": {"g": {"patterns": ["(a+)+b"]}},
              "rules": [{"id": "r", "all": ["g", "nope"], "wieght": 2, "within": "sentnce"}]},
             {"id": "Bad Id", "rules": []},
             "x",
             {"id": "t2", "title": "T2", "rules": [{"id": "r", "any": ["g"], "at_least": 3, "of": ["a"]}],
              "exclude": {"zz": "page"}}],
            "my-topic, Bad Id, topics[2], t2",
            [
                "topics[0] 'my-topic' rule 'r'.wieght: unknown field",
                "topics[0] 'my-topic' group 'g': bad pattern '(a+)+b': nested quantifier (catastrophic backtracking); bound the inner or outer repeat",
                "topics[0] 'my-topic' rule 'r': unknown group 'nope'; known: g",
                "topics[0] 'my-topic' rule 'r': within 'sentnce' is not sentence, paragraph, document or 'N words'",
                "topics[1] 'Bad Id' id: String should match pattern '^[a-z0-9][a-z0-9_-]*$'",
                "topics[1] 'Bad Id' title: missing",
                "topics[1] 'Bad Id' rules: List should have at least 1 item after validation, not 0",
                "topics[2]: must be a mapping with id, title and rules",
                "topics[3] 't2' rule 'r': unknown group 'g'; known: (none)",
                "topics[3] 't2' rule 'r': unknown group 'a'; known: (none)",
                "topics[3] 't2' rule 'r': at_least 3 is more than the 1 groups listed in 'of'",
                "topics[3] 't2' exclude: unknown group 'zz'; known: (none)",
                "topics[3] 't2' exclude: scope 'page' of 'zz' is not one of sentence, paragraph, document",
            ],
        ),
        (
            [{"id": "a", "title": "A", "rules": [{"id": "r", "phrases": ["x"]}]},
             {"id": "a", "title": "A again", "rules": [{"id": "r", "patterns": ["(?i)x", "y*"]}]}],
            "a",
            ["topics[1] 'a' rule 'r': bad pattern '(?i)x': global flags not at the start of the expression at position 3",
             "topics[1] 'a' rule 'r': bad pattern 'y*': matches the empty string",
             "topics[1] 'a' duplicate topic id 'a'"],
        ),
    ],
    ids=["bad-pattern", "every-problem-at-once", "duplicates-and-flags"],
)
def test_topic_errors_are_located_and_exact(data, topic, problems):
    with pytest.raises(TopicError) as err:
        load_topics(data)
    assert err.value.topic == topic
    assert err.value.problems == problems
    assert str(err.value) == "; ".join(problems)


def test_load_topics_where_names_the_place():
    with pytest.raises(TopicError) as err:
        load_topics([{"id": "x", "title": "X", "rules": [{"id": "r"}]}], where="govwatch.yaml topics")
    assert err.value.problems == [
        "govwatch.yaml topics[0] 'x' rule 'r': needs groups (all, any or at_least/of) or its own phrases, acronyms or patterns"
    ]


@pytest.mark.parametrize(
    "severity, minimum, expected",
    [("low", "low", True), ("low", "medium", False), ("high", "medium", True), ("medium", "high", False)],
    ids=["low-low", "low-medium", "high-medium", "medium-high"],
)
def test_severity_at_least(severity, minimum, expected):
    assert severity_at_least(severity, minimum) is expected


def test_severity_at_least_rejects_unknown():
    with pytest.raises(ValueError, match="unknown severity 'urgent'"):
        severity_at_least("urgent", "low")


def test_result_types_are_frozen():
    e = Evidence("r", "s", "s", ())
    d = DefinitionChange("t", "added", None, "new")
    with pytest.raises(AttributeError):
        e.rule = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        d.term = "x"  # type: ignore[misc]


def test_user_patterns_are_bounded_by_sentences():
    [topic] = load_topics([{"id": "greedy", "title": "G", "rules": [
        {"id": "r", "patterns": [r"a\w*.*zzz", r"(?:\W|^)b.*q.*zzz"]}]}])
    # A greedy pattern costs at most (words x sentence cap): sentences are cut at 1,000 characters
    # and no match runs past its sentence, so even a line of nothing but 'a' stays bounded.
    for text, bound in (((ONE_MB_SOURCE * 200)[:1_000_000], 10.0), ("a " * 150_000, 30.0)):  # bounded, not speed targets
        assert classify(text, [topic]) == []
        assert _best_of_three(lambda: classify(text, [topic])) < bound
    assert topics_of(classify("An alpha then zzz.", [topic])) == ["greedy"]
