"""Event batches (contract 1.5): several telemetry events in one MQTT message on ``{prefix}/{hub}/events``.

The payload is ``{"events":[<event>,<event>,...]}``, each element exactly the
event JSON that ``{prefix}/{hub}/event/{type}`` carries. The hub's forwarder
makes them (:func:`pack`) only of normal and low priority events that are
waiting together; alarms and high or critical events always go one per
message on ``event/{type}``. A consumer takes each element as if it had come
on its own topic: de-duplicate by id, seq gaps per event as ever.

:func:`unpack` and :func:`explode` are the consumers' side, shared by the
reference central, the HIL central, the test subscriber and the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec

__all__ = ["BATCH_LEVEL", "Item", "batch_filter", "explode", "is_batch_topic", "pack", "unpack"]

#: The last topic level of a batch: ``{prefix}/{hub}/events``.
BATCH_LEVEL = "events"
_HEAD = b'{"events":['
_TAIL = b"]}"
#: The bytes a batch adds to its events' own: the head, the tail and a comma between two.
OVERHEAD = len(_HEAD) + len(_TAIL)



class _Batch(msgspec.Struct):
    """The payload's layout; each element kept as its own JSON text (``msgspec.Raw``), keys a later minor
    version adds ignored."""

    events: list[msgspec.Raw]


class Item(NamedTuple):
    """One event of a batch: its JSON text as it came, and decoded."""

    body: bytes
    event: dict[str, Any]


def pack(bodies: Sequence[bytes]) -> bytes:
    """The batch payload of events given as their JSON text (joined, nothing decoded)."""
    return _HEAD + b",".join(bodies) + _TAIL


def is_batch_topic(topic: str) -> bool:
    """True for ``.../events`` (a batch), False for ``.../event/{type}`` and anything else."""
    return topic.rpartition("/")[2] == BATCH_LEVEL


def batch_filter(topic_filter: str) -> str | None:
    """The batch topic filter that a filter for a hub's events brings along (``p/+/event/#`` -> ``p/+/events``);
    None for any other filter."""
    for tail in ("/event/#", "/event/+"):
        if topic_filter.endswith(tail):
            return f"{topic_filter[: -len(tail)]}/{BATCH_LEVEL}"
    return None


def unpack(payload: bytes) -> list[Item]:
    """The events of a batch payload, in order, each as its JSON text as it came and decoded. Raises
    :class:`ValueError` when it is not one (not JSON, no ``events`` list, an element that is not an object)."""
    try:
        raws = msgspec.json.decode(payload, type=_Batch).events
        items = [Item(bytes(raw), msgspec.json.decode(raw)) for raw in raws]
    except msgspec.MsgspecError as exc:
        raise ValueError(f"not an event batch: {exc}") from exc
    if not all(isinstance(item.event, dict) for item in items):
        raise ValueError("not an event batch: an element is not an object")
    return items


def explode(topic: str, payload: bytes) -> list[tuple[str, bytes]]:
    """A message as ``(topic, payload)`` per event: one on ``.../event/{type}`` as it came; each event of
    a batch on ``.../events`` as if it had come alone on ``.../event/{type}``. Raises :class:`ValueError`
    for a batch topic whose payload is no batch (the caller keeps it as it came, or reports it)."""
    if not is_batch_topic(topic):
        return [(topic, payload)]
    base = topic[: -len(BATCH_LEVEL)]
    return [(f"{base}event/{item.event.get('type')}", item.body) for item in unpack(payload)]
