"""Routine fetch failures (refused, DNS, timeout, TLS, HTTP errors) are one log line each, naming
the source and the host, with a plain reason; no traceback (those are for bugs)."""
from __future__ import annotations

import logging
import re
import socket

from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError

from spiders.fetch import QuietRoutineFailures, describe_failure


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_check_logs_one_line_per_routine_failure(site, workdir):
    silent = socket.socket()  # accepts connections (the backlog) and never answers: a timeout
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    site.set("/ok", "<html><body><main><p>A page that works.</p></main></body></html>")
    try:
        port = _closed_port()
        expected = {
            "refused": ("127.0.0.1", f"http://127.0.0.1:{port}/page", "connection refused"),
            "no-dns": ("nothing.invalid", "http://nothing.invalid/page", "DNS lookup failed for nothing.invalid"),
            "slow": ("127.0.0.1", f"http://127.0.0.1:{silent.getsockname()[1]}/page", "timed out after 1s"),
            "tls": ("127.0.0.1", site.url("/ok").replace("http://", "https://"), "TLS handshake failed: wrong version number"),
            "gone": ("127.0.0.1", site.url("/missing"), "HTTP 404"),
        }
        workdir.write(sources=[{"id": sid, "name": f"Source {sid}", "url": url} for sid, (_h, url, _r) in expected.items()]
                      + [{"id": "fine", "url": site.url("/ok")}], fetch={"timeout": "1s", "retries": 0})
        p = workdir.run("check", "--force")
    finally:
        silent.close()
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    for sid, (host, _url, reason) in expected.items():
        mine = [ln for ln in lines if re.search(rf"\bsource {re.escape(sid)}\b", ln)]
        assert len(mine) == 1, (sid, mine, p.stderr)
        assert f"source {sid} ({host}): fetch failed: {reason}" in mine[0], mine[0]
    loud = [ln for ln in lines if " INFO " not in ln]
    assert len(loud) == len(expected), p.stderr  # nothing else: no robots.txt errors, no retry chatter
    assert "checked 6 source(s)" in p.stdout and "5 error" in p.stdout


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as e:
        return logging.LogRecord("scrapy.downloadermiddlewares.robotstxt", logging.ERROR, __file__, 1,
                                 "Error downloading %s", ("<GET x>",), (type(e), e, e.__traceback__))


def test_robots_filter_drops_routine_failures_and_keeps_bugs():
    f = QuietRoutineFailures()
    assert f.filter(_record(DownloadConnectionRefusedError("Connection was refused by other side: 111"))) is False
    assert f.filter(_record(CannotResolveHostError("no results for hostname lookup: nothing.invalid."))) is False
    assert f.filter(_record(KeyError("a bug"))) is True  # a bug keeps its traceback
    assert describe_failure(DownloadConnectionRefusedError("Connection was refused by other side: 111")) == "connection refused"
