"""The layer rules of DESIGN.md, checked by import-linter with the contracts in pyproject.toml:
state <- spiders | alerts <- monitor, and spiders independent of alerts."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.fail(f"{LINT} is missing: install the test extras (pip install -e '.[test]')")
    return subprocess.run([str(LINT), "--config", str(config), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def test_the_code_keeps_the_layer_contracts():
    r = lint(REPO, REPO / "pyproject.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout, r.stdout


@pytest.mark.parametrize("importer, imported, broken", [
    ("state", "monitor", "layers"),          # the vocabulary must not know its users
    ("spiders", "monitor", "layers"),        # fetching knows nothing of topics or alerts
    ("state", "alerts", "layers"),
    ("spiders", "alerts", "independent"),    # siblings never import each other
    ("alerts", "spiders", "independent"),
])
def test_a_wrong_import_direction_breaks_a_contract(tmp_path, importer, imported, broken):
    """The contracts can fail: the same contracts on a copy of the tree with one import added
    against a rule."""
    for pkg in ("state", "spiders", "alerts", "monitor"):
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.yaml", "*.html"))
    (tmp_path / importer / "_wrong_way.py").write_text(f"import {imported}\n")
    config = tmp_path / "contracts.toml"
    section = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    config.write_text(_toml_of(section))
    r = lint(tmp_path, config)
    assert r.returncode != 0, r.stdout
    assert "BROKEN" in r.stdout and f"{importer}._wrong_way -> {imported}" in r.stdout, r.stdout
    broken_lines = [line for line in r.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(broken in line for line in broken_lines), r.stdout


def _toml_of(section: dict) -> str:
    """The [tool.importlinter] section back as TOML (only the shapes it uses: strings, lists, bools)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace('"', '\\"') + '"'

    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {value(v)}" for k, v in section.items() if k != "contracts"]
    for c in section.get("contracts", []):
        lines += ["", "[[tool.importlinter.contracts]]"] + [f"{k} = {value(v)}" for k, v in c.items()]
    return "\n".join(lines) + "\n"


def test_no_module_imports_one_that_imports_it_back():
    """No import cycles, lazy (in-function) imports included: a reader can follow every module's
    dependencies one way. grimp is the graph builder behind import-linter."""
    import grimp

    g = grimp.build_graph("monitor", "spiders", "alerts", "state", include_external_packages=False)
    cycles = []
    for a in sorted(g.modules):
        for b in sorted(g.find_modules_directly_imported_by(a)):
            back = g.find_shortest_chain(importer=b, imported=a)
            if back:
                cycles.append(" -> ".join((a,) + tuple(back)))
    assert cycles == [], "\n".join(cycles)


def test_the_cycle_check_sees_a_lazy_import(tmp_path, monkeypatch):
    """The check above can fail: two modules where one imports the other inside a function."""
    import grimp

    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("def later():\n    from cyclepkg import a\n    return a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    g = grimp.build_graph("cyclepkg", cache_dir=None)
    assert g.find_shortest_chain(importer="cyclepkg.b", imported="cyclepkg.a") == ("cyclepkg.b", "cyclepkg.a")
    assert g.find_shortest_chain(importer="cyclepkg.a", imported="cyclepkg.b") == ("cyclepkg.a", "cyclepkg.b")
