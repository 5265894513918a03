"""The AsyncAPI 3 document of the hub's topics: servers, security, channels, operations, messages, examples.

It describes the hub as an application: it sends events, its status and
heartbeats, and receives commands, replying to each. Every schema comes from
a struct (:mod:`hub.contractdoc.schemas`), every example from
:mod:`hub.contractdoc.examples`; descriptions are cleaned by the caller.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hub.commands import COMMANDS
from hub.contractdoc import payloads as docs
from hub.contractdoc import examples
from hub.contractdoc.schemas import components, data_schema_of, data_schemas, relaxed
from hub.contractdoc.text import DESCRIPTION, SCAIP_EXTENSION, SECURITY_SCHEMES, SERVERS, event_summary
from hub.events import EVENT_TYPES, SCHEMA_MINOR, SCHEMA_VERSION, Event

REF = "#/components/schemas/{name}"
MQTT = "0.2.0"  # the MQTT bindings' version
PARAMS = {"prefix": {"description": "Topic prefix from the config, default carehub/v1."}, "hub": {"description": "Hub id."}}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _event_messages() -> dict[str, Any]:
    """One message per event type (its data's schema, an example), and the generic event for later types."""
    by_type = examples.by_type()
    out: dict[str, Any] = {}
    for t, (priority, meaning) in EVENT_TYPES.items():
        out[t] = {
            "name": t,
            "title": t,
            "summary": event_summary(t, priority.value),
            "description": meaning,
            "contentType": "application/json",
            "payload": {
                "allOf": [
                    _ref("schemas", "Event"),
                    {"properties": {"type": {"const": t}, "data": data_schema_of(t, REF)}},
                ]
            },
            "examples": [{"name": t, "payload": by_type[t]}],
        }
    out["Event"] = {
        "name": "Event",
        "title": "any event",
        "summary": "An event of a type this version does not list (a later minor version adds types): de-duplicate, "
        "count its seq, store it; its data is an object.",
        "contentType": "application/json",
        "payload": _ref("schemas", "Event"),
    }
    return out


BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Several events in one message (contract 1.5): normal and low priority events that were waiting "
    "together. Each element is exactly the event event/{type} carries; take each as one event.",
    "required": ["events"],
    "properties": {
        "events": {
            "type": "array",
            "minItems": 1,
            "items": {"$ref": REF.format(name="Event")},
            "description": "The events, in the hub's sending order (by priority, then seq): two or more from this "
            "hub; never an alarm, never a high or critical event.",
        },
    },
}


def _batch_message() -> dict[str, Any]:
    return {
        "name": "EventBatch",
        "title": "events batched",
        "summary": "Normal and low priority events that waited together, in one message: each as on "
        "event/{type}.",
        "description": "QoS 1. The hub batches telemetry only when several events are waiting (a burst, the drain "
        "after an outage), up to [mqtt] batch_max events and batch_bytes of payload; one waiting alone goes on "
        "event/{type}. De-duplicate each element by id and detect seq gaps per element, as for single events.",
        "contentType": "application/json",
        "payload": _ref("schemas", "EventBatch"),
        "examples": [{"name": "telemetry that waited together", "payload": examples.batch()}],
    }


def _document_messages() -> dict[str, Any]:
    reply_examples: dict[str, list[dict[str, Any]]] = {}
    for name, cases in examples.COMMANDS.items():
        for title, _, reply in cases:
            reply_examples.setdefault(type(reply).__name__, []).append({"name": f"{name}: {title}", "payload": _builtins(reply)})
    out: dict[str, Any] = {
        "Status": {
            "name": "Status",
            "summary": "The hub's retained status: online (birth) or offline (last will, clean stop).",
            "description": "Retained, QoS 1. The birth on every connect and reconnect; the last will "
            "{state: offline, reason: connection lost} when the broker loses the hub; {state: offline, reason: "
            "stopped} on a clean stop.",
            "contentType": "application/json",
            "payload": {"oneOf": [_ref("schemas", "StatusOnline"), _ref("schemas", "StatusOffline")]},
            "examples": [
                {"name": "online (birth)", "payload": _builtins(examples.STATUS_ONLINE)},
                {"name": "offline (last will)", "payload": _builtins(examples.STATUS_LOST)},
                {"name": "offline (clean stop)", "payload": _builtins(examples.STATUS_STOPPED)},
            ],
        },
        "Heartbeat": {
            "name": "Heartbeat",
            "summary": "The hub's state, every [mqtt] heartbeat_s while connected.",
            "description": "QoS 0, not retained. A central that misses heartbeats for longer than it allows "
            "(SOS Access: 180 s) treats the hub as unsupervised; seq tells it early about a gap.",
            "contentType": "application/json",
            "payload": _ref("schemas", "Heartbeat"),
            "examples": [{"name": "heartbeat", "payload": _builtins(examples.HEARTBEAT)}],
        },
    }
    for cls in docs.DOCUMENTS:
        if cls in (docs.StatusOnline, docs.StatusOffline, docs.Heartbeat):
            continue
        name = cls.__name__
        out[name] = {
            "name": name,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "description": "Sent to the request's MQTT 5 response topic, with its correlation data.",
            "contentType": "application/json",
            "payload": _ref("schemas", name),
            "examples": reply_examples.get(name, []),
        }
    return out


def _command_messages() -> dict[str, Any]:
    out = {}
    for name, cls in COMMANDS.items():
        out[f"Command{cls.__name__}"] = {
            "name": f"cmd/{name}",
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "description": (cls.__doc__ or "").strip(),
            "contentType": "application/json",
            "payload": _ref("schemas", cls.__name__),
            "bindings": {"mqtt": {
                "responseTopic": {"type": "string", "description": "Where the reply goes: "
                                  "{prefix}/{hub}/reply/{central account} with the shipped broker ACL."},
                "correlationData": {"type": "string", "description": "Echoed in the reply; at most 128 bytes."},
                "bindingVersion": MQTT,
            }},
            "examples": [{"name": title, "payload": payload} for title, payload, _ in examples.COMMANDS[name]
                         if _valid(payload, cls)],
        }
    return out


def _valid(payload: dict[str, Any], cls: type) -> bool:
    """A command example worth showing: one the hub takes (the others are there for their replies)."""
    try:
        msgspec.convert(payload, cls)
    except msgspec.ValidationError:
        return False
    return True


def _channels(event_messages: dict[str, Any]) -> dict[str, Any]:
    channels: dict[str, Any] = {
        "event": {
            "address": "{prefix}/{hub}/event/{type}",
            "title": "Events",
            "parameters": {**PARAMS, "type": {"enum": list(EVENT_TYPES),
                                              "description": "The event's type (later versions add more)."}},
            "messages": {name: _ref("messages", name) for name in event_messages},
        },
        "events": {
            "address": "{prefix}/{hub}/events",
            "title": "Batches of events",
            "description": "Since 1.5: normal and low priority events that were waiting together, several in one "
            "message. Subscribe to it beside event/{type}.",
            "parameters": PARAMS,
            "messages": {"EventBatch": _ref("messages", "EventBatch")},
        },
        "status": {"address": "{prefix}/{hub}/status", "parameters": PARAMS,
                   "messages": {"Status": _ref("messages", "Status")}},
        "heartbeat": {"address": "{prefix}/{hub}/heartbeat", "parameters": PARAMS,
                      "messages": {"Heartbeat": _ref("messages", "Heartbeat")}},
        "reply": {
            "address": "{prefix}/{hub}/reply/{account}",
            "title": "Replies to commands",
            "description": "Where a command's response topic should point: under the hub's own prefix (the shipped "
            "broker ACL lets a hub write nowhere else), with the central's account, so a reply says which hub sent "
            "it. A response topic with + or #, or under the hub's cmd/, gets no reply.",
            "parameters": {**PARAMS, "account": {"description": "The central's broker account, e.g. central.main "
                                                                "(more levels may follow)."}},
            "messages": {},
        },
    }
    channels["config"] = {
        "address": "{prefix}/{hub}/config/{version}",
        "title": "Pushed configs by reference",
        "description": "Retained by the central: the TOML text a cmd/config without toml names by its version (the "
        "hub subscribes, takes the retained message and leaves). Its SHA-256 must be the one cmd/config signs.",
        "parameters": {**PARAMS, "version": {"description": "The version cmd/config names."}},
        "messages": {"ConfigText": _ref("messages", "ConfigText")},
    }
    for name, cls in COMMANDS.items():
        channels[f"cmd-{name}"] = {
            "address": f"{{prefix}}/{{hub}}/cmd/{name}",
            "parameters": PARAMS,
            "messages": {f"Command{cls.__name__}": _ref("messages", f"Command{cls.__name__}")},
        }
    replies = channels["reply"]["messages"]
    for cls in docs.DOCUMENTS:
        if cls not in (docs.StatusOnline, docs.StatusOffline, docs.Heartbeat):
            replies[cls.__name__] = _ref("messages", cls.__name__)
    return channels


def _operations() -> dict[str, Any]:
    def qos(n: int, retain: bool = False) -> dict[str, Any]:
        return {"mqtt": {"qos": n, "retain": retain, "bindingVersion": MQTT}}

    ops: dict[str, Any] = {
        "publishEvent": {"action": "send", "channel": {"$ref": "#/channels/event"}, "bindings": qos(1),
                         "summary": "Every event, QoS 1, at least once: de-duplicate by id, find gaps by seq."},
        "publishEventBatch": {"action": "send", "channel": {"$ref": "#/channels/events"}, "bindings": qos(1),
                              "summary": "Normal and low priority events that waited together, several in one "
                              "message, QoS 1: each as if it came on event/{type}."},
        "publishStatus": {"action": "send", "channel": {"$ref": "#/channels/status"}, "bindings": qos(1, True),
                          "summary": "The retained status."},
        "publishHeartbeat": {"action": "send", "channel": {"$ref": "#/channels/heartbeat"}, "bindings": qos(0),
                             "summary": "The heartbeat."},
    }
    for name, cls in COMMANDS.items():
        replies = [*docs.REPLIES[name], docs.ErrorReply]
        ops[f"receive-{name}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/cmd-{name}"},
            "summary": f"cmd/{name}; the hub replies to the response topic.",
            "bindings": qos(1),
            "reply": {
                "channel": {"$ref": "#/channels/reply"},
                "address": {"location": "$message.header#/responseTopic",
                            "description": "The request's MQTT 5 response topic."},
                "messages": [{"$ref": f"#/channels/reply/messages/{r.__name__}"} for r in replies],
            },
        }
    return ops


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document (descriptions not yet cleaned)."""
    schemas: dict[str, Any] = {}
    schemas.update(components([Event], REF))
    schemas.update(components(list(COMMANDS.values()), REF))
    schemas.update(relaxed(components(list(docs.DOCUMENTS), REF)))
    schemas.update(data_schemas(REF))
    schemas["EventBatch"] = BATCH_SCHEMA
    event_messages = _event_messages()
    messages = {**event_messages, "EventBatch": _batch_message(), **_document_messages(), **_command_messages()}
    messages["ConfigText"] = {
        "name": "ConfigText", "summary": "A whole hub config, TOML (UTF-8), at most 60,000 characters.",
        "contentType": "application/toml", "payload": {"type": "string", "maxLength": 60000},
    }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:carehub:hub",
        "info": {
            "title": "carehub hub ↔ alarm central",
            "version": f"{SCHEMA_VERSION}.{SCHEMA_MINOR}.0",
            "description": DESCRIPTION,
            "x-scaip": SCAIP_EXTENSION,
        },
        "defaultContentType": "application/json",
        "servers": SERVERS,
        "channels": _channels(event_messages),
        "operations": _operations(),
        "components": {"schemas": schemas, "messages": messages, "securitySchemes": SECURITY_SCHEMES},
    }
