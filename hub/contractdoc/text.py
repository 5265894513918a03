"""The AsyncAPI document's prose and fixed parts: its description, the servers, the security schemes, SCAIP.

The servers and schemes are what ``config/broker/`` ships and ``carehub
provision`` sets up: TLS with a client certificate per hub (8883), or TLS with
a username and password per hub (8884); a broker on the hub's own machine may
go without TLS. The SCAIP table is rendered from :mod:`hub.scaip`.
"""

from __future__ import annotations

from typing import Any

from hub import scaip
from hub.events import EVENT_TYPES

_INTRO = (
    "MQTT 5 topics of a carehub hub. Events are QoS 1 and at-least-once: de-duplicate by `id`, detect gaps by "
    "`seq` and ask for them with cmd/replay. Every alarm needs cmd/ack; without it the hub sends "
    "alarm.unacknowledged until acked. Alarms are acked per episode: a device's repeats (and repeated test "
    "alarms, and a nurse-call address's repeated calls) join its open alarm, share one reminder stream, and one "
    "ack of any of them or of a reminder closes them all (alarm.acknowledged data.closes). An alarm the hub could "
    "not store (its disk refused the commit) is published from memory at once with seq 0, and published again "
    "with the same id and its seq once stored: treat seq 0 as outside gap detection and de-duplicate by id as "
    "always; hub.degraded (component store) says why. Commands are rate-limited per command and refused with a "
    "reply (refused: invalid, too_large, rate_limited, busy) where a response topic allows one; a response topic "
    "must be a topic name (no + or #) outside the hub's own cmd/ topics, else no reply is sent. The "
    "municipality's broker (config/broker/) lets a hub publish only under {prefix}/{hub}/: put the response topic "
    "there, {prefix}/{hub}/reply/{central account}, and a reply also says which hub sent it.\n\n"
    "Since 1.5 normal and low priority events may arrive batched when several are waiting (a burst, the drain "
    "after an outage): one QoS 1 message on {prefix}/{hub}/events, `{\"events\": [<event>, ...]}`, each element "
    "exactly what event/{type} would have carried. Subscribe to {prefix}/+/events as well as "
    "{prefix}/+/event/+ and take each element as one event: de-duplicate by id and detect seq gaps per event as "
    "ever (a batch's events are in sending order, but need not be consecutive seqs). Alarms and high or critical "
    "events never come batched; an event waiting alone goes on event/{type} as before. A hub configured with "
    "[mqtt] batch_max = 1 sends no batches (for a central that does not read 1.5 yet).\n\n"
    "cmd/config pushes a whole config (TOML, up to 64 KiB) as a version, signed with the central's Ed25519 key "
    "over `carehub-config-push/1\\n<hub>\\n<version>\\n<sha256 of the text>` (the hub holds the public key in its "
    "local file; the broker lets only the central's main account publish cmd/config and the retained "
    "{prefix}/{hub}/config/{version} a push may name instead of the text). The hub checks it as check-config "
    "does (a refusal's reply has every pushed:v<N>:LINE:COL line), applies it, and holds it on probation: once "
    "the hub reaches the central on it (its birth acknowledged, its commands subscribed) config.confirmed, "
    "otherwise after probation_s, or at a restart before that, config.rolled_back, sent once it is back. "
    "cmd/config-status says which config runs.\n\n"
    "Each event type has its own message here, with the schema of its data and an example; "
    "contract/event.schema.json checks the same (contract/examples/ has every example as a file). Every object "
    "may gain keys in a later minor version of this document (info.version): ignore what you do not know. A "
    "type a later version adds arrives as the generic Event."
)

_SCAIP_INTRO = (
    "## SCAIP\n\n"
    "Every event carries `scaip: {dty, stc}`: the SCAIP (SS 91100:2014, CENELEC TS 50134-9) device type of its "
    "source's kind and the status code of its type, for a central that forwards to SCAIP receivers (also in "
    "info.x-scaip). A code is null where the SCAIP code lists have none that fits: this document never guesses "
    "one. The codes were taken from public transcriptions of the code lists (caruhome/scaip-gateway "
    "scaip_gateway/spec.py; Syntilio/Datahub-Scaip-Proxy's enums confirm the device types and 0010, 0093), not "
    "from the standard's text, which this project could not read; check them against your copy of SS 91100 "
    "before relying on them. Which code fits which kind and type is this project's reading of the codes' names."
)


def _table(title: str, rows: dict[str, str | None], names: dict[str, str]) -> str:
    lines = [f"| {title} | SCAIP | name |", "| --- | --- | --- |"]
    for key, code in rows.items():
        lines.append(f"| {key} | {code or 'null'} | {names[code] if code else 'no code fits'} |")
    return "\n".join(lines)


DESCRIPTION = "\n\n".join([
    _INTRO,
    _SCAIP_INTRO,
    _table("source.kind", scaip.DEVICE_TYPES, scaip.DEVICE_TYPE_NAMES),
    _table("event type", {t: scaip.STATUS_CODES.get(t) for t in EVENT_TYPES}, scaip.STATUS_CODE_NAMES),
])

#: The SCAIP mapping, machine-readable (info.x-scaip).
SCAIP_EXTENSION: dict[str, Any] = {
    "standard": "SS 91100:2014 (CENELEC TS 50134-9)",
    "dty": dict(scaip.DEVICE_TYPES),
    "stc": {t: scaip.STATUS_CODES.get(t) for t in EVENT_TYPES},
    "names": {"dty": dict(scaip.DEVICE_TYPE_NAMES), "stc": dict(scaip.STATUS_CODE_NAMES)},
}


def event_summary(event_type: str, priority: str) -> str:
    """A message's one line: priority and SCAIP status code."""
    code = scaip.STATUS_CODES.get(event_type)
    stc = f"SCAIP stc {code} ({scaip.STATUS_CODE_NAMES[code]})" if code else "no SCAIP status code"
    return f"{event_type}: priority {priority} by default; {stc}."


_LAST_WILL = {"mqtt": {
    "lastWill": {"topic": "{prefix}/{hub}/status", "qos": 1, "retain": True,
                 "message": '{"state": "offline", "hub": "<hub id>", "reason": "connection lost"}'},
    "bindingVersion": "0.2.0",
}}

SERVERS: dict[str, Any] = {
    "certificate": {
        "host": "mqtt1.responssenter.example:8883",
        "protocol": "secure-mqtt",
        "protocolVersion": "5",
        "title": "The municipality's broker: TLS with a client certificate",
        "description": "config/broker/mosquitto.conf, listener 8883: TLS 1.2 or later, the broker's certificate "
        "checked against the CA in the hub's [mqtt.tls] ca, and the hub's own certificate (CN = hub id, which the "
        "broker takes as its username and client id). Further brokers ([[mqtt.broker]], e.g. mqtt2) are tried in "
        "turn when one fails.",
        "security": [{"$ref": "#/components/securitySchemes/clientCertificate"}],
        "bindings": _LAST_WILL,
    },
    "password": {
        "host": "mqtt1.responssenter.example:8884",
        "protocol": "secure-mqtt",
        "protocolVersion": "5",
        "title": "The municipality's broker: TLS with a username and password",
        "description": "config/broker/mosquitto.conf, listener 8884: TLS 1.2 or later, the broker's certificate "
        "checked against the hub's [mqtt.tls] ca; username = hub id, its password from [mqtt] password_file.",
        "security": [{"$ref": "#/components/securitySchemes/password"}],
        "bindings": _LAST_WILL,
    },
    "local": {
        "host": "127.0.0.1:1883",
        "protocol": "mqtt",
        "protocolVersion": "5",
        "title": "A broker on the hub's own machine",
        "description": "Plain MQTT is allowed only on the loopback interface (carehub check-config refuses a "
        "broker elsewhere without [mqtt.tls]): a bridge to the central, tests, the demo. A username and password "
        "if the broker asks for them.",
        "bindings": _LAST_WILL,
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "clientCertificate": {
        "type": "X509",
        "description": "A client certificate per hub, CN = the hub id (carehub provision makes the key and the "
        "request; the municipality's CA signs it). The broker's CA for hubs signs nothing else; revoke a hub with "
        "a CRL.",
    },
    "password": {
        "type": "userPassword",
        "description": "Username = the hub id, a password per hub (mosquitto_passwd on the broker; on the hub a "
        "file only the service reads, [mqtt] password_file). Always inside TLS off the hub's machine.",
    },
}
