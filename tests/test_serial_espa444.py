"""ESPA 4.4.4 (nurse-call to hub): vectors, the parser's state machine, the emulator, the logic.

Pure: no ports, no clock. The hex vectors are the ones in drivers/serial/PROTOCOL-espa444.md.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.serial.base import Confirm, Reading
from drivers.serial.espa444 import (
    ACK,
    ENQ,
    EOT,
    MAX_BLOCK,
    NAK,
    EspaEmulator,
    EspaLogic,
    EspaOptions,
    EspaParser,
    bcc,
    decode_text,
    encode_block,
    encode_text,
    parse_records,
)
from hub.events import Priority

A, N, E = bytes([ACK]), bytes([NAK]), bytes([EOT])
#: How a standard nurse-call (station '2') hands the hub (address '1') its calls: EOT, a poll of
#: itself (so it becomes the master), then the selection of the hub (ESPA 4.4.4 sections 3.1, 3.2).
SEL = E + b"2\x05" + b"1\x05"

# --- vectors from the protocol document -------------------------------------------------

CALL_101 = bytes.fromhex("01 31 02 31 1F 31 30 31 1E 32 1F 52 6F 6D 20 31 30 31 1E 34 1F 32 1E 36 1F 31 03 5C")
CALL_550 = bytes.fromhex(
    "01 31 02 31 1F 35 35 30 1E 32 1F 43 41 4C 4C 20 4D 45 20 31 30 31 1E 33 1F 33 1E 34 1F 33 1E 35 1F 33 1E 36 1F 33 03 23"
)
MINIMAL = bytes.fromhex("01 31 02 31 1F 31 32 03 1D")
UNKNOWN_ID = bytes.fromhex("01 31 02 31 1F 32 30 35 1E 32 1F 42 61 64 20 32 30 35 1E 36 1F 32 1E 39 1F 78 03 0F")
RESET_101 = bytes.fromhex("01 31 02 31 1F 31 30 31 1E 34 1F 31 03 2A")  # call type 1: reset
HEADER4_101 = bytes.fromhex("01 34 02 31 1F 31 30 31 03 2B")  # header 4: call to subscriber line


def test_bcc_and_encode_block_match_the_documented_vectors() -> None:
    assert encode_block("1", {"1": "101", "2": "Rom 101", "4": "2", "6": "1"}) == CALL_101
    assert encode_block("1", [("1", "550"), ("2", "CALL ME 101"), ("3", "3"), ("4", "3"), ("5", "3"), ("6", "3")]) == CALL_550
    assert encode_block("1", {"1": "12"}) == MINIMAL
    assert encode_block("1", {"1": "205", "2": "Bad 205", "6": "2", "9": "x"}) == UNKNOWN_ID
    assert encode_block("1", {"1": "101", "4": "1"}) == RESET_101
    assert encode_block("4", {"1": "101"}) == HEADER4_101
    # BCC: XOR of everything after SOH up to and including ETX
    assert bcc(bytes.fromhex("31 02 31 1F 31 32 03")) == 0x1D
    assert bcc(CALL_101[1:-1]) == CALL_101[-1] == 0x5C
    assert bcc(b"") == 0


def test_encode_block_refuses_control_characters() -> None:
    with pytest.raises(ValueError):
        encode_block("1", {"1": "10\x031"})
    with pytest.raises(ValueError):
        encode_block("1\x02", {"1": "101"})
    with pytest.raises(ValueError):
        encode_block("1", {"": "101"})


def test_parse_records_standard_swapped_and_malformed() -> None:
    assert parse_records(b"1\x1f101\x1e2\x1fRom 101") == ([(b"1", b"101"), (b"2", b"Rom 101")], 0)
    assert parse_records(b"1\x1e101\x1f2\x1eRom 101") == ([(b"1", b"101"), (b"2", b"Rom 101")], 0)
    assert parse_records(b" 1\x1f550\x1ejunk\x1e\x1e6\x1f1") == ([(b"1", b"550"), (b"6", b"1")], 1)
    assert parse_records(b"") == ([], 0)


def test_iso646_charsets_round_trip() -> None:
    assert encode_text("Bad Ø", "iso646-no") == bytes.fromhex("42 61 64 20 5C")
    assert decode_text(b"R|m 1 {re", "iso646-no") == "Røm 1 ære"
    assert decode_text(b"K|k", "iso646-se") == "Kök"
    assert decode_text(b"Stra~e", "iso646-de") == "Straße"
    assert decode_text(b"\xe6", "latin-1") == "æ"
    assert decode_text(b"\xff", "iso646-no") == "\ufffd"


# --- the parser by hand -----------------------------------------------------------------


def wire(replies: list[bytes | Confirm]) -> bytes:
    """What the port writes for ``replies`` (a Confirm's bytes once its call is committed)."""
    return b"".join(r.data if isinstance(r, Confirm) else r for r in replies)


def feed_all(parser: EspaParser, data: bytes, now: float = 0.0) -> tuple[list[Reading], bytes]:
    res = parser.feed(data, now)
    return res.readings, wire(res.replies)


def test_select_block_eot_gives_one_call_reading() -> None:
    p = EspaParser()
    assert feed_all(p, SEL) == ([], A)  # the caller's poll of itself gets no answer; the selection ACK
    assert p.state == "selected"
    readings, replies = feed_all(p, CALL_101)
    assert replies == A
    assert readings == [
        Reading(
            "call",
            {
                "address": "101",
                "text": "Rom 101",
                "priority": "1",
                "call_type": "2",
                "raw": {"1": "101", "2": "Rom 101", "4": "2", "6": "1"},
            },
        )
    ]
    assert feed_all(p, E) == ([], b"")
    assert p.state == "idle"
    assert sum(p.errors.values()) == 0


def test_several_blocks_in_one_session_and_unknown_identifiers_kept() -> None:
    p = EspaParser()
    readings, replies = feed_all(p, SEL + CALL_550 + UNKNOWN_ID + MINIMAL + E)
    assert replies == A * 4  # the selection and three blocks
    assert [r.fields["address"] for r in readings] == ["550", "205", "12"]
    assert readings[1].fields["raw"] == {"1": "205", "2": "Bad 205", "6": "2", "9": "x"}
    assert readings[2].fields == {"address": "12", "text": None, "priority": None, "call_type": None, "raw": {"1": "12"}}


def test_bad_bcc_is_naked_and_counted() -> None:
    p = EspaParser()
    feed_all(p, SEL)
    readings, replies = feed_all(p, CALL_101[:-1] + bytes([CALL_101[-1] ^ 1]))
    assert (readings, replies) == ([], N)
    assert p.errors["checksum"] == 1
    readings, replies = feed_all(p, CALL_101)  # the retry
    assert replies == A and len(readings) == 1


def test_wrong_address_is_not_acknowledged_and_its_block_is_ignored() -> None:
    p = EspaParser(address="1")
    assert feed_all(p, E + b"3\x05") == ([], b"")  # station 3 polled: not for us, no answer
    assert p.state == "polled"
    assert feed_all(p, b"2\x05") == ([], b"")  # ... and it selects station 2
    assert p.state == "passive"
    assert feed_all(p, CALL_101 + E) == ([], b"")  # their block is skipped whole
    assert p.state == "idle"
    assert p.errors["not_addressed"] == 1  # the selection of '2' (polls of others are normal traffic)
    p2 = EspaParser(address="2")
    assert feed_all(p2, b"\x041\x052\x05")[1] == A


def test_a_poll_of_the_hub_is_answered_eot_a_selection_ack() -> None:
    """ESPA 4.4.4 3.1/3.2: after EOT, <address> ENQ polls; the polled station's <address> ENQ selects."""
    p = EspaParser(address="2")
    assert feed_all(p, E + b"2\x05") == ([], E)  # polled, nothing to send: EOT, not ACK
    assert p.state == "idle" and p.polls == 1
    assert feed_all(p, b"2\x05") == ([], E)  # the line is back in the poll phase: polled again
    assert p.polls == 2
    assert feed_all(p, b"1\x05" + b"2\x05") == ([], A)  # station 1 polls itself, then selects us
    assert p.state == "selected"
    readings, replies = feed_all(p, CALL_101 + E)
    assert replies == A and len(readings) == 1
    assert sum(p.errors.values()) == 0
    # a poll of the hub never becomes a session, whatever follows it
    assert feed_all(p, E + b"2\x05" + CALL_101) == ([], E)
    assert p.errors["not_addressed"] == 1  # the block sent without a selection


def block_with_bcc(target: int) -> bytes:
    """A call block for 205 whose BCC is ``target`` (found by varying the text's last character)."""
    for ch in range(0x20, 0x7F):
        blk = encode_block("1", {"1": "205", "2": "Bad 20" + chr(ch)})
        if blk[-1] == target:
            return blk
    raise AssertionError(target)  # pragma: no cover


@pytest.mark.parametrize("target", [EOT, ENQ, 0x01, ACK])
def test_another_stations_block_whose_bcc_looks_like_a_control_character_is_skipped_whole(target: int) -> None:
    blk = block_with_bcc(target)
    p = EspaParser(address="1")
    junk = E + b"3\x05" + b"2\x05" + blk + A  # station 3 sends a block to station 2, which ACKs
    assert feed_all(p, junk) == ([], b"")
    assert p.state == "passive"
    readings, replies = feed_all(p, SEL + CALL_101 + E)
    assert replies == A + A and [r.fields["address"] for r in readings] == ["101"]


def test_bare_enq_repeats_the_last_reply_and_reselection_is_acked() -> None:
    p = EspaParser()
    feed_all(p, SEL)
    feed_all(p, CALL_101[:-1] + b"\x00")  # bad BCC -> NAK
    assert feed_all(p, bytes([ENQ]))[1] == N
    assert feed_all(p, b"1\x05")[1] == A  # re-selection inside the session
    assert feed_all(p, bytes([ENQ]))[1] == A
    assert feed_all(p, bytes([ENQ]), 0.0)[1] == A
    fresh = EspaParser()
    assert feed_all(fresh, bytes([ENQ])) == ([], b"")
    assert fresh.errors["noise"] == 1


def test_the_same_block_twice_in_a_session_is_acked_but_read_once() -> None:
    p = EspaParser()
    readings, replies = feed_all(p, SEL + CALL_101 + CALL_101)
    assert replies == A * 3 and len(readings) == 1
    assert p.errors["duplicate"] == 1
    # ... but after EOT it is a new call
    readings, _ = feed_all(p, E + SEL + CALL_101 + E)
    assert len(readings) == 1


@pytest.mark.parametrize("header", ["2", "3", "4", "5", "9", "A"])
def test_unmapped_headers_are_refused_with_nak_and_counted(header: str) -> None:
    """Only '1' (call to pager) is carried out; a NAK keeps the sender from believing the rest delivered."""
    p = EspaParser()
    block = encode_block(header, {"1": "101", "7": "1"})
    readings, replies = feed_all(p, SEL + block)
    assert (readings, replies) == ([], A + N)
    assert p.errors["unmapped_header"] == 1
    readings, replies = feed_all(p, block)  # the sender re-sends it: refused again, counted again
    assert (readings, replies) == ([], N) and p.errors["unmapped_header"] == 2
    readings, replies = feed_all(p, CALL_101 + E)  # a call in the same session is still taken
    assert replies == A and len(readings) == 1
    assert p.errors["duplicate"] == 0 and p.errors["framing"] == 0


def test_header_four_from_the_emulator_is_refused_until_it_gives_up() -> None:
    link = Link()
    link.command("block", header="4", records={"1": "101", "2": "Ring 101"})
    link.settle()
    assert link.readings == []
    assert link.to_dev == [A] + [N] * (EspaEmulator.RETRIES + 1)
    assert link.parser.errors["unmapped_header"] == EspaEmulator.RETRIES + 1
    st_ = link.emu.state()
    assert (st_["delivered"], st_["failed"]) == (0, 1), "the sender knows it was not delivered"


def test_documented_poll_reset_and_header_4_exchanges() -> None:
    p = EspaParser()  # address 1
    assert feed_all(p, bytes.fromhex("04 31 05")) == ([], bytes.fromhex("04"))  # poll -> EOT
    assert feed_all(p, bytes.fromhex("04 32 05 31 05")) == ([], bytes.fromhex("06"))  # select -> ACK
    readings, replies = feed_all(p, RESET_101)
    assert replies == bytes.fromhex("06") and readings[0].fields["call_type"] == "1"
    assert feed_all(p, HEADER4_101) == ([], bytes.fromhex("15"))  # header 4 -> NAK
    assert feed_all(p, E) == ([], b"")
    assert dict(p.errors) == {"unmapped_header": 1} and p.polls == 1


def test_the_ack_of_a_call_block_is_a_confirm_covering_the_call() -> None:
    p = EspaParser()
    res = p.feed(SEL + CALL_101 + CALL_101 + MINIMAL, 0.0)
    assert len(res.readings) == 2
    assert res.replies == [A, Confirm(A, readings=1), A, Confirm(A, readings=2)]
    # the selection ACK and the duplicate's ACK confirm nothing: plain bytes, sent at once
    res = p.feed(CALL_101[:-1] + b"\x00" + E + E + b"1\x05", 0.0)
    assert res.replies == [N, E]  # a NAK is plain bytes; so is the EOT answering a poll


def test_unconfirmed_makes_the_resent_block_a_new_reading() -> None:
    p = EspaParser()
    first = p.feed(SEL + CALL_101, 0.0)
    confirm = first.replies[-1]
    assert isinstance(confirm, Confirm) and len(first.readings) == 1
    p.unconfirmed(confirm)  # its call could not be stored: the ACK was not written
    assert feed_all(p, bytes([ENQ])) == ([], N)  # "say that again": send the block again
    again = p.feed(CALL_101, 2.0)  # the nurse-call re-sends the block it got no ACK for
    assert again.readings == first.readings
    assert again.replies == [Confirm(A, readings=1)]
    assert p.errors["duplicate"] == 0
    # this ACK went out; a further re-send (the ACK lost on the line) is a duplicate again
    late = p.feed(CALL_101, 3.0)
    assert late.readings == [] and late.replies == [A]
    assert p.errors["duplicate"] == 1


def test_block_without_stx_is_a_framing_error() -> None:
    p = EspaParser()
    body = b"1\x1f101\x03"
    readings, replies = feed_all(p, SEL + b"\x01" + body + bytes([bcc(body)]))
    assert (readings, replies) == ([], A + N)
    assert p.errors["framing"] == 1


def test_swapped_separator_layout_is_read_too() -> None:
    body = b"1\x021\x1e101\x1f2\x1eRom 101\x03"
    p = EspaParser()
    readings, _ = feed_all(p, SEL + b"\x01" + body + bytes([bcc(body)]))
    assert readings[0].fields["address"] == "101"
    assert readings[0].fields["text"] == "Rom 101"


def test_timeout_drops_a_half_block() -> None:
    p = EspaParser(timeout_s=5.0)
    feed_all(p, SEL + CALL_101[:10], now=0.0)
    assert p.state == "block"
    readings, replies = feed_all(p, CALL_101[10:], now=6.0)
    assert (readings, replies) == ([], b"")
    assert p.errors["timeout"] == 1 and p.state == "idle"
    feed_all(p, SEL, now=7.0)
    assert p.tick(11.9) == [] and p.state == "selected"
    p.tick(12.0)
    assert p.state == "idle" and p.errors["timeout"] == 2


def test_overlong_block_is_skipped_and_naked() -> None:
    p = EspaParser()
    long_block = encode_block("1", {"1": "101", "2": "X" * MAX_BLOCK})
    readings, replies = feed_all(p, SEL + long_block)
    assert (readings, replies) == ([], A + N)
    assert p.errors["overlong"] == 1
    assert p.state == "selected"
    readings, replies = feed_all(p, CALL_101)
    assert replies == A and len(readings) == 1
    # a block of exactly MAX_BLOCK bytes is fine
    exact = encode_block("1", {"1": "101", "2": "Y" * (MAX_BLOCK - 13)})
    assert len(exact) == MAX_BLOCK
    readings, replies = feed_all(p, exact)
    assert replies == A and len(readings) == 1


def test_reset_forgets_the_session() -> None:
    p = EspaParser()
    feed_all(p, SEL + CALL_101[:5])
    p.reset()
    assert p.state == "idle"
    assert feed_all(p, CALL_101) == ([], b"")


def test_options_are_checked() -> None:
    with pytest.raises(msgspec.ValidationError):
        EspaParser(adress="1")
    with pytest.raises(msgspec.ValidationError):
        EspaLogic(priorities={"1": "urgent"})
    with pytest.raises(msgspec.ValidationError):
        EspaParser(address="")
    assert EspaOptions().address == "1"
    assert msgspec.convert({"rooms": {"101": "Stue"}}, EspaOptions).rooms == {"101": "Stue"}
    # the daemon builds every piece from msgspec.structs.asdict(<device options>)
    opts = EspaOptions(address="2", rooms={"101": "Stue"}, priorities={"3": "low"}, charset="iso646-no")
    as_kwargs = msgspec.structs.asdict(opts)
    for cls in (EspaParser, EspaLogic, EspaEmulator):
        assert cls(**as_kwargs).opts == opts


# --- emulator <-> parser ----------------------------------------------------------------


class Link:
    """Shuttles bytes between an emulator (nurse-call) and a parser (hub), with a clock."""

    def __init__(self, emu: EspaEmulator | None = None, parser: EspaParser | None = None) -> None:
        self.emu = emu or EspaEmulator()
        self.parser = parser or EspaParser()
        self.now = 0.0
        self.readings: list[Reading] = []
        self.to_hub: list[bytes] = []  # everything the emulator sent, for the transcript
        self.to_dev: list[bytes] = []

    def pump(self, data: bytes) -> None:
        """Deliver ``data`` to the hub and let the two sides talk until they fall silent."""
        while data:
            self.to_hub.append(data)
            res = self.parser.feed(data, self.now)
            self.readings += res.readings
            reply = wire(res.replies)
            if not reply:
                break
            self.to_dev.append(reply)
            data = self.emu.on_data(reply, self.now)

    def command(self, op: str, **args: Any) -> None:
        self.pump(self.emu.command(op, args, self.now))

    def settle(self, step: float = 0.5, limit: float = 60.0) -> None:
        """Let time pass (ticking both sides) until the emulator is idle with nothing queued."""
        end = self.now + limit
        while self.emu.state()["phase"] != "idle" and self.now < end:
            self.now += step
            self.parser.tick(self.now)
            self.pump(self.emu.tick(self.now))
        assert self.emu.state()["phase"] == "idle", self.emu.state()


def test_full_exchange_enq_ack_block_ack_eot() -> None:
    link = Link()
    link.command("call", address="101", text="Rom 101", priority="1", call_type="2")
    assert link.to_hub == [SEL, CALL_101, E]  # EOT, '2' polls itself, selects '1'; the block; EOT
    assert link.to_dev == [A, A]
    assert [r.fields["address"] for r in link.readings] == ["101"]
    assert link.emu.state() == {
        "phase": "idle",
        "delivered": 1,
        "naks": 0,
        "failed": 0,
        "attempts": 0,
        "queued": 0,
        "polls": 0,
        "polls_eot": 0,
        "polls_other": 0,
    }
    assert link.parser.state == "idle"
    assert sum(link.parser.errors.values()) == 0


def test_emulator_phases_step_by_step() -> None:
    emu = EspaEmulator(address="2")
    assert emu.station == "1"
    assert emu.command("call", {"address": "7"}, 0.0) == b"\x041\x052\x05"
    assert emu.state()["phase"] == "selecting"
    block = emu.on_data(A, 0.1)
    assert block == encode_block("1", {"1": "7"})
    assert emu.state()["phase"] == "sending"
    assert emu.on_data(A, 0.2) == E
    assert emu.state()["phase"] == "idle"
    assert emu.on_data(A + N, 0.3) == b""  # stray replies when idle are ignored


def test_bad_checksum_gets_nak_and_the_retry_succeeds() -> None:
    link = Link()
    link.command("corrupt", how="bad_checksum", address="101", text="Rom 101")
    assert link.to_dev == [A, N, A]
    assert len(link.readings) == 1 and link.readings[0].fields["text"] == "Rom 101"
    assert link.parser.errors["checksum"] == 1
    st_ = link.emu.state()
    assert (st_["phase"], st_["delivered"], st_["naks"], st_["failed"]) == ("idle", 1, 1, 0)


def test_truncated_block_recovers_by_resend_on_timeout() -> None:
    link = Link()
    link.command("corrupt", how="truncate", address="101")
    assert link.readings == [] and link.emu.state()["phase"] == "sending"
    link.settle()
    assert [r.fields["address"] for r in link.readings] == ["101"]
    assert link.parser.errors["framing"] == 1  # the new SOH inside the cut block
    assert link.emu.state()["delivered"] == 1


def test_overlong_is_naked_until_the_emulator_gives_up() -> None:
    link = Link()
    link.command("corrupt", how="overlong")
    assert link.to_dev == [A, N, N, N, N]
    assert link.to_hub[-1] == E
    assert link.readings == []
    assert link.parser.errors["overlong"] == 4
    st_ = link.emu.state()
    assert (st_["phase"], st_["delivered"], st_["naks"], st_["failed"]) == ("idle", 0, 4, 1)
    assert link.parser.state == "idle"
    link.command("call", address="102")  # the line still works
    assert [r.fields["address"] for r in link.readings] == ["102"]


def test_noise_is_counted_and_a_following_call_works() -> None:
    link = Link()
    link.command("corrupt", how="noise", seed=3)
    assert link.parser.errors["noise"] > 0
    link.command("call", address="103")
    assert [r.fields["address"] for r in link.readings] == ["103"]


def test_wrong_hub_address_gets_no_ack_and_the_emulator_gives_up() -> None:
    link = Link(emu=EspaEmulator(address="2", station="3"), parser=EspaParser(address="1"))
    link.command("call", address="101")
    assert link.to_dev == []
    link.settle()
    assert link.to_hub == [b"\x043\x052\x05"] * 4 + [E]
    assert link.emu.state()["failed"] == 1 and link.readings == []
    assert link.parser.errors["not_addressed"] == 4  # each selection of '2'


def test_a_caller_using_the_hubs_own_address_is_answered_eot_and_delivers_nothing() -> None:
    """Misconfigured: the caller's self-poll is a poll of the hub, so the hub answers it EOT."""
    link = Link(emu=EspaEmulator(address="2", station="1"), parser=EspaParser(address="1"))
    link.command("call", address="101")
    link.settle()
    assert link.readings == [] and link.emu.state()["failed"] == 1
    assert set(link.to_dev) == {E} and link.parser.polls == 4


def test_emulator_station_must_differ_from_the_hub() -> None:
    assert EspaEmulator().station == "2" and EspaEmulator(address="7").station == "1"
    for station in ("1", "x1", "", "a b"):
        with pytest.raises(ValueError):
            EspaEmulator(address="1", station=station)


def test_nak_to_selection_is_retried_on_tick() -> None:
    emu = EspaEmulator()
    emu.command("call", {"address": "1"}, 0.0)
    assert emu.on_data(N, 0.1) == b""
    assert emu.tick(1.0) == b""
    assert emu.tick(2.2) == SEL
    assert emu.state()["naks"] == 1 and emu.state()["attempts"] == 2


def test_calls_queued_during_an_exchange_go_in_the_same_session_in_order() -> None:
    link = Link()
    first = link.emu.command("call", {"address": "1"}, 0.0)
    assert link.emu.command("call", {"address": "2"}, 0.0) == b""
    assert link.emu.command("call", {"address": "3"}, 0.0) == b""
    assert link.emu.state()["queued"] == 2
    link.pump(first)
    assert [r.fields["address"] for r in link.readings] == ["1", "2", "3"]
    assert link.to_hub.count(SEL) == 1 and link.to_hub[-1] == E
    assert link.emu.state()["delivered"] == 3


def test_lost_ack_resend_is_acked_without_a_second_reading() -> None:
    emu, p = EspaEmulator(), EspaParser()
    p.feed(emu.command("call", {"address": "101"}, 0.0), 0.0)
    block = emu.on_data(A, 0.0)
    res = p.feed(block, 0.0)  # the hub's ACK is lost on the line
    assert len(res.readings) == 1
    again = emu.tick(2.5)
    assert again == block
    res = p.feed(again, 2.5)
    assert res.readings == [] and res.replies == [A]
    assert emu.on_data(A, 2.6) == E
    assert p.errors["duplicate"] == 1


def test_emulator_refuses_bad_commands() -> None:
    emu = EspaEmulator()
    for op, args in [
        ("ring", {}),
        ("call", {}),
        ("call", {"address": ""}),
        ("call", {"address": "1", "colour": "red"}),
        ("call", {"address": "1", "text": "x" * 300}),
        ("call", {"address": "1\x05"}),
        ("corrupt", {"how": "melt"}),
        ("corrupt", {}),
    ]:
        with pytest.raises(ValueError):
            emu.command(op, args, 0.0)
    assert emu.state()["phase"] == "idle"


def test_emulator_extra_records_and_charset() -> None:
    link = Link(emu=EspaEmulator(charset="iso646-no"), parser=EspaParser(charset="iso646-no"))
    link.command("call", address="101", text="Bad Ø", records={"3": "2", "5": "3"})
    assert b"Bad \\" in link.to_hub[1]
    f = link.readings[0].fields
    assert f["text"] == "Bad Ø" and f["raw"]["5"] == "3" and f["raw"]["3"] == "2"


def test_emulator_polls_the_hub_and_the_hub_answers_eot() -> None:
    link = Link()
    link.command("poll")
    assert link.to_hub == [E + b"1\x05"]  # EOT, then the hub's address and ENQ
    assert link.to_dev == [E], "nothing to send: EOT, not ACK"
    st_ = link.emu.state()
    assert (st_["phase"], st_["polls"], st_["polls_eot"], st_["polls_other"]) == ("idle", 1, 1, 0)
    assert link.parser.polls == 1 and link.parser.state == "idle"
    link.command("call", address="101")  # a call after the poll still gets through
    assert [r.fields["address"] for r in link.readings] == ["101"]


def test_emulator_counts_a_wrong_answer_to_its_poll_and_takes_the_line_back() -> None:
    emu = EspaEmulator()
    assert emu.command("poll", {}, 0.0) == E + b"1\x05"
    assert emu.command("call", {"address": "5"}, 0.0) == b""  # queued behind the poll
    assert emu.on_data(A, 0.1) == SEL  # an ACK to a poll is wrong: counted, then the call goes
    assert emu.state()["polls_other"] == 1 and emu.state()["phase"] == "selecting"
    silent = EspaEmulator()
    silent.command("poll", {}, 0.0)
    assert silent.tick(2.5) == E and silent.state()["phase"] == "idle"  # unanswered: EOT, line back
    assert silent.state()["polls"] == 1 and silent.state()["polls_eot"] == 0
    with pytest.raises(ValueError):
        silent.command("poll", {"address": "1"}, 0.0)


def test_emulator_reset_and_block_ops() -> None:
    emu = EspaEmulator()
    emu.command("reset", {"address": "101"}, 0.0)
    assert emu.on_data(A, 0.1) == encode_block("1", {"1": "101", "4": "1"})
    assert emu.on_data(A, 0.2) == E
    emu.command("block", {"header": "4", "records": {"1": "33"}}, 0.0)
    assert emu.on_data(A, 0.1) == encode_block("4", {"1": "33"})
    for op, args in [
        ("reset", {"address": "1", "call_type": "2"}),
        ("reset", {}),
        ("block", {"records": {"1": "2"}}),
        ("block", {"header": "", "records": {}}),
        ("block", {"header": "4", "records": ["1"]}),
        ("block", {"header": "4", "colour": "red"}),
    ]:
        with pytest.raises(ValueError):
            EspaEmulator().command(op, args, 0.0)


# --- properties -------------------------------------------------------------------------

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@SETTINGS
@given(st.lists(st.binary(max_size=64), max_size=20), st.sampled_from(["1", "2", "12"]))
def test_parser_never_raises_on_arbitrary_bytes(chunks: list[bytes], address: str) -> None:
    p = EspaParser(address=address, timeout_s=1.0)
    now = 0.0
    for chunk in chunks:
        res = p.feed(chunk, now)
        for r in res.readings:
            assert r.kind == "call"
        assert all(reply in (A, N, E) or isinstance(reply, Confirm) and reply.data == A for reply in res.replies)
        now += 0.3
        p.tick(now)
    assert p.errors["internal"] == 0


@SETTINGS
@given(st.binary(max_size=400), st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_parser_never_raises_on_near_valid_streams(noise: bytes, cuts: list[int]) -> None:
    stream = SEL + CALL_101[:7] + noise + SEL + CALL_550 + noise[:3] + MINIMAL + E
    p = EspaParser()
    for c in chunked(stream, cuts):
        p.feed(c, 0.0)
    assert p.errors["internal"] == 0


def transcript(calls: list[dict[str, Any]], garbage: list[bytes]) -> bytes:
    """Everything a nurse-call sends for ``calls``, with ``garbage`` before each exchange."""
    link = Link()
    out = bytearray()
    for call, junk in zip(calls, garbage):
        out += junk + bytes([EOT])
        link.to_hub.clear()
        link.pump(junk + bytes([EOT]))
        link.to_hub.clear()
        link.command("call", **call)
        link.settle()
        out += b"".join(link.to_hub)
    return bytes(out)


call_args = st.fixed_dictionaries(
    {"address": st.from_regex(r"[0-9]{1,6}", fullmatch=True)},
    optional={
        "text": st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40),
        "priority": st.sampled_from(["1", "2", "3"]),
        "call_type": st.sampled_from(["1", "2", "3", "4"]),
    },
)


@SETTINGS
@given(
    st.lists(call_args, min_size=1, max_size=5),
    st.lists(st.binary(max_size=40), min_size=5, max_size=5),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
)
def test_chunking_does_not_change_anything(calls: list[dict[str, Any]], garbage: list[bytes], cuts: list[int]) -> None:
    stream = transcript(calls, garbage)
    whole = EspaParser()
    res = whole.feed(stream, 0.0)
    split = EspaParser()
    readings, replies = [], []
    for c in chunked(stream, cuts):
        r = split.feed(c, 0.0)
        readings += r.readings
        replies += r.replies
    assert readings == res.readings
    assert wire(replies) == wire(res.replies)
    assert split.errors == whole.errors


@SETTINGS
@given(st.lists(st.tuples(call_args, st.binary(max_size=60)), min_size=1, max_size=6))
def test_exchanges_between_garbage_are_all_recovered_in_order(items: list[tuple[dict[str, Any], bytes]]) -> None:
    link = Link()
    for call, junk in items:
        # garbage on the line between exchanges (the hub's answers to it go nowhere)
        link.parser.feed(junk, link.now)
        link.command("call", **call)
        link.settle()
        link.now += 1.0
    assert [r.fields["address"] for r in link.readings] == [c["address"] for c, _ in items]
    assert [r.fields["text"] for r in link.readings] == [(c.get("text") or "").strip() or None for c, _ in items]
    assert link.emu.state()["delivered"] == len(items)
    assert link.emu.state()["failed"] == 0
    assert link.parser.errors["internal"] == 0


@pytest.mark.parametrize(
    "junk",
    [
        SEL,  # a stray selection: the hub is left selected
        SEL + b"\x01abc",  # ... and inside a block
        SEL + b"\x011\x02abc\x03",  # ... and waiting for a BCC (the '1' of the next ENQ is taken as it)
        SEL + b"\x01" + b"X" * 300,  # ... and skipping an overlong block
        SEL + b"\x01" + b"X" * 300 + b"\x03",  # ... and waiting for the overlong block's BCC
        b"\x01\x02\x03\x1e\x1f\x06\x15",  # bare control characters
        b"2\x05\x011\x021\x1f9\x03\x0a",  # another station's whole exchange
        b"\x00\xff\x80" * 20,
    ],
)
def test_recovery_from_every_state_garbage_can_leave(junk: bytes) -> None:
    link = Link()
    link.parser.feed(junk, 0.0)
    link.command("call", address="101", text="Rom 101")
    link.settle()
    link.command("call", address="102")
    link.settle()
    assert [r.fields["address"] for r in link.readings] == ["101", "102"]
    assert link.emu.state()["failed"] == 0


# --- logic ------------------------------------------------------------------------------


def call(address: str | None = "101", text: str | None = "Rom 101", priority: str | None = "1", call_type: str | None = "2") -> Reading:
    raw = {k: v for k, v in {"1": address, "2": text, "4": call_type, "6": priority}.items() if v is not None}
    return Reading("call", {"address": address, "text": text, "priority": priority, "call_type": call_type, "raw": raw})


def test_logic_maps_priority_and_room() -> None:
    logic = EspaLogic(rooms={"101": "Stue 1"}, priorities={"3": "low", "9": "normal"}, dedup_s=0)
    (ev,) = logic.on_reading(call(), 0.0)
    assert ev.type == "alarm.nursecall"
    assert ev.priority is Priority.CRITICAL
    assert ev.data == {"call_address": "101", "room": "Stue 1", "text": "Rom 101", "espa_priority": "1", "call_type": "2"}
    assert logic.on_reading(call(priority="2"), 1.0)[0].priority is Priority.HIGH
    assert logic.on_reading(call(priority="3"), 2.0)[0].priority is Priority.LOW  # overridden
    assert logic.on_reading(call(priority="9"), 3.0)[0].priority is Priority.NORMAL  # added
    assert logic.on_reading(call(priority="7"), 4.0)[0].priority is Priority.HIGH  # default_priority
    assert logic.on_reading(call(priority=None), 5.0)[0].priority is Priority.HIGH
    other = logic.on_reading(call(address="999"), 6.0)[0]
    assert other.data["room"] is None
    no_addr = logic.on_reading(call(address=None), 7.0)[0]
    assert no_addr.data["call_address"] is None and no_addr.data["room"] is None
    assert EspaLogic(default_priority="critical").on_reading(call(priority=None), 0.0)[0].priority is Priority.CRITICAL
    assert logic.on_reading(Reading("status", {}), 8.0) == []


def test_logic_suppresses_repeats_within_the_window() -> None:
    logic = EspaLogic(dedup_s=10.0)
    assert len(logic.on_reading(call(), 0.0)) == 1
    assert logic.on_reading(call(), 3.0) == []  # repeat transmission
    assert logic.on_reading(call(), 9.9) == []
    assert len(logic.on_reading(call(address="102"), 4.0)) == 1  # another call point
    assert len(logic.on_reading(call(text="Assistanse"), 4.0)) == 1  # another message
    assert len(logic.on_reading(call(), 10.0)) == 1  # window measured from the event, not refreshed
    assert logic.state()["calls"] == 4 and logic.state()["suppressed"] == 2
    assert logic.state()["last_call"]["call_address"] == "101"
    logic.tick(100.0)
    assert logic._recent == {}


def test_logic_end_to_end_from_repeated_transmissions() -> None:
    link = Link()
    logic = EspaLogic(rooms={"101": "Stue 1"})
    for _ in range(3):  # the nurse-call repeats the call three times, a second apart
        link.command("call", address="101", text="Rom 101", priority="2")
        link.settle()
        link.now += 1.0
    events = [e for r in link.readings for e in logic.on_reading(r, link.now)]
    assert len(link.readings) == 3 and len(events) == 1
    assert events[0].priority is Priority.HIGH and events[0].data["room"] == "Stue 1"


def test_reset_record_cancels_the_call_at_its_address() -> None:
    logic = EspaLogic(rooms={"101": "Stue 1"})
    (call_ev,) = logic.on_reading(call(call_type="2"), 0.0)
    assert call_ev.type == "alarm.nursecall" and call_ev.closes is None
    (ev,) = logic.on_reading(call(call_type="1"), 1.0)  # a reset 1 s later: not swallowed as a repeat
    assert ev.type == "alarm.cancelled"
    assert ev.priority is Priority.CRITICAL
    assert ev.closes == {"call_address": "101"}
    assert ev.data == {
        "how": "nursecall_reset",
        "call_address": "101",
        "room": "Stue 1",
        "text": "Rom 101",
        "espa_priority": "1",
        "call_type": "1",
    }
    assert logic.state()["calls"] == 1 and logic.state()["resets"] == 1
    assert logic.state()["last_call"]["call_type"] == "2"  # a reset is not a call


def test_reset_dedup_repeats_are_dropped_but_a_new_call_after_a_reset_is_not() -> None:
    logic = EspaLogic(dedup_s=10.0)
    kinds = [
        [e.type for e in logic.on_reading(call(call_type=ct), t)]
        for ct, t in [("2", 0.0), ("1", 1.0), ("1", 2.0), ("2", 3.0), ("2", 4.0), ("1", 5.0)]
    ]
    assert kinds == [
        ["alarm.nursecall"],
        ["alarm.cancelled"],
        [],  # the nurse-call repeating its reset
        ["alarm.nursecall"],  # called again after the reset: a new alarm, not a repeat of the first
        [],  # repeat of that call
        ["alarm.cancelled"],  # and its reset
    ]
    # a reset for another address leaves this address's repeat suppression alone
    assert logic.on_reading(call(address="102", call_type="1"), 6.0)[0].closes == {"call_address": "102"}
    assert logic.on_reading(call(call_type="1"), 7.0) == []


def test_reset_without_a_call_address_still_says_so() -> None:
    (ev,) = EspaLogic().on_reading(call(address=None, call_type="1"), 0.0)
    assert ev.type == "alarm.cancelled" and ev.closes == {"call_address": None}


def test_reset_end_to_end_from_the_emulator() -> None:
    link = Link()
    logic = EspaLogic()
    link.command("call", address="101", text="Rom 101", call_type="2")
    link.command("reset", address="101", text="Rom 101")
    link.settle()
    events = [e for r in link.readings for e in logic.on_reading(r, link.now)]
    assert [(e.type, e.closes) for e in events] == [
        ("alarm.nursecall", None),
        ("alarm.cancelled", {"call_address": "101"}),
    ]
