"""What the outbox stores is what it can read back: :func:`checked_body`.

Every later read (``pending``, ``range``, replays) decodes the stored body
with :meth:`Event.from_json`; one body it cannot decode would poison every
such read. So a body is stored only if it reads back. Reading back in full
costs more than encoding (the contract's patterns: id, ts, type, SCAIP
codes), and a burst's events differ only in a few fields: the full read-back
runs once per shape of event, and the rest is checked field by field.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from hub.events import Event, EventId, Timestamp

__all__ = ["checked_body"]


def _pattern(annotated: Any) -> re.Pattern[str]:
    """The ``pattern`` of an annotated type's :class:`msgspec.Meta`, compiled (msgspec applies it with ``search``)."""
    (meta,) = (m for m in annotated.__metadata__ if isinstance(m, msgspec.Meta) and m.pattern)
    return re.compile(meta.pattern)


_id_ok = _pattern(EventId).search
_ts_ok = _pattern(Timestamp).search
#: The types of a ``data`` value that encode to JSON that decodes again, whatever their value (a str that
#: cannot be encoded, a lone surrogate, makes the encoder raise first).
_PLAIN = frozenset({str, int, float, bool, type(None)})
#: Event shapes (everything but id, seq, ts, data and cause) read back in full once: a few per device and
#: type, bounded in case something makes them all different.
_read_back: set[tuple[Any, ...]] = set()
_READ_BACK_MAX = 4096


def checked_body(event: Event) -> bytes:
    """``event.to_json()``, raising what :meth:`Event.from_json` would raise on it if it cannot be read back.

    The full read-back runs once per shape (type, priority, route, source,
    SCAIP codes, hub, resident, version); an event of a shape read back
    before is only checked where it differs: its ``id``, ``ts`` and ``cause``
    against the contract's patterns, its ``seq``, and its ``data`` a dict of
    plain JSON scalars under string keys. Anything else (nested data, a new
    shape, a value that fails a check) gets the full read-back, so the
    answer is the same, only cheaper.
    """
    body = event.to_json()
    data, cause = event.data, event.cause
    try:
        shape = (event.type, event.priority, event.route, event.source, event.scaip, event.hub, event.resident,
                 event.v)
        known = shape in _read_back
    except TypeError:  # unhashable: something no event of ours has; the full read-back says what
        known = False
    if not (
        known
        and type(event.v) is int and type(event.seq) is int and event.seq >= 0
        and type(event.id) is str and _id_ok(event.id) is not None
        and type(event.ts) is str and _ts_ok(event.ts) is not None
        and (cause is None or (type(cause) is str and _id_ok(cause) is not None))
        and type(data) is dict
        and all(type(k) is str and type(v) in _PLAIN for k, v in data.items())
    ):
        Event.from_json(body)
        if not known and len(_read_back) < _READ_BACK_MAX:
            _read_back.add(shape)
    return body
