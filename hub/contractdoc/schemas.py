"""JSON Schemas from the structs: the event (with each type's data), the data structs, the documents.

``contract/event.schema.json`` is the :class:`~hub.events.Event` struct's
schema plus one ``if type is X then data is X's`` clause per known type
(:func:`typed_data`), so an event of a type this version does not know still
validates as a generic event.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hub.eventdata import DATA, GATT_NOTIFICATION
from hub.events import EVENT_TYPES, SCHEMA_VERSION, Event

GATT = "GattNotificationData"


def components(types: list[Any], template: str) -> dict[str, Any]:
    """The schemas of ``types`` and of everything they refer to, by name, refs made with ``template``."""
    _, comps = msgspec.json.schema_components(types, ref_template=template)
    return comps


def data_schemas(template: str) -> dict[str, Any]:
    """Every data struct's schema by name, and the GATT notification's."""
    unique = list(dict.fromkeys(DATA.values()))
    return {**components(unique, template), GATT: GATT_NOTIFICATION}


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
            "One event from a carehub hub, published on {prefix}/{hub}/event/{type}. De-duplicate by id; find "
            "gaps by seq (per hub, strictly increasing, no gaps). The data of each type this version knows is "
            "checked against that type's schema (or a GATT notification's, for a type the config maps a "
            "notification to); an event of a type a later version adds is checked as a generic event. Every "
            "object in data may gain keys in a later minor version: ignore what you do not know."
        ),
        "$ref": schema["$ref"],
        "allOf": typed_data(template),
        "$defs": schema["$defs"],
    }
