"""A hostile operator regex cannot freeze govwatch (issue 16.6): `ignore: ['^(\\w+\\s?)*$']` and a user
topic pattern `(a|a?)+b` used to backtrack for hours (the first held the single writer thread)."""
from __future__ import annotations

import json
import subprocess

from tests.e2e.test_monitor import page


def test_catastrophic_ignore_pattern_does_not_hang_check(site, workdir):
    line = "word " * 60 + "!"                       # almost matches: re backtracks 2^60 ways
    site.set("/a", page(extra=f"<p>{line}</p>"))
    site.set("/b", page())
    workdir.write(sources=[{"id": "a", "url": site.url("/a"), "ignore": [r"^(\w+\s?)*$"]},
                           {"id": "b", "url": site.url("/b")}])
    try:
        out = workdir.run("check", timeout=60).stdout
    except subprocess.TimeoutExpired:
        raise AssertionError("check hung on the ignore pattern") from None
    assert "2 baseline" in out, out


def test_catastrophic_user_topic_pattern_is_bounded(workdir, tmp_path):
    workdir.write(sources=[], topics=[{"id": "bomb", "title": "Bomb", "rules": [{"id": "r", "patterns": ["(a|a?)+b"]}]}])
    (tmp_path / "a.txt").write_text("a" * 40 + " is the text")
    try:
        out = json.loads(workdir.run("classify", "--format", "json", "a.txt", timeout=30).stdout)
    except subprocess.TimeoutExpired:
        raise AssertionError("classification ran past 30 s") from None
    assert out == {"topics": []}


def test_unboundable_patterns_are_refused_at_validate_with_their_place(workdir):
    workdir.write(sources=[{"id": "a", "url": "https://example.gov/a", "ignore": ["ok", r"(?<!Last )Updated"]}],
                  topics=[{"id": "mine", "title": "Mine", "rules": [{"id": "r", "patterns": [r"(\w+) \1"]}]}])
    p = workdir.run("validate", check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    err = p.stderr
    assert "sources[0].ignore[1]: bad pattern '(?<!Last )Updated': cannot be run in bounded time" in err, err
    assert "topics[0]: " in err and r"bad pattern '(\w+) \1': cannot be run in bounded time" in err, err
    assert "(line " in err and "re2.cc" not in err, err
