"""Hostile commands for the flood tests and the latency bench: none of them is valid.

Bad JSON, seqs past int64, an oversized id and payload, unknown names and
wrong types, each paired with every kind of response topic (wildcards, the
hub's own command topic, a good one, none).
"""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def malformed_commands(base: str) -> list[tuple[str, bytes, Properties]]:
    """(topic, payload, properties) for every pairing of a bad payload with a response topic; none is valid."""
    payloads = [
        ("ack", b"{not json"),
        ("replay", b'{"from_seq": 1, "to_seq": 9223372036854775808}'),
        ("replay", b'{"from_seq": 18446744073709551616, "to_seq": 1}'),
        ("ack", b'{"event_id": "' + b"x" * 3000 + b'"}'),
        ("status", b"{" + b" " * 20000 + b"}"),
        ("reboot", b"{}"),
        ("test-alarm", b'{"device": 12}'),
        ("ack", b'{"event_id": "not-an-event-id"}'),
    ]
    response_topics = ["carehub/flood/+", "carehub/#", f"{base}/cmd/status", "carehub/flood/reply", None]
    out = []
    for k in range(len(payloads) * len(response_topics)):  # 8 and 5 are coprime: every pairing once
        name, payload = payloads[k % len(payloads)]
        rt = response_topics[k % len(response_topics)]
        props = Properties(PacketTypes.PUBLISH)
        if rt is not None:
            props.ResponseTopic = rt
            props.CorrelationData = f"flood-{k}".encode()
        out.append((f"{base}/cmd/{name}", payload, props))
    return out
