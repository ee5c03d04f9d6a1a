"""Train the offline second relevance signal (monitor/topics/*.model.json) on the DEV part of the
corpus in tests/data/corpus (never the held-out part), and choose each topic's threshold by
5-fold cross-validation on that dev part.

Usage: python bench/train_relevance_model.py [--check]  (needs the `train` extra: scikit-learn)
  --check   rebuild in memory and fail (exit 1) if the shipped files differ
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sklearn  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from monitor.classify import builtin_topics, classify  # noqa: E402
from monitor.relevance_model import TOKEN_PATTERN  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus"
TOPICS_DIR = ROOT / "monitor" / "topics"
MIN_PRECISION = 0.95  # on the dev part's out-of-fold predictions, rules and model together
GRID = [round(0.30 + 0.05 * i, 2) for i in range(14)]  # 0.30 .. 0.95
C = 10.0


def _bench():
    spec = importlib.util.spec_from_file_location("govwatch_bench_relevance", ROOT / "bench" / "relevance.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _vectorizer() -> TfidfVectorizer:
    # the settings monitor/relevance_model.py reproduces
    return TfidfVectorizer(lowercase=True, token_pattern=TOKEN_PATTERN, ngram_range=(1, 2), min_df=2,
                           sublinear_tf=True, norm="l2", smooth_idf=True)


def _fit(texts: list[str], y: list[bool]):
    vec = _vectorizer()
    X = vec.fit_transform(texts)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, solver="lbfgs").fit(X, y)
    return vec, clf


def _prf(want: list[bool], got: list[bool]) -> tuple[float, float]:
    tp = sum(1 for w, g in zip(want, got) if w and g)
    fp = sum(1 for w, g in zip(want, got) if g and not w)
    fn = sum(1 for w, g in zip(want, got) if w and not g)
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)


def _choose_threshold(texts, y, by_rules, gate) -> tuple[float, dict]:
    """From out-of-fold probabilities on the dev part: the threshold at which the gated model
    alone keeps precision >= MIN_PRECISION and rules-or-model precision does not fall below
    min(MIN_PRECISION, the rules' own precision); among those, the best recall (rules or model,
    then model alone), ties to the higher threshold. 1.01 (never) when no threshold qualifies."""
    oof = [0.0] * len(texts)
    for train, test in StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(texts, y):
        vec, clf = _fit([texts[i] for i in train], [y[i] for i in train])
        for i, p in zip(test, clf.predict_proba(vec.transform([texts[i] for i in test]))[:, 1]):
            oof[i] = float(p)
    floor = min(MIN_PRECISION, _prf(y, by_rules)[0])
    best, key, stats = 1.01, None, {}
    for th in GRID:
        alone = [g and p >= th for g, p in zip(gate, oof)]
        both = [r or a for r, a in zip(by_rules, alone)]
        pa, ra = _prf(y, alone)
        pb, rb = _prf(y, both)
        stats[th] = (pb, rb, pa, ra)
        if pa >= MIN_PRECISION and pb >= floor and (key is None or (rb, ra) >= key):
            best, key = th, (rb, ra)
    return best, stats


def build() -> dict[str, dict]:
    bench = _bench()
    items = [(n, i) for n, i in bench.load_corpus(CORPUS)
             if i.get("difficulty") != "borderline" and bench.split_of(i.get("id") or n) == "dev"]
    texts = [bench.item_input(i)[0] for _, i in items]
    out = {}
    for topic in builtin_topics():
        if topic.model_file is None:
            continue
        y = [topic.id in (i.get("labels") or []) for _, i in items]
        by_rules = [topic.id in {m.topic for m in classify(t, [topic], use_model=False)} for t in texts]
        gate = [topic.model_gate_open(t) for t in texts]
        threshold, stats = _choose_threshold(texts, y, by_rules, gate)
        vec, clf = _fit(texts, y)
        coef = clf.coef_[0]
        weights = {term: [round(float(vec.idf_[j]), 6), round(float(coef[j]), 6)]
                   for term, j in sorted(vec.vocabulary_.items())}
        out[topic.model_file] = {
            "topic": topic.id,
            "about": "TF-IDF (1-2 grams, sublinear, l2) logistic regression; built by "
                     "bench/train_relevance_model.py from the dev part of tests/data/corpus",
            "sklearn": sklearn.__version__,
            "trained_on": len(items),
            "positives": sum(y),
            "ngram_max": 2,
            "threshold": threshold,
            # out-of-fold on the dev part: [precision, recall] of rules-or-model, then of the model alone
            "cv_precision_recall": {str(k): [round(v, 3) for v in vals] for k, vals in stats.items()},
            "intercept": round(float(clf.intercept_[0]), 6),
            "weights": weights,
        }
    return out


def main(argv: list[str]) -> int:
    models = build()
    changed = []
    for name, data in models.items():
        text = json.dumps(data, ensure_ascii=False, indent=0, sort_keys=True) + "\n"
        path = TOPICS_DIR / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            changed.append(name)
            if "--check" not in argv:
                path.write_text(text, encoding="utf-8")
        print(f"{name}: {data['trained_on']} dev items, {data['positives']} positive, "
              f"{len(data['weights'])} terms, threshold {data['threshold']}")
    if "--check" in argv and changed:
        print(f"out of date: {', '.join(changed)} (run python bench/train_relevance_model.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
