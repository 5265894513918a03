"""The committed contract (JSON Schema, AsyncAPI, examples) must match the code, and hold what the hub sends."""

from __future__ import annotations

import json
import typing
from functools import cache
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from hub import contract, scaip
from hub.alarms import AckResult
from hub.commands import COMMANDS
from hub.config.sections import DeviceKind
from hub.contractdoc import payloads as docs
from hub.contractdoc import examples
from hub.eventdata import DATA, problems
from hub.events import EVENT_TYPES, SCHEMA_MINOR, SCHEMA_VERSION, Draft, Event, Priority, Source
from hub.rules.checkin import ACK_ENDED

ASYNCAPI_URI = "urn:carehub:asyncapi"


@cache
def asyncapi_doc() -> dict[str, Any]:
    return json.loads((contract.CONTRACT_DIR / "asyncapi.json").read_text())


@cache
def event_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((contract.CONTRACT_DIR / "event.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def asyncapi_validator(pointer: str) -> jsonschema.protocols.Validator:
    """A validator for the schema at ``pointer`` in the committed AsyncAPI document (its refs resolved in it).

    AsyncAPI 3's default schema format is a superset of JSON Schema draft 07: validated as draft 07.
    """
    registry = Registry().with_resource(ASYNCAPI_URI, Resource(contents=asyncapi_doc(), specification=DRAFT7))
    return jsonschema.Draft7Validator({"$ref": f"{ASYNCAPI_URI}#{pointer}"}, registry=registry)


def errors(validator: jsonschema.protocols.Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(doc)]


# --- the files match the code --------------------------------------------------------------


def test_committed_contract_matches_code():
    for name, text in contract.documents().items():
        path = contract.CONTRACT_DIR / name
        assert path.exists(), f"contract/{name} is missing: run `python -m hub.contract --write` and commit"
        assert path.read_text() == text, f"contract/{name} is stale: run `python -m hub.contract --write` and commit"
    assert contract.stale_files(contract.documents()) == [], "example files the code no longer makes"


def test_check_mode_names_a_stale_file(tmp_path, monkeypatch, capsys):
    for name, text in contract.documents().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "examples" / "events" / "alarm.gone.json").write_text("{}\n")
    (tmp_path / "asyncapi.json").write_text("{}\n")
    monkeypatch.setattr("hub.contract.CONTRACT_DIR", tmp_path)
    monkeypatch.setattr("hub.contractdoc.CONTRACT_DIR", tmp_path)
    assert contract.main([]) == 1
    err = capsys.readouterr().err
    assert "asyncapi.json" in err and "examples/events/alarm.gone.json (no longer made)" in err
    assert contract.main(["--write"]) == 0
    assert not (tmp_path / "examples" / "events" / "alarm.gone.json").exists()
    assert contract.main([]) == 0


def test_asyncapi_documents_every_topic_and_event_type():
    doc = asyncapi_doc()
    assert doc["asyncapi"].startswith("3.")
    assert doc["info"]["version"] == f"{SCHEMA_VERSION}.{SCHEMA_MINOR}.0"
    addresses = {c["address"] for c in doc["channels"].values()}
    for suffix in ("event/{type}", "events", "status", "heartbeat", "cmd/ack", "cmd/test-alarm", "cmd/status",
                   "cmd/replay", "reply/{account}"):
        assert f"{{prefix}}/{{hub}}/{suffix}" in addresses
    assert set(doc["channels"]["event"]["parameters"]["type"]["enum"]) == set(EVENT_TYPES)
    for t in EVENT_TYPES:
        message = doc["components"]["messages"][t]
        assert message["examples"][0]["payload"]["type"] == t, f"{t} has its own message with an example"


def test_servers_are_the_municipalitys_broker_with_its_two_logins():
    doc = asyncapi_doc()
    schemes = doc["components"]["securitySchemes"]
    by_port = {s["host"].rsplit(":", 1)[1]: s for s in doc["servers"].values()}
    assert by_port["8883"]["protocol"] == by_port["8884"]["protocol"] == "secure-mqtt"
    assert schemes[by_port["8883"]["security"][0]["$ref"].rsplit("/", 1)[1]]["type"] == "X509"
    assert schemes[by_port["8884"]["security"][0]["$ref"].rsplit("/", 1)[1]]["type"] == "userPassword"
    assert by_port["1883"]["host"].startswith("127.0.0.1"), "plain MQTT only on the hub's own machine"
    conf = (contract.CONTRACT_DIR.parent / "config" / "broker" / "mosquitto.conf").read_text()
    assert "listener 8883" in conf and "require_certificate true" in conf and "listener 8884" in conf


# --- each type's data ------------------------------------------------------------------------


def test_every_type_has_a_data_struct_a_scaip_entry_and_an_example():
    assert set(DATA) == set(EVENT_TYPES)
    assert set(scaip.STATUS_CODES) == set(EVENT_TYPES), "a new type needs its SCAIP status code (or None) written down"
    assert set(examples.by_type()) == set(EVENT_TYPES)
    kinds = set(typing.get_args(DeviceKind)) | {"hub", "rule"}
    assert set(scaip.DEVICE_TYPES) == kinds, "a new device kind needs its SCAIP device type (or None) written down"


def _event(**over: Any) -> dict[str, Any]:
    ev = Event.from_draft(
        Draft(type="alarm.button", priority=Priority.CRITICAL, source=Source(device="b", kind="alarm_button"),
              data={"input": "gpio", "gesture": "press"}),
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
        {"scaip": {"dty": "3", "stc": "0010"}},
        {"data": {"input": "gpio", "gesture": "hold"}},  # alarm.button's gesture is a press
        {"data": {"input": "gpio", "gesture": "press", "repeat": "yes"}},
        {"type": "medication.missed", "data": {"dose_id": "seven", "reported_by": "hub"}},
        {"type": "device.battery_low", "data": {"battery_pct": 140, "threshold_pct": 20}},
        {"type": "alarm.acknowledged", "data": {"by": "op", "alarm_type": "alarm.button", "closes": [], "alarms": 1}},
    ],
)
def test_schema_rejects_what_the_code_never_sends(override):
    jsonschema.validate(_event(), json.loads((contract.CONTRACT_DIR / "event.schema.json").read_text()))
    assert errors(event_validator(), _event(**override)), override


@pytest.mark.parametrize(
    "override",
    [
        {"type": "alarm.fall", "data": {"anything": [1, 2]}},  # a type a later version adds: a generic event
        {"data": {"input": "ble", "gesture": "press", "battery": 80}},  # a key a later minor version adds
        {"data": {"weight_kg": 71.25, "raw": "d51b"}},  # a GATT notification mapped to this type by the config
        {"scaip": None},  # no SCAIP code for this type and kind (or stored by a hub before 1.1)
        {"data": {}},  # contract 1.0 said nothing of data: an event a 1.0 hub stored, replayed after an upgrade
        {"type": "alarm.nursecall", "priority": "high", "data": {"call_address": "101"}},
    ],
)
def test_schema_accepts_what_a_central_must_take(override):
    body = _event(**override)
    if override.get("scaip", 0) is None:
        del body["scaip"]
        assert errors(event_validator(), body) == [], "an event from a hub before 1.1 has no scaip"
        body["scaip"] = None
    assert errors(event_validator(), body) == []


def test_every_example_event_validates_and_decodes_strictly():
    for event in examples.events():
        assert errors(event_validator(), event) == [], event["type"]
        assert problems(event["type"], event["data"]) == []
        assert Event.from_json(json.dumps(event)).type == event["type"]


def test_problems_is_stricter_than_the_published_schema():
    assert problems("alarm.button", {"input": "gpio", "gesture": "press", "battery": 80}) == [
        "alarm.button: data.battery is not in AlarmButtonData"
    ]
    assert problems("alarm.button", {"gesture": "press"}), "what this hub always sends is required here"
    schema = json.loads((contract.CONTRACT_DIR / "event.schema.json").read_text())["$defs"]["AlarmButtonData"]
    assert "required" not in schema and "always sends input, gesture" in schema["description"]
    assert problems("bed.exit", {"since_s": -1, "pressure": None, "seq": None})
    assert problems("sensor.reading", {"value": 3, "raw": "03"}) == []


# --- every example in the AsyncAPI document and in contract/examples/ -------------------------


def test_every_asyncapi_example_validates_against_its_payload():
    doc = asyncapi_doc()
    checked = 0
    for name, message in doc["components"]["messages"].items():
        validator = asyncapi_validator(f"/components/messages/{name}/payload")
        for example in message.get("examples", []):
            assert errors(validator, example["payload"]) == [], f"{name}: {example['name']}"
            checked += 1
    assert checked >= len(EVENT_TYPES) + 3 + 5 + 10, "an example of every event, status, heartbeat, command and reply"


def test_every_example_file_validates_against_its_schema():
    schema_of = {"status-online.json": "StatusOnline", "status-offline.json": "StatusOffline",
                 "heartbeat.json": "Heartbeat", "event-batch.json": "EventBatch"}
    reply_of = {name: cases[0][2] for name, cases in examples.COMMANDS.items()}
    for path in sorted((contract.CONTRACT_DIR / "examples").rglob("*.json")):
        doc = json.loads(path.read_text())
        name = path.name
        if path.parent.name == "events":
            assert errors(event_validator(), doc) == [], name
            continue
        if name.startswith("cmd-"):
            pointer = f"/components/schemas/{COMMANDS[name[4:-5]].__name__}"
        elif name.startswith("reply-"):
            pointer = f"/components/schemas/{type(reply_of[name[6:-5]]).__name__}"
        else:
            pointer = f"/components/schemas/{schema_of[name]}"
        assert errors(asyncapi_validator(pointer), doc) == [], name


def test_ack_results_are_the_trackers():
    def values(cls: type) -> set[str]:
        return set(typing.get_args(typing.get_type_hints(cls)["result"]))

    # and the check-in rule's: a missed check-in acked after a check-in, an absence or the next window ended it
    assert values(docs.AckReply) | values(docs.AckUnknownReply) == {r.value for r in AckResult} | {ACK_ENDED}


# --- SCAIP ---------------------------------------------------------------------------------


def test_every_event_carries_the_scaip_codes_of_its_type_and_kind():
    def made(type_: str, kind: str) -> dict[str, Any]:
        draft = Draft(type=type_, priority=Priority.HIGH, source=Source(device="d", kind=kind))
        return json.loads(Event.from_draft(draft, hub="h", resident="R-1", seq=1).to_json())

    assert made("alarm.button", "alarm_button")["scaip"] == {"dty": "0003", "stc": "0010"}
    assert made("alarm.button", "pull_cord")["scaip"] == {"dty": "0004", "stc": "0010"}
    assert made("medication.missed", "medication_dispenser")["scaip"] == {"dty": "0011", "stc": "0081"}
    assert made("device.battery_low", "bed_mat")["scaip"] == {"dty": "0012", "stc": "0016"}
    assert made("alarm.nursecall", "nurse_call")["scaip"] == {"dty": None, "stc": "0010"}
    assert made("sensor.reading", "sensor")["scaip"] is None, "no code at all: null, not an empty object"
    assert made("weight.measured", "medication_dispenser")["scaip"] == {"dty": "0011", "stc": None}
    assert made("alarm.button", "alarm_button")["v"] == 1, "an additive change: the event stays v1"


def test_scaip_tables_use_only_named_four_digit_codes():
    for table, names in ((scaip.DEVICE_TYPES, scaip.DEVICE_TYPE_NAMES), (scaip.STATUS_CODES, scaip.STATUS_CODE_NAMES)):
        used = {c for c in table.values() if c is not None}
        assert used == set(names), "every code used is named (for the contract's table), and no other"
        assert all(len(c) == 4 and c.isdigit() for c in used)
    text = asyncapi_doc()["info"]["description"]
    assert "| pull_cord | 0004 | fixed trigger |" in text and "| sensor.reading | null | no code fits |" in text
    assert asyncapi_doc()["info"]["x-scaip"]["stc"]["medication.missed"] == "0081"
