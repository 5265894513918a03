"""The published contract with the alarm central, generated from the code.

``contract/event.schema.json`` is the JSON Schema of one event;
``contract/asyncapi.json`` is an AsyncAPI 3 document of every topic the hub
publishes and subscribes to. Both are committed; ``python -m hub.contract
--write`` regenerates them and a test fails when they drift from the code.
Every ``description`` is cleaned by :func:`hub.schematext.clean_descriptions`, so
the documents do not change with how a msgspec release trims docstrings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from hub.commands import COMMANDS
from hub.events import EVENT_TYPES, SCHEMA_VERSION, Event
from hub.schematext import clean_descriptions

CONTRACT_DIR = Path(__file__).resolve().parent.parent / "contract"


def event_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of one event, descriptions cleaned."""
    schema = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://carehub.example/contract/v{SCHEMA_VERSION}/event.schema.json"
    schema["title"] = "carehub event"
    schema["description"] = (
        "One event from a carehub hub, published on {prefix}/{hub}/event/{type}. "
        "De-duplicate by id; find gaps by seq (per hub, strictly increasing, no gaps)."
    )
    return clean_descriptions(schema)


def _json_schema_of(tp: Any) -> dict[str, Any]:
    (schema,), components = msgspec.json.schema_components([tp], ref_template="#/components/schemas/{name}")
    return {"schema": schema, "components": components}


_STATUS = {
    "type": "object",
    "required": ["state", "hub"],
    "properties": {
        "state": {"enum": ["online", "offline"]},
        "hub": {"type": "string"},
        "reason": {"type": "string", "description": "offline only: 'connection lost' (last will) or 'stopped'."},
        "version": {"type": "string"},
        "started": {"type": "string", "format": "date-time"},
        "config_sha256": {"type": "string"},
        "devices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "kind": {"type": "string"},
                    "room": {"type": ["string", "null"]},
                    "route": {"enum": ["nurse", "care", "any"]},
                },
            },
        },
    },
}

_HEARTBEAT = {
    "type": "object",
    "required": ["hub", "ts", "uptime_s", "seq", "outbox", "link", "devices"],
    "properties": {
        "hub": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
        "version": {"type": "string"},
        "uptime_s": {"type": "number"},
        "seq": {"type": "integer", "description": "Last seq allocated; compare with the last seq received to spot a gap early."},
        "outbox": {
            "type": "object",
            "properties": {
                "pending": {"type": "integer"},
                "pending_alarms": {"type": "integer"},
                "stored": {"type": "integer"},
                "last_seq": {"type": "integer"},
                "oldest_pending_ts": {"type": ["string", "null"]},
                "evicted": {"type": "integer"},
                "bytes": {"type": "integer", "description": "Bytes of stored events (bounded by [store] max_mb)."},
                "held": {
                    "type": "integer",
                    "description": "Alarms the disk refused, held in memory and sent with seq 0 until stored.",
                },
                "refused_full": {"type": "integer", "description": "Telemetry refused while the disk was short of space."},
            },
        },
        "link": {
            "type": "object",
            "description": "state, broker, connects, last_error, error_kind (tls, auth, network, protocol), failures.",
        },
        "forwarder": {"type": "object"},
        "health": {
            "type": "object",
            "description": "state ok or degraded; problems: component (store, link, task:<name>) -> reason, for_s. "
            "Each change is also an event: hub.degraded / hub.recovered.",
            "properties": {
                "state": {"enum": ["ok", "degraded"]},
                "problems": {"type": "object", "additionalProperties": {"type": "object"}},
            },
        },
        "tasks": {
            "type": "object",
            "description": "Supervised tasks: state (running, restarting, failed, stopped), restarts, last_error.",
        },
        "commands": {
            "type": "object",
            "description": "handled; refused by reason (invalid, too_large, response_topic, rate_limited, busy); queued.",
        },
        "devices": {
            "type": "object",
            "additionalProperties": {"type": "object"},
            "description": "Every configured device by id, heard or not: kind, state as its driver sees it (ok, "
            "offline; a BLE device not heard since the hub started: 'never heard'), last_seen (RFC 3339; null: not "
            "since the hub started), the driver's counters; a BLE advertiser adds rssi and battery of its last "
            "accepted advert, a serial device its port. 'ble': the BLE scanner itself.",
        },
        "open_alarms": {
            "type": "array",
            "description": "Open alarm episodes: event_id (the first alarm), device, type, state, alarms, latest, "
            "held, reminders.",
        },
        "alarm_counters": {
            "type": "object",
            "description": "cancel_unmatched: resets from a device that named no open alarm.",
        },
    },
}

_REPLY = {
    "type": "object",
    "required": ["ok"],
    "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}},
    "additionalProperties": True,
}


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the hub's topics, descriptions cleaned."""
    components: dict[str, Any] = {"schemas": {}, "messages": {}}
    ev = _json_schema_of(Event)
    components["schemas"].update(ev["components"])
    for name, cls in COMMANDS.items():
        sch = _json_schema_of(cls)
        components["schemas"].update(sch["components"])
    components["schemas"]["Status"] = _STATUS
    components["schemas"]["Heartbeat"] = _HEARTBEAT
    components["schemas"]["CommandReply"] = _REPLY
    types_doc = "\n".join(f"- `{t}` ({p.value}): {d}" for t, (p, d) in EVENT_TYPES.items())
    components["messages"]["Event"] = {
        "name": "Event",
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/Event"},
        "description": "QoS 1. Event types of this version:\n" + types_doc,
    }
    components["messages"]["Status"] = {
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/Status"},
        "description": "Retained, QoS 1. Birth on every connect and reconnect; last will {state: offline}; offline on a clean stop.",
    }
    components["messages"]["Heartbeat"] = {
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/Heartbeat"},
        "description": "QoS 0, every [mqtt] heartbeat_s while connected.",
    }
    components["messages"]["CommandReply"] = {
        "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/CommandReply"},
        "description": "Sent to the request's MQTT 5 response topic with its correlation data.",
    }
    channels: dict[str, Any] = {
        "event": {
            "address": "{prefix}/{hub}/event/{type}",
            "parameters": {
                "prefix": {"description": "Topic prefix from the config, default carehub/v1."},
                "hub": {"description": "Hub id."},
                "type": {"enum": list(EVENT_TYPES), "description": "The event's type (later versions add more)."},
            },
            "messages": {"Event": {"$ref": "#/components/messages/Event"}},
        },
        "status": {
            "address": "{prefix}/{hub}/status",
            "parameters": {"prefix": {}, "hub": {}},
            "messages": {"Status": {"$ref": "#/components/messages/Status"}},
        },
        "heartbeat": {
            "address": "{prefix}/{hub}/heartbeat",
            "parameters": {"prefix": {}, "hub": {}},
            "messages": {"Heartbeat": {"$ref": "#/components/messages/Heartbeat"}},
        },
    }
    operations: dict[str, Any] = {
        "publishEvent": {"action": "send", "channel": {"$ref": "#/channels/event"}},
        "publishStatus": {"action": "send", "channel": {"$ref": "#/channels/status"}},
        "publishHeartbeat": {"action": "send", "channel": {"$ref": "#/channels/heartbeat"}},
    }
    for name, cls in COMMANDS.items():
        msg_name = f"Command{cls.__name__}"
        components["messages"][msg_name] = {
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
            "description": (cls.__doc__ or "").strip(),
        }
        chan = f"cmd-{name}"
        channels[chan] = {
            "address": f"{{prefix}}/{{hub}}/cmd/{name}",
            "parameters": {"prefix": {}, "hub": {}},
            "messages": {msg_name: {"$ref": f"#/components/messages/{msg_name}"}},
        }
        operations[f"receive-{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{chan}"},
            "reply": {
                "address": {"location": "$message.header#/responseTopic"},
                "messages": [{"$ref": "#/components/messages/CommandReply"}],
            },
        }
    return clean_descriptions({
        "asyncapi": "3.0.0",
        "info": {
            "title": "carehub hub ↔ alarm central",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "MQTT 5 topics of a carehub hub. Events are QoS 1 and at-least-once: de-duplicate by `id`, "
                "detect gaps by `seq` and ask for them with cmd/replay. Every alarm needs cmd/ack; without it "
                "the hub sends alarm.unacknowledged until acked. Alarms are acked per episode: a device's repeats "
                "(and repeated test alarms, and a nurse-call address's repeated calls) join its open alarm, share one "
                "reminder stream, and one ack of any of them or of a reminder closes them all (alarm.acknowledged "
                "data.closes). An alarm the hub could not store (its disk refused the commit) is published from "
                "memory at once with seq 0, and published again with the same id and its seq once stored: treat "
                "seq 0 as outside gap detection and de-duplicate by id as always; hub.degraded (component store) "
                "says why. Commands are rate-limited per command and refused with a reply (refused: invalid, "
                "too_large, rate_limited, busy) where a response topic allows one; a response topic must be a "
                "topic name (no + or #) outside the hub's own cmd/ topics, else no reply is sent. The "
                "municipality's broker (config/broker/) lets a hub publish only under {prefix}/{hub}/: put the "
                "response topic there, {prefix}/{hub}/reply/{central account}, and a reply also says which hub sent it."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": components,
    })


def render(doc: dict[str, Any]) -> str:
    """Stable text form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents() -> dict[str, str]:
    """File name → content of every generated contract document."""
    return {"event.schema.json": render(event_schema()), "asyncapi.json": render(asyncapi())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate or check the committed contract documents.")
    parser.add_argument("--write", action="store_true", help="write contract/*.json")
    args = parser.parse_args(argv)
    stale = []
    for name, text in documents().items():
        path = CONTRACT_DIR / name
        if args.write:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(name)
    if stale:
        print(f"stale: {', '.join(stale)}; run python -m hub.contract --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
