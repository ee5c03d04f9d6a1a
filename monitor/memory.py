"""glibc heap settings for the long-running scheduler, so its RSS stays flat from cycle to cycle.

Each cycle runs its writer in a new thread, and glibc gives threads heaps ("arenas") of their
own, up to 8 per core, that keep freed pages: measured at 1,000 pages, RSS grew from 144 MB to
160 MB over 10 cycles with the defaults, and stayed at 151 MB with two arenas. `malloc_trim`
after a cycle hands the free pages at the top of the heaps back to the system. Elsewhere (musl,
macOS) these are no-ops.
"""
from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()


def limit_arenas(n: int = 2) -> None:
    """At most `n` malloc arenas; call before the process starts its threads."""
    if _LIBC is not None and not _LIBC.mallopt(M_ARENA_MAX, n):
        logger.debug("mallopt(M_ARENA_MAX, %d) refused", n)


def trim() -> None:
    """Return free heap memory to the system (after a cycle)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
