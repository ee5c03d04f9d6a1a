"""`govwatch demo` end to end: the replay of real captures runs in under a minute, alerts the OIG
report, the Federal Register order, the ICE OPR figures and the removed page once each and the noisy
page never, serves its change log, stops on Ctrl-C and leaves nothing behind; nothing it serves
points off 127.0.0.1; its PDFs carry the corpus's real texts."""
from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from monitor import demo
from tests.e2e.test_operations import GovwatchProcess, cli_env, wait_until

EXPECTED = {  # source id -> the words its one alert's title carries
    "dhs-oig-ice-reports": "new document: Oversight Review of the Department of Homeland Security",
    "fr-presidential-domestic-terrorism": "new document: Designating Antifa as a Domestic Terrorist Organization",
    "ice-opr": "page changed",
    "dhs-dve-internal-review": "REMOVED",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alert_titles(out: str) -> list[str]:
    return [line.split("ALERT", 1)[1].strip() for line in out.splitlines() if line.strip().startswith("ALERT ")]


def assert_alerts(out: str) -> None:
    titles = alert_titles(out)
    assert len(titles) == len(EXPECTED), titles
    for sid, words in EXPECTED.items():
        mine = [t for t in titles if f"({sid})" in t]
        assert len(mine) == 1 and words in mine[0], (sid, titles)
    assert not [t for t in titles if "(oig-14-20)" in t], titles  # the noisy page: dates and a banner only
    assert "ok   oig-14-20: no alert" in out and "MISSING" not in out and "NOISE" not in out, out


def test_demo_replays_alerts_and_serves_its_change_log_then_ctrl_c_cleans_up(tmp_path):
    port = free_port()
    proc = GovwatchProcess("demo", "--port", str(port), cwd=tmp_path, log_name="demo")
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: url in proc.out_path.read_text() or not proc.alive(), 90, what="the demo's change log URL")
        took = time.monotonic() - proc.started
        out = proc.out_path.read_text()
        assert proc.alive(), out + proc.err_path.read_text()
        assert took < 60, f"the replay took {took:.1f}s"
        assert "REPLAY" in out.splitlines()[0] and "nothing leaves 127.0.0.1" in out.splitlines()[0]
        assert "[1/3]" in out and "[3/3]" in out and "5 baseline" in out, out
        assert_alerts(out)
        folder = Path(re.search(r"state in (\S+)", out).group(1))
        assert (folder / "govwatch.db").exists()

        # the change log answers (uvicorn may take a moment after the line is printed)
        page = wait_until(lambda: _get(url), 20, what="the change log")
        assert page.status_code == 200
        for words in ("Designating Antifa as a Domestic Terrorist Organization", "Oversight Review of the Department",
                      "ICE Office of Professional Responsibility (REPLAY)"):
            assert words in page.text, words
        listed = httpx.get(url + "changes.json", timeout=10).json()
        rows = listed["changes"] if isinstance(listed, dict) else listed
        assert sorted(r["kind"] for r in rows) == ["changed", "new_item", "new_item", "removed"], rows
        assert not [r for r in rows if r["source_id"] == "oig-14-20"]

        # SIGTERM (a closed terminal, a `kill`): uvicorn stops, then the demo deletes its folder
        rc, secs = proc.signal(signal.SIGTERM, timeout=30)
        assert rc == 128 + signal.SIGTERM and secs < 15, (rc, secs, proc.err_path.read_text())
        assert not folder.exists(), "the temporary folder outlived the demo"
        assert "Traceback" not in proc.err_path.read_text()
    finally:
        proc.signal(signal.SIGKILL, timeout=10)


def _get(url: str):
    try:
        return httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return None


def test_demo_keep_no_serve_leaves_a_database_the_cli_reads(tmp_path):
    """Also: a proxy in the environment and a `monitor` package in the current directory change
    nothing (the replay's checks go to 127.0.0.1 directly, with the installed govwatch)."""
    keep = tmp_path / "demo-state"
    work = tmp_path / "work"
    (work / "monitor").mkdir(parents=True)
    (work / "monitor" / "__init__.py").write_text("")
    (work / "monitor" / "__main__.py").write_text("raise SystemExit('another project monitor package')\n")
    dead = "http://127.0.0.1:9"
    env = cli_env({"HTTP_PROXY": dead, "http_proxy": dead, "HTTPS_PROXY": dead, "https_proxy": dead, "ALL_PROXY": dead})
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-P", "-m", "monitor", "demo", "--no-serve", "--keep", str(keep)], cwd=work,
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert time.monotonic() - t0 < 60
    assert_alerts(p.stdout)
    config = keep / "govwatch.yaml"
    assert config.read_text().startswith("# govwatch demo: a REPLAY")
    changes = json.loads(subprocess.run([sys.executable, "-m", "monitor", "changes", "-c", str(config), "--format", "json"],
                                        env=cli_env(), capture_output=True, text=True, timeout=60, check=True).stdout)
    assert len(changes) == 4 and {c["source_id"] for c in changes} == set(EXPECTED)
    removed = [c for c in changes if c["kind"] == "removed"]
    assert removed and removed[0]["source_id"] == "dhs-dve-internal-review"

    # the folder is not empty now: a second demo there is refused, nothing run
    again = subprocess.run([sys.executable, "-m", "monitor", "demo", "--no-serve", "--keep", str(keep)], cwd=tmp_path,
                           env=cli_env(), capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "must be a new or empty folder" in again.stderr and "Traceback" not in again.stderr


def test_demo_refuses_a_port_in_use_in_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = subprocess.run([sys.executable, "-m", "monitor", "demo", "--port", str(port)], cwd=tmp_path, env=cli_env(),
                           capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in p.stderr and "--port 0" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stdout == ""
    for bad in (["--port", "99999"], ["--keep", "/proc/no/such/dir"]):
        p = subprocess.run([sys.executable, "-m", "monitor", "demo", *bad], cwd=tmp_path, env=cli_env(),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, (bad, p.stderr)


def test_nothing_the_replay_serves_or_watches_points_off_loopback():
    base = "http://127.0.0.1:9"
    links = re.compile(r"""(?:https?:)?//[^\s"'<>\\]+""")
    for _, routes in demo.generations(base):
        for path, r in routes.items():
            if r.content_type == "application/pdf":
                continue
            for link in links.findall(r.body.decode("utf-8")):
                assert link.startswith(base + "/"), (path, link)
    for entry in demo.source_entries(base):
        assert entry["url"].startswith(base + "/"), entry


@pytest.mark.parametrize("report", demo.REPORTS_BEFORE + [demo.REPORT_NEW], ids=lambda r: r.number)
def test_the_replay_pdfs_carry_the_corpus_texts(report):
    """Each shipped PDF (made by tests.pdfs.demo_report_pdf) reads back as its report's corpus text."""
    import io

    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(demo._data(f"{report.doc}.pdf").read_bytes()))
    got = " ".join(" ".join((pg.extract_text() or "") for pg in reader.pages).split())
    assert got == " ".join(demo.report_text(report).split())
    assert got.startswith(report.title[:40]) or report.doc == "oig-18-76", got[:200]
