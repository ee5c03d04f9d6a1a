"""Shared fixtures: local site, webhook and SMTP servers, a config writer and the real CLI."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.servers import Site, Smtp, Webhook

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def pytest_configure(config):
    """A temporary root of this run's own. Concurrent pytest runs of one user otherwise share
    /tmp/pytest-of-USER, and each start prunes the others' newest folders: a long e2e test then
    finds its database folder gone ("unable to open database file")."""
    if config.option.basetemp is None and not os.environ.get("PYTEST_DEBUG_TEMPROOT"):
        config.option.basetemp = Path(tempfile.gettempdir()) / f"govwatch-tests-{os.getpid()}"
        config._govwatch_basetemp = config.option.basetemp


def pytest_sessionfinish(session, exitstatus):
    root = getattr(session.config, "_govwatch_basetemp", None)
    if root is not None and exitstatus == 0:
        shutil.rmtree(root, ignore_errors=True)  # kept after a failure, for its logs


@pytest.fixture
def site():
    s = Site().start()
    yield s
    s.stop()


@pytest.fixture
def webhook():
    w = Webhook()
    yield w
    w.stop()


@pytest.fixture
def smtp():
    s = Smtp()
    yield s
    s.stop()


LOCAL_FETCH = {
    "allow_private_networks": True,
    "per_host_delay": "0s",
    "per_host_concurrency": 8,
    "timeout": "5s",
    "retries": 1,
    "user_agent_contact": "tests@example.org",
}


@pytest.fixture
def workdir(tmp_path):
    """A working directory with a config file writer and a CLI runner bound to it."""

    class W:
        path = tmp_path
        config = tmp_path / "govwatch.yaml"
        db = f"sqlite:///{tmp_path / 'state' / 'govwatch.db'}"

        def write(self, sources, notify=(), **extra) -> Path:
            data = {"database": self.db, "include_defaults": False, "fetch": dict(LOCAL_FETCH), "sources": list(sources),
                    "notify": list(notify)}
            for k, v in extra.items():
                if k == "fetch":
                    data["fetch"].update(v)
                else:
                    data[k] = v
            self.config.write_text(yaml.safe_dump(data, sort_keys=False))
            return self.config

        def run(self, *args, check=True, env=None, timeout=120, input=None) -> subprocess.CompletedProcess:
            return run_cli(*args, cwd=tmp_path, check=check, env=env, timeout=timeout, input=input)

    return W()


def run_cli(*args, cwd, check=True, env=None, timeout=120, input=None) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("GOVWATCH_")}
    e.update(env or {})
    p = subprocess.run([sys.executable, "-m", "monitor", *args], cwd=cwd, env=e, capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise AssertionError(f"govwatch {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


# -- OCR (Tesseract and poppler) ---------------------------------------------------------
def ocr_missing() -> str:
    """'' when the OCR tests can run here, else what is missing."""
    from monitor.ocr import unavailable

    return unavailable()


@pytest.fixture
def ocr_tools():
    """Tesseract and pdftoppm on this machine: skipped without them (failed under CI, where
    .ci/run installs them and sets GOVWATCH_REQUIRE_OCR)."""
    missing = ocr_missing()
    if missing:
        msg = f"OCR tests need Tesseract and poppler: {missing} (apt-get install tesseract-ocr poppler-utils)"
        if os.environ.get("GOVWATCH_REQUIRE_OCR"):
            pytest.fail(msg)
        pytest.skip(msg)


# -- a browser (Debian's chromium) for pages behind a JavaScript wall -------------------------
@pytest.fixture
def chromium():
    """/usr/bin/chromium on this machine: skipped without it (failed under CI, where .ci/run
    installs it and sets GOVWATCH_REQUIRE_BROWSER)."""
    from spiders.browser import executable

    if executable("/usr/bin/chromium") is None:
        msg = "browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
        if os.environ.get("GOVWATCH_REQUIRE_BROWSER"):
            pytest.fail(msg)
        pytest.skip(msg)
    return "/usr/bin/chromium"


# -- PostgreSQL ------------------------------------------------------------------------
PG_URL = os.environ.get("GOVWATCH_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reachable(url: str) -> str:
    """'' when the server answers, else the reason."""
    try:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3) as c:
            c.execute("select 1")
        return ""
    except Exception as e:  # any failure means: no usable server here
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


@pytest.fixture
def pg_url():
    """A fresh schema on the PostgreSQL test server; skipped (or failed, under CI) without one."""
    import uuid

    import psycopg

    reason = _pg_reachable(PG_URL)
    if reason:
        msg = f"PostgreSQL not reachable at {PG_URL.split('@')[-1]} ({reason}); set GOVWATCH_TEST_POSTGRES or start the server"
        if os.environ.get("GOVWATCH_REQUIRE_POSTGRES"):
            pytest.fail(msg)
        pytest.skip(msg)
    schema = "gw_" + uuid.uuid4().hex[:10]
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"create schema {schema}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"drop schema {schema} cascade")
