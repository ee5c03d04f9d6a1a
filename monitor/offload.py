"""Text extraction in a second process, ahead of the writer (issue 19).

One govwatch process fetches (Scrapy on the reactor thread) and stores (the writer thread), and
Python runs one thread at a time: extracting a 80 KB page (lxml, then govwatch's normalisation) and
compressing its bytes took a third of the writer's time, while the machine's second core idled.
So, as each page or document arrives, its extraction and the compression of its body and text are
handed to a worker process (`fetch.extract_processes`, default 1 on a machine with two or more
cores, 0 to turn it off); by the time the writer reaches the response, the work is done or under
way. The writer uses the result only when it would have asked for exactly that extraction (same
bytes, content type, URL, `select`, `ignore`, OCR settings); otherwise, and whenever the worker
failed or died, it extracts in its own thread as before, so what is stored never depends on the
worker. The worker's log records are replayed by the writer with the result they belong to.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

from state import blobs

logger = logging.getLogger("govwatch")

def default_processes() -> int:
    """1 where there is a second core to run it on, else 0 (a worker would only compete). The
    cores this process may use (a container's CPU set), not the machine's."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 1 if cores >= 2 else 0


@dataclass(frozen=True)
class Args:
    """What an extraction depends on, besides the bytes."""

    content_type: str
    url: str
    select: str | None
    ignore: tuple[str, ...]
    ocr: object  # config.OcrSettings or None


@dataclass
class Prepared:
    """A finished job: the extraction (or None when it raised: the writer then extracts itself and
    meets the same error), the body and the text compressed by their SHA-256 (what Store.put_blob
    would store for those bytes), and the log records it made."""

    extracted: object | None
    compressed: dict[str, bytes]
    records: list[tuple[str, int, str]]


# -- in the worker process ---------------------------------------------------------------------
class _Capture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


@lru_cache(maxsize=256)
def _ignore(patterns: tuple[str, ...]):
    from monitor.extract import compile_ignore

    return compile_ignore(patterns)


def _init(level: int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # a stop (Ctrl-C, a service manager signalling the whole
        signal.signal(sig, signal.SIG_IGN)       # group) is govwatch's to handle: it stops this worker itself
    logging.getLogger().handlers[:] = []
    logging.getLogger().setLevel(level)
    parent = os.getppid()
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="govwatch-parent-watch").start()
    import monitor.extract  # noqa: F401  (imported once, before the first page)


def _exit_with(parent: int) -> None:
    """A worker whose govwatch died (SIGKILL, out of memory) ends too: the pool's queues never tell
    it (it holds both ends of its own pipe), so it would wait, orphaned, for ever."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _job(body: bytes, args: Args) -> Prepared:
    from monitor.extract import extract
    from monitor.ocr import Defaults

    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    try:
        try:
            # never OCR here: a scan is left to the writer, which reads it only if it needs it (a
            # job it does not need, the same bytes as last time, would otherwise cost minutes)
            ex = extract(body, content_type=args.content_type, url=args.url, select=args.select,
                         ignore=_ignore(args.ignore), ocr=Defaults(enabled=False))
            if ex.no_text_layer:
                ex = None
        except Exception:  # the writer extracts again and handles the error as it always has
            ex = None
        compressed = {hashlib.sha256(body).hexdigest(): blobs.compress(body)}
        if ex is not None:
            text = ex.text.encode("utf-8")
            compressed[hashlib.sha256(text).hexdigest()] = blobs.compress(text)
        return Prepared(ex, compressed, capture.records)
    finally:
        root.removeHandler(capture)


# -- in govwatch's process ---------------------------------------------------------------------
@contextlib.contextmanager
def _no_main_script():
    """While a worker is spawned: multiprocessing runs the parent's main script again in the child
    (as __mp_main__), and govwatch's is the `govwatch` console script, whose first line imports the
    whole CLI (Scrapy, SQLAlchemy...: a 77 MB worker instead of a 30 MB one). Without a __file__
    on __main__ the child imports nothing it is not asked to (monitor.offload, for _job)."""
    main = sys.modules.get("__main__")
    path = main.__dict__.pop("__file__", None) if main is not None and getattr(main, "__spec__", None) is None else None
    try:
        yield
    finally:
        if path is not None:
            main.__file__ = path


START_AFTER = 16  # pages a run extracts itself before it starts the worker: a short run never pays its start
MAX_BODY = 4 * 2**20  # larger bodies (big PDFs) are extracted by the writer: a job it turns out not to need stays short


class Extractor:
    """The worker process(es) and the jobs handed to them, by the identity of the body's bytes.
    The worker starts at the run's START_AFTER-th page (starting it costs ~0.5 s of a core and
    ~45 MB: not worth it for a run of a few pages) and is stopped at the end of the run."""

    def __init__(self, processes: int, *, start_after: int = START_AFTER):
        self.processes = processes
        self.start_after = start_after
        self._seen = 0  # pages offered this run
        self._pool: ProcessPoolExecutor | None = None
        self._jobs: dict[int, tuple[bytes, Args, Future]] = {}
        self._lock = threading.Lock()
        self._broken = False
        self._ready = False  # a job has come back: the worker is up (until then the writer does not wait for it)
        self.used = self.submitted = 0  # jobs the writer took, jobs handed over (logged at the end)

    @property
    def enabled(self) -> bool:
        return self.processes > 0 and not self._broken

    def submit(self, body: bytes, args: Args) -> None:
        """Start extracting `body` (called as the response arrives, on the reactor thread)."""
        if not self.enabled or not body or len(body) > MAX_BODY:
            return
        self._seen += 1
        if self._pool is None and self._seen <= self.start_after:
            return
        try:
            with self._lock, _no_main_script():
                if self._pool is None:
                    # spawn, not fork: govwatch's process has threads (the reactor's, the writer's)
                    self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=_init, initargs=(logging.getLogger("govwatch").getEffectiveLevel(),))
                future = self._pool.submit(_job, body, args)  # (starts the worker, the first time)
        except Exception as e:  # a pool that cannot start or is broken: extract in the writer
            self._give_up(e)
            return
        if not self._ready:
            future.add_done_callback(self._came_back)
        self._jobs[id(body)] = (body, args, future)
        self.submitted += 1

    def _came_back(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            self._ready = True

    def take(self, body: bytes, args: Args) -> Prepared | None:
        """The job for exactly these bytes and arguments, waited for; None when there is none or it
        failed (the caller extracts itself)."""
        job = self._jobs.pop(id(body), None)
        if job is None or job[0] is not body:
            return None
        if job[1] != args:
            job[2].cancel()
            return None
        if not self._ready and job[2].cancel():  # the worker is still starting: quicker here
            return None
        try:
            prepared: Prepared = job[2].result()
        except Exception as e:  # the worker died (killed, out of memory): the writer does it
            self._give_up(e)
            return None
        if prepared.extracted is None:  # the writer extracts itself, and logs what it meets itself
            return prepared
        for name, level, message in prepared.records:
            logging.getLogger(name).log(level, "%s", message)
        self.used += 1
        return prepared

    def drop(self, body: bytes) -> None:
        """The response is stored without its job (the same bytes as last time, a block): let it go."""
        job = self._jobs.pop(id(body), None)
        if job is not None:
            job[2].cancel()

    def _give_up(self, e: Exception) -> None:
        if not self._broken:
            logger.warning("text extraction in a second process stopped (%s: %s); extracting in this one",
                           type(e).__name__, e)
        self._broken = True

    def close(self) -> None:
        """Stop the worker at the end of a crawl (`check`'s, or `run`'s when it stops), or when a
        signal ended it: at once, even in the middle of a job (no result is needed any more)."""
        with self._lock:
            pool, self._pool = self._pool, None
            self._ready, self._seen, self._broken = False, 0, False
        jobs, self._jobs = self._jobs, {}
        if pool is None:
            return
        logger.info("extraction worker: %d of %d page(s) and document(s) handed to it were used", self.used, self.submitted)
        self.used = self.submitted = 0
        # nothing it holds is needed any more: stopped at once (a worker still starting would make
        # a short run wait for it; one in the middle of a large PDF, a stopping one)
        for proc in list(getattr(pool, "_processes", {}).values()):  # no public API stops a worker now
            proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
