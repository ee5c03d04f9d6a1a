"""The README documents every source kind and every command (datasette's test_docs habit)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.cli import build_parser
from spiders import source_kinds

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", source_kinds.names())
def test_every_kind_is_documented(kind):
    assert re.search(rf"^\| `{re.escape(kind)}` \|", README, re.M), f"source kind {kind} is missing from the README's kinds table"


def _commands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", _commands())
def test_every_command_is_documented(command):
    if command == "hash-password":
        assert "govwatch hash-password" in README
        return
    assert f"`govwatch {command}" in README, f"command {command} is missing from the README"


def test_readme_setup_commands_are_the_ones_ci_runs():
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    test_cmd = 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/pytest'
    assert test_cmd in README and test_cmd in ci
    assert "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/govwatch check" in README
