"""What each event type puts in its ``data``: one msgspec struct per type, the one place it is written down.

The contract's per-type JSON Schemas are generated from these structs
(:mod:`hub.contractdoc`), and the tests hold every producer to them: each
event a real hub sends in the end-to-end tests validates against
``contract/event.schema.json`` (the test rig's central checks every one),
and :func:`problems` decodes a ``data`` strictly (no key the struct does not
name, every value of its type) for the tests that call the producers.

The published schemas leave ``data`` open to keys a later minor version adds
and require no key (contract 1.0 required none, and a hub replays what it
stored before an upgrade; :mod:`hub.contractdoc.schemas`); :func:`problems`
does neither, so a producer that drops a key it always sent, or starts
sending a new one, fails a test until its struct says so.

One shape crosses every type: a GATT notification mapped to an event type by
the config (``[[device.gatt.notify]] event = ...``) carries ``{<key>: value,
"raw": hex}`` whatever the type (:data:`GATT_NOTIFICATION`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from hub.eventdata import alarms, checkin, configdata, devices, fallback, hubdata, rules
from hub.eventdata.base import Data

__all__ = ["DATA", "GATT_NOTIFICATION", "Data", "problems", "struct_for"]

#: Event type -> the struct of its data, for every type of :data:`hub.events.EVENT_TYPES`.
DATA: dict[str, type[Data]] = {
    **alarms.DATA, **devices.DATA, **hubdata.DATA, **rules.DATA, **configdata.DATA, **fallback.DATA, **checkin.DATA
}

#: JSON Schema of a GATT notification's data (no struct: its value's key is the config's).
GATT_NOTIFICATION: dict[str, Any] = {
    "title": "GattNotificationData",
    "description": "A GATT notification mapped to this event type by the config ([[device.gatt.notify]] event, "
    "key, decode): the decoded value under the mapping's key (a number, or text for utf8 and hex), and the "
    "payload as it came.",
    "type": "object",
    "properties": {"raw": {"type": "string", "pattern": "^([0-9a-f]{2})*$", "description": "The payload, hex."}},
    "required": ["raw"],
    "additionalProperties": {"type": ["number", "string"]},
}


def struct_for(event_type: str) -> type[Data] | None:
    """The data struct of ``event_type``; None for a type this version does not know."""
    return DATA.get(event_type)


def problems(event_type: str, data: dict[str, Any]) -> list[str]:
    """What is wrong with ``data`` for ``event_type``, strictly: unknown keys, missing ones, wrong types.

    A GATT notification's shape (:data:`GATT_NOTIFICATION`) is accepted for any type.
    """
    cls = DATA.get(event_type)
    if cls is None:
        return [f"unknown event type {event_type!r}"]
    if _is_gatt_notification(data):
        return []
    out = [f"{event_type}: data.{k} is not in {cls.__name__}" for k in sorted(set(data) - set(cls.__struct_fields__))]
    try:
        msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        out.append(f"{event_type}: {exc}")
    return out


def _is_gatt_notification(data: dict[str, Any]) -> bool:
    raw = data.get("raw")
    return (
        isinstance(raw, str)
        and len(data) == 2
        and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in data.values())
    )
