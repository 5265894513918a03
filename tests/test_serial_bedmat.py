"""The bed-occupancy mat protocol, without a port: parser, logic, emulator.

* the hex examples of PROTOCOL-bedmat.md decode exactly (and are still in the doc);
* the parser never raises, gives the same result however the bytes are chunked,
  and recovers every complete valid frame whatever garbage came before it, with
  the garbage counted exactly as documented;
* the logic's debounce, pairing of exit/return, baseline and battery hysteresis,
  with explicit ``now`` values, and its independence from the tick rate;
* emulator frames round-trip; each corruption raises the right counter only.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.serial.base import Emit, Reading
from drivers.serial.bedmat import (
    MAX_LINE,
    BedMatEmulator,
    BedMatLogic,
    BedMatOptions,
    BedMatParser,
    checksum,
    decode_line,
    encode,
    encode_status,
    load_options,
)
from hub.events import Priority

DOC = Path(__file__).resolve().parent.parent / "drivers" / "serial" / "PROTOCOL-bedmat.md"


def occ(state: str, pressure: int, battery: int, seq: int) -> Reading:
    return Reading("occupancy", {"state": state, "pressure": pressure, "battery": battery, "seq": seq})


def feed_all(data: bytes, chunks: list[int] | None = None) -> tuple[list[Reading], Counter[str], BedMatParser]:
    """Feed ``data`` to a fresh parser, in one go or cut at the given sizes (the rest in one piece)."""
    p = BedMatParser()
    readings: list[Reading] = []
    pos = 0
    for size in chunks or []:
        r = p.feed(data[pos : pos + size], 0.0)
        assert r.replies == []
        readings += r.readings
        pos += size
    readings += p.feed(data[pos:], 0.0).readings
    return readings, +p.errors, p


# --------------------------------------------------------------------------- the doc's vectors

VALID = [
    ("24 42 45 44 2C 30 2C 49 4E 2C 36 34 30 2C 31 30 30 2A 37 37 0D 0A", occ("in", 640, 100, 0)),
    ("24 42 45 44 2C 31 2C 4F 55 54 2C 31 32 2C 31 30 30 2A 30 45 0D 0A", occ("out", 12, 100, 1)),
    ("24 42 45 44 2C 34 32 2C 4F 55 54 2C 33 2C 31 39 2A 33 30 0A", occ("out", 3, 19, 42)),
    (
        "24 42 45 44 2C 36 35 35 33 35 2C 49 4E 2C 31 30 32 33 2C 38 37 2A 37 62 0D 0A",
        occ("in", 1023, 87, 65535),
    ),
    (
        "24 42 53 54 2C 37 2C 35 35 2C 32 2E 31 2E 30 2A 36 44 0D 0A",
        Reading("status", {"battery": 55, "firmware": "2.1.0", "seq": 7}),
    ),
]

INVALID = [
    ("24 42 45 44 2C 30 2C 49 4E 2C 36 34 30 2C 31 30 30 2A 38 38 0D 0A", "checksum"),
    ("24 42 45 44 2C 31 2C 49 4E 2C 36 34 30 0D 0A", "framing"),
    ("24 42 45 44 2C 31 2C 69 6E 2C 36 34 30 2C 31 30 30 2A 37 36 0D 0A", "framing"),
    ("24 42 45 44 2C 35 2C 49 4E 2C 31 30 32 34 2C 38 30 2A 37 45 0D 0A", "framing"),
    ("24 58 59 5A 2C 31 2C 32 2A 35 38 0D 0A", "framing"),
    ("42 45 44 2C 30 2C 49 4E 2C 36 34 30 2C 31 30 30 2A 37 37 0D 0A", "framing"),
    ("24 42 45 44 2C 32 2C 49 00 FF 1B 80 FE 07 9C 4E 2C 36 34 30 2C 31 30 30 2A 37 35 0D 0A", "noise"),
]

RESYNC = [
    (
        "24 42 45 44 2C 39 2C 49 4E 2C 36 24 42 45 44 2C 30 2C 49 4E 2C 36 34 30 2C 31 30 30 2A 37 37 0D 0A",
        [occ("in", 640, 100, 0)],
        {"framing": 1},
    ),
    (
        "00 FF 80 81 FE 24 42 45 44 2C 31 2C 4F 55 54 2C 31 32 2C 31 30 30 2A 30 45 0D 0A",
        [occ("out", 12, 100, 1)],
        {"noise": 1},
    ),
]


def test_every_vector_is_in_the_protocol_doc() -> None:
    doc = DOC.read_text()
    examples = doc.split("## Examples (hex)", 1)[1]
    for hexstr in [v[0] for v in VALID] + [v[0] for v in INVALID] + [v[0] for v in RESYNC]:
        assert f"`{hexstr}`" in examples, hexstr
    # and the doc has no hex example the tests do not decode
    in_doc = set(re.findall(r"`((?:[0-9A-F]{2} )+[0-9A-F]{2})`", examples))
    assert in_doc == {v[0] for v in VALID} | {v[0] for v in INVALID} | {v[0] for v in RESYNC}


@pytest.mark.parametrize(("hexstr", "reading"), VALID)
def test_doc_valid_examples_decode(hexstr: str, reading: Reading) -> None:
    readings, errors, p = feed_all(bytes.fromhex(hexstr))
    assert readings == [reading]
    assert errors == Counter()
    assert not p.pending


@pytest.mark.parametrize(("hexstr", "kind"), INVALID)
def test_doc_invalid_examples_count_once(hexstr: str, kind: str) -> None:
    readings, errors, _ = feed_all(bytes.fromhex(hexstr))
    assert readings == []
    assert errors == Counter({kind: 1})


@pytest.mark.parametrize(("hexstr", "readings", "errors"), RESYNC)
def test_doc_resync_examples(hexstr: str, readings: list[Reading], errors: dict[str, int]) -> None:
    got, errs, _ = feed_all(bytes.fromhex(hexstr))
    assert got == readings
    assert errs == Counter(errors)


def test_doc_overlong_example() -> None:
    line = b"$BED,3,IN,640,100," + b"0" * 82 + b"*58\r\n"
    assert len(line) == 105 and checksum(line[1 : line.index(b"*")]) == 0x58
    assert f"followed by {82} `0` and `*58\\r\\n`\n(105 bytes" in DOC.read_text()
    assert BedMatEmulator(seq=3).command("corrupt", {"how": "overlong"}, 0.0) == line
    readings, errors, _ = feed_all(line + encode(4, "out", 12, 90))
    assert readings == [occ("out", 12, 90, 4)]
    assert errors == Counter({"overlong": 1})


def test_checksum_and_encode() -> None:
    assert checksum(b"BED,0,IN,640,100") == 0x77
    assert checksum(b"") == 0
    assert encode(0, "in", 640, 100) == b"$BED,0,IN,640,100*77\r\n"
    assert encode(1, "OUT", 12, 100) == b"$BED,1,OUT,12,100*0E\r\n"
    assert encode_status(7, 55, "2.1.0") == b"$BST,7,55,2.1.0*6D\r\n"
    for bad in [
        (-1, "in", 1, 1),
        (65536, "in", 1, 1),
        (1, "sit", 1, 1),
        (1, "in", 1024, 1),
        (1, "in", 1, 101),
        (1, "in", True, 1),
    ]:
        with pytest.raises(ValueError):
            encode(*bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_status(1, 50, "with space")


# --------------------------------------------------------------------------- line length

def test_max_line_is_82_bytes_counting_dollar_and_crlf() -> None:
    def line_of(total: int, term: bytes) -> bytes:
        # $BED,... with leading zeros in seq is still valid: pad to the exact length
        body_len = total - len(term) - 1 - 3  # minus '$', '*XX'
        fixed = b",IN,640,100"
        seq = b"0" * (body_len - len(b"BED,") - len(fixed) - 1) + b"7"
        body = b"BED," + seq + fixed
        return b"$" + body + b"*%02X" % checksum(body) + term

    # leading zeros are fine, but the seq field is at most 5 digits: check length on the framing layer
    exact = line_of(MAX_LINE, b"\r\n")
    assert len(exact) == 82
    assert decode_line(exact[:-1]) == "framing"  # too many seq digits, but not overlong
    _, errors, _ = feed_all(exact)
    assert errors == Counter({"framing": 1})
    _, errors, _ = feed_all(line_of(MAX_LINE, b"\n"))
    assert errors == Counter({"framing": 1})
    _, errors, _ = feed_all(line_of(MAX_LINE + 1, b"\r\n"))
    assert errors == Counter({"overlong": 1})
    _, errors, _ = feed_all(line_of(MAX_LINE + 1, b"\n"))
    assert errors == Counter({"overlong": 1})


def test_overlong_discards_up_to_dollar_or_newline() -> None:
    junk = b"$" + b"A" * 200
    readings, errors, _ = feed_all(junk + encode(1, "in", 600, 80))
    assert readings == [occ("in", 600, 80, 1)] and errors == Counter({"overlong": 1})
    readings, errors, _ = feed_all(junk + b"\n" + encode(2, "out", 5, 80))
    assert readings == [occ("out", 5, 80, 2)] and errors == Counter({"overlong": 1})
    # after the newline, a line without '$' is a new problem
    readings, errors, _ = feed_all(junk + b"\nabc\n" + encode(3, "out", 5, 80))
    assert readings == [occ("out", 5, 80, 3)] and errors == Counter({"overlong": 1, "framing": 1})


def test_noise_counts_once_per_spoilt_line_not_per_byte() -> None:
    frame = encode(1, "in", 600, 80)
    assert feed_all(bytes(range(0x80, 0x100)) + frame)[1] == Counter({"noise": 1})
    assert feed_all(b"\x00\x01\x02" + b"junk" + b"\xff" * 50 + frame)[1] == Counter({"noise": 1})
    # first problem wins: printable junk then binary is a framing line
    assert feed_all(b"junk\xff\xfe" + frame)[1] == Counter({"framing": 1})
    # a burst split by newlines spoils two lines
    assert feed_all(b"\xff\xff\n\xff\xff\n" + frame)[1] == Counter({"noise": 2})
    # noise inside a frame drops it; the next frame is fine
    readings, errors, _ = feed_all(frame[:6] + b"\x00" + frame[6:] + frame)
    assert readings == [occ("in", 600, 80, 1)] and errors == Counter({"noise": 1})


def test_blank_lines_crlf_and_partial_frames() -> None:
    readings, errors, p = feed_all(b"\r\n\n\r\r\n" + encode(1, "in", 600, 80) + b"\r\n")
    assert readings == [occ("in", 600, 80, 1)] and errors == Counter()
    # a partial frame waits for the rest and is not counted yet
    frame = encode(2, "out", 7, 80)
    p = BedMatParser()
    assert p.feed(frame[:10], 0.0).readings == [] and p.pending and +p.errors == Counter()
    assert p.feed(frame[10:], 1.0).readings == [occ("out", 7, 80, 2)] and not p.pending
    # reset() forgets the partial one
    p.feed(frame[:10], 2.0)
    p.reset()
    assert not p.pending
    assert p.feed(frame[10:], 3.0).readings == [] and p.errors["framing"] == 1
    # a '\r' in the middle of a frame is malformed
    assert feed_all(b"$BED,1,IN\r,600,80*00\r\n")[1] == Counter({"framing": 1})


def test_parser_accepts_bytearray_and_memoryview() -> None:
    frame = encode(5, "in", 1, 2)
    assert BedMatParser().feed(bytearray(frame), 0.0).readings == [occ("in", 1, 2, 5)]
    assert BedMatParser().feed(memoryview(frame), 0.0).readings == [occ("in", 1, 2, 5)]


# --------------------------------------------------------------------------- properties

#: bytes that look like the protocol, so the garbage hits every branch (partial frames, '$', newlines, '*')
TOKENS = [
    b"$", b"\n", b"\r", b"\r\n", b"*", b",", b"$BED,", b"$BST,", b"BED", b"IN", b"OUT", b"*77", b"*0E",
    b"$BED,0,IN,640,100*77", b"0" * 90, b"\x00", b"\xff", b"\x80\x81", b"\t", b"\x7f",
]
garbage = st.lists(st.one_of(st.binary(max_size=12), st.sampled_from(TOKENS)), max_size=8).map(b"".join)
frames = st.one_of(
    st.builds(
        encode,
        st.integers(0, 65535),
        st.sampled_from(["in", "out"]),
        st.integers(0, 1023),
        st.integers(0, 100),
    ),
    st.builds(
        encode_status,
        st.integers(0, 65535),
        st.integers(0, 100),
        st.from_regex(r"[A-Za-z0-9._+-]{1,16}", fullmatch=True),
    ),
)
lf_frames = st.tuples(frames, st.booleans()).map(lambda t: t[0][:-2] + b"\n" if t[1] else t[0])


def chunkings(n: int) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(1, max(1, n)), max_size=40)


@settings(max_examples=300)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 50), max_size=30))
def test_feed_never_raises_on_any_bytes_any_chunking(data: bytes, cuts: list[int]) -> None:
    p = BedMatParser()
    pos = 0
    for c in cuts + [len(data)]:
        r = p.feed(data[pos : pos + c], 0.0)
        assert r.replies == []
        for reading in r.readings:
            assert reading.kind in ("occupancy", "status")
        pos += c
    assert all(v >= 0 for v in p.errors.values())
    assert set(p.errors) <= {"checksum", "framing", "overlong", "noise"}


@settings(max_examples=200)
@given(parts=st.lists(st.one_of(lf_frames, garbage), max_size=10), st_data=st.data())
def test_chunking_invariance(parts: list[bytes], st_data: st.DataObject) -> None:
    stream = b"".join(parts)
    whole = feed_all(stream)
    one_by_one = feed_all(stream, [1] * len(stream))
    cut = feed_all(stream, st_data.draw(chunkings(len(stream) or 1)))
    assert whole[:2] == one_by_one[:2] == cut[:2]
    assert whole[2].pending == one_by_one[2].pending == cut[2].pending


@settings(max_examples=300)
@given(pieces=st.lists(st.tuples(garbage, lf_frames), min_size=1, max_size=8), st_data=st.data())
def test_valid_frames_survive_any_garbage_between_them(
    pieces: list[tuple[bytes, bytes]], st_data: st.DataObject
) -> None:
    """The guarantee: a complete valid frame decodes whatever bytes came before it.

    The garbage is arbitrary (it may hold '$', newlines, partial frames, even a
    whole valid frame of its own); it only has to sit between complete frames.
    What the garbage gives is exactly what it gives to a fresh parser, plus one
    ``framing`` if it ends inside a '$' frame (cut off by the next frame's '$').
    """
    stream = b""
    expected: list[Reading] = []
    expected_errors: Counter[str] = Counter()
    spoiling_pieces = 0
    for junk, frame in pieces:
        alone, junk_errors, p = feed_all(junk)
        expected += alone
        expected_errors += junk_errors
        if p.pending:
            expected_errors["framing"] += 1
        if junk.strip(b"\r\n") and not alone:
            spoiling_pieces += 1
        frame_reading, _, _ = feed_all(frame)
        assert len(frame_reading) == 1
        expected += frame_reading
        stream += junk + frame

    readings, errors, p = feed_all(stream, st_data.draw(chunkings(len(stream))))
    assert readings == expected
    assert errors == expected_errors
    assert not p.pending  # the last thing fed was a complete frame
    # every piece of garbage that is not blank lines and holds no frame of its own is counted
    assert sum(errors.values()) >= spoiling_pieces


@settings(max_examples=100)
@given(
    pieces=st.lists(
        st.tuples(
            st.binary(max_size=30).map(lambda b: b.replace(b"$", b"")),
            st.sampled_from([b"", b"\n", b"\r\n"]),
            lf_frames,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_garbage_without_dollar_is_one_error_per_nonblank_line(pieces: list[tuple[bytes, bytes, bytes]]) -> None:
    """Garbage with no '$' can never give a reading, and costs exactly one count per non-blank line."""
    stream = b""
    frames_read: list[Reading] = []
    lines = 0
    for junk, end, frame in pieces:
        stream += junk + end + frame
        frames_read += feed_all(frame)[0]
        lines += sum(1 for seg in (junk + end).split(b"\n") if seg.strip(b"\r"))
    readings, errors, _ = feed_all(stream)
    assert readings == frames_read
    assert sum(errors.values()) == lines
    assert set(errors) <= {"framing", "noise"}


# --------------------------------------------------------------------------- options

def test_options_defaults_and_validation() -> None:
    o = BedMatOptions()
    assert (o.exit_after_s, o.return_after_s, o.battery_low_pct, o.battery_ok_pct) == (10.0, 5.0, 20, 30)
    assert o.check() == []
    assert load_options({}) == o
    assert load_options({"exit_after_s": 30, "battery_low_pct": 10, "battery_ok_pct": 15}).exit_after_s == 30.0
    problems = BedMatOptions(battery_low_pct=30, battery_ok_pct=30).check()
    assert [k for k, _ in problems] == ["battery_ok_pct"] and "greater than battery_low_pct" in problems[0][1]
    for bad in [
        {"exit_after_s": 0},
        {"return_after_s": -1},
        {"battery_low_pct": 0},
        {"battery_ok_pct": 101},
        {"battery_low_pct": 40},  # ok (30) no longer above low
        {"exit_afer_s": 10},  # typo: unknown key
        {"exit_after_s": "10"},
    ]:
        with pytest.raises(ValueError):
            load_options(bad)
        with pytest.raises(ValueError):
            BedMatLogic(**bad)
    with pytest.raises(ValueError):
        load_options(BedMatOptions(exit_after_s=-5))  # built directly: still checked
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"exit_after_s": 0}, BedMatOptions)
    with pytest.raises(AttributeError):
        o.exit_after_s = 3  # type: ignore[misc]


# --------------------------------------------------------------------------- logic

def reading(state: str, battery: int = 90, pressure: int | None = None, seq: int = 0) -> Reading:
    return occ(state, pressure if pressure is not None else (600 if state == "in" else 10), battery, seq)


def types(emits: list[Emit]) -> list[str]:
    return [e.type for e in emits]


BASELINE_IN = [Emit("bed.return", Priority.NORMAL, {"baseline": True, "since_s": 0.0})]


def test_first_reading_is_the_baseline_and_only_in_bed_is_reported() -> None:
    for first in ("in", "out"):
        lg = BedMatLogic()
        assert lg.state() == {"occupancy": None, "since_s": None, "battery": None}
        # in bed at start: a baseline bed.return, so a rule waiting since before a restart can stand down
        assert lg.on_reading(reading(first), 100.0) == (BASELINE_IN if first == "in" else [])
        for t in (100.5, 110.0, 200.0):
            assert lg.tick(t) == []
        assert lg.state() == {"occupancy": first, "since_s": 100.0, "battery": 90}


def test_exit_exactly_after_exit_after_s_then_return() -> None:
    lg = BedMatLogic()
    assert lg.on_reading(reading("in"), 0.0) == BASELINE_IN
    assert lg.on_reading(reading("out", pressure=14, seq=5), 100.0) == []
    assert lg.tick(109.5) == []
    assert lg.tick(109.999) == []
    assert lg.state()["occupancy"] == "in"  # not yet: still debouncing
    assert lg.tick(110.0) == [Emit("bed.exit", Priority.NORMAL, {"since_s": 10.0, "pressure": 14, "seq": 5})]
    assert lg.tick(110.5) == [] and lg.tick(500.0) == []  # once
    assert lg.state() == {"occupancy": "out", "since_s": 400.0, "battery": 90}
    assert lg.on_reading(reading("in", pressure=700, seq=6), 600.0) == []
    assert lg.tick(604.5) == []
    assert lg.tick(605.0) == [
        Emit("bed.return", Priority.NORMAL, {"since_s": 5.0, "pressure": 700, "seq": 6, "away_s": 500.0})
    ]
    assert lg.tick(700.0) == []
    assert lg.state()["occupancy"] == "in"


def test_turning_over_does_not_flap() -> None:
    lg = BedMatLogic()
    lg.on_reading(reading("in"), 0.0)
    out: list[Emit] = []
    t = 10.0
    for _ in range(20):  # OUT 3 s, IN 1 s, again and again: never 10 s of OUT in a row
        out += lg.on_reading(reading("out"), t)
        for k in range(1, 7):
            out += lg.tick(t + 0.5 * k)
        out += lg.on_reading(reading("in"), t + 3.0)
        out += lg.tick(t + 3.5)
        t += 4.0
    out += lg.tick(t + 100)
    assert out == []
    assert lg.state()["occupancy"] == "in"


def test_short_return_after_an_exit_is_not_a_return() -> None:
    lg = BedMatLogic(exit_after_s=10, return_after_s=5)
    lg.on_reading(reading("in"), 0.0)
    lg.on_reading(reading("out"), 1.0)
    assert types(lg.tick(11.0)) == ["bed.exit"]
    assert lg.on_reading(reading("in"), 20.0) == []
    assert lg.tick(24.5) == []
    assert lg.on_reading(reading("out"), 24.9) == []  # sat on the edge of the bed, got up again
    assert lg.tick(100.0) == []  # no second exit: the resident never came back
    lg.on_reading(reading("in"), 200.0)
    [ret] = lg.tick(205.0)
    assert ret.type == "bed.return" and ret.data["away_s"] == 199.0


def test_repeated_same_state_readings_do_not_restart_the_timer() -> None:
    lg = BedMatLogic()
    lg.on_reading(reading("in"), 0.0)
    lg.on_reading(reading("out", seq=1), 50.0)
    for t in (52.0, 54.0, 56.0, 58.0):
        assert lg.on_reading(reading("out", seq=int(t)), t) == []
    assert lg.tick(60.0)[0].data == {"since_s": 10.0, "pressure": 10, "seq": 1}


def test_readings_alone_emit_when_due_without_tick() -> None:
    lg = BedMatLogic()
    lg.on_reading(reading("in"), 0.0)
    lg.on_reading(reading("out"), 1.0)
    # no tick: the next reading (back in bed) shows the mat read OUT from 1.0 to 13.0
    emits = lg.on_reading(reading("in"), 13.0)
    assert emits == [Emit("bed.exit", Priority.NORMAL, {"since_s": 12.0, "pressure": 10, "seq": 0})]
    assert types(lg.on_reading(reading("in"), 18.0)) == ["bed.return"]


def test_no_return_after_an_out_baseline() -> None:
    lg = BedMatLogic()
    lg.on_reading(reading("out"), 0.0)
    lg.on_reading(reading("in"), 10.0)
    assert lg.tick(20.0) == []
    assert lg.state()["occupancy"] == "in"  # updated silently
    lg.on_reading(reading("out"), 30.0)
    assert types(lg.tick(40.0)) == ["bed.exit"]  # and the next exit is reported


def battery_events(levels: list[int], **opts: int) -> list[Emit]:
    lg = BedMatLogic(**opts)
    out: list[Emit] = []
    for i, b in enumerate(levels):
        out += lg.on_reading(reading("in", battery=b), float(i))
    return [e for e in out if e.type == "device.battery_low"]


def test_battery_low_once_with_hysteresis() -> None:
    assert battery_events([19, 18, 25, 19]) == [
        Emit("device.battery_low", Priority.NORMAL, {"battery_pct": 19, "threshold_pct": 20})
    ]
    assert [e.data["battery_pct"] for e in battery_events([19, 35, 19])] == [19, 19]
    assert battery_events([20, 25, 100]) == []  # 20 is not below 20
    assert len(battery_events([19, 29, 19])) == 1  # 29 is not back at ok (30)
    assert len(battery_events([19, 30, 19])) == 2  # 30 is
    assert len(battery_events([50, 9, 12, 60, 5], battery_low_pct=10, battery_ok_pct=50)) == 2


def test_battery_from_status_sentences_too() -> None:
    lg = BedMatLogic()
    emits = lg.on_reading(Reading("status", {"battery": 15, "firmware": "2.1.0", "seq": 1}), 0.0)
    assert types(emits) == ["device.battery_low"]
    assert lg.state() == {"occupancy": None, "since_s": None, "battery": 15}
    assert lg.on_reading(reading("in", battery=14), 1.0) == BASELINE_IN  # baseline, and already warned


def test_unknown_readings_are_ignored() -> None:
    lg = BedMatLogic()
    assert lg.on_reading(Reading("something", {"state": "out", "battery": 1}), 0.0) == []
    assert lg.on_reading(Reading("occupancy", {"state": "sideways"}), 0.0) == []
    assert lg.state()["occupancy"] is None


@settings(max_examples=200)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 300), st.sampled_from(["in", "out"]), st.integers(0, 100)),
        min_size=1,
        max_size=30,
    )
)
def test_events_do_not_depend_on_the_tick_rate(steps: list[tuple[int, str, int]]) -> None:
    """Same readings, ticks every 0.5 s or none at all: the same events in the same order; exit/return alternate."""
    ticked, lazy = BedMatLogic(), BedMatLogic()
    a: list[Emit] = []
    b: list[Emit] = []
    t = 0.0
    for gap_tenths, state, battery in steps:
        nxt = t + gap_tenths / 10
        k = t
        while True:
            k = round(k + 0.5, 1)
            if k >= nxt:
                break
            a += ticked.tick(k)
        t = nxt
        r = reading(state, battery=battery)
        a += ticked.on_reading(r, t)
        b += lazy.on_reading(r, t)
    end = t + 1000
    a += ticked.tick(end)
    b += lazy.tick(end)
    assert types(a) == types(b)
    assert [e.data.get("pressure") for e in a] == [e.data.get("pressure") for e in b]
    occupancy = [e.type for e in a if e.type.startswith("bed.") and not e.data.get("baseline")]
    assert occupancy == ["bed.exit", "bed.return"] * (len(occupancy) // 2) + ["bed.exit"] * (len(occupancy) % 2)
    for e in a:
        if e.type == "bed.exit":
            assert e.data["since_s"] >= 10.0
        elif e.type == "bed.return" and not e.data.get("baseline"):
            assert e.data["since_s"] >= 5.0
    assert ticked.state()["occupancy"] == lazy.state()["occupancy"]


# --------------------------------------------------------------------------- emulator

@settings(max_examples=100)
@given(
    ops=st.lists(
        st.one_of(
            st.fixed_dictionaries(
                {"state": st.sampled_from(["in", "out"])},
                optional={"pressure": st.integers(0, 1023), "battery": st.integers(0, 100)},
            ).map(lambda a: ("occupancy", a)),
            st.fixed_dictionaries({}, optional={"battery": st.integers(0, 100)}).map(lambda a: ("status", a)),
        ),
        max_size=20,
    ),
    start=st.integers(0, 65535),
)
def test_emulator_frames_round_trip(ops: list[tuple[str, dict]], start: int) -> None:
    emu = BedMatEmulator(seq=start)
    p = BedMatParser()
    battery = 100
    for i, (op, args) in enumerate(ops):
        wire = emu.command(op, args, float(i))
        assert len(wire) <= MAX_LINE and wire.endswith(b"\r\n")
        [r] = p.feed(wire, float(i)).readings
        battery = args.get("battery", battery)
        assert r.fields["seq"] == (start + i) % 65536
        assert r.fields["battery"] == battery
        if op == "occupancy":
            assert r.kind == "occupancy" and r.fields["state"] == args["state"]
            assert r.fields["pressure"] == args.get("pressure", 640 if args["state"] == "in" else 12)
        else:
            assert r == Reading("status", {"battery": battery, "firmware": "2.1.0", "seq": (start + i) % 65536})
    assert +p.errors == Counter()
    assert emu.state()["sent"] == len(ops)


@pytest.mark.parametrize(
    ("how", "kind"),
    [("bad_checksum", "checksum"), ("truncate", "framing"), ("noise", "noise"), ("overlong", "overlong")],
)
def test_each_corruption_raises_its_counter_and_the_next_frame_decodes(how: str, kind: str) -> None:
    emu = BedMatEmulator()
    p = BedMatParser()
    [first] = p.feed(emu.command("occupancy", {"state": "out", "battery": 77}, 0.0), 0.0).readings
    spoilt = emu.command("corrupt", {"how": how}, 1.0)
    assert p.feed(spoilt, 1.0).readings == []
    assert +p.errors == Counter({kind: 1})  # counted at once, not only when the next frame comes
    [nxt] = p.feed(emu.command("occupancy", {"state": "in"}, 2.0), 2.0).readings
    assert nxt == occ("in", 640, 77, 2)  # the spoilt frame used seq 1
    assert +p.errors == Counter({kind: 1})
    assert first == occ("out", 12, 77, 0)


def test_unterminated_truncate_is_counted_when_the_next_frame_starts() -> None:
    emu = BedMatEmulator()
    p = BedMatParser()
    assert p.feed(emu.command("corrupt", {"how": "truncate", "terminated": False}, 0.0), 0.0).readings == []
    assert p.pending and +p.errors == Counter()
    assert p.feed(emu.command("occupancy", {"state": "out"}, 1.0), 1.0).readings == [occ("out", 12, 100, 1)]
    assert +p.errors == Counter({"framing": 1})


def test_emulator_raw_status_tick_and_bad_requests() -> None:
    emu = BedMatEmulator(battery=50, firmware="3.0", repeat_s=60)
    assert emu.command("raw", {"hex": "24 42 45 44"}, 0.0) == b"$BED"
    assert emu.command("status", {}, 0.0) == encode_status(0, 50, "3.0")
    assert emu.tick(1000.0) == b""  # nothing to repeat before the first occupancy
    assert emu.command("occupancy", {"state": "out", "pressure": 3}, 10.0) == encode(1, "out", 3, 50)
    assert emu.tick(69.9) == b""
    assert emu.tick(70.0) == encode(2, "out", 3, 50)
    assert emu.tick(100.0) == b""
    assert BedMatEmulator().tick(1e6) == b""  # repeat off by default
    for op, args in [
        ("dance", {}),
        ("occupancy", {"state": "sideways"}),
        ("occupancy", {}),
        ("occupancy", {"state": "in", "pressure": 5000}),
        ("occupancy", {"state": "in", "battery": -1}),
        ("status", {"firmware": ""}),
        ("corrupt", {"how": "melt"}),
        ("corrupt", {}),
        ("raw", {"hex": "zz"}),
        ("raw", {}),
    ]:
        with pytest.raises(ValueError):
            emu.command(op, args, 0.0)
    assert emu.state()["next_seq"] == 3  # failed requests used no seq
    with pytest.raises(ValueError):
        BedMatEmulator(repeat_s=0)
    with pytest.raises(ValueError):
        BedMatEmulator(seq=70000)


def test_emulator_seq_wraps() -> None:
    emu = BedMatEmulator(seq=65535)
    p = BedMatParser()
    a = p.feed(emu.command("occupancy", {"state": "in"}, 0.0), 0.0).readings
    b = p.feed(emu.command("occupancy", {"state": "in"}, 0.0), 0.0).readings
    assert [r.fields["seq"] for r in a + b] == [65535, 0]


def test_names() -> None:
    assert BedMatParser.name == BedMatEmulator.name == "bedmat"


def _near_bed(seq: int, state: bytes, pressure: int, battery: int, check_off: int, lower: bool, cr: bool) -> bytes:
    body = b"BED,%d,%s,%d,%d" % (seq, state, pressure, battery)
    check = b"%02X" % ((checksum(body) ^ check_off) & 0xFF)
    return b"$" + body + b"*" + (check.lower() if lower else check) + (b"\r\n" if cr else b"\n")


near_bed = st.builds(
    _near_bed,
    st.one_of(st.sampled_from([0, 65535, 65536, 99999]), st.integers(0, 99999)),
    st.sampled_from([b"IN", b"OUT", b"in", b"OUTT"]),
    st.one_of(st.sampled_from([0, 1023, 1024, 9999]), st.integers(0, 9999)),
    st.one_of(st.sampled_from([0, 100, 101, 999]), st.integers(0, 999)),
    st.sampled_from([0, 0, 1, 0x80]),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=300)
@given(parts=st.lists(st.one_of(near_bed, lf_frames, garbage), max_size=12))
def test_whole_bed_lines_read_at_once_agree_with_the_byte_machine(parts: list[bytes]) -> None:
    """Whole ``$BED`` lines take a fast path; fed one byte at a time they cannot: both give the same
    readings and counters, for lines just inside and just outside every range and a wrong checksum."""
    stream = b"".join(parts)
    assert feed_all(stream)[:2] == feed_all(stream, [1] * len(stream))[:2]


def test_a_bed_line_out_of_range_or_with_a_wrong_checksum_is_counted_once() -> None:
    good = _near_bed(65535, b"OUT", 1023, 100, 0, True, True)
    assert feed_all(good)[0] == [occ("out", 1023, 100, 65535)]
    for bad, kind in [
        (_near_bed(65536, b"IN", 1, 1, 0, False, True), "framing"),
        (_near_bed(1, b"IN", 1024, 1, 0, False, False), "framing"),
        (_near_bed(1, b"IN", 1, 101, 0, False, True), "framing"),
        (_near_bed(1, b"IN", 1, 1, 1, False, True), "checksum"),
    ]:
        readings, errors, _ = feed_all(bad + good)
        assert readings == [occ("out", 1023, 100, 65535)] and errors == Counter({kind: 1}), bad
