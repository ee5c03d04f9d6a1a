"""What a change means for the topics: the added text classified (a new document in full), the
text that disappeared classified by the same rules (it alerts as REMOVED), reworded sentences
shown old -> new rather than as a removal plus an addition, and a source's `alert_on` phrases."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from monitor import classify as classify_mod
from monitor.classify import Evidence, Topic, TopicMatch

ALERT_ON = "alert-on"  # the topic id of a source's `alert_on` phrases


@dataclass(frozen=True)
class ChangeEvidence(Evidence):
    """Evidence of a change: `old` is the sentence a reworded one replaced (31 -> 33
    investigations); `removed` says the sentence disappeared."""

    old: str | None = None
    removed: bool = False

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.old is not None:
            out["old"] = self.old
        if self.removed:
            out["removed"] = True
        return out


def alert_on_topic(source_id: str, phrases: Sequence[str]) -> Topic | None:
    """A source's `alert_on` phrases as a one-rule topic: any added sentence containing one alerts
    (medium severity), with that sentence as evidence. None without phrases."""
    if not phrases:
        return None
    spec = {"id": ALERT_ON, "title": f"alert_on phrases of {source_id}",
            "rules": [{"id": ALERT_ON, "phrases": list(phrases), "weight": 1.0, "severity": "medium"}]}
    return classify_mod.load_topics([spec], where=f"sources '{source_id}' alert_on")[0]


def judge(added: str, topics: Sequence[Topic], *, removed: str = "", replaced: Sequence[tuple[str, str]] = (),
          alert_on: Topic | None = None) -> list[TopicMatch]:
    """The matches of one change, best first. `added` and `removed` are the texts that appeared
    and disappeared (a removed page or item: `removed` only); `replaced` the (old, new) pairs of
    reworded units among them. A topic seen only in what disappeared is a match with
    `removed=True`; a removed passage of a topic that also matched the added text is evidence of
    that match, marked removed; a reworded sentence is one piece of evidence, old -> new."""
    added_topics = [*topics, *([alert_on] if alert_on is not None and added.strip() else [])]
    matches = [_reworded(m, replaced) for m in classify_mod.classify(added, added_topics, removed=removed)]
    if not removed.strip():
        return matches
    by_topic = {m.topic: m for m in matches}
    found_in_added = {m.topic for m in matches if not m.removed}
    for gone in classify_mod.classify(removed, topics):  # the rules on what disappeared; alert_on never
        evidence = []
        for e in gone.evidence:
            if e.rule.startswith("definition-"):
                continue  # definitions are compared old against new by the added pass
            new = _counterpart(e.sentence, replaced, side=0)
            if new is not None and gone.topic in found_in_added:
                continue  # reworded, and the new wording still matches: shown old -> new there
            evidence.append(ChangeEvidence(e.rule, e.sentence, e.marked, e.terms, removed=True))
        if not evidence:
            continue
        mine = by_topic.get(gone.topic)
        if mine is None:
            by_topic[gone.topic] = TopicMatch(gone.topic, gone.title, gone.score, gone.severity, tuple(evidence), removed=True)
            continue
        severity = max(mine.severity, gone.severity, key=classify_mod.SEVERITIES.index) if mine.removed else mine.severity
        by_topic[gone.topic] = TopicMatch(mine.topic, mine.title, max(mine.score, gone.score) if mine.removed else mine.score,
                                          severity, mine.evidence + tuple(evidence), mine.definition_changes, mine.removed)
    out = list(by_topic.values())
    out.sort(key=lambda m: (-m.score, -classify_mod.SEVERITIES.index(m.severity), m.topic))
    return out


def _reworded(m: TopicMatch, replaced: Sequence[tuple[str, str]]) -> TopicMatch:
    """Evidence sentences that reword an old one carry it (old -> new); a match that only says a
    definition was removed is a removal."""
    rules = [e for e in m.evidence if not e.rule.startswith("definition-")]
    only_removed_definitions = not rules and m.definition_changes and all(d.change == "removed" for d in m.definition_changes)
    evidence = []
    for e in m.evidence:
        old = None if e.rule.startswith("definition-") else _counterpart(e.sentence, replaced, side=1)
        gone = bool(only_removed_definitions)
        evidence.append(ChangeEvidence(e.rule, e.sentence, e.marked, e.terms, old=old, removed=gone) if old or gone else e)
    return TopicMatch(m.topic, m.title, m.score, m.severity, tuple(evidence), m.definition_changes,
                      removed=bool(only_removed_definitions))


def _counterpart(sentence: str, replaced: Sequence[tuple[str, str]], *, side: int) -> str | None:
    """The other side of the reworded pair whose `side` (0 old, 1 new) holds this evidence sentence."""
    parts = [" ".join(p.split()) for p in sentence.split(" … ") if p.strip()]
    for pair in replaced:
        unit = " ".join(pair[side].split())
        if any(p == unit or (len(p) >= 20 and p in unit) or (len(unit) >= 20 and unit in p) for p in parts):
            return pair[1 - side]
    return None
