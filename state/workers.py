"""Who a worker is — host, pid and the process's start time — and whether the process behind a
worker id still runs, so that a crashed worker's leases are taken over at once on its own host."""
from __future__ import annotations

import os
import socket


def _stat(pid: int) -> tuple[str, str]:
    """(state, start) of a process from /proc/PID/stat: its state letter (field 3) and its start
    time in clock ticks since boot (field 22); ("", "") where it cannot be read. With the pid the
    start names one process: a pid reused later has another start."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return "", ""
    fields = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces and parentheses
    return (fields[0], fields[19]) if len(fields) > 19 else ("", "")


def _start_ticks(pid: int) -> str:
    return _stat(pid)[1]


def worker_id() -> str:
    """`host:pid:start` of this process (start is "" where /proc is not readable)."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def parse(owner: str) -> tuple[str, int, str] | None:
    """(host, pid, start) of a worker id; None for what is not one. Ids of the older `host:pid`
    form have no start."""
    parts = owner.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1]), parts[2]
    parts = owner.rsplit(":", 1)
    if len(parts) == 2 and parts[1].isdigit():
        return parts[0], int(parts[1]), ""
    return None


def gone(owner: str) -> bool:
    """True only when `owner` is a worker of this host whose process no longer runs (its pid is
    free, or now belongs to a process that started at another time). A worker on another host, or
    one whose state cannot be read, is not judged gone: its lease simply runs out."""
    who = parse(owner)
    if who is None or who[0] != socket.gethostname():
        return False
    _host, pid, start = who
    if pid == os.getpid():
        return owner != worker_id()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it runs, as another user
    state, now = _stat(pid)
    if state in ("Z", "X"):
        return True  # killed, not yet reaped by its parent
    return bool(start) and bool(now) and now != start
