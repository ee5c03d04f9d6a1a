"""Relevance benchmark: run the built-in topics over a labelled corpus folder of *.json items.

Usage: python bench/relevance.py CORPUS_DIR  — prints per-topic precision/recall/F1 (borderline
items apart), the misclassified items with their evidence, and the time to classify 1 MB of text.
"""
from __future__ import annotations

import difflib
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

    A document is judged as title + text. A change event is judged on what it ADDED only (its
    title describes the event, it is not page text)."""
    if item.get("item_type") == "change_event":
        return change_parts(item.get("text_before", ""), item.get("text", ""))
    title = item.get("title") or ""
    return f"{title}\n\n{item.get('text') or ''}", ""


def predict(item: dict) -> tuple[set[str], list[TopicMatch]]:
    added, removed = item_input(item)
    matches = classify(added, removed=removed)
    return {m.topic for m in matches}, matches


def load_corpus(folder: Path) -> list[tuple[str, dict]]:
    return [(p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(folder.glob("*.json"))]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def line(self, topic: str) -> str:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return (f"  {topic:<24} precision {p:5.3f}  recall {r:5.3f}  F1 {f:5.3f}   "
                f"tp={self.tp} fp={self.fp} fn={self.fn} tn={self.tn}")


def one_mb_text(items: list[dict]) -> str:
    chunk = "\n\n".join(f"{i.get('title', '')}\n\n{i.get('text', '')}" for i in items)
    chunk = chunk or "empty corpus "
    return (chunk * (1_000_000 // max(1, len(chunk)) + 1))[:1_000_000]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/relevance.py CORPUS_DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    if not folder.is_dir():
        print(f"Error: corpus folder {folder} does not exist", file=sys.stderr)
        return 2
    corpus = load_corpus(folder)
    if not corpus:
        print(f"Error: no *.json items in {folder}", file=sys.stderr)
        return 2
    topics = [t.id for t in builtin_topics()]
    tables = {"scored": {t: Counts() for t in topics}, "borderline": {t: Counts() for t in topics}}
    wrong: list[tuple[str, dict, set[str], list[TopicMatch]]] = []
    for name, item in corpus:
        got, matches = predict(item)
        want = set(item.get("labels") or [])
        table = tables["borderline" if item.get("difficulty") == "borderline" else "scored"]
        for t in topics:
            c = table[t]
            if t in want and t in got:
                c.tp += 1
            elif t in got:
                c.fp += 1
            elif t in want:
                c.fn += 1
            else:
                c.tn += 1
        if got != want:
            wrong.append((name, item, got, matches))

    print(f"corpus: {folder} ({len(corpus)} items)")
    for label, table in (("scored (non-borderline)", tables["scored"]), ("borderline (apart)", tables["borderline"])):
        n = sum(1 for _, i in corpus if (i.get("difficulty") == "borderline") == label.startswith("borderline"))
        print(f"\n{label}: {n} items")
        for t in topics:
            print(table[t].line(t))

    print(f"\nmisclassified: {len(wrong)}")
    for name, item, got, matches in wrong:
        want = sorted(item.get("labels") or [])
        print(f"- {name} [{item.get('difficulty')}] want {want} got {sorted(got)}")
        for m in matches:
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
