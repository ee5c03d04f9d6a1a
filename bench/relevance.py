"""Relevance benchmark: run the built-in topics over labelled corpus folders of *.json items.

Usage: python bench/relevance.py CORPUS_DIR [CORPUS_DIR ...]  — prints per-topic precision/recall/F1
(borderline items apart) on the whole corpus, then on its development part and on its held-out
part (`split_of`: fixed by a hash of the item id; never tune the rules on it), the misses and false
matches of each part with their ids and the evidence sentence and rule, and the time to classify
1 MB of text.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.classify import TopicMatch, builtin_topics, classify  # noqa: E402

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def change_parts(before: str, after: str) -> tuple[str, str]:
    """(added, removed) text of a change: the sentences/lines of `after` that are not in
    `before`, and those of `before` that are gone, by difflib on sentence units."""
    old = [s.strip() for s in _SENTENCE_SPLIT.split(before) if s.strip()]
    new = [s.strip() for s in _SENTENCE_SPLIT.split(after) if s.strip()]
    added: list[str] = []
    removed: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            removed += old[i1:i2]
        if op in ("replace", "insert"):
            added += new[j1:j2]
    return "\n".join(added), "\n".join(removed)


def item_input(item: dict) -> tuple[str, str]:
    """What the classifier sees for a corpus item: (added, removed).

    A document is judged as title + text, unless its `title_source` says the title was written by
    the curator (then on its text only). A change event is judged on what it ADDED only (its
    title describes the event, it is not page text)."""
    if item.get("item_type") == "change_event":
        return change_parts(item.get("text_before", ""), item.get("text", ""))
    title = "" if str(item.get("title_source", "")).startswith("curator") else item.get("title") or ""
    return f"{title}\n\n{item.get('text') or ''}", ""


def predict(item: dict) -> tuple[set[str], list[TopicMatch]]:
    added, removed = item_input(item)
    matches = classify(added, removed=removed)
    return {m.topic for m in matches}, matches


def load_corpus(folder: Path) -> list[tuple[str, dict]]:
    return [(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))]


HELD_OUT_PER_TEN = 3  # ~30% of the items are held out
_NUMBER = re.compile(r"^[a-z]+-(\d+)")


def split_of(item_id: str) -> str:
    """"dev" or "held-out", fixed up front: an item is held out when the SHA-256 of its id is 0, 1
    or 2 modulo 10. Items numbered below 100 (the 28 shared development documents the rules were
    first written from, e.g. "opr-004-...") are always "dev"."""
    m = _NUMBER.match(item_id)
    if m is None or int(m.group(1)) < 100:
        return "dev"
    h = int(hashlib.sha256(item_id.encode("utf-8")).hexdigest(), 16)
    return "held-out" if h % 10 < HELD_OUT_PER_TEN else "dev"


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def line(self, topic: str) -> str:
        p, r = self.precision, self.recall
        f = 2 * p * r / (p + r) if p + r else 0.0
        return (f"  {topic:<24} precision {p:5.3f}  recall {r:5.3f}  F1 {f:5.3f}   "
                f"tp={self.tp} fp={self.fp} fn={self.fn} tn={self.tn}")


def one_mb_text(items: list[dict]) -> str:
    chunk = "\n\n".join(f"{i.get('title', '')}\n\n{i.get('text', '')}" for i in items)
    chunk = chunk or "empty corpus "
    return (chunk * (1_000_000 // max(1, len(chunk)) + 1))[:1_000_000]


@dataclass
class Result:
    """One item's outcome: wanted and predicted topics, and the matches (with evidence)."""

    name: str
    item: dict
    split: str
    want: set[str]
    got: set[str]
    matches: list[TopicMatch]


def evaluate(corpus: list[tuple[str, dict]]) -> list[Result]:
    out = []
    for name, item in corpus:
        got, matches = predict(item)
        out.append(Result(name, item, split_of(item.get("id") or name), set(item.get("labels") or []), got, matches))
    return out


def score(results: list[Result], topics: list[str]) -> dict[str, Counts]:
    """Per-topic counts over the non-borderline results."""
    table = {t: Counts() for t in topics}
    for r in results:
        if r.item.get("difficulty") == "borderline":
            continue
        for t in topics:
            c = table[t]
            if t in r.want and t in r.got:
                c.tp += 1
            elif t in r.got:
                c.fp += 1
            elif t in r.want:
                c.fn += 1
            else:
                c.tn += 1
    return table


def _evidence_line(m: TopicMatch | None) -> str:
    if m is None or not m.evidence:
        return "(no evidence)"
    e = m.evidence[0]
    return f"{e.rule}: {e.marked[:300]}"


def errors(results: list[Result], topics: list[str]) -> list[str]:
    """Lines naming each miss (a wanted topic not matched, with the best evidence of any rule that
    did fire for other topics) and each false match (with the evidence sentence and rule)."""
    lines = []
    for r in results:
        if r.item.get("difficulty") == "borderline":
            continue
        by_topic = {m.topic: m for m in r.matches}
        for t in topics:
            if t in r.want and t not in r.got:
                lines.append(f"  MISS  {t:<22} {r.name}  [{r.item.get('kind', '')}]")
            elif t in r.got and t not in r.want:
                lines.append(f"  FALSE {t:<22} {r.name}  [{r.item.get('kind', '')}]")
                lines.append(f"        {_evidence_line(by_topic.get(t))}")
    return lines


def main(argv: list[str]) -> int:
    if not argv or any(a.startswith("-") for a in argv):
        print("usage: python bench/relevance.py CORPUS_DIR [CORPUS_DIR ...]", file=sys.stderr)
        return 2
    corpus: list[tuple[str, dict]] = []
    for arg in argv:
        folder = Path(arg)
        if not folder.is_dir():
            print(f"Error: corpus folder {folder} does not exist", file=sys.stderr)
            return 2
        items = load_corpus(folder)
        if not items:
            print(f"Error: no *.json items in {folder}", file=sys.stderr)
            return 2
        corpus += items
    topics = [t.id for t in builtin_topics()]
    results = evaluate(corpus)
    borderline = [r for r in results if r.item.get("difficulty") == "borderline"]
    scored = [r for r in results if r.item.get("difficulty") != "borderline"]

    print(f"corpus: {', '.join(argv)} ({len(corpus)} items)")
    print(f"\nscored (non-borderline): {len(scored)} items")
    for t, c in score(scored, topics).items():
        print(c.line(t))
    print(f"\nborderline (apart): {len(borderline)} items")
    border = {t: Counts() for t in topics}
    for r in borderline:
        for t in topics:
            c = border[t]
            if t in r.want and t in r.got:
                c.tp += 1
            elif t in r.got:
                c.fp += 1
            elif t in r.want:
                c.fn += 1
            else:
                c.tn += 1
    for t in topics:
        print(border[t].line(t))

    for split in ("dev", "held-out"):
        part = [r for r in scored if r.split == split]
        print(f"\n{split} part: {len(part)} scored items")
        for t, c in score(part, topics).items():
            print(c.line(t))
        lines = errors(part, topics)
        print(f"{split} misses and false matches: {sum(1 for x in lines if x.startswith('  MISS') or x.startswith('  FALSE'))}")
        for line in lines:
            print(line)

    wrong = [r for r in results if r.got != r.want]
    print(f"\nmisclassified (all parts, borderline included): {len(wrong)}")
    for r in wrong:
        print(f"- {r.name} [{r.item.get('difficulty')}, {r.split}] want {sorted(r.want)} got {sorted(r.got)}")
        for m in r.matches:
            print(f"    {m.topic} score={m.score} severity={m.severity}")
            for e in m.evidence[:4]:
                print(f"      {e.rule}: {e.marked[:300]}")

    text = one_mb_text([i for _, i in corpus])
    t0 = time.perf_counter()
    classify(text)
    elapsed = time.perf_counter() - t0
    print(f"\nclassify 1 MB ({len(text):,} chars of repeated corpus text): {elapsed:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
