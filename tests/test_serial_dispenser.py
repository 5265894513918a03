"""The medication dispenser protocol, pure: framing, CRC, ACK/dedup, emulator loop, logic. No ports."""

from __future__ import annotations

import binascii
import re
import struct
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from drivers.serial import protocol
from drivers.serial.base import Confirm, Emit, Reading
from drivers.serial.dispenser import (
    ACK,
    DOSE_DUE,
    DOSE_MISSED,
    DOSE_TAKEN,
    FAULT,
    MAX_BODY,
    MAX_PAYLOAD,
    STATUS,
    DispenserEmulator,
    DispenserLogic,
    DispenserOptions,
    DispenserParser,
    Frame,
    FrameDecoder,
    crc16_ccitt_false,
    encode_frame,
)
from hub.events import Priority

DOC = Path(__file__).resolve().parents[1] / "drivers" / "serial" / "PROTOCOL-dispenser.md"
KNOWN_ERRORS = {"checksum", "framing", "overlong", "noise", "duplicate", "unsupported"}


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def frames_of(data: bytes) -> list[Frame]:
    return [x for x in FrameDecoder().feed(data) if isinstance(x, Frame)]


def wire(replies: list[bytes | Confirm]) -> list[bytes]:
    """The bytes of each reply, as the port writes them (a Confirm's after the commit)."""
    return [r.data if isinstance(r, Confirm) else r for r in replies]


def ack_seqs(replies: list[bytes | Confirm]) -> list[int]:
    out = []
    for r in wire(replies):
        fs = frames_of(r)
        assert len(fs) == 1 and fs[0].type == ACK, r.hex(" ")
        out.append(fs[0].seq)
    return out


# --------------------------------------------------------------------------- CRC


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@given(st.binary(max_size=200))
def test_crc_matches_an_independent_implementation(data: bytes) -> None:
    assert crc16_ccitt_false(data) == binascii.crc_hqx(data, 0xFFFF)


# --------------------------------------------------------------------------- doc vectors

#: The same vectors as in PROTOCOL-dispenser.md: (bytes, Frame, reading or None for an ACK).
VECTORS = [
    (
        "7E 04 05 00 57 0C 72 EB 7E",
        Frame(STATUS, 0x00, h("57 0C")),
        Reading("status", {"battery": 87, "doses_left": 12}),
    ),
    (
        "7E 09 01 01 01 02 69 55 B9 00 03 73 35 7E",
        Frame(DOSE_DUE, 0x01, h("01 02 69 55 B9 00 03")),
        Reading("dose_due", {"dose_id": 0x0102, "scheduled": 1767225600, "compartment": 3}),
    ),
    (
        "7E 08 02 02 01 02 69 55 BA 2C D4 58 7E",
        Frame(DOSE_TAKEN, 0x02, h("01 02 69 55 BA 2C")),
        Reading("dose_taken", {"dose_id": 0x0102, "taken_at": 1767225900}),
    ),
    (
        "7E 04 03 03 01 03 59 D4 7E",
        Frame(DOSE_MISSED, 0x03, h("01 03")),
        Reading("dose_missed", {"dose_id": 0x0103}),
    ),
    (
        "7E 03 04 04 01 1F 39 7E",
        Frame(FAULT, 0x04, h("01")),
        Reading("fault", {"code": 1, "fault": "jammed"}),
    ),
    ("7E 03 80 01 01 07 56 7E", Frame(ACK, 0x01, h("01")), None),
    (
        "7E 04 03 7D 5E 7D 5E 7D 5D 44 B3 7E",
        Frame(DOSE_MISSED, 0x7E, h("7E 7D")),
        Reading("dose_missed", {"dose_id": 0x7E7D}),
    ),
]


def test_doc_lists_exactly_the_test_vectors() -> None:
    text = DOC.read_text()
    block = text.split("<!-- vectors: begin -->")[1].split("<!-- vectors: end -->")[0]
    in_doc = re.findall(r"`((?:[0-9A-F]{2} )+[0-9A-F]{2})`", block)
    assert in_doc == [v[0] for v in VECTORS]


@pytest.mark.parametrize("wire,frame,reading", VECTORS, ids=[v[0][:20] for v in VECTORS])
def test_doc_vectors_decode_exactly(wire: str, frame: Frame, reading: Reading | None) -> None:
    data = h(wire)
    assert FrameDecoder().feed(data) == [frame]
    assert encode_frame(frame.type, frame.seq, frame.payload) == data
    p = DispenserParser()
    res = p.feed(data, now=0.0)
    if reading is None:  # an ACK reaching the hub: not a reading, never ACKed back
        assert res.readings == [] and res.replies == []
    else:
        assert res.readings == [reading]
        assert res.replies == [Confirm(encode_frame(ACK, frame.seq, bytes((frame.type,))), readings=1)]
        assert not p.errors


def test_ack_vector_is_what_the_parser_sends() -> None:
    res = DispenserParser().feed(h(VECTORS[1][0]), now=0.0)
    assert wire(res.replies) == [h(VECTORS[5][0])]


# --------------------------------------------------------------------------- framing edge cases


def test_max_body_boundary() -> None:
    ok = encode_frame(0x10, 5, bytes(MAX_PAYLOAD))  # unknown type, body exactly MAX_BODY
    p = DispenserParser()
    res = p.feed(ok, 0.0)
    assert ack_seqs(res.replies) == [5] and res.readings == []
    assert p.errors == {"unsupported": 1}
    with pytest.raises(ValueError):
        encode_frame(0x10, 5, bytes(MAX_PAYLOAD + 1))
    over = DispenserEmulator().command("corrupt", {"how": "overlong"}, 0.0)
    p = DispenserParser()
    res = p.feed(over + ok, 0.0)
    assert p.errors["overlong"] == 1 and ack_seqs(res.replies) == [5]


def test_idle_flags_and_back_to_back_frames() -> None:
    a = encode_frame(STATUS, 1, bytes((50, 3)))
    b = encode_frame(DOSE_MISSED, 2, struct.pack(">H", 9))
    p = DispenserParser()
    res = p.feed(b"\x7e\x7e\x7e" + a + b + b"\x7e\x7e", 0.0)
    assert [r.kind for r in res.readings] == ["status", "dose_missed"]
    assert not p.errors


def test_bad_escape_and_abort_are_framing_and_resync() -> None:
    good = encode_frame(STATUS, 1, bytes((50, 3)))
    p = DispenserParser()
    res = p.feed(b"\x7e\x04\x7d\x11\x00\x00" + good + b"\x7e\x04\x05\x7d" + good, 0.0)
    assert p.errors["framing"] == 2
    # the second `good` is a re-send of the first (same seq, same content)
    assert len(res.readings) == 1 and ack_seqs(res.replies) == [1, 1]


def test_unknown_fault_code_is_still_a_fault() -> None:
    res = DispenserParser().feed(encode_frame(FAULT, 0, b"\x42"), 0.0)
    assert res.readings == [Reading("fault", {"code": 0x42, "fault": "code_0x42"})]


def test_unsupported_payload_is_acked_without_reading() -> None:
    p = DispenserParser()
    res = p.feed(encode_frame(STATUS, 3, b"\x01") + encode_frame(STATUS, 4, bytes((150, 1))), 0.0)
    assert res.readings == [] and ack_seqs(res.replies) == [3, 4]
    assert p.errors == {"unsupported": 2}


@pytest.mark.parametrize(
    "how,kind", [("bad_checksum", "checksum"), ("truncate", "framing"), ("noise", "noise"), ("overlong", "overlong")]
)
def test_corrupt_ops_are_counted_not_acked_and_the_next_frame_survives(how: str, kind: str) -> None:
    emu = DispenserEmulator()
    p = DispenserParser()
    bad = emu.command("corrupt", {"how": how}, 0.0)
    good = emu.command("status", {"battery": 80}, 0.0)
    res = p.feed(bad + good, 0.0)
    assert dict(p.errors) == {kind: 1}
    assert res.readings == [Reading("status", {"battery": 80, "doses_left": None})]
    assert ack_seqs(res.replies) == [0]
    assert emu.state()["unacked"] == [0]  # the spoilt frame used no seq and is not kept


# --------------------------------------------------------------------------- hypothesis: robustness

def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points + [len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


@settings(max_examples=300)
@given(st.binary(max_size=400), st.lists(st.integers(0, 10_000), max_size=20))
def test_feed_never_raises(data: bytes, cuts: list[int]) -> None:
    p = DispenserParser()
    for i, chunk in enumerate(chunked(data, cuts)):
        res = p.feed(chunk, now=float(i))
        for r in wire(res.replies):
            assert frames_of(r)[0].type == ACK
    assert set(p.errors) <= KNOWN_ERRORS


payloads = st.one_of(
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1), st.integers(0, 255)).map(
        lambda t: (DOSE_DUE, struct.pack(">HIB", *t))
    ),
    st.tuples(st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1)).map(lambda t: (DOSE_TAKEN, struct.pack(">HI", *t))),
    st.integers(0, 0xFFFF).map(lambda d: (DOSE_MISSED, struct.pack(">H", d))),
    st.integers(0, 255).map(lambda c: (FAULT, bytes((c,)))),
    st.tuples(st.integers(0, 100), st.integers(0, 255)).map(lambda t: (STATUS, bytes(t))),
)

def cut_frame(tp: tuple[int, bytes], seq: int, at: int, head: bool) -> bytes:
    """A frame cut short (its head, no closing flag) or cut open (its tail, no opening flag)."""
    f = encode_frame(tp[0], seq, tp[1])
    k = 1 + at % (len(f) - 1)
    return f[:k] if head else f[k:]


#: garbage built to hurt: random bytes, flags, escapes, and frames cut short or cut open
garbage_piece = st.one_of(
    st.binary(max_size=30),
    st.sampled_from([b"\x7e", b"\x7d", b"\x7e\x7e", b"\x7d\x7e", b"\x7e\x7d"]),
    st.tuples(payloads, st.integers(0, 255), st.integers(0, 100), st.booleans()).map(lambda t: cut_frame(*t)),
    st.binary(min_size=MAX_BODY + 1, max_size=MAX_BODY + 20).map(lambda b: b"\x7e" + b.replace(b"\x7e", b"")),
)
garbage = st.lists(garbage_piece, max_size=4).map(b"".join)


def holds_no_intact_frame(g: bytes) -> bool:
    """True when no stretch of ``g`` between flags is itself an intact frame (see the doc's guarantee)."""
    return not frames_of(b"\x7e" + g + b"\x7e")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    st.lists(st.tuples(payloads, garbage), min_size=1, max_size=12),
    garbage,
    st.lists(st.integers(0, 100_000), max_size=25),
)
def test_frames_amid_garbage_all_recovered_in_order(
    items: list[tuple[tuple[int, bytes], bytes]], lead: bytes, cuts: list[int]
) -> None:
    """The guarantee of the doc: every intact frame is decoded, in order, whatever garbage surrounds it,
    as long as no garbage stretch is itself an intact frame; exactly one ACK per frame; chunking is irrelevant."""
    gaps = [lead] + [g for _, g in items]
    for g in gaps:
        assume(holds_no_intact_frame(g))
    stream = bytearray(lead)
    expected = []
    for seq, ((type_, payload), g) in enumerate(items):
        stream += encode_frame(type_, seq, payload) + g
        expected.append((seq, type_, payload))
    p = DispenserParser()
    readings, replies = [], []
    for chunk in chunked(bytes(stream), cuts):
        res = p.feed(chunk, 0.0)
        readings += res.readings
        replies += res.replies
    assert ack_seqs(replies) == [seq for seq, _, _ in expected]
    # the readings are exactly those of the frames alone, in order
    alone = DispenserParser().feed(b"".join(encode_frame(t, s, pl) for s, t, pl in expected), 0.0)
    assert readings == alone.readings
    assert p.errors["duplicate"] == 0


@settings(max_examples=200)
@given(
    st.lists(st.one_of(payloads.map(lambda t: encode_frame(t[0], 7, t[1])), garbage_piece), max_size=10),
    st.lists(st.integers(0, 100_000), max_size=30),
)
def test_chunking_invariance(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    whole = DispenserParser()
    ref = whole.feed(data, 0.0)
    split = DispenserParser()
    readings, replies = [], []
    for chunk in chunked(data, cuts):
        res = split.feed(chunk, 0.0)
        readings += res.readings
        replies += res.replies
    # a Confirm counts the readings of its own feed() call, so compare what goes on the wire
    assert (readings, wire(replies), split.errors) == (ref.readings, wire(ref.replies), whole.errors)


@settings(max_examples=200)
@given(st.lists(st.tuples(payloads, st.integers(0, 255)), max_size=20))
def test_every_valid_frame_gets_exactly_one_ack_with_its_seq(frames: list[tuple[tuple[int, bytes], int]]) -> None:
    p = DispenserParser()
    for (type_, payload), seq in frames:
        res = p.feed(encode_frame(type_, seq, payload), 0.0)
        assert wire(res.replies) == [encode_frame(ACK, seq, bytes((type_,)))]


# --------------------------------------------------------------------------- duplicates


def test_resent_duplicate_is_acked_again_but_gives_no_second_reading() -> None:
    f = encode_frame(DOSE_DUE, 9, struct.pack(">HIB", 5, 0, 2))
    p = DispenserParser()
    first = p.feed(f, 0.0)
    second = p.feed(f, 1.0)
    assert len(first.readings) == 1 and second.readings == []
    assert ack_seqs(first.replies) == ack_seqs(second.replies) == [9]
    assert p.errors["duplicate"] == 1


def test_ack_of_a_reading_is_a_confirm_and_acks_that_confirm_nothing_are_plain_bytes() -> None:
    due = encode_frame(DOSE_DUE, 1, struct.pack(">HIB", 5, 0, 2))
    odd = encode_frame(STATUS, 2, b"\x01")  # intact, not understood: nothing to store
    missed = encode_frame(DOSE_MISSED, 3, struct.pack(">H", 5))
    p = DispenserParser()
    res = p.feed(due + odd + missed + due, 0.0)
    assert [r.kind for r in res.readings] == ["dose_due", "dose_missed"]
    assert res.replies == [
        Confirm(encode_frame(ACK, 1, bytes((DOSE_DUE,))), readings=1),  # covers the first reading
        encode_frame(ACK, 2, bytes((STATUS,))),
        Confirm(encode_frame(ACK, 3, bytes((DOSE_MISSED,))), readings=2),  # covers both readings
        encode_frame(ACK, 1, bytes((DOSE_DUE,))),  # the duplicate's ACK confirms nothing new
    ]


def test_unconfirmed_ack_makes_the_resend_a_new_reading_a_sent_one_keeps_it_a_duplicate() -> None:
    f = encode_frame(DOSE_TAKEN, 9, struct.pack(">HI", 7, 100))
    p = DispenserParser()
    first = p.feed(f, 0.0)
    (confirm,) = first.replies
    assert isinstance(confirm, Confirm) and len(first.readings) == 1
    p.unconfirmed(confirm)  # the commit failed: the ACK was never written
    again = p.feed(f, 1.0)  # so the dispenser re-sends the frame
    assert again.readings == first.readings, "the re-send is read again, not dropped as a duplicate"
    assert again.replies == [confirm]
    assert p.errors["duplicate"] == 0
    third = p.feed(f, 2.0)  # this time the ACK went out; a late re-send is a duplicate
    assert third.readings == [] and third.replies == [confirm.data]
    assert p.errors["duplicate"] == 1


def test_unconfirmed_forgets_only_its_own_frame() -> None:
    a = encode_frame(DOSE_MISSED, 4, struct.pack(">H", 1))
    b = encode_frame(DOSE_MISSED, 5, struct.pack(">H", 2))
    p = DispenserParser()
    ra, rb = p.feed(a, 0.0), p.feed(b, 0.0)
    p.unconfirmed(rb.replies[0])  # only b's commit failed
    assert p.feed(a, 1.0).readings == []  # a's ACK went out: its re-send is a duplicate
    assert p.feed(b, 1.0).readings == rb.readings
    p.unconfirmed(Confirm(b"\x7e\x00", readings=1))  # garbage: ignored, never raises
    assert ra.readings and p.errors["duplicate"] == 1


def test_duplicate_window_is_refreshed_by_each_copy_and_expires_after_silence() -> None:
    f = encode_frame(STATUS, 1, bytes((60, 1)))
    p = DispenserParser(dedup_window_s=10)
    assert len(p.feed(f, 0.0).readings) == 1
    for t in range(5, 100, 5):  # a re-send stream under lasting ACK loss: all duplicates
        assert p.feed(f, float(t)).readings == []
    assert len(p.feed(f, 95.0 + 10.5).readings) == 1  # the same frame after > window of silence is new


def test_same_seq_different_content_is_new_reboot_and_wrap() -> None:
    p = DispenserParser()
    emu = DispenserEmulator()
    got = []
    for i in range(300):  # seq wraps past 255
        got += p.feed(emu.command("dose_missed", {"dose_id": i}, float(i)), float(i)).readings
    emu.command("reboot", {}, 300.0)
    assert emu.state()["next_seq"] == 0
    got += p.feed(emu.command("dose_missed", {"dose_id": 1000}, 300.0), 300.0).readings
    assert [r.fields["dose_id"] for r in got] == list(range(300)) + [1000]
    assert p.errors["duplicate"] == 0


# --------------------------------------------------------------------------- emulator <-> parser


def test_emulator_parser_loop_stops_resending_once_acked() -> None:
    emu, p = DispenserEmulator(), DispenserParser()
    out = emu.command("dose_due", {"dose_id": 1, "compartment": 2}, 0.0)
    out += emu.command("status", {"battery": 90, "doses_left": 20}, 0.0)
    res = p.feed(out, 0.0)
    assert [r.kind for r in res.readings] == ["dose_due", "status"]
    assert emu.state()["unacked"] == [0, 1]
    for r in wire(res.replies):
        assert emu.on_data(r, 0.1) == b""
    assert emu.state() == {"unacked": [], "acks_seen": 2, "resends": 0, "next_seq": 2}
    assert emu.tick(5.0) == b""


def test_with_acks_dropped_the_emulator_resends_and_the_parser_dedups() -> None:
    emu, p = DispenserEmulator(resend_s=1.0), DispenserParser()
    readings = p.feed(emu.command("dose_taken", {"dose_id": 7, "taken_at": 100}, 0.0), 0.0).readings
    assert emu.tick(0.5) == b""  # not yet due for a re-send
    for t in (1.0, 2.0, 3.0):  # every ACK lost
        again = emu.tick(t)
        assert again
        res = p.feed(again, t)
        readings += res.readings
        assert ack_seqs(res.replies) == [0]
    assert readings == [Reading("dose_taken", {"dose_id": 7, "taken_at": 100})]
    assert p.errors["duplicate"] == 3 and emu.state()["resends"] == 3
    emu.on_data(wire(p.feed(emu.tick(4.0), 4.0).replies)[0], 4.0)  # this ACK gets through
    assert emu.state()["unacked"] == [] and emu.tick(10.0) == b""


def test_ack_for_another_type_does_not_clear_a_pending_frame() -> None:
    emu = DispenserEmulator()
    emu.command("fault", {"fault": "empty"}, 0.0)
    emu.on_data(encode_frame(ACK, 0, bytes((STATUS,))), 0.1)
    assert emu.state()["unacked"] == [0]
    emu.on_data(encode_frame(ACK, 0, bytes((FAULT,))), 0.2)
    assert emu.state()["unacked"] == []


def test_emulator_without_resend() -> None:
    emu = DispenserEmulator(resend=False)
    emu.command("dose_missed", {"dose_id": 1}, 0.0)
    assert emu.tick(10.0) == b"" and emu.state()["unacked"] == [0]


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(["due", "taken", "missed", "fault", "status"]), min_size=1, max_size=15),
    st.lists(st.booleans(), min_size=1, max_size=60),
    st.lists(st.booleans(), min_size=1, max_size=60),
)
def test_lossy_loop_delivers_every_frame_exactly_once(ops: list[str], up_ok: list[bool], down_ok: list[bool]) -> None:
    """Frames and ACKs lost at random (then the line heals): every command is read exactly once, all acked."""
    emu, p = DispenserEmulator(resend_s=1.0), DispenserParser()
    sent, got = [], []

    def deliver(data: bytes, t: float, i: int) -> None:
        if not data or not up_ok[i % len(up_ok)] and t < 30:
            return
        res = p.feed(data, t)
        got.extend(res.readings)
        for r in wire(res.replies):
            if down_ok[i % len(down_ok)] or t >= 30:
                emu.on_data(r, t)

    args = {
        "due": ("dose_due", lambda i: {"dose_id": i}),
        "taken": ("dose_taken", lambda i: {"dose_id": i}),
        "missed": ("dose_missed", lambda i: {"dose_id": i}),
        "fault": ("fault", lambda i: {"fault": i % 8}),
        "status": ("status", lambda i: {"battery": i % 101}),
    }
    step = 0
    for i, name in enumerate(ops):
        op, a = args[name]
        data = emu.command(op, a(i), float(i))
        sent.append(DispenserParser().feed(data, 0.0).readings[0])
        deliver(data, float(i), step)
        step += 1
    t = float(len(ops))
    while emu.state()["unacked"] and t < 200:
        t += 0.5
        deliver(emu.tick(t), t, step)
        step += 1
    assert emu.state()["unacked"] == []
    assert sorted(map(repr, got)) == sorted(map(repr, sent))


# --------------------------------------------------------------------------- emulator errors


@pytest.mark.parametrize(
    "op,args",
    [
        ("launch", {}),
        ("dose_due", {}),
        ("dose_due", {"dose_id": 70000}),
        ("dose_taken", {"dose_id": "1"}),
        ("fault", {"fault": "on_fire"}),
        ("status", {"battery": 101}),
        ("corrupt", {"how": "gently"}),
    ],
)
def test_emulator_rejects_bad_commands(op: str, args: dict) -> None:
    with pytest.raises(ValueError):
        DispenserEmulator().command(op, args, 0.0)


def test_registered_under_its_protocol_name() -> None:
    spec = protocol("dispenser")
    assert spec.load("parser") is DispenserParser and spec.load("emulator") is DispenserEmulator
    assert spec.load("logic") is DispenserLogic and spec.load("options") is DispenserOptions
    assert DispenserParser.name == DispenserEmulator.name == "dispenser"


# --------------------------------------------------------------------------- options


def test_options_defaults_and_validation() -> None:
    o = msgspec.convert({}, DispenserOptions)
    assert (o.grace_s, o.battery_low_pct, o.battery_ok_pct, o.dedup_window_s) == (1800.0, 20, 30, 60.0)
    for bad in ({"grace_s": 0}, {"battery_low_pct": 101}, {"battery_ok_pct": 10}, {"graces": 5}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, DispenserOptions)
    with pytest.raises(msgspec.ValidationError):
        DispenserLogic(grace_s=-1)
    assert DispenserLogic(options=DispenserOptions(grace_s=5)).opts.grace_s == 5


# --------------------------------------------------------------------------- logic


def due(dose_id: int, scheduled: int | None = 1767225600, compartment: int = 1) -> Reading:
    return Reading("dose_due", {"dose_id": dose_id, "scheduled": scheduled, "compartment": compartment})


def taken(dose_id: int, at: int | None = None) -> Reading:
    return Reading("dose_taken", {"dose_id": dose_id, "taken_at": at})


def missed(dose_id: int) -> Reading:
    return Reading("dose_missed", {"dose_id": dose_id})


def test_due_without_taken_is_missed_after_grace() -> None:
    lg = DispenserLogic(grace_s=600)
    assert lg.on_reading(due(3, compartment=4), now=1000.0) == [
        Emit("medication.due", Priority.NORMAL, {"dose_id": 3, "scheduled": 1767225600, "compartment": 4})
    ]
    assert lg.state()["open_doses"] == [{"dose_id": 3, "scheduled": 1767225600, "compartment": 4}]
    assert lg.tick(1599.5) == []
    assert lg.tick(1600.0) == [
        Emit("medication.missed", Priority.HIGH, {"dose_id": 3, "reported_by": "hub", "grace_s": 600})
    ]
    assert lg.tick(1600.5) == [] and lg.tick(5000.0) == []
    assert lg.state()["open_doses"] == []


def test_taken_within_grace_means_no_missed() -> None:
    lg = DispenserLogic(grace_s=600)
    lg.on_reading(due(3), 1000.0)
    out = lg.on_reading(taken(3, 1767225700), 1300.0)
    assert out == [
        Emit("medication.taken", Priority.NORMAL, {"dose_id": 3, "taken_at": 1767225700, "late": False, "compartment": 1})
    ]
    assert lg.tick(1600.0) == []
    assert lg.on_reading(taken(3), 1700.0) == []  # a repeated report is not a second dose
    assert lg.tick(100_000.0) == []


def test_dispenser_missed_then_grace_gives_one_missed() -> None:
    lg = DispenserLogic(grace_s=600)
    lg.on_reading(due(8), 0.0)
    assert lg.on_reading(missed(8), 300.0) == [
        Emit("medication.missed", Priority.HIGH, {"dose_id": 8, "reported_by": "dispenser"})
    ]
    assert lg.tick(600.0) == [] and lg.tick(10_000.0) == []
    assert lg.on_reading(missed(8), 700.0) == []


def test_grace_missed_then_dispenser_missed_gives_one_missed() -> None:
    lg = DispenserLogic(grace_s=600)
    lg.on_reading(due(8), 0.0)
    assert [e.data["reported_by"] for e in lg.tick(600.0)] == ["hub"]
    assert lg.on_reading(missed(8), 700.0) == []
    # taken after the hub declared it missed: still reported, as late
    out = lg.on_reading(taken(8), 800.0)
    assert [(e.type, e.data["late"]) for e in out] == [("medication.taken", True)]


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(st.sampled_from(["due", "taken", "missed", "tick"]), st.integers(0, 3), st.floats(0, 1000)),
        max_size=40,
    )
)
def test_never_two_missed_for_one_dose_announcement(steps: list[tuple[str, int, float]]) -> None:
    lg = DispenserLogic(grace_s=100)
    now = 0.0
    missed_since_due: dict[int, int] = {}
    for what, dose_id, dt in steps:
        now += dt
        if what == "tick":
            out = lg.tick(now)
        else:
            out = lg.on_reading({"due": due, "taken": taken, "missed": missed}[what](dose_id), now)
        if what == "due" and out:
            missed_since_due[dose_id] = 0
        for e in out:
            if e.type == "medication.missed":
                missed_since_due[e.data["dose_id"]] = missed_since_due.get(e.data["dose_id"], 0) + 1
                assert missed_since_due[e.data["dose_id"]] == 1


def test_due_again_while_open_keeps_one_timer() -> None:
    lg = DispenserLogic(grace_s=600)
    lg.on_reading(due(1), 0.0)
    assert lg.on_reading(due(1), 500.0) == []
    assert len(lg.tick(600.0)) == 1


@pytest.mark.parametrize("name,code", [("jammed", 1), ("empty", 2), ("lid_open", 3), ("code_0x42", 0x42)])
def test_fault_mapping(name: str, code: int) -> None:
    p, lg = DispenserParser(), DispenserLogic()
    (r,) = p.feed(encode_frame(FAULT, 0, bytes((code,))), 0.0).readings
    assert lg.on_reading(r, 0.0) == [Emit("device.fault", Priority.HIGH, {"fault": name, "code": code})]
    assert lg.state()["last_fault"] == name
    (c,) = p.feed(encode_frame(FAULT, 1, b"\x00"), 1.0).readings
    assert lg.on_reading(c, 1.0) == [] and lg.state()["last_fault"] is None


def test_battery_low_once_with_hysteresis() -> None:
    lg = DispenserLogic(battery_low_pct=20, battery_ok_pct=30)

    def battery(pct: int | None) -> list[str]:
        return [e.type for e in lg.on_reading(Reading("status", {"battery": pct, "doses_left": 5}), 0.0)]

    assert battery(50) == [] and battery(21) == [] and battery(20) == []  # "below 20" warns, 20 does not
    assert battery(19) == ["device.battery_low"]
    assert battery(15) == [] and battery(25) == [] and battery(19) == []  # not re-armed below 30
    assert battery(None) == [] and lg.state()["battery"] == 19 and lg.state()["battery_low"]
    assert battery(30) == []  # re-armed
    assert battery(18) == ["device.battery_low"]
    assert lg.on_reading(Reading("status", {"battery": 10, "doses_left": 0}), 0.0) == []
    assert lg.state()["doses_left"] == 0


def test_battery_low_event_data() -> None:
    lg = DispenserLogic()
    assert lg.on_reading(Reading("status", {"battery": 5, "doses_left": None}), 0.0) == [
        Emit("device.battery_low", Priority.NORMAL, {"battery_pct": 5, "threshold_pct": 20})
    ]
