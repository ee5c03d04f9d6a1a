"""The container image without a Docker engine: the Dockerfile's structure (non-root user, /data
volume, health check, entry point, installed from the project's own files), its exact ENTRYPOINT,
CMD and HEALTHCHECK commands run as the image would run them, and the example compose.yaml."""
from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import signal
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import LOCAL_FETCH, REPO
from tests.e2e.test_monitor import page
from tests.e2e.test_operations import GovwatchProcess, cli_env, wait_until

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"


# -- reading a Dockerfile ---------------------------------------------------------------------
def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def exec_form(args: str) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT; the shell form would not get signals as PID 1."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(x, str) for x in value), args
    return value


def env_of(args: str) -> dict[str, str]:
    parts = shlex.split(args)
    if parts and "=" not in parts[0]:  # legacy `ENV KEY value`
        return {parts[0]: " ".join(parts[1:])}
    return dict(p.split("=", 1) for p in parts)


class Image:
    """What the Dockerfile says the image is."""

    def __init__(self, path: Path = DOCKERFILE):
        self.steps = instructions(path.read_text())
        self.env: dict[str, str] = {}
        self.workdir = "/"
        self.user = "root"
        self.copies: list[tuple[list[str], str]] = []
        self.runs: list[str] = []
        for word, args in self.steps:
            if word == "ENV":
                self.env.update(env_of(args))
            elif word == "WORKDIR":
                self.workdir = args if args.startswith("/") else f"{self.workdir.rstrip('/')}/{args}"
            elif word == "USER":
                self.user = args
            elif word == "COPY":
                parts = [p for p in shlex.split(args) if not p.startswith("--")]
                self.copies.append((parts[:-1], parts[-1]))
            elif word == "RUN":
                self.runs.append(args)

    def last(self, word: str) -> str:
        found = [a for w, a in self.steps if w == word]
        assert found, f"the Dockerfile has no {word}"
        return found[-1]

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        args = self.last("HEALTHCHECK")
        opts, _, cmd = args.partition("CMD")
        options = dict(o.lstrip("-").split("=", 1) for o in opts.split())
        return options, exec_form(cmd.strip())


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(path, p.lstrip("/")) or path.split("/")[0] == p.strip("/") for p in patterns)


def test_dockerfile_structure():
    img = Image()
    # runs as a system user, never root
    assert img.user not in ("root", "0", "") and not img.user.startswith("0:"), img.user
    assert any("useradd" in r and img.user in r for r in img.runs), "the USER is not created in the image"
    # state on a volume at /data, which that user owns and works in
    assert exec_form(img.last("VOLUME")) == ["/data"]
    assert img.workdir == "/data"
    assert any("chown" in r and f"{img.user}:{img.user} /data" in r for r in img.runs)
    assert img.env["GOVWATCH_DATABASE"] == "sqlite:////data/govwatch.db"
    assert img.env.get("PYTHONUNBUFFERED") == "1" and img.env.get("GOVWATCH_LOG_FORMAT") == "json"
    # the scheduler is the default command, the health command is the health check
    assert exec_form(img.last("ENTRYPOINT")) == ["govwatch"]
    assert exec_form(img.last("CMD")) == ["run"]
    options, cmd = img.healthcheck()
    assert cmd == ["govwatch", "health"]
    assert {"interval", "timeout", "start-period", "retries"} <= set(options), options
    # installed from the project's own files: pyproject plus every package it declares, nothing ignored
    copied = [src for srcs, _dst in img.copies for src in srcs]
    for src in copied:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
        assert not dockerignored(src), f"COPY {src}: excluded by .dockerignore"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "pyproject.toml" in copied and project["project"]["readme"] in copied
    for package in project["tool"]["setuptools"]["packages"]:
        top = package.split(".")[0]
        assert top in copied, f"package {package} is installed but {top}/ is not copied into the image"
    install = [r for r in img.runs if "pip install" in r]
    assert install and "pip install ." in install[0], install
    assert project["project"]["scripts"]["govwatch"] == "monitor.cli:main"
    # Debian's OCR tools (scanned PDFs), from the distribution's packages
    apt = " ".join(r for r in img.runs if "apt-get install" in r).split()
    assert {"tesseract-ocr", "poppler-utils"} <= set(apt), apt
    # ... and Debian's chromium for pages behind a JavaScript wall, at the path the settings default to
    from monitor.config import BrowserSettings

    assert "chromium" in apt and BrowserSettings().executable == "/usr/bin/chromium", apt
    assert "playwright install" not in (REPO / "Dockerfile").read_text()  # never a browser download
    order = [w for w, _ in img.steps]
    assert order.index("USER") > max(i for i, w in enumerate(order) if w == "RUN"), "a RUN step after USER runs unprivileged"


def remap(value: str, data: Path) -> str:
    """An image path under /data, on this machine."""
    return value.replace("/data", str(data))


def test_entrypoint_and_healthcheck_as_the_image_runs_them(site, tmp_path):
    img = Image()
    data = tmp_path / "data"
    data.mkdir()
    site.set("/opr", page())
    # the operator's configuration, mounted at /data/govwatch.yaml (the image's WORKDIR)
    (data / "govwatch.yaml").write_text(yaml.safe_dump({
        "include_defaults": False, "fetch": LOCAL_FETCH,
        "scheduler": {"tick": "1s"},
        "sources": [{"id": "ice-opr", "url": site.url("/opr"), "every": "1h"}],
    }))
    bindir = Path(sys.executable).parent
    assert (bindir / "govwatch").exists(), "the console script is not installed next to the interpreter"
    env = cli_env({k: remap(v, data) for k, v in img.env.items()})
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    cwd = Path(remap(img.workdir, data))
    entry = exec_form(img.last("ENTRYPOINT")) + exec_form(img.last("CMD"))
    options, health_cmd = img.healthcheck()
    timeout = float(options["timeout"].rstrip("s"))

    def healthcheck() -> int:
        t0 = time.monotonic()
        p = GovwatchProcess(cwd=cwd, env=env, argv=[shutil.which(health_cmd[0], path=env["PATH"]), *health_cmd[1:]],
                            log_name="health")
        rc = p.wait(timeout=timeout)
        assert time.monotonic() - t0 < timeout
        p.kill()
        return rc

    assert healthcheck() == 1  # nothing has run yet
    argv = [shutil.which(entry[0], path=env["PATH"]), *entry[1:]]
    with GovwatchProcess(cwd=cwd, env=env, argv=argv, log_name="container") as run:
        wait_until(lambda: healthcheck() == 0 or not run.alive(), 40, interval=0.5, what="a healthy container")
        assert run.alive(), run.output()[-3000:]
        rc, took = run.signal(signal.SIGTERM, timeout=40)
        log = run.stderr()
    assert rc == 0, log[-3000:]
    assert took < 25 + 3
    assert healthcheck() == 1  # a stopped scheduler is unhealthy
    # the state went to the volume, and the container log is JSON lines
    assert (data / "govwatch.db").exists() and not (data / "state").exists()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert any(d["message"] == "source ice-opr: baseline" for d in lines), log[-2000:]
    assert any("stopped after" in d["message"] for d in lines)


# -- compose.yaml -------------------------------------------------------------------------------
def test_compose_example():
    from sqlalchemy.engine import make_url

    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    gw = services["govwatch"]
    build = gw["build"]
    assert (build if isinstance(build, str) else build["context"]) in (".", "./")
    pg = [s for s in services.values() if str(s.get("image", "")).startswith("postgres:16")]
    assert len(pg) == 1
    pg_name = next(n for n, s in services.items() if s is pg[0])
    env = gw["environment"]
    env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
    url = make_url(env["GOVWATCH_DATABASE"])
    assert url.drivername == "postgresql+psycopg" and url.host == pg_name
    assert url.password is None, "the database password belongs in the env_file, not in compose.yaml"
    # state on a named volume at /data; the database on its own named volume
    named = set(doc.get("volumes") or {})
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in gw["volumes"]}
    assert mounts.get("/data") in named
    assert any(str(v).split(":")[0] in named and "/var/lib/postgresql/data" in str(v) for v in pg[0]["volumes"])
    # secrets come from env files, never from the file itself
    assert gw.get("env_file") and pg[0].get("env_file")
    for name, svc in services.items():
        e = svc.get("environment") or {}
        keys = [x.split("=", 1)[0] for x in e] if isinstance(e, list) else list(e)
        assert not [k for k in keys if any(w in k.upper() for w in ("PASSWORD", "TOKEN", "SECRET", "NOTIFY"))], (name, keys)
    # healthy means `govwatch health`; it starts after the database is healthy; it gets time to stop
    assert gw["healthcheck"]["test"][-2:] == ["govwatch", "health"]
    assert pg[0]["healthcheck"]["test"]
    assert gw["depends_on"][pg_name]["condition"] == "service_healthy"
    grace = gw.get("stop_grace_period", "10s")
    assert grace.endswith("s") and float(grace[:-1]) > 25, "the default 10 s kills govwatch before stop_timeout (25 s)"
    assert "command" not in gw or gw["command"] in (["run"], "run")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compose_web_behind_caddy_runs_as_written(tmp_path):
    """The `web` service: `govwatch serve` with the compose file's own arguments (parsed by the real
    parser: no invented flag), on the scheduler's database, never published but through Caddy, signed
    in with the accounts file it names; run here as written, with its health check."""
    import urllib.error
    import urllib.request

    from monitor.cli import build_parser
    from monitor.web import hash_password

    doc = yaml.safe_load(COMPOSE.read_text())
    services = doc["services"]
    web, gw, caddy = services["web"], services["govwatch"], services["caddy"]
    assert web["image"] == gw["image"]  # the image the govwatch service builds
    args = build_parser().parse_args(web["command"])
    assert args.func.__name__ == "cmd_serve" and args.host == "0.0.0.0"
    env = web["environment"]
    assert env["GOVWATCH_DATABASE"] == gw["environment"]["GOVWATCH_DATABASE"]
    assert env["GOVWATCH_WEB_USERS"] in {str(v).split(":")[1] for v in web["volumes"]}  # the accounts file is mounted
    assert "ports" not in web and str(args.port) in [str(p) for p in web["expose"]]  # only Caddy reaches it
    assert web.get("env_file") and web["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"80:80", "443:443"} <= set(caddy["ports"]) and caddy["depends_on"] == ["web"]
    assert any(str(v).endswith(":/etc/caddy/Caddyfile:ro") for v in caddy["volumes"])
    assert not any("ports" in s for n, s in services.items() if n != "caddy")
    guide = (REPO / "docs" / "operations.md").read_text()
    assert f"reverse_proxy web:{args.port}" in guide  # the guide's Caddyfile proxies to this service

    # as written, on this machine: the accounts file, SQLite in place of the compose PostgreSQL
    port = _free_port()
    (tmp_path / "users.yaml").write_text(yaml.safe_dump({"users": [{"name": "ana", "role": "analyst",
                                                                   "password_hash": hash_password("correct horse battery")}]}))
    (tmp_path / "govwatch.yaml").write_text(yaml.safe_dump({"include_defaults": False, "sources": []}))
    run_env = cli_env({"GOVWATCH_DATABASE": f"sqlite:///{tmp_path / 'govwatch.db'}", "GOVWATCH_CONFIG": str(tmp_path / "govwatch.yaml")})
    command = [sys.executable, "-m", "monitor", *[str(port) if a == str(args.port) else a for a in web["command"]]]
    health = [x.replace(f":{args.port}/", f":{port}/") for x in web["healthcheck"]["test"][1:]]
    assert health[0] == "python" and f"http://127.0.0.1:{port}/healthz" in health[-1]
    health[0] = sys.executable

    def finished(argv: list[str], name: str) -> tuple[int, str]:
        p = GovwatchProcess(cwd=tmp_path, env=run_env, argv=argv, log_name=name)
        rc = p.wait(timeout=60)
        p.kill()  # closes its log files
        return rc, p.stderr()

    def healthy() -> bool:
        return finished(health, "health")[0] == 0

    rc, err = finished(command, "no-users")
    assert rc != 0 and "refusing to serve on 0.0.0.0 without accounts or a token" in err, err
    run_env["GOVWATCH_WEB_USERS"] = str(tmp_path / "users.yaml")
    with GovwatchProcess(cwd=tmp_path, env=run_env, argv=command, log_name="web") as server:
        wait_until(lambda: healthy() or not server.alive(), 60, interval=0.5, what="the web service's health check")
        assert server.alive(), server.output()[-2000:]
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10)
            raise AssertionError("the change log answered without signing in")
        except urllib.error.HTTPError as e:
            assert e.code in (302, 303, 401), e.code
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as r:
            assert r.status == 200
