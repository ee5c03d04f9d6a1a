"""Offline second relevance signal: a linear TF-IDF model per topic, shipped as JSON weights.

Pure Python at run time (no model is downloaded, no ML library imported): the weights are built
by bench/train_relevance_model.py from the development part of tests/data/corpus.
"""
from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Iterable

__all__ = ["LinearModel", "load_model", "tokens", "features"]

# What scikit-learn's TfidfVectorizer does (lowercase, TOKEN_PATTERN: words of two or more letters;
# digits, years and report numbers are not topical), with unigrams and bigrams: the training script
# uses the same settings, so the scores agree.
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W\d_]+\b"
_TOKEN = re.compile(TOKEN_PATTERN)
MODEL_MAX_CHARS = 200_000  # the first part of a long text decides, as for the rules' evidence


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def features(toks: list[str], ngram_max: int = 2) -> dict[str, int]:
    """Counts of the unigrams and bigrams (space-joined) of a token list."""
    counts: dict[str, int] = {}
    for n in range(1, ngram_max + 1):
        for i in range(len(toks) - n + 1):
            term = toks[i] if n == 1 else " ".join(toks[i:i + n])
            counts[term] = counts.get(term, 0) + 1
    return counts


@dataclass(frozen=True)
class LinearModel:
    """A logistic model over sublinear, l2-normalised TF-IDF features; `threshold` is the
    probability at or above which the model alone matches (chosen by cross-validation on the
    development part when the model was trained)."""

    topic: str
    weights: dict[str, tuple[float, float]]  # term -> (idf, coefficient)
    intercept: float
    threshold: float
    ngram_max: int = 2

    def _values(self, counts: dict[str, int]) -> dict[str, float]:
        vals = {t: (1.0 + math.log(c)) * self.weights[t][0] for t, c in counts.items() if t in self.weights}
        norm = math.sqrt(sum(v * v for v in vals.values()))
        return {t: v / norm for t, v in vals.items()} if norm else {}

    def probability(self, text: str) -> float:
        counts = features(tokens(text[:MODEL_MAX_CHARS]), self.ngram_max)
        z = self.intercept + sum(v * self.weights[t][1] for t, v in self._values(counts).items())
        return 1.0 / (1.0 + math.exp(-z))

    def best_sentence(self, text: str, sentences: Iterable[tuple[int, int]]) -> tuple[int, int, list[str]] | None:
        """The sentence (start, end) that contributes most to the score, and the words in it
        that contribute most (at most four); None when no sentence contributes positively."""
        text = text[:MODEL_MAX_CHARS]
        counts = features(tokens(text), self.ngram_max)
        vals = self._values(counts)
        best: tuple[float, int, int, list[str]] | None = None
        for s0, s1 in sentences:
            if s0 >= len(text):
                break
            local = features(tokens(text[s0:s1]), self.ngram_max)
            contrib: dict[str, float] = {}
            for t, c in local.items():
                if t in vals:
                    contrib[t] = vals[t] * self.weights[t][1] * c / counts[t]
            total = sum(contrib.values())
            if total > 0 and (best is None or total > best[0]):
                words = sorted((t for t, v in contrib.items() if v > 0 and " " not in t),
                               key=lambda t: -contrib[t])[:4]
                best = (total, s0, s1, words)
        return None if best is None else (best[1], best[2], best[3])


def load_model(name: str, topic: str) -> LinearModel:
    """A model file shipped beside the built-in topics (monitor/topics/NAME)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+\.json", name):
        raise ValueError(f"model file {name!r}: a file name in monitor/topics ending in .json")
    return _load(name, topic)


@functools.lru_cache(maxsize=8)
def _load(name: str, topic: str) -> LinearModel:
    raw = json.loads(resources.files("monitor.topics").joinpath(name).read_text(encoding="utf-8"))
    if raw.get("topic") != topic:
        raise ValueError(f"model file {name!r} is for topic {raw.get('topic')!r}, not {topic!r}")
    weights = {t: (float(w[0]), float(w[1])) for t, w in raw["weights"].items()}
    return LinearModel(topic, weights, float(raw["intercept"]), float(raw["threshold"]), int(raw.get("ngram_max", 2)))
