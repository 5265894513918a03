"""The nurse-call side of ESPA 4.4.4, for the demo, the tests and the rig: polls, selects, sends, retries."""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivers.serial.base import Emulator
from drivers.serial.espa444.options import convert_options
from drivers.serial.espa444.wire import (
    ACK,
    CALL_TO_PAGER,
    ENQ,
    EOT,
    MAX_BLOCK,
    NAK,
    RESET_CALL_TYPE,
    encode_block,
)

_CALL_ARGS = {"address": "1", "text": "2", "call_type": "4", "priority": "6"}
_NOISE = bytes([0x00, 0x07, 0x08, 0x0D, 0x0A, 0x1B, 0x7F, 0x80, 0x9B, 0xC3, 0xE6, 0xFF, 0x11, 0x13])
_STATION = re.compile(r"^[0-9A-Za-z]{1,8}$")


@dataclass
class _Job:
    block: bytes = b""  # empty for a poll
    spoil: str | None = None  # bad_checksum / truncate: the first transmission only
    sent: int = 0
    poll: bool = False


class EspaEmulator(Emulator):
    """The nurse-call (calling) side, as the ESPA control station.

    To send, it polls its own ``station`` address and selects the hub
    (``EOT <station> ENQ <hub> ENQ``), sends the blocks and ends with EOT; it retries
    on NAK or silence. ``command("poll")`` polls the hub (``EOT <hub> ENQ``), which
    must answer EOT. ``station`` defaults to ``"1"``, or ``"2"`` when the hub is ``"1"``.
    """

    name = "espa444"
    #: Re-sends after the first transmission, on NAK or no reply (ESPA: three).
    RETRIES = 3
    #: Seconds to wait for ACK/NAK (or a poll's EOT) before sending again.
    REPLY_TIMEOUT_S = 2.0

    def __init__(self, *, station: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.opts = convert_options(options)
        hub = self.opts.address
        self.station = station if station is not None else ("2" if hub == "1" else "1")
        if not _STATION.match(self.station) or self.station.endswith(hub):
            raise ValueError(f"station {self.station!r}: 1-8 letters/digits, and not ending with the hub's {hub!r}")
        self._queue: deque[_Job] = deque()
        self._job: _Job | None = None
        self._phase = "idle"  # idle | polling | selecting | sending
        self._attempts = 0
        self._deadline = 0.0
        self._delivered = 0
        self._naks = 0
        self._failed = 0
        self._polls = 0
        self._polls_eot = 0
        self._polls_other = 0

    # -- requests --

    def command(self, op: str, args: dict[str, Any], now: float) -> bytes:
        args = dict(args or {})
        if op == "call":
            job = _Job(self._call_block(args))
        elif op == "reset":
            if args.get("call_type") not in (None, RESET_CALL_TYPE):
                raise ValueError(f"reset: call_type is {RESET_CALL_TYPE!r}")
            job = _Job(self._call_block({**args, "call_type": RESET_CALL_TYPE}))
        elif op == "block":
            job = _Job(self._any_block(args))
        elif op == "poll":
            if args:
                raise ValueError(f"poll: unknown args {sorted(args)}")
            job = _Job(poll=True)
        elif op == "corrupt":
            how = args.pop("how", None)
            if how == "noise":
                seed = args.pop("seed", 0)
                if args:
                    raise ValueError(f"corrupt noise: unknown args {sorted(args)}")
                rng = random.Random(seed)
                return bytes(rng.choice(_NOISE) for _ in range(16))
            if how not in ("bad_checksum", "truncate", "overlong"):
                raise ValueError(f"corrupt: how must be bad_checksum, truncate, noise or overlong, not {how!r}")
            args.setdefault("address", "101")
            if how == "overlong":
                args.setdefault("text", "X" * MAX_BLOCK)
                job = _Job(self._call_block(args, check_length=False))
            else:
                job = _Job(self._call_block(args), spoil=how)
        else:
            raise ValueError(f"unknown op {op!r} (call, reset, block, poll, corrupt)")
        self._queue.append(job)
        if self._phase == "idle":
            return self._select_next(now)
        return b""

    def _records(self, extra: Any) -> dict[str, str]:
        if not isinstance(extra, Mapping):
            raise ValueError("records must be a table of identifier to value")
        return {str(ident): str(value) for ident, value in extra.items()}

    def _call_block(self, args: dict[str, Any], check_length: bool = True) -> bytes:
        records: dict[str, str] = {}
        extra = args.pop("records", {}) or {}
        unknown = set(args) - set(_CALL_ARGS)
        if unknown:
            raise ValueError(f"call: unknown args {sorted(unknown)}")
        address = args.get("address")
        if address is None or str(address).strip() == "":
            raise ValueError("call: address is required")
        for key, ident in _CALL_ARGS.items():
            if args.get(key) is not None:
                records[ident] = str(args[key])
        records.update(self._records(extra))
        block = encode_block(CALL_TO_PAGER, records, self.opts.charset)
        if check_length and len(block) > MAX_BLOCK:
            raise ValueError(f"call: block is {len(block)} bytes, more than {MAX_BLOCK}")
        return block

    def _any_block(self, args: dict[str, Any]) -> bytes:
        """``block {header, records}``: any header (function code), e.g. '4' (call to subscriber line)."""
        header = args.pop("header", None)
        records = self._records(args.pop("records", {}) or {})
        if args:
            raise ValueError(f"block: unknown args {sorted(args)}")
        if not isinstance(header, str) or not header.strip():
            raise ValueError("block: header is required (a string such as '4')")
        block = encode_block(header, records, self.opts.charset)
        if len(block) > MAX_BLOCK:
            raise ValueError(f"block: {len(block)} bytes, more than {MAX_BLOCK}")
        return block

    # -- the exchange --

    def _select_next(self, now: float) -> bytes:
        """Start the next queued job (a poll, or a session for blocks); b"" when there is none."""
        if not self._queue:
            self._phase, self._job = "idle", None
            return b""
        self._job = self._queue.popleft()
        self._attempts = 1
        self._deadline = now + self.REPLY_TIMEOUT_S
        if self._job.poll:
            self._phase = "polling"
            self._polls += 1
            return bytes([EOT]) + self.opts.address.encode("ascii") + bytes([ENQ])
        self._phase = "selecting"
        return self._selection()

    def _selection(self) -> bytes:
        """Poll itself, then select the hub: ``EOT <station> ENQ <hub> ENQ``."""
        return (
            bytes([EOT])
            + self.station.encode("ascii")
            + bytes([ENQ])
            + self.opts.address.encode("ascii")
            + bytes([ENQ])
        )

    def _send_block(self, now: float) -> bytes:
        job = self._job
        assert job is not None
        self._deadline = now + self.REPLY_TIMEOUT_S
        job.sent += 1
        block = job.block
        if job.sent == 1 and job.spoil == "bad_checksum":
            return block[:-1] + bytes([block[-1] ^ 0x5A])
        if job.sent == 1 and job.spoil == "truncate":
            return block[: len(block) // 2]
        return block

    def _give_up(self, now: float) -> bytes:
        self._failed += 1
        self._job = None
        return self._select_next(now) or bytes([EOT])

    def _done(self, now: float) -> bytes:
        """Block acknowledged: the next queued block in the same session, or EOT (and the next job)."""
        self._delivered += 1
        if self._queue and not self._queue[0].poll:
            self._job = self._queue.popleft()
            self._phase, self._attempts = "sending", 1
            return self._send_block(now)
        self._job = None
        return self._select_next(now) or bytes([EOT])

    def _poll_answered(self, b: int, now: float) -> bytes:
        if b == EOT:  # nothing to send: the line is back in the poll phase
            self._polls_eot += 1
            self._job = None
            return self._select_next(now)
        self._polls_other += 1  # a wrong answer to a poll: take the line back
        self._job = None
        return self._select_next(now) or bytes([EOT])

    def on_data(self, data: bytes, now: float) -> bytes:
        out = bytearray()
        for b in bytes(data):
            if self._phase == "polling" and b in (EOT, ACK, NAK):
                out += self._poll_answered(b, now)
            elif b == ACK:
                if self._phase == "selecting":
                    self._phase, self._attempts = "sending", 1
                    out += self._send_block(now)
                elif self._phase == "sending":
                    out += self._done(now)
            elif b in (NAK, EOT):
                if self._phase == "selecting":  # hub not ready (EOT: it took our selection for a poll)
                    if b == NAK:
                        self._naks += 1
                    self._deadline = now + self.REPLY_TIMEOUT_S  # try the selection again on tick
                elif self._phase == "sending" and b == NAK:
                    self._naks += 1
                    if self._attempts <= self.RETRIES:
                        self._attempts += 1
                        out += self._send_block(now)
                    else:
                        out += self._give_up(now)
        return bytes(out)

    def tick(self, now: float) -> bytes:
        if self._phase == "idle" or now < self._deadline:
            return b""
        if self._phase == "polling":  # no answer to the poll: take the line back
            self._job = None
            return self._select_next(now) or bytes([EOT])
        if self._attempts > self.RETRIES:
            return self._give_up(now)
        self._attempts += 1
        if self._phase == "selecting":
            self._deadline = now + self.REPLY_TIMEOUT_S
            return self._selection()
        return self._send_block(now)

    def state(self) -> dict[str, Any]:
        return {
            "phase": self._phase,
            "delivered": self._delivered,
            "naks": self._naks,
            "failed": self._failed,
            "attempts": self._attempts if self._phase != "idle" else 0,
            "queued": len(self._queue),
            "polls": self._polls,
            "polls_eot": self._polls_eot,
            "polls_other": self._polls_other,
        }
