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
import itertools
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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


def _exit_with(parent: int) -> None:
    """A worker whose govwatch died ends too (its pipe's end of file says so as well, unless another
    process inherited the pipe)."""
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


def serve(level: int, parent: int, results: int) -> None:
    """The worker's loop: a pickled (job id, body, Args) in on stdin, a pickled (job id, Prepared or
    None, error or None) out on file descriptor `results`, until stdin ends (govwatch closed it, or
    died). Its stdout is govwatch's stderr: a stray print can neither corrupt a result nor
    govwatch's own output."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # a stop is govwatch's to handle: it stops this worker itself
        signal.signal(sig, signal.SIG_IGN)
    inp = sys.stdin.buffer
    out = os.fdopen(results, "wb")
    logging.getLogger().handlers[:] = []
    logging.getLogger().setLevel(level)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="govwatch-parent-watch").start()
    import monitor.extract  # noqa: F401  (imported once, before the first page)

    while True:
        try:
            jid, body, args = pickle.load(inp)
        except EOFError:
            return
        try:
            reply = pickle.dumps((jid, _job(body, args), None), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # (_job catches extraction errors: this is compression, memory, pickling)
            reply = pickle.dumps((jid, None, f"{type(e).__name__}: {e}"), protocol=pickle.HIGHEST_PROTOCOL)
        del body
        out.write(reply)
        out.flush()
        del reply


# -- in govwatch's process ---------------------------------------------------------------------
class WorkerLost(RuntimeError):
    """The worker process ended (killed, out of memory) or its pipe broke."""


# -P: the directory govwatch runs in is not put first on the worker's path (a `monitor/` folder
# there would stand in for the package); the package's own root is appended, should sys.path not
# have it
_CHILD = ("import sys; sys.path.append(sys.argv[1]); from monitor.offload import serve; "
          "serve(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))")
PER_WORKER = 2  # jobs sent to a worker at a time: one it works on, one waiting in its pipe (the rest can still be cancelled)


def _stderr():
    """Where the worker's stdout and stderr go: govwatch's stderr (a traceback is seen in its log)."""
    try:
        return sys.__stderr__.fileno()
    except (AttributeError, OSError, ValueError):
        return subprocess.DEVNULL


class _Worker:
    """One worker process (a plain `python -c`, not multiprocessing: no resource tracker process
    beside it, no re-import of govwatch's console script) and the thread reading its results. In
    a process group of its own: Ctrl-C or a signal to govwatch's group does not reach it."""

    def __init__(self, level: int, owner: "Extractor"):
        root = str(Path(__file__).resolve().parents[1])
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen([sys.executable, "-P", "-c", _CHILD, root, str(level), str(os.getpid()), str(w)],
                                         stdin=subprocess.PIPE, stdout=_stderr(), pass_fds=(w,), process_group=0)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
        self.results = os.fdopen(r, "rb")
        self.inflight: dict[int, Future] = {}
        self.owner = owner
        self.reader = threading.Thread(target=self._read, daemon=True, name="govwatch-extract-reader")
        try:
            self.reader.start()
        except BaseException:
            self.stop()
            raise

    def send(self, frame: bytes) -> None:
        self.proc.stdin.write(frame)
        self.proc.stdin.flush()

    def _read(self) -> None:
        try:
            while True:
                jid, prepared, error = pickle.load(self.results)
                self.owner._finished(self, jid, prepared, error)
        except Exception as e:  # end of file (the worker ended), a broken pipe, a garbled reply
            if isinstance(e, EOFError):
                e = WorkerLost(f"the worker process ended (exit status {self.proc.wait()})")
            self.owner._lost(self, e)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()
        for stream in (self.proc.stdin, self.results):
            with contextlib.suppress(OSError):
                stream.close()
        self.proc.wait()


START_AFTER = 16  # pages a run extracts itself before it starts the worker: a short run never pays its start
MAX_BODY = 4 * 2**20  # larger bodies (big PDFs) are extracted by the writer: a job it turns out not to need stays short


class Extractor:
    """The worker process(es) and the jobs handed to them, by the identity of the body's bytes.
    The worker starts at the run's START_AFTER-th page (starting it costs ~0.1 s of a core and
    ~30 MB: not worth it for a run of a few pages) and is stopped at the end of the run. Jobs wait
    here until a worker has room (PER_WORKER), so one the writer no longer needs is cancelled
    before it costs anything. A worker that is lost (it died, its pipe broke) fails its jobs at
    once and is stopped; govwatch then extracts in its own process until the run ends."""

    def __init__(self, processes: int, *, start_after: int = START_AFTER):
        self.processes = processes
        self.start_after = start_after
        self._seen = 0  # pages offered this run
        self._workers: list[_Worker] = []  # the live ones
        self._retired: list[_Worker] = []  # lost ones, for close() to reap
        self._queue: deque[tuple[Future, bytes, Args]] = deque()
        self._jobs: dict[int, tuple[bytes, Args, Future]] = {}
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._pump: threading.Thread | None = None
        self._ids = itertools.count()
        self._broken = False
        self._lost_by: Exception | None = None  # why a worker was lost (said by the writer's thread)
        self._ready = False  # a job has come back: the worker is up (until then the writer does not wait for it)
        self.used = self.submitted = 0  # jobs the writer took, jobs handed over (logged at the end)

    @property
    def enabled(self) -> bool:
        return self.processes > 0 and not self._broken

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def submit(self, body: bytes, args: Args) -> None:
        """Start extracting `body` (called as the response arrives, on the reactor thread)."""
        if not self.enabled or not body or len(body) > MAX_BODY:
            return
        self._seen += 1
        if self._pump is None and self._seen <= self.start_after:
            return
        future: Future = Future()
        try:
            with self._lock:
                lost = self._lost_by
                if lost is None:
                    if self._pump is None:
                        self._start()
                    self._queue.append((future, body, args))
                    self._room.notify()
        except Exception as e:  # a worker that cannot start: extract in the writer
            self._give_up(e)
            return
        if lost is not None:
            self._give_up(lost)
            return
        if not self._ready:
            future.add_done_callback(self._came_back)
        self._jobs[id(body)] = (body, args, future)
        self.submitted += 1

    def _start(self) -> None:
        """The workers and the pump (under the lock); nothing is kept of a start that failed."""
        level = logging.getLogger("govwatch").getEffectiveLevel()
        started: list[_Worker] = []
        try:
            for _ in range(self.processes):
                started.append(_Worker(level, self))
            pump = threading.Thread(target=self._send, daemon=True, name="govwatch-extract-pump")
            self._workers = started
            pump.start()
        except BaseException:
            self._workers = []
            for worker in started:
                worker.stop()
            raise
        self._pump = pump

    def _send(self) -> None:
        """The pump: hands queued jobs to workers with room, in order, skipping cancelled ones; ends
        when no worker is left (closed, or lost)."""
        while True:
            with self._room:
                while self._workers and not (self._queue and min(len(w.inflight) for w in self._workers) < PER_WORKER):
                    self._room.wait()
                if not self._workers:
                    return
                future, body, args = self._queue.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                worker = min(self._workers, key=lambda w: len(w.inflight))
                jid = next(self._ids)
                worker.inflight[jid] = future
            try:
                frame = pickle.dumps((jid, body, args), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as e:  # this job only
                self._finished(worker, jid, None, f"{type(e).__name__}: {e}")
                continue
            finally:
                del body, args
            try:
                worker.send(frame)  # (outside the lock: a full pipe waits for the worker)
            except Exception as e:
                self._lost(worker, e)
            del future, frame

    def _finished(self, worker: _Worker, jid: int, prepared: Prepared | None, error: str | None) -> None:
        with self._room:
            future = worker.inflight.pop(jid, None)
            self._room.notify()
        if future is None:
            return
        with contextlib.suppress(Exception):  # (already failed by close())
            if error is None:
                future.set_result(prepared)
            else:
                future.set_exception(RuntimeError(f"the extraction worker failed: {error}"))

    def _lost(self, worker: _Worker, e: Exception) -> None:
        """A worker ended, its pipe broke or it answered garbage: it is stopped, every job waiting or
        under way fails (the writer extracts itself), and no more are handed over (the writer says
        why, on its thread)."""
        with self._room:
            if worker not in self._workers:  # stopped by close(), or lost already
                return
            self._workers.remove(worker)
            self._retired.append(worker)
            self._lost_by = e
            futures = list(worker.inflight.values())
            worker.inflight.clear()
            if not self._workers:
                futures += [f for f, _, _ in self._queue]
                self._queue.clear()
            self._room.notify_all()
        with contextlib.suppress(OSError):
            worker.proc.kill()
        _fail(futures, e)

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
        with self._room:
            workers, self._workers = self._workers + self._retired, []
            self._retired = []
            futures = [f for w in workers for f in w.inflight.values()] + [f for f, _, _ in self._queue]
            for w in workers:
                w.inflight.clear()
            self._queue.clear()
            pump, self._pump = self._pump, None
            self._ready, self._seen, self._broken, self._lost_by = False, 0, False, None
            self._room.notify_all()
        self._jobs = {}
        if not workers:
            return
        logger.info("extraction worker: %d of %d page(s) and document(s) handed to it were used", self.used, self.submitted)
        self.used = self.submitted = 0
        _fail(futures, WorkerLost("stopped"))
        for worker in workers:  # nothing it holds is needed any more: stopped at once
            try:
                worker.stop()
                worker.reader.join(timeout=10)
            except Exception as e:  # the others are stopped all the same
                logger.warning("could not stop the extraction worker %d: %s", worker.proc.pid, e)
        if pump is not None and pump.is_alive():
            pump.join(timeout=10)


def _fail(futures: list[Future], e: Exception) -> None:
    """Fail jobs waiting (unless cancelled meanwhile) or under way, whoever waits on them."""
    for f in futures:
        with contextlib.suppress(Exception):  # (one cancelled, or answered, meanwhile)
            if f.running() or f.set_running_or_notify_cancel():
                f.set_exception(e)
