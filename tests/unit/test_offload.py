"""Extraction in a second process (monitor/offload.py): the writer gets exactly what it would have
extracted itself, or nothing (and then extracts itself), never something else."""
from __future__ import annotations

import hashlib
import logging
import zlib
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.extract import compile_ignore, extract
from monitor.offload import Args, Extractor, _job
from state.errors import ConfigError
from tests.pdfs import make_pdf

PAGES = Path(__file__).resolve().parents[1] / "data" / "pages"


def _finished(ex: Extractor, body: bytes):
    """Wait until the worker has done the job for `body` (as when the writer is busy elsewhere)."""
    ex._jobs[id(body)][2].result(timeout=60)


@pytest.fixture
def extractor():
    ex = Extractor(1, start_after=0)
    yield ex
    ex.close()


def test_the_worker_extracts_what_the_writer_would_and_compresses_it(extractor):
    docs = [(p.read_bytes(), "text/html; charset=utf-8", None, ()) for p in sorted(PAGES.glob("*.after.html"))]
    docs.append((PAGES.joinpath("dhs-main-change.after.html").read_bytes(), "text/html", "main", (r"Last (updated|reviewed).*",)))
    docs.append((make_pdf([["Office of Professional Responsibility", "Report of investigation"], ["Page two"]], title="OPR"),
                 "application/pdf", None, ()))
    assert len(docs) >= 5
    for body, ctype, select, ignore in docs:
        args = Args(content_type=ctype, url="https://www.ice.gov/x", select=select, ignore=ignore, ocr=None)
        extractor.submit(body, args)
        _finished(extractor, body)
        prepared = extractor.take(body, args)
        assert prepared is not None and prepared.extracted is not None
        here = extract(body, content_type=ctype, url=args.url, select=select, ignore=compile_ignore(ignore))
        assert prepared.extracted == here
        text = here.text.encode()
        assert prepared.compressed.keys() == {hashlib.sha256(body).hexdigest(), hashlib.sha256(text).hexdigest()}
        assert zlib.decompress(prepared.compressed[hashlib.sha256(body).hexdigest()]) == body
        assert zlib.decompress(prepared.compressed[hashlib.sha256(text).hexdigest()]) == text
    assert extractor._jobs == {}


def test_a_different_extraction_or_other_bytes_are_not_served_from_a_job(extractor):
    body = PAGES.joinpath("legacy-change.after.html").read_bytes()
    args = Args("text/html", "https://www.dhs.gov/a", None, (), None)
    extractor.submit(body, args)
    _finished(extractor, body)
    assert extractor.take(body, Args("text/html", "https://www.dhs.gov/a", "main", (), None)) is None  # another select
    extractor.submit(body, args)
    _finished(extractor, body)
    assert extractor.take(bytes(bytearray(body)), args) is None  # equal bytes, but not the response's own object
    extractor.drop(body)
    assert extractor._jobs == {}


def test_an_extraction_that_fails_is_left_to_the_writer(extractor):
    """The worker does not carry errors back: the writer extracts again and meets the error itself."""
    body = b"\x00\x01\x02 binary \xff\xfe" * 50
    args = Args("application/octet-stream", "https://www.dhs.gov/blob", None, (), None)
    extractor.submit(body, args)
    _finished(extractor, body)
    prepared = extractor.take(body, args)
    assert prepared is not None and prepared.extracted is None
    assert list(prepared.compressed) == [hashlib.sha256(body).hexdigest()]


def test_a_worker_that_dies_is_survived_and_the_writer_extracts_itself(extractor, caplog):
    body = PAGES.joinpath("legacy-change.after.html").read_bytes()
    args = Args("text/html", "https://www.dhs.gov/a", None, (), None)
    extractor.submit(body, args)
    _finished(extractor, body)  # the pool is up
    assert extractor.take(body, args) is not None
    for worker in extractor._workers:
        worker.proc.kill()
        worker.proc.wait()
    other = PAGES.joinpath("broken-markup.after.html").read_bytes()
    with caplog.at_level(logging.WARNING, logger="govwatch"):
        extractor.submit(other, args)
        job = extractor._jobs.get(id(other))
        if job is not None:  # the pool may already know it is broken and refuse the job
            with pytest.raises(Exception):
                job[2].result(timeout=60)
        assert extractor.take(other, args) is None
    assert not extractor.enabled
    assert "extraction in a second process stopped" in caplog.text
    extractor.submit(body, args)  # from now on nothing is handed over
    assert id(body) not in extractor._jobs


def test_the_workers_log_records_are_replayed_by_the_writer(extractor, caplog):
    """What the extraction logs (a PDF page it cannot read...) is said in govwatch's own log."""
    record = ("monitor.extract", logging.WARNING, "https://x/a.pdf: PDF page 2 unreadable: bad stream")
    prepared = _job(b"<html><body><p>Text of the page, long enough.</p></body></html>", Args("text/html", "u", None, (), None))
    assert prepared.extracted is not None and prepared.records == []
    body = PAGES.joinpath("legacy-change.after.html").read_bytes()
    args = Args("text/html", "https://www.dhs.gov/a", None, (), None)
    extractor.submit(body, args)
    _finished(extractor, body)
    extractor._jobs[id(body)][2].result().records.append(record)
    with caplog.at_level(logging.WARNING):
        assert extractor.take(body, args) is not None
    assert "PDF page 2 unreadable" in caplog.text


def test_extract_processes_is_validated(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text("include_defaults: false\nfetch: {extract_processes: 0}\nsources: []\n")
    assert load_config(str(cfg)).fetch.extract_processes == 0
    cfg.write_text("include_defaults: false\nfetch: {extract_processes: -1}\nsources: []\n")
    with pytest.raises(ConfigError, match="extract_processes"):
        load_config(str(cfg))


ORPHAN = '''
import sys, time
from monitor.offload import Args, Extractor
if __name__ == "__main__":
    ex = Extractor(1, start_after=0)
    body = b"<html><body><p>A page of text, long enough to be read as text.</p></body></html>"
    ex.submit(body, Args("text/html", "u", None, (), None))
    ex._jobs[id(body)][2].result(timeout=60)
    print(*ex.pids, flush=True)
    time.sleep(120)
'''


def test_the_worker_ends_when_govwatch_is_killed(tmp_path):
    """SIGKILL (or the OOM killer) gives govwatch no chance to stop its worker: the worker sees its
    parent gone and exits, instead of waiting for ever on a pipe it holds both ends of."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(ORPHAN)
    repo = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=repo,
                              env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        worker = int(parent.stdout.readline().split()[0])
        os.kill(worker, 0)  # alive
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail(f"the worker {worker} outlived its killed parent by 10 s")


def test_scans_and_large_bodies_are_left_to_the_writer(extractor):
    """The worker never runs OCR (a job the writer may not need must stay short) and never gets a
    body over MAX_BODY: the writer reads those itself, only when it needs them."""
    from monitor.offload import MAX_BODY
    from tests.pdfs import make_scanned_pdf

    scan = make_scanned_pdf()
    args = Args("application/pdf", "https://www.oig.dhs.gov/scan.pdf", None, (), None)
    extractor.submit(scan, args)
    _finished(extractor, scan)
    prepared = extractor.take(scan, args)
    assert prepared is not None and prepared.extracted is None
    big = b"<html><body>" + b"<p>words of a long page</p>" * (MAX_BODY // 20) + b"</body></html>"
    assert len(big) > MAX_BODY
    extractor.submit(big, Args("text/html", "u", None, (), None))
    assert id(big) not in extractor._jobs


def test_the_worker_ignores_a_stop_signal_meant_for_govwatch(extractor):
    """SIGTERM or Ctrl-C sent to the whole process group (a service manager stopping govwatch)
    does not kill the worker under the writer's feet: govwatch stops it when it is done."""
    import os
    import signal

    body = PAGES.joinpath("legacy-change.after.html").read_bytes()
    args = Args("text/html", "https://www.dhs.gov/a", None, (), None)
    extractor.submit(body, args)
    _finished(extractor, body)
    assert extractor.take(body, args) is not None
    for pid in extractor.pids:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
    other = PAGES.joinpath("broken-markup.after.html").read_bytes()
    extractor.submit(other, args)
    _finished(extractor, other)
    assert extractor.take(other, args) is not None and extractor.enabled


def test_the_worker_is_one_plain_child_process(extractor):
    """One child per worker and nothing beside it (multiprocessing's pool added a 13 MB resource
    tracker process), started from govwatch's own interpreter."""
    import sys

    import psutil

    body = PAGES.joinpath("legacy-change.after.html").read_bytes()
    args = Args("text/html", "https://www.dhs.gov/a", None, (), None)
    extractor.submit(body, args)
    _finished(extractor, body)
    assert extractor.take(body, args) is not None
    children = psutil.Process().children(recursive=True)
    assert len(extractor.pids) == 1 and extractor.pids[0] in {c.pid for c in children}
    assert not [c for c in children if "resource_tracker" in " ".join(c.cmdline())]
    worker = psutil.Process(extractor.pids[0])
    assert worker.ppid() == psutil.Process().pid and worker.cmdline()[0] == sys.executable
    extractor.close()
    assert not psutil.pid_exists(worker.pid) or worker.status() == psutil.STATUS_ZOMBIE
