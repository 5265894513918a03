"""The committed contract (JSON Schema, AsyncAPI) must match the code that produces events."""

from __future__ import annotations

import json

import jsonschema
import pytest

from hub import contract
from hub.events import EVENT_TYPES, Draft, Event, Priority, Source


def test_committed_contract_matches_code():
    for name, text in contract.documents().items():
        committed = (contract.CONTRACT_DIR / name).read_text()
        assert committed == text, f"contract/{name} is stale: run `python -m hub.contract --write` and commit"


def test_asyncapi_documents_every_topic_and_event_type():
    doc = json.loads((contract.CONTRACT_DIR / "asyncapi.json").read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    for suffix in ("event/{type}", "status", "heartbeat", "cmd/ack", "cmd/test-alarm", "cmd/status", "cmd/replay"):
        assert f"{{prefix}}/{{hub}}/{suffix}" in addresses
    assert set(doc["channels"]["event"]["parameters"]["type"]["enum"]) == set(EVENT_TYPES)


def _event(**over) -> dict:
    ev = Event.from_draft(
        Draft(type="alarm.button", priority=Priority.CRITICAL, source=Source(device="b", kind="alarm_button")),
        hub="h",
        resident="R-1",
        seq=1,
    )
    body = json.loads(ev.to_json())
    body.update(over)
    return body


@pytest.mark.parametrize(
    "override",
    [
        {"priority": "urgent"},
        {"route": "doctor"},
        {"seq": -1},
        {"id": "not-a-uuid"},
        {"ts": "2026-11-25 21:00:00"},
        {"type": "Alarm Button"},
        {"extra": 1},
    ],
)
def test_schema_rejects_what_the_code_never_sends(override):
    schema = json.loads((contract.CONTRACT_DIR / "event.schema.json").read_text())
    jsonschema.validate(_event(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_event(**override), schema)
