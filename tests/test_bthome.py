"""BTHome v2 decoder: known vectors, differential tests against bthome-ble, fuzzing, replay guard.

bthome-ble (Home Assistant's BTHome parser) is the oracle: hypothesis builds
adverts (plain and encrypted) and both decoders must agree on every value,
state and event. Where they differ on purpose, the test says so and why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from bthome_ble import BTHomeBluetoothDeviceData
from bthome_ble import bthome_v2_encryption as oracle_crypto
from bthome_ble.const import MEAS_TYPES
from bthome_ble.event import BUTTON_EVENTS as ORACLE_BUTTON_EVENTS
from bthome_ble.event import COMMAND_EVENTS as ORACLE_COMMAND_EVENTS
from bthome_ble.event import DIMMER_EVENTS as ORACLE_DIMMER_EVENTS
from habluetooth import BluetoothServiceInfoBleak
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sensor_state_data.description import BaseBinarySensorDescription, BaseSensorDescription

from drivers.ble import bthome
from drivers.ble.bthome import (
    BUTTON_EVENTS,
    OBJECTS,
    Advert,
    BTHomeError,
    CommandEvent,
    DecryptionError,
    DimmerEvent,
    DowngradeError,
    EncodeError,
    InvalidArgumentError,
    KeyRequiredError,
    OutOfOrderError,
    ReplayGuard,
    TruncatedError,
    UnknownObjectError,
    UnsupportedVersionError,
    Verdict,
    build_advert,
    decode,
    device_info,
    encode,
    encode_payload,
)

KEY = "231d39c1d7cc1ab1aee224cd096db932"
MAC = "54:48:E6:8F:80:A5"
ATC = "A4:C1:38:8D:18:B2"

FAST = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- the oracle


def oracle(service_data: bytes, mac: str, bindkey: bytes | None = None) -> dict[str, Any]:
    """What bthome-ble makes of an advert, in plain dicts (a fresh parser each time,
    so its packet-id and counter filters never interfere)."""
    info = BluetoothServiceInfoBleak(
        name="test",
        address=mac,
        rssi=-60,
        manufacturer_data={},
        service_data={bthome.SERVICE_UUID: service_data},
        service_uuids=[],
        source="",
        device=None,
        advertisement=None,
        connectable=False,
        time=1_700_000_000.0,
        tx_power=None,
    )
    device = BTHomeBluetoothDeviceData(bindkey=bindkey)
    update = device.update(info)
    sw = update.devices[None].sw_version if update.devices else None
    return {
        "sensors": {k.key: v.native_value for k, v in update.entity_values.items() if k.key != "signal_strength"},
        "binary": {k.key: v.native_value for k, v in update.binary_entity_values.items()},
        "events": {k.key: (v.event_type, v.event_properties) for k, v in update.events.items()},
        "device_type_id": device.device_type_id,
        "firmware": None if sw is None or sw.startswith("BTHome BLE") else sw,
    }


def oracle_encrypt(payload: bytes, mac: str, info: int, counter: int, key: bytes) -> bytes:
    """Service data encrypted by bthome-ble's own reference code (it prints; we hush it)."""
    with contextlib.redirect_stdout(io.StringIO()):
        sealed = oracle_crypto.encrypt_payload(
            data=payload,
            mac=bytes.fromhex(mac.replace(":", "")),
            uuid16=b"\xd2\xfc",
            sw_version=bytes([info]),
            count_id=counter.to_bytes(4, "little"),
            key=key,
        )
    return sealed[2:]  # it returns the UUID too


def as_oracle(advert: Advert) -> dict[str, Any]:
    """Our advert in the oracle's shape, with its keying: a device class, with
    _1, _2 ... when several objects of one kind are in the advert, the last one
    winning when two kinds share a key (volume in L and in mL, say).

    The oracle drops, and so this does: empty text/raw objects (not even
    counted), text that is not UTF-8 and events it does not know (counted for
    the suffixes, not reported). Temperature 0x58 it rounds to 0.1 °C: see
    test_oracle_rounds_0x58_to_one_decimal."""
    groups: list[tuple[int, Any, bool]] = []  # (object id, value for the oracle, reported?)
    for m in advert.values:
        if m.object_id in (0x53, 0x54) and not m.raw:
            continue
        if m.object_id == 0x53:
            try:
                groups.append((0x53, m.raw.decode("utf-8"), True))
            except UnicodeDecodeError:
                groups.append((0x53, None, False))
        elif m.object_id == 0x54:
            groups.append((0x54, m.value.hex(), True))
        elif m.object_id == 0x58:
            groups.append((0x58, round(int.from_bytes(m.raw, "little", signed=True) * 0.35, 1), True))
        else:
            groups.append((m.object_id, m.value, True))
    binary = [(m.object_id, m.value, True) for m in advert.states]
    events: list[tuple[int, Any, bool]] = []
    for b in advert.buttons:
        events.append((0x3A, (b, None), b in ORACLE_BUTTON_EVENTS.values() and b is not None))
    for d in advert.dimmers:
        known = d.event in ORACLE_DIMMER_EVENTS.values() and d.event is not None
        events.append((0x3C, (d.event, {"steps": d.steps}), known))
    for c in advert.commands:
        events.append((0x3B, (c.command, {"args": c.args.hex()}), c.command in ORACLE_COMMAND_EVENTS.values()))

    everything = groups + binary + events
    counts = Counter(MEAS_TYPES[oid].meas_format for oid, _, _ in everything)
    if advert.packet_id is not None:
        counts[MEAS_TYPES[0x00].meas_format] += 1

    def keyed(items: list[tuple[int, Any, bool]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        postfix: Counter[Any] = Counter()
        for oid, value, reported in items:
            fmt = MEAS_TYPES[oid].meas_format
            key = str(fmt.device_class) if not isinstance(fmt, str) else str(fmt)
            if counts[fmt] > 1:
                postfix[fmt] += 1
                key = f"{key}_{postfix[fmt]}"
            if reported:
                out[key] = value
        return out

    sensors = keyed(groups)
    if advert.packet_id is not None:
        sensors["packet_id"] = advert.packet_id
    return {
        "sensors": sensors,
        "binary": keyed(binary),
        "events": keyed(events),
        "device_type_id": advert.device_type_id,
        "firmware": advert.firmware_version,
    }


def assert_agree(ours: Advert, theirs: dict[str, Any]) -> None:
    expected = as_oracle(ours)
    # Several packet-id objects in one advert: the oracle keys them packet_id_1,
    # _2 ...; we keep the last one.
    numbered = sorted(k for k in theirs["sensors"] if k.startswith("packet_id_"))
    if numbered:
        last = theirs["sensors"][max(numbered, key=lambda k: int(k.rsplit("_", 1)[1]))]
        assert ours.packet_id == last
        for k in numbered:
            del theirs["sensors"][k]
        expected["sensors"].pop("packet_id", None)
    assert expected == theirs, f"\nours:   {expected}\noracle: {theirs}\nadvert: {ours!r}"


# --------------------------------------------------------------------------- strategies

EVENT_CODES = st.sampled_from([*BUTTON_EVENTS, 0x07, 0x7F, 0xFF])


@st.composite
def payloads(draw: st.DrawFn, *, min_objects: int = 0) -> bytes:
    """Valid object bytes: a random subset of the table in id order, random values."""
    ids = draw(st.lists(st.sampled_from(sorted(OBJECTS)), min_size=min_objects, max_size=12))
    ids += [0x3A] * draw(st.integers(0, 4))  # several buttons now and then
    if ids.count(0x00) > 1:
        ids = [oid for oid in ids if oid != 0x00] + [0x00]
    out = bytearray()
    for oid in sorted(ids):
        spec = OBJECTS[oid]
        out.append(oid)
        if spec.kind == bthome.TEXT:
            blob = draw(st.text(min_size=1, max_size=10)).encode()
            out += bytes([len(blob)]) + blob
        elif spec.kind == bthome.RAW:
            blob = draw(st.binary(min_size=1, max_size=10))
            out += bytes([len(blob)]) + blob
        elif spec.kind == bthome.COMMAND:
            args = draw(st.binary(max_size=6))
            reserved = draw(st.sampled_from([0, 0xE0]))
            out += bytes([reserved | len(args), draw(st.sampled_from([0, 1, 2, 3, 4, 9]))]) + args
        elif spec.kind == bthome.BUTTON:
            out.append(draw(EVENT_CODES))
        elif spec.kind == bthome.DIMMER:
            out += bytes([draw(st.sampled_from([0, 1, 2, 5])), draw(st.integers(0, 255))])
        elif spec.kind == bthome.BINARY:
            out.append(draw(st.sampled_from([0, 1, 1, 2, 255])))
        else:
            assert spec.length is not None
            out += draw(st.binary(min_size=spec.length, max_size=spec.length))
    return bytes(out)


macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02X}" for x in b))
keys = st.binary(min_size=16, max_size=16)
counters = st.integers(0, 2**32 - 1)


# --------------------------------------------------------------------------- known vectors


def test_vector_temperature_humidity() -> None:
    a = decode(bytes.fromhex("4002ca0903bf13"), mac=ATC)
    assert a.value("temperature") == 25.06
    assert a.value("humidity") == 50.55
    assert a.values[0].unit == "°C" and a.values[1].unit == "%"
    assert (a.encrypted, a.trigger_based, a.version, a.packet_id, a.counter) == (False, False, 2, None, None)


def test_vector_packet_id_battery_temperature_humidity() -> None:
    a = decode(bytes.fromhex("40000901 5d 025d09 03b718".replace(" ", "")), mac=ATC)
    assert a.packet_id == 9
    assert [(m.name, m.value) for m in a.values] == [("battery", 93), ("temperature", 23.97), ("humidity", 63.27)]


@pytest.mark.parametrize(
    ("hex_data", "name", "value", "unit"),
    [
        ("4004138a01", "pressure", 1008.83, "hPa"),
        ("4005138a14", "illuminance", 13460.67, "lx"),
        ("40065e1f", "mass", 80.3, "kg"),
        ("40073e1d", "mass", 74.86, "lb"),
        ("400c020c", "voltage", 3.074, "V"),
        ("404a0a01", "voltage", 26.6, "V"),
        ("4045ffff", "temperature", -0.1, "°C"),
        ("4002ecfe", "temperature", -2.76, "°C"),
        ("402e23", "humidity", 35, "%"),
        ("40143401", "moisture", 3.08, "%"),
        ("402f17", "moisture", 23, "%"),
        ("4062a0860100", "speed", 0.1, "m/s"),
    ],
)
def test_vector_sensors(hex_data: str, name: str, value: float, unit: str) -> None:
    a = decode(bytes.fromhex(hex_data), mac=ATC)
    assert len(a.values) == 1
    assert (a.values[0].name, a.values[0].value, a.values[0].unit) == (name, value, unit)


def test_vector_binary_sensors() -> None:
    a = decode(bytes.fromhex("400f01 1000 1101 1a01 2001 2101 2300 2d01".replace(" ", "")), mac=ATC)
    assert {m.name: m.value for m in a.states} == {
        "generic": True,
        "power": False,
        "opening": True,
        "door": True,
        "moisture": True,
        "motion": True,
        "occupancy": False,
        "window": True,
    }
    assert a.values == ()


def test_vector_buttons_and_dimmer() -> None:
    a = decode(bytes.fromhex("44 0012 3a01 3a00 3a04 3a80 3c0103".replace(" ", "")), mac=ATC)
    assert a.trigger_based
    assert a.packet_id == 0x12
    assert a.buttons == ("press", None, "long_press", "hold_press")
    assert a.dimmers == (DimmerEvent("rotate_left", 3),)
    assert a.has_events
    quiet = decode(bytes.fromhex("44 0013 3a00 3a00".replace(" ", "")), mac=ATC)
    assert quiet.buttons == (None, None) and not quiet.has_events


def test_vector_all_button_events() -> None:
    for code, name in BUTTON_EVENTS.items():
        assert decode(bytes([0x44, 0x3A, code]), mac=ATC).buttons == (name,)
    assert decode(bytes([0x44, 0x3A, 0x07]), mac=ATC).buttons == ("unknown_0x07",)


def test_vector_text_raw_timestamp_command_device_info() -> None:
    a = decode(
        bytes.fromhex("40 3b010205 50d2d4e765 5303616263 5402beef f03412 f100010204".replace(" ", "")),
        mac=ATC,
    )
    assert a.commands == (CommandEvent("toggle", b"\x05"),)
    assert a.value("timestamp") == datetime.fromtimestamp(0x65E7D4D2, tz=UTC)
    assert a.value("text") == "abc"
    assert a.value("raw") == b"\xbe\xef"
    assert a.device_type_id == 0x1234
    assert a.firmware_version == "4.2.1.0"
    assert decode(bytes.fromhex("40f2000106"), mac=ATC).firmware_version == "6.1.0"


def test_vector_encrypted() -> None:
    """bthome-ble's encryption vector: Shelly BLU H&T, key 231d..., MAC 54:48:E6:8F:80:A5."""
    a = decode(bytes.fromhex("41a47266c95f730011223378237214"), mac=MAC, bindkey=KEY)
    assert a.encrypted and a.counter == 0x33221100
    assert (a.value("temperature"), a.value("humidity")) == (25.06, 50.55)
    # the same key as bytes, the MAC as bytes or without colons
    data = bytes.fromhex("41a47266c95f730011223378237214")
    assert decode(data, mac=bytes.fromhex("5448e68f80a5"), bindkey=bytes.fromhex(KEY)) == a
    assert decode(data, mac="5448e68f80a5", bindkey=KEY) == a


def test_vector_encrypted_reference_example() -> None:
    """bthome-ble's bthome_v2_encryption.py example: counter 1122867, temperature + humidity."""
    data = bytes.fromhex("41e445f3c9962b332211006c7c4519")
    a = decode(data, mac=MAC, bindkey=KEY)
    assert a.counter == 1122867
    assert (a.value("temperature"), a.value("humidity")) == (25.06, 50.55)
    assert build_advert(bytes.fromhex("02ca0903bf13"), bindkey=KEY, mac=MAC, counter=1122867) == data


def test_vector_mac_included_plain_and_encrypted() -> None:
    a = decode(bytes.fromhex("42b2188d38c1a404138a01"), mac=ATC)
    assert a.included_mac == ATC and a.value("pressure") == 1008.83
    e = decode(bytes.fromhex("43a5808fe64854f196c06ffb4900112233f08ecbde"), mac=MAC, bindkey=KEY)
    assert e.included_mac == MAC and (e.value("temperature"), e.value("humidity")) == (25.06, 50.55)
    assert build_advert(bytes.fromhex("02ca0903bf13"), bindkey=KEY, mac=MAC, counter=0x33221100, include_mac=True) == (
        bytes.fromhex("43a5808fe64854f196c06ffb4900112233f08ecbde")
    )


def test_vector_counter_wrap_pair_decodes() -> None:
    hi = decode(bytes.fromhex("41ba0db07aeef6ffffffff21fd4600"), mac=MAC, bindkey=KEY)
    lo = decode(bytes.fromhex("41de40b50e676600000000d7cb95de"), mac=MAC, bindkey=KEY)
    assert (hi.counter, lo.counter) == (2**32 - 1, 0)


def test_device_info() -> None:
    assert device_info(b"\x45\x00") == bthome.DeviceInfo(0x45, True, False, True, 2)
    with pytest.raises(UnsupportedVersionError):
        device_info(b"\x20")


def test_repr_is_readable() -> None:
    a = decode(encode([(0x02, 21.5), (0x1A, True)], packet_id=7, buttons=["press", None]), mac=ATC)
    text = repr(a)
    assert "A4:C1:38:8D:18:B2" in text and "packet_id=7" in text
    assert "temperature=21.5 °C" in text and "door=True" in text and "buttons=[press, -]" in text


# --------------------------------------------------------------------------- errors


def test_wrong_key_wrong_mac_tampered() -> None:
    data = bytes.fromhex("41a47266c95f730011223378237214")
    with pytest.raises(DecryptionError):
        decode(data, mac=MAC, bindkey="814aac74c4f17b6c1581e1ab87816b99")
    with pytest.raises(DecryptionError):
        decode(data, mac=ATC, bindkey=KEY)
    with pytest.raises(DecryptionError):
        decode(data[:3] + bytes([data[3] ^ 1]) + data[4:], mac=MAC, bindkey=KEY)


def test_key_required_and_downgrade() -> None:
    with pytest.raises(KeyRequiredError):
        decode(bytes.fromhex("41a47266c95f730011223378237214"), mac=MAC)
    with pytest.raises(DowngradeError):
        decode(bytes.fromhex("4004138a01"), mac=MAC, bindkey=KEY)


def test_bad_arguments() -> None:
    for key in ("abcd", b"\x00" * 15, "zz" * 16, 123):
        with pytest.raises(InvalidArgumentError):
            decode(b"\x41" + b"\x00" * 12, mac=MAC, bindkey=key)  # type: ignore[arg-type]
    for mac in ("54:48:E6:8F:80", "xx:48:E6:8F:80:A5", b"\x01" * 7, None):
        with pytest.raises(InvalidArgumentError):
            decode(b"\x40", mac=mac)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        decode("4002ca09", mac=MAC)  # type: ignore[arg-type]
    assert issubclass(InvalidArgumentError, ValueError)


@pytest.mark.parametrize(
    ("hex_data", "error"),
    [
        ("", TruncatedError),
        ("e1020000", UnsupportedVersionError),  # version 7, a bthome-ble test vector
        ("20", UnsupportedVersionError),  # version 1 info byte
        ("4002ca", TruncatedError),
        ("4002", TruncatedError),
        ("4053", TruncatedError),
        ("40530361", TruncatedError),
        ("403b03", TruncatedError),
        ("42b2188d", TruncatedError),
        ("41a47266c95f", TruncatedError),
        ("410011223378237214", TruncatedError),
    ],
)
def test_malformed_vectors(hex_data: str, error: type[BTHomeError]) -> None:
    with pytest.raises(error) as info:
        decode(bytes.fromhex(hex_data), mac=MAC, bindkey=KEY if hex_data.startswith(("41", "43")) else None)
    assert str(info.value)


def test_unknown_object_stops_decoding_like_bthome_ble() -> None:
    data = bytes.fromhex("40015dfe5d0903b718")  # battery, unknown 0xfe, humidity
    a = decode(data, mac=ATC)
    assert a.value("battery") == 93 and a.value("humidity") is None
    assert a.unknown_object_id == 0xFE
    assert_agree(a, oracle(data, ATC))
    with pytest.raises(UnknownObjectError) as info:
        decode(data, mac=ATC, strict=True)
    assert (info.value.object_id, info.value.offset) == (0xFE, 2)


def test_out_of_order_objects_flagged_or_refused() -> None:
    data = bytes.fromhex("4003bf1302ca09")
    a = decode(data, mac=ATC)
    assert a.out_of_order and a.value("temperature") == 25.06
    assert_agree(a, oracle(data, ATC))  # bthome-ble decodes them too (with a warning)
    with pytest.raises(OutOfOrderError):
        decode(data, mac=ATC, strict=True)


def test_oracle_rounds_0x58_to_one_decimal() -> None:
    """Object 0x58 is a sint8 temperature with factor 0.35 (spec). bthome-ble derives
    the decimals from the factor's exponent (1 for 0.35) and rounds 1 x 0.35 to 0.3;
    we keep 0.35, which is what the spec's factor gives."""
    data = bytes.fromhex("405801")
    assert decode(data, mac=ATC).value("temperature") == 0.35
    assert oracle(data, ATC)["sensors"]["temperature"] == 0.3
    assert decode(bytes.fromhex("4058ff"), mac=ATC).value("temperature") == -0.35


def test_empty_text_and_bad_utf8_are_kept() -> None:
    """bthome-ble drops an empty text/raw object and text that is not UTF-8; we give
    "" / b"" and replace the bad bytes (the raw bytes stay on the measurement)."""
    a = decode(bytes.fromhex("40 5300 5302ff41 5400".replace(" ", "")), mac=ATC)
    assert [m.value for m in a.values] == ["", "\ufffdA", b""]
    assert a.values[1].raw == b"\xffA"
    assert oracle(bytes.fromhex("40 5300 5302ff41 5400".replace(" ", "")), ATC)["sensors"] == {}


# --------------------------------------------------------------------------- the table against the oracle's


def test_object_table_matches_bthome_ble() -> None:
    assert set(OBJECTS) == set(MEAS_TYPES), (
        f"only ours: {sorted(set(OBJECTS) - set(MEAS_TYPES))}, "
        f"only bthome-ble: {sorted(set(MEAS_TYPES) - set(OBJECTS))}"
    )
    for oid, theirs in MEAS_TYPES.items():
        ours = OBJECTS[oid]
        where = f"0x{oid:02x} {ours.name}"
        if theirs.data_format in ("string", "raw", "command"):
            assert ours.length is None, where
        else:
            assert ours.length == theirs.data_length, where
        assert ours.signed == (theirs.data_format == "signed_integer"), where
        assert ours.factor == Decimal(str(theirs.factor)), where
        fmt = theirs.meas_format
        if isinstance(fmt, BaseBinarySensorDescription):
            assert ours.kind == bthome.BINARY, where
        elif isinstance(fmt, BaseSensorDescription) and oid not in (0x00, 0x50, 0x53, 0x54):
            assert ours.kind == bthome.SENSOR, where
    assert len(OBJECTS) == len(MEAS_TYPES) == 95


# --------------------------------------------------------------------------- differential


def _edge_values(spec: bthome.ObjectSpec) -> list[bytes]:
    """Value bytes at the edges of an object's range (with its length byte where it has one)."""
    if spec.kind == bthome.TEXT:
        return [b"\x01a", b"\x03h\xc3\xa9", b"\x02\xffA", b"\x00"]
    if spec.kind == bthome.RAW:
        return [b"\x01\x00", b"\x03\xde\xad\xff", b"\x00"]
    if spec.kind == bthome.COMMAND:
        return [b"\x00\x01", b"\x02\x03\xaa\xbb", b"\xe1\x02\x07", b"\x00\x09", b"\x1f\x04" + bytes(range(31))]
    assert spec.length is not None
    n = spec.length
    return [
        bytes(n),
        b"\xff" * n,
        b"\x01" + bytes(n - 1),
        bytes(n - 1) + b"\x80",  # the most negative when signed
        b"\xff" * (n - 1) + b"\x7f",  # the most positive when signed
        bytes([0x81] + [0x02] * (n - 1)),
        bytes([0x07] * n),
    ]


@pytest.mark.parametrize("oid", sorted(OBJECTS), ids=lambda oid: f"0x{oid:02x}")
def test_differential_every_object_at_its_edges(oid: int) -> None:
    """Every object id, alone and twice, with values at the edges of its range."""
    for value in _edge_values(OBJECTS[oid]):
        for data in (bytes([0x40, oid]) + value, bytes([0x44, oid]) + value + bytes([oid]) + value):
            assert_agree(decode(data, mac=ATC), oracle(data, ATC))


@FAST
@given(payload=payloads(), trigger=st.booleans(), mac=macs)
def test_differential_plain(payload: bytes, trigger: bool, mac: str) -> None:
    data = bytes([0x40 | (0x04 if trigger else 0)]) + payload
    ours = decode(data, mac=mac)
    assert ours.trigger_based == trigger and not ours.encrypted
    assert ours.unknown_object_id is None and not ours.out_of_order
    assert_agree(ours, oracle(data, mac))


@FAST
@given(payload=payloads(min_objects=1), trigger=st.booleans(), mac=macs, key=keys, counter=counters)
def test_differential_encrypted(payload: bytes, trigger: bool, mac: str, key: bytes, counter: int) -> None:
    assume(len(payload) >= 2)
    data = build_advert(payload, bindkey=key, mac=mac, counter=counter, trigger_based=trigger)
    # byte for byte what bthome-ble's reference encryption produces
    assert data == oracle_encrypt(payload, mac, data[0], counter, key)
    ours = decode(data, mac=mac, bindkey=key)
    assert ours.encrypted and ours.counter == counter and ours.trigger_based == trigger
    plain = decode(bytes([0x40 | (0x04 if trigger else 0)]) + payload, mac=mac)
    assert ours == dataclasses.replace(plain, encrypted=True, counter=counter, info=data[0])
    assert_agree(ours, oracle(data, mac, key))


@settings(max_examples=400, deadline=None)
@given(info=st.sampled_from([0x40, 0x44]), payload=st.binary(max_size=24))
def test_differential_random_payloads(info: int, payload: bytes) -> None:
    """Random object bytes: when we decode them, bthome-ble must decode the same.
    (When we refuse a truncated advert, bthome-ble keeps the objects before the cut.)"""
    data = bytes([info]) + payload
    try:
        ours = decode(data, mac=ATC)
    except TruncatedError:
        return
    assert_agree(ours, oracle(data, ATC))


# --------------------------------------------------------------------------- malformed input


ANY_KEY = st.one_of(st.none(), st.just(bytes.fromhex(KEY)), keys)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=40), key=ANY_KEY, strict=st.booleans())
def test_random_bytes_raise_only_bthome_errors(data: bytes, key: bytes | None, strict: bool) -> None:
    try:
        decode(data, mac=MAC, bindkey=key, strict=strict)
    except BTHomeError:
        pass


@settings(max_examples=300, deadline=None)
@given(first=st.integers(0, 255), data=st.binary(max_size=30), key=ANY_KEY)
def test_random_bytes_with_any_info_byte(first: int, data: bytes, key: bytes | None) -> None:
    try:
        decode(bytes([first]) + data, mac=MAC, bindkey=key)
    except BTHomeError:
        pass


@FAST
@given(payload=payloads(min_objects=1), key=keys, mac=macs, counter=counters)
def test_truncations_raise_only_bthome_errors(payload: bytes, key: bytes, mac: str, counter: int) -> None:
    assume(len(payload) >= 2)
    plain = b"\x40" + payload
    for cut in range(len(plain)):
        try:
            decode(plain[:cut], mac=mac)
        except (TruncatedError, UnsupportedVersionError):
            pass
    sealed = build_advert(payload, bindkey=key, mac=mac, counter=counter)
    for cut in range(len(sealed)):
        with pytest.raises((TruncatedError, DecryptionError)):
            decode(sealed[:cut], mac=mac, bindkey=key)


@settings(max_examples=40, deadline=None)
@given(payload=payloads(min_objects=1), key=keys, mac=macs, counter=counters)
def test_every_bit_flip_of_an_encrypted_advert_is_refused(payload: bytes, key: bytes, mac: str, counter: int) -> None:
    assume(len(payload) >= 2)
    sealed = build_advert(payload, bindkey=key, mac=mac, counter=counter)
    decode(sealed, mac=mac, bindkey=key)
    for i in range(len(sealed)):
        for bit in range(8):
            flipped = bytearray(sealed)
            flipped[i] ^= 1 << bit
            with pytest.raises(BTHomeError):
                decode(bytes(flipped), mac=mac, bindkey=key)


@settings(max_examples=60, deadline=None)
@given(payload=payloads(min_objects=1))
def test_bit_flips_of_plain_adverts_raise_only_bthome_errors(payload: bytes) -> None:
    plain = b"\x40" + payload
    for i in range(len(plain)):
        for bit in range(8):
            flipped = bytearray(plain)
            flipped[i] ^= 1 << bit
            for strict in (False, True):
                try:
                    decode(bytes(flipped), mac=ATC, strict=strict)
                except BTHomeError:
                    pass


# --------------------------------------------------------------------------- encoding


def test_encode_round_trip() -> None:
    objects = [
        (0x01, 87),
        (0x02, -12.34),
        (0x03, 45.5),
        (0x04, 1013.25),
        (0x05, 250.0),
        (0x0C, 3.001),
        (0x11, True),
        (0x21, False),
        (0x45, 21.5),
        (0x50, datetime(2024, 3, 1, 12, 0, tzinfo=UTC)),
        (0x53, "hej"),
        (0x54, b"\x00\x01"),
        (0x58, 0.35),
        (0x62, -1.234567),
        (0xF1, "1.2.3.4"),
    ]
    a = decode(
        encode(
            objects, packet_id=200, buttons=["double_press", None], dimmers=[("rotate_right", 4)], trigger_based=True
        ),
        mac=ATC,
    )
    assert a.packet_id == 200 and a.trigger_based
    assert a.buttons == ("double_press", None) and a.dimmers == (DimmerEvent("rotate_right", 4),)
    assert a.firmware_version == "1.2.3.4"
    got = {m.object_id: m.value for m in (*a.values, *a.states)}
    for oid, value in objects:
        if oid != 0xF1:
            assert got[oid] == value, hex(oid)


def test_encode_encrypted_button_press_for_the_simulator() -> None:
    data = encode(buttons=["press"], packet_id=1, bindkey=KEY, mac=MAC, counter=42, trigger_based=True)
    a = decode(data, mac=MAC, bindkey=KEY)
    assert (a.buttons, a.counter, a.packet_id, a.trigger_based) == (("press",), 42, 1, True)
    theirs = oracle(data, MAC, bytes.fromhex(KEY))
    assert theirs["events"] == {"button": ("press", None)}


def test_encode_sorts_by_id_and_keeps_button_order() -> None:
    payload = encode_payload([(0x3A, "press"), (0x02, 20.0), (0x3A, "long_press"), (0x01, 50)])
    assert payload == bytes.fromhex("013202d007 3a01 3a04".replace(" ", ""))
    assert encode_payload([(0x02, 20.0), (0x01, 50)], sort=False) == bytes.fromhex("02d0070132")


@pytest.mark.parametrize(
    "objects",
    [
        [(0x01, 256)],
        [(0x01, -1)],
        [(0x02, 327.68)],
        [(0x02, float("nan"))],
        [(0x02, "warm")],
        [(0x3A, "smash")],
        [(0x3C, "rotate_left")],
        [(0x53, b"bytes")],
        [(0x54, "text")],
        [(0x53, "x" * 256)],
        [(0x50, datetime(2024, 1, 1))],
        [(0xF2, "1.2.3.4")],
        [(0xFE, 1)],
        [("temperature", 1)],
        [(0x3B, ("on", b"\x00" * 32))],
    ],
)
def test_encode_refuses_what_it_cannot_encode(objects: list[tuple[int, Any]]) -> None:
    with pytest.raises(EncodeError):
        encode_payload(objects)


def test_build_advert_needs_mac_and_counter_to_encrypt() -> None:
    with pytest.raises(EncodeError):
        build_advert(b"\x01\x50", bindkey=KEY, counter=1)
    with pytest.raises(EncodeError):
        build_advert(b"\x01\x50", bindkey=KEY, mac=MAC)
    with pytest.raises(EncodeError):
        build_advert(b"\x01\x50", bindkey=KEY, mac=MAC, counter=2**32)
    with pytest.raises(EncodeError):
        build_advert(b"\x01\x50", counter=1)


# --------------------------------------------------------------------------- replay guard


def _sealed(counter: int, mac: str = MAC, **kw: Any) -> Advert:
    return decode(encode([(0x01, 50)], bindkey=KEY, mac=mac, counter=counter, **kw), mac=mac, bindkey=KEY)


def _plain(packet_id: int | None, mac: str = ATC) -> Advert:
    return decode(encode([(0x01, 50)], packet_id=packet_id), mac=mac)


def test_replay_guard_counters() -> None:
    g = ReplayGuard()
    assert g.check(_sealed(5)) is Verdict.ACCEPT
    assert g.check(_sealed(5)) is Verdict.DUPLICATE  # the device repeating its advert
    assert g.check(_sealed(4)) is Verdict.REPLAY
    assert g.check(_sealed(0)) is Verdict.REPLAY  # below the restart window's top: no restart, a replay...
    assert g.check(_sealed(6)) is Verdict.ACCEPT
    assert g.check(_sealed(1, mac=ATC)) is Verdict.ACCEPT  # per device
    g.forget(MAC)  # ... until the device is forgotten
    assert g.check(_sealed(0)) is Verdict.ACCEPT
    assert g.counters() == {MAC: 0, ATC: 1}


def test_replay_guard_counter_wrap_vectors() -> None:
    g = ReplayGuard()
    assert g.check(decode(bytes.fromhex("41ba0db07aeef6ffffffff21fd4600"), mac=MAC, bindkey=KEY)) is Verdict.ACCEPT
    # the counter wrapped from 2**32 - 1 to 0: the device counts again from the start
    assert g.check(decode(bytes.fromhex("41de40b50e676600000000d7cb95de"), mac=MAC, bindkey=KEY)) is Verdict.RESTART
    strict = ReplayGuard(restart_below=0)
    assert strict.check(decode(bytes.fromhex("41ba0db07aeef6ffffffff21fd4600"), mac=MAC, bindkey=KEY)) is Verdict.ACCEPT
    assert strict.check(decode(bytes.fromhex("41de40b50e676600000000d7cb95de"), mac=MAC, bindkey=KEY)) is Verdict.REPLAY


def test_replay_guard_takes_a_counter_restart_after_a_battery_change() -> None:
    g = ReplayGuard()
    assert g.check(_sealed(154_553)) is Verdict.ACCEPT  # months of adverts
    # new battery: the device counts from zero again; its first advert is taken at once
    assert g.check(_sealed(2)) is Verdict.RESTART
    assert g.last_counter(MAC) == 2
    assert g.check(_sealed(2)) is Verdict.DUPLICATE
    assert g.check(_sealed(1)) is Verdict.REPLAY  # inside the new count, the usual rules
    assert g.check(_sealed(3)) is Verdict.ACCEPT
    # an advert recorded before the battery change, replayed: refused, it would shut the device out
    assert g.check(_sealed(154_000)) is Verdict.REPLAY
    assert g.check(_sealed(4)) is Verdict.ACCEPT  # the device goes on
    assert g.check(_sealed(4 + 10_000)) is Verdict.ACCEPT  # a plausible gap (adverts missed) is fine
    assert g.check(_sealed(154_554)) is Verdict.ACCEPT  # beyond anything seen before the restart
    assert g.check(_sealed(50)) is Verdict.RESTART  # another restart later is taken too
    assert g.check(_sealed(154_554)) is Verdict.REPLAY  # and the old count is refused again
    assert g.counters() == {MAC: 50}


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("count"), st.integers(1, 10_000)),
            st.tuples(st.just("restart"), st.integers(0, 99)),
        ),
        min_size=1,
        max_size=30,
    ),
    first=st.integers(0, 2**20),
)
def test_replay_guard_never_refuses_a_genuine_device(steps: list[tuple[str, int]], first: int) -> None:
    # a device counting up (adverts missed in between) and restarting from zero on new batteries
    g = ReplayGuard()
    counter = first
    assert g.check(_sealed(counter)) is Verdict.ACCEPT
    for what, n in steps:
        restarted = what == "restart" and counter >= 100 and n < counter
        counter = n if restarted else min(counter + n, 2**32 - 1)
        verdict = g.check(_sealed(counter))
        if counter == g.last_counter(MAC) and verdict is Verdict.DUPLICATE:
            continue  # pinned at the top of the counter's range
        assert verdict is (Verdict.RESTART if restarted else Verdict.ACCEPT), (what, n, counter)
        assert g.check(_sealed(counter)) is Verdict.DUPLICATE  # the same advert again is never taken twice


def test_replay_guard_counter_restart_can_be_refused() -> None:
    g = ReplayGuard(restart_below=0)
    assert g.check(_sealed(154_553)) is Verdict.ACCEPT
    assert g.check(_sealed(2)) is Verdict.REPLAY
    assert not g.accept(_sealed(3))
    g.forget(MAC)
    assert g.accept(_sealed(3))


def test_replay_guard_survives_a_restart_through_counters() -> None:
    g = ReplayGuard()
    g.check(_sealed(1000))
    again = ReplayGuard(counters=g.counters())
    assert again.check(_sealed(999)) is Verdict.REPLAY
    assert again.check(_sealed(1001)) is Verdict.ACCEPT


def test_replay_guard_packet_ids() -> None:
    g = ReplayGuard()
    assert g.check(_plain(9)) is Verdict.ACCEPT
    assert g.check(_plain(9)) is Verdict.DUPLICATE
    assert g.check(_plain(9)) is Verdict.DUPLICATE
    assert g.check(_plain(10)) is Verdict.ACCEPT
    assert g.check(_plain(9)) is Verdict.ACCEPT  # not the last one: new
    assert g.check(_plain(9, mac=MAC)) is Verdict.ACCEPT  # per device
    assert g.check(_plain(None)) is Verdict.ACCEPT
    assert g.check(_plain(None)) is Verdict.ACCEPT  # no packet id: nothing to de-duplicate on


def test_replay_guard_duplicate_window() -> None:
    g = ReplayGuard(duplicate_window_s=4.0)
    assert g.check(_plain(3), now=100.0) is Verdict.ACCEPT
    assert g.check(_plain(3), now=103.0) is Verdict.DUPLICATE
    assert g.check(_plain(3), now=104.5) is Verdict.ACCEPT
    assert g.check(_plain(3)) is Verdict.DUPLICATE  # no time given: strict
    strict = ReplayGuard()
    strict.check(_plain(3), now=0.0)
    assert strict.check(_plain(3), now=1e6) is Verdict.DUPLICATE


def test_replay_guard_downgrade_and_peek() -> None:
    g = ReplayGuard()
    g.check(_sealed(7))
    assert g.check(_plain(1, mac=MAC)) is Verdict.DOWNGRADE
    assert g.peek(_sealed(8)) is Verdict.ACCEPT
    assert g.peek(_sealed(8)) is Verdict.ACCEPT  # peek does not record
    assert g.accept(_sealed(8)) and not g.accept(_sealed(8))


@settings(max_examples=100, deadline=None)
@given(sequence=st.lists(st.integers(0, 20), max_size=30))
def test_replay_guard_accepts_exactly_the_rising_counters(sequence: list[int]) -> None:
    adverts = {c: _sealed(c) for c in set(sequence)}
    g = ReplayGuard()
    best = -1
    for c in sequence:
        verdict = g.check(adverts[c])
        if c > best:
            assert verdict is Verdict.ACCEPT
            best = c
        else:
            assert verdict is (Verdict.DUPLICATE if c == best else Verdict.REPLAY)
