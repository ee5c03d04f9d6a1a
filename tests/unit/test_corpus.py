"""The built-in topics on the shared, labelled development corpus (skipped where it is absent)."""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("GOVWATCH_CORPUS") or Path(__file__).parents[2].parent / "shared" / "corpus")
ITEMS = sorted(CORPUS.glob("*.json")) if CORPUS.is_dir() else []


def _bench():
    """bench/relevance.py is a script, not a package: load it to share its change-event logic."""
    path = Path(__file__).parents[2] / "bench" / "relevance.py"
    spec = importlib.util.spec_from_file_location("govwatch_bench_relevance", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _bench()


def test_corpus_is_present():
    if not ITEMS:
        pytest.skip(f"relevance corpus not found at {CORPUS} (set GOVWATCH_CORPUS to its folder)")
    assert len(ITEMS) >= 10


@pytest.mark.parametrize("path", ITEMS, ids=[p.stem for p in ITEMS])
def test_item_labels_equal_predicted_topics(path, bench):
    item = json.loads(path.read_text(encoding="utf-8"))
    if item.get("difficulty") == "borderline":
        pytest.skip("borderline item: scored apart by bench/relevance.py, not asserted")
    got, matches = bench.predict(item)
    evidence = {m.topic: [e.marked for e in m.evidence[:3]] for m in matches}
    assert got == set(item.get("labels") or []), evidence


def test_change_event_is_judged_on_what_it_added(bench):
    added, removed = bench.change_parts("Banner text.\nThe body stays.", "The body stays.\nA new line.")
    assert added == "A new line." and removed == "Banner text."
    assert bench.change_parts("Same.", "Same.") == ("", "")
