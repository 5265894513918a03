"""Giving memory back to the system after a burst.

A burst of events leaves memory behind that nothing uses any more: SQLite's
page caches stay full (bounded, see :data:`hub.outbox.core.CACHE_KIB`), and
glibc's malloc keeps freed blocks in its arenas (one per thread that
allocated) rather than handing them back. Once the burst is over (the
forwarder is caught up and the store quiet), :meth:`hub.outbox.Outbox.shrink_memory`
empties the caches and :func:`trim_malloc` returns malloc's free pages, so
the hub's resident memory falls back towards where it was before the burst.
CPython's own small-object arenas are freed by CPython when they empty.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

import structlog

log = structlog.get_logger("hub.memory")


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where there is none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def trim_malloc() -> bool:
    """Return malloc's free memory (of every arena) to the system; False where that cannot be done."""
    if _TRIM is None:
        return False
    return bool(_TRIM(0))
