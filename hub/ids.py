"""Event ids and times: UUIDv7 ids (:func:`uuid7`) and RFC 3339 UTC timestamps (:func:`rfc3339`).

The contract's ``id`` and ``ts`` (:mod:`hub.events`, which re-exports both: a driver imports them from
there); kept apart so the event contract's module stays a table of types.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

__all__ = ["rfc3339", "uuid7"]


def rfc3339(t: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds, e.g. ``2026-11-25T21:21:50.123Z``."""
    # as datetime does it: split off the fraction first, so that a large t times 1e6 loses no precision
    frac_s, whole = math.modf(time.time() if t is None else t)
    sec, frac = int(whole), round(frac_s * 1_000_000)
    if frac >= 1_000_000:
        sec, frac = sec + 1, frac - 1_000_000
    if sec != _second[0]:  # one strftime per second, not per event
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
    return f"{_second[1]}{frac // 1000:03d}Z"


_second: list[Any] = [None, ""]


_last_v7 = [0, 0]
#: Random bits read ahead, 80 per id: one ``os.urandom`` call for many ids (a system call each was
#: a quarter of an id's cost). ``list.pop`` hands each out once, whichever thread asks; a forked
#: child starts without them, so it never repeats its parent's.
_random: list[int] = []
_RANDOM_AHEAD = 256


def _refill() -> None:
    buf = os.urandom(10 * _RANDOM_AHEAD)
    _random.extend(int.from_bytes(buf[i : i + 10], "big") for i in range(0, len(buf), 10))


os.register_at_fork(after_in_child=_random.clear)


def uuid7(t: float | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits.

    Monotonic within this process: ids made in the same millisecond keep
    their order through a 12-bit counter in ``rand_a``. An id for a given time
    ``t`` stands apart: it neither follows nor moves that sequence (one made
    for an hour ahead must not hold every later id an hour ahead). (``uuid.uuid7``
    only arrives with Python 3.14.)
    """
    ms = int((time.time() if t is None else t) * 1000)
    try:
        rand = _random.pop()  # 16 bits for the counter's start, 64 for rand_b
    except IndexError:
        _refill()
        rand = _random.pop()
    if t is not None:
        counter = (rand >> 64) & 0x3FF
    elif ms <= _last_v7[0]:
        ms = _last_v7[0]
        counter = _last_v7[1] + 1
        if counter > 0xFFF:
            ms += 1
            counter = 0
    else:
        counter = (rand >> 64) & 0x3FF
    if t is None:
        _last_v7[0], _last_v7[1] = ms, counter
    ms &= (1 << 48) - 1
    rand_b = rand & ((1 << 62) - 1)
    return "%08x-%04x-%04x-%04x-%012x" % (
        ms >> 16, ms & 0xFFFF, 0x7000 | counter, 0x8000 | rand_b >> 48, rand_b & 0xFFFF_FFFF_FFFF
    )
