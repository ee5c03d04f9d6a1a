"""The offline second signal: the pure-Python scorer, its gate, its evidence and the shipped weights."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from monitor.classify import builtin_topics, classify
from monitor.relevance_model import LinearModel, features, load_model, tokens

ROOT = Path(__file__).parents[2]
CORPUS = ROOT / "tests" / "data" / "corpus"


def _topic(tid: str):
    return next(t for t in builtin_topics() if t.id == tid)


def test_scorer_is_sublinear_l2_tfidf_logistic():
    m = LinearModel("t", {"misconduct": (2.0, 3.0), "cases": (1.0, -1.0), "misconduct cases": (4.0, 0.5)},
                    intercept=-1.0, threshold=0.5)
    text = "Misconduct misconduct cases; 2019 weather."
    assert tokens(text) == ["misconduct", "misconduct", "cases", "weather"]  # digits are not tokens
    assert features(tokens(text))["misconduct cases"] == 1
    v = {"misconduct": (1 + math.log(2)) * 2.0, "cases": 1.0, "misconduct cases": 4.0}
    norm = math.sqrt(sum(x * x for x in v.values()))
    z = -1.0 + (v["misconduct"] * 3.0 - v["cases"] + v["misconduct cases"] * 0.5) / norm
    assert m.probability(text) == pytest.approx(1 / (1 + math.exp(-z)))
    assert m.probability("nothing known here") == pytest.approx(1 / (1 + math.exp(1.0)))


def test_best_sentence_is_the_one_that_weighs_most():
    m = LinearModel("t", {"misconduct": (1.0, 2.0), "weather": (1.0, -2.0), "discipline": (1.0, 1.0)}, 0.0, 0.5)
    text = "The weather was fine. Misconduct led to discipline. More weather."
    s0, s1, words = m.best_sentence(text, [(0, 21), (22, 51), (52, 64)])
    assert text[s0:s1] == "Misconduct led to discipline." and words == ["misconduct", "discipline"]
    assert m.best_sentence("The weather.", [(0, 12)]) is None


def test_load_model_only_reads_shipped_files_for_their_topic():
    with pytest.raises(ValueError, match="a file name in monitor/topics"):
        load_model("../secrets.json", "opr-outcomes")
    with pytest.raises(ValueError, match="is for topic 'opr-outcomes'"):
        load_model("opr-outcomes.model.json", "extremism-definitions")
    m = load_model("opr-outcomes.model.json", "opr-outcomes")
    assert 0 < m.threshold <= 1 and len(m.weights) > 500


def _item(name: str) -> str:
    return json.loads((CORPUS / f"{name}.json").read_text(encoding="utf-8"))["text"]


def test_a_model_match_is_low_severity_with_the_sentence_that_caused_it():
    text = _item("opr-108-dhs-oig-sar-2018-09-interactive")  # no rule fires on this SAR excerpt
    assert classify(text, use_model=False) == []
    [m] = classify(text)
    assert (m.topic, m.severity, m.score) == ("opr-outcomes", "low", _topic("opr-outcomes").threshold)
    [e] = m.evidence
    assert e.rule == "model" and e.terms
    assert all(f"«{t}»" in e.marked for t in e.terms)
    assert e.marked.replace("«", "").replace("»", "") == e.sentence
    assert e.sentence in " ".join(text.split())


def test_the_gate_keeps_the_model_off_other_jurisdictions():
    opr = _topic("opr-outcomes")
    doj = _item("none-116-doj-opr-2022-summary-4")
    assert not opr.model_gate_open(doj)  # DOJ OPR: no DHS component, DOJ context
    police = _item("none-133-independence-mo-ia-annual-2015")
    assert not opr.model_gate_open(police)  # a city's internal affairs names no DHS component
    assert not opr.model_gate_open(_item("none-179-oig-dhs-hotline-page-2020") + " Report Misconduct")
    ext = _topic("extremism-definitions")
    assert not ext.model_gate_open(_item("none-164-canada-qp-note-imve"))
    assert ext.model_gate_open(_item("ext-101-ntas-bulletin-2022-11-30"))
    # a text the model scores high is still not matched when the gate is shut
    high = _item("opr-129-oig-06-57-ice-discipline-procedures")
    assert load_model(opr.model_file, opr.id).probability(high) >= load_model(opr.model_file, opr.id).threshold
    assert {m.topic for m in classify(high + "\n\nReport Misconduct")} == set()


def test_shipped_weights_are_rebuilt_from_the_repository_corpus():
    if importlib.util.find_spec("sklearn") is None:
        pytest.skip("scikit-learn not installed (pip install -e '.[train]') - cannot rebuild the weights")
    spec = importlib.util.spec_from_file_location("govwatch_train", ROOT / "bench" / "train_relevance_model.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    for name, data in train.build().items():
        shipped = (ROOT / "monitor" / "topics" / name).read_text(encoding="utf-8")
        assert json.dumps(data, ensure_ascii=False, indent=0, sort_keys=True) + "\n" == shipped, name
