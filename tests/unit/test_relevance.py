"""What a change means for the topics (monitor/relevance.py): what disappeared is classified by the
same rules (REMOVED), a reworded sentence is one piece of evidence old -> new, `alert_on` phrases
trigger on added text only; evidence is one entry per sentence and a headline is never a definition."""
from __future__ import annotations

import pytest

from monitor.classify import builtin_topics, classify
from monitor.diff import diff
from monitor.relevance import ALERT_ON, alert_on_topic, judge

TOPICS = builtin_topics()
STATS = ("In fiscal year 2025, ICE OPR opened {n} investigations of employees alleged to have ties to extremist groups; "
         "{k} allegations were substantiated and 4 employees were removed from federal service.")
PAGE = "Office of Professional Responsibility.\n\n{stats}\n\nOPR investigates allegations of misconduct."
DEFINITION = ("For purposes of this strategy, the term \"domestic violent extremism\" means violence by people acting "
              "on political goals that stem from domestic influences.")


def change_matches(old: str, new: str):
    d = diff(old, new)
    return judge(d.added_text, TOPICS, removed=d.removed_text, replaced=d.replaced)


def test_reworded_statistics_are_one_piece_of_evidence_old_to_new():
    old, new = PAGE.format(stats=STATS.format(n=31, k=9)), PAGE.format(stats=STATS.format(n=33, k=11))
    [m] = change_matches(old, new)
    assert (m.topic, m.removed) == ("opr-outcomes", False)
    evidence = [e.to_dict() for e in m.evidence]
    assert len(evidence) == 1  # not a removal plus an addition
    assert "33 investigations" in evidence[0]["sentence"] and "31 investigations" in evidence[0]["old"]
    assert not evidence[0].get("removed")


@pytest.mark.parametrize("old,new", [
    (PAGE.format(stats=STATS.format(n=31, k=9)), PAGE.format(stats="")),
    (PAGE.format(stats=STATS.format(n=31, k=9)), ""),  # the whole page removed: judge("", removed=text)
], ids=["passage-deleted-page-stays", "page-removed"])
def test_what_disappears_is_classified_by_the_same_rules(old, new):
    matches = change_matches(old, new) if new else judge("", TOPICS, removed=old)
    [m] = matches
    assert (m.topic, m.removed, m.severity) == ("opr-outcomes", True, "high")
    assert all(e.to_dict().get("removed") for e in m.evidence)
    assert "31 investigations" in m.evidence[0].sentence and "«substantiated»" in m.evidence[0].marked
    assert m.to_dict()["removed"] is True
    # without the removal pass, the classifier sees nothing in what was added
    assert classify("", TOPICS, removed=old) == []


def test_a_removed_passage_of_a_topic_also_added_is_its_evidence_marked_removed():
    old = PAGE.format(stats=STATS.format(n=31, k=9))
    added = ("ICE OPR substantiated allegations that a supervisor was a member of a militia extremist group; "
             "the supervisor resigned in lieu of removal.")
    new = old.replace(STATS.format(n=31, k=9), added)
    [m] = change_matches(old, new)
    assert m.removed is False
    flags = [(e.to_dict().get("removed", False), "31 investigations" in e.sentence) for e in m.evidence]
    assert (False, False) in flags and (True, True) in flags


def test_a_removed_definition_alone_is_a_removal():
    [m] = judge("", TOPICS, removed=DEFINITION)
    assert (m.topic, m.removed) == ("extremism-definitions", True)
    assert [d.change for d in m.definition_changes] == ["removed"]


def test_unrelated_removals_match_nothing():
    old = PAGE.format(stats="The office moved to a new building in 2024.")
    assert change_matches(old, PAGE.format(stats="")) == []


def test_alert_on_phrases_trigger_on_added_text_only():
    topic = alert_on_topic("ice-news", ["use of force", "body-worn camera"])
    [m] = judge("ICE published its body worn camera directive today.", TOPICS, alert_on=topic)
    assert (m.topic, m.severity) == (ALERT_ON, "medium") and m.evidence[0].marked == "ICE published its «body worn camera» directive today."
    assert judge("", TOPICS, removed="The use of force policy was revised.", alert_on=topic) == []
    assert judge("Nothing of the kind here.", TOPICS, alert_on=topic) == []
    assert alert_on_topic("x", []) is None


def test_evidence_is_one_entry_per_sentence_and_a_headline_is_never_a_definition():
    title = "DHS Redefines Domestic Violent Extremism"
    text = f"{title}\n\n{title}\n\nDHS redefines domestic violent extremism to include anti-government actors. {title}."
    [m] = classify(text, TOPICS)
    sentences = [e.sentence.rstrip(".").lower() for e in m.evidence]
    assert sentences.count(title.lower()) == 1, sentences
    assert [d.new for d in m.definition_changes] == ["DHS redefines domestic violent extremism to include anti-government actors."]
