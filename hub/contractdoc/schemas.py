"""JSON Schemas from the structs: the event (with each type's data), the data structs, the documents.

``contract/event.schema.json`` is the :class:`~hub.events.Event` struct's
schema plus one ``if type is X then data is X's`` clause per known type
(:func:`typed_data`), so an event of a type this version does not know still
validates as a generic event.

An additive (minor) version must take what the earlier ones sent: contract
1.0 said nothing about ``data`` and little about the documents, and a hub
replays events it stored before an upgrade as they were. So the schemas of
the data and the documents type every key they know but require only what
1.0 required (:data:`REQUIRED_SINCE_1_0`); the keys this version's hub always
sends are named in each schema's description, and the tests hold the hub to
them (:func:`hub.eventdata.problems` decodes strictly).
"""

from __future__ import annotations

from typing import Any

import msgspec

from hub.eventdata import DATA, GATT_NOTIFICATION
from hub.events import EVENT_TYPES, SCHEMA_VERSION, Event

GATT = "GattNotificationData"


#: Schema name -> the keys contract 1.0 required; every other schema from a data or document
#: struct requires nothing (see the module docstring).
REQUIRED_SINCE_1_0: dict[str, list[str]] = {
    "StatusOnline": ["state", "hub"],
    "StatusOffline": ["state", "hub"],
    "Heartbeat": ["hub", "ts", "uptime_s", "seq", "outbox", "link", "devices"],
    **{name: ["ok"] for name in ("StatusReply", "AckReply", "AckUnknownReply", "TestAlarmReply", "ReplayReply",
                                 "BleForgetReply", "ErrorReply")},
}


def components(types: list[Any], template: str) -> dict[str, Any]:
    """The schemas of ``types`` and of everything they refer to, by name, refs made with ``template``."""
    _, comps = msgspec.json.schema_components(types, ref_template=template)
    return comps


def relaxed(schemas: dict[str, Any]) -> dict[str, Any]:
    """``schemas`` requiring only what contract 1.0 did; the rest of their required keys named in the description."""
    out = {}
    for name, schema in schemas.items():
        always = schema.get("required")
        if always is None:
            out[name] = schema
            continue
        schema = {k: v for k, v in schema.items() if k != "required"}
        keep = [k for k in REQUIRED_SINCE_1_0.get(name, []) if k in always]
        if keep:
            schema["required"] = keep
        note = f"This version's hub always sends {', '.join(always)}; the other keys when they apply."
        schema["description"] = f"{schema['description']}\n\n{note}" if schema.get("description") else note
        out[name] = schema
    return out


def data_schemas(template: str) -> dict[str, Any]:
    """Every data struct's schema by name (relaxed), and the GATT notification's."""
    unique = list(dict.fromkeys(DATA.values()))
    return {**relaxed(components(unique, template)), GATT: GATT_NOTIFICATION}


def data_schema_of(event_type: str, template: str) -> dict[str, Any]:
    """The schema ``data`` has in an event of ``event_type``: its struct's, or a GATT notification's."""
    name = DATA[event_type].__name__
    return {"anyOf": [{"$ref": template.format(name=name)}, {"$ref": template.format(name=GATT)}]}


def typed_data(template: str) -> list[dict[str, Any]]:
    """One ``if``/``then`` per known event type: an event of that type has that type's data."""
    return [
        {
            "if": {"properties": {"type": {"const": t}}, "required": ["type"]},
            "then": {"properties": {"data": data_schema_of(t, template)}},
        }
        for t in EVENT_TYPES
    ]


def event_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of one event, each known type's data checked (descriptions not yet cleaned)."""
    template = "#/$defs/{name}"
    schema = msgspec.json.schema(Event)
    schema["$defs"].update(data_schemas(template))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://carehub.example/contract/v{SCHEMA_VERSION}/event.schema.json",
        "title": "carehub event",
        "description": (
            "One event from a carehub hub, published on {prefix}/{hub}/event/{type}, or (normal and low priority, "
            "since 1.5) as one element of a batch on {prefix}/{hub}/events. De-duplicate by id; find "
            "gaps by seq (per hub, strictly increasing, no gaps). The data of each type this version knows is "
            "checked against that type's schema (or a GATT notification's, for a type the config maps a "
            "notification to); an event of a type a later version adds is checked as a generic event. Every "
            "object in data may gain keys in a later minor version: ignore what you do not know."
        ),
        "$ref": schema["$ref"],
        "allOf": typed_data(template),
        "$defs": schema["$defs"],
    }
