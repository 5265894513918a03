"""The hub side of ESPA 4.4.4: the paging-system (receiving) station's link state machine.

After ``EOT`` the line is in its poll phase: a poll of the hub's address is
answered ``EOT`` (the hub never has anything to send); a selection of it (after
the caller polled itself) is answered ``ACK``, and the data blocks that follow
``ACK`` (a call, as a :class:`~drivers.serial.base.Confirm` written once the call
is committed) or ``NAK`` (bad BCC, malformed, or a header the hub does not carry
out). Other stations' traffic is followed and skipped. See ``PROTOCOL-espa444.md``.
"""

from __future__ import annotations

import enum
from typing import Any

from drivers.serial.base import Confirm, FeedResult, Parser, Reading
from drivers.serial.espa444.options import convert_options
from drivers.serial.espa444.wire import (
    ACK,
    CALL_TO_PAGER,
    ENQ,
    EOT,
    ETX,
    MAX_BLOCK,
    NAK,
    RS,
    SOH,
    STX,
    US,
    decode_call,
)

_MAX_CONTENT = MAX_BLOCK - 3  # bytes between SOH and ETX (header, STX, records)
_MAX_ADDR = 16  # printable bytes remembered in front of an ENQ


class _St(enum.Enum):
    IDLE = "idle"  # poll phase (after EOT): the next <address> ENQ is a poll
    POLLED = "polled"  # another station was polled: its <address> ENQ (or EOT) follows
    PASSIVE = "passive"  # another station was selected: its exchange is not ours, up to EOT
    FOREIGN = "foreign"  # inside a block that is not for us, up to its ETX
    FOREIGN_BCC = "foreign_bcc"  # that block's BCC, whatever it is
    SELECTED = "selected"  # we answered ACK to our selection; waiting for SOH or EOT
    BLOCK = "block"  # inside SOH ... ETX
    BCC = "bcc"  # ETX seen; the next byte is the BCC
    SKIP = "skip"  # an overlong block: discarding up to its ETX
    SKIP_BCC = "skip_bcc"  # discarding the overlong block's BCC; then NAK


#: States of a session the hub is in (selected by the caller): these time out with ``timeout`` counted.
_SESSION = frozenset({_St.SELECTED, _St.BLOCK, _St.BCC, _St.SKIP, _St.SKIP_BCC})


class EspaParser(Parser):
    """Receiving (paging-system) side of ESPA 4.4.4: see the module docstring and the protocol doc."""

    name = "espa444"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = convert_options(options)
        self._our = self.opts.address.encode("ascii")
        self._state = _St.IDLE
        self._foreign_return = _St.IDLE  # where a foreign block's end leads back to
        self._addr = bytearray()  # printable bytes since the last control character
        self._buf = bytearray()  # block content after SOH, without ETX
        self._bcc = 0
        self._deadline = 0.0
        self._last_reply: bytes | None = None
        self._last_block: bytes | None = None  # last block accepted this session (duplicate check)
        #: Polls of the hub's address, each answered EOT (the hub never has anything to send).
        self.polls = 0

    @property
    def state(self) -> str:
        """The link state, for ``status``: idle, polled, passive, foreign, foreign_bcc,
        selected, block, bcc, skip or skip_bcc."""
        return self._state.value

    # -- public interface --

    def feed(self, data: bytes, now: float) -> FeedResult:
        res = FeedResult()
        try:
            self._expire(now)
            for b in bytes(data):
                self._byte(b, now, res)
        except Exception:  # pragma: no cover - a bug; the contract says never raise
            self.errors["internal"] += 1
            self._to_idle()
        return res

    def tick(self, now: float) -> list[bytes]:
        try:
            self._expire(now)
        except Exception:  # pragma: no cover
            self.errors["internal"] += 1
            self._to_idle()
        return []

    def reset(self) -> None:
        self._to_idle()

    def unconfirmed(self, confirm: Confirm) -> None:
        """The block ACK in ``confirm`` was not sent (its call could not be stored).

        Forget the block, so the caller's re-send is read again rather than taken as a
        duplicate; a bare ENQ ("say that again") is now answered NAK, which asks for that re-send.
        """
        self._last_block = None
        if self._state in _SESSION:
            self._last_reply = bytes([NAK])

    # -- state machine --

    def _to_idle(self) -> None:
        self._state = _St.IDLE
        self._addr.clear()
        self._buf.clear()
        self._bcc = 0
        self._last_reply = None
        self._last_block = None

    def _expire(self, now: float) -> None:
        if self._state is not _St.IDLE and now >= self._deadline:
            if self._state in _SESSION:
                self.errors["timeout"] += 1  # our own session went quiet; another station's is not ours to count
            self._to_idle()

    def _reply(self, res: FeedResult, out: bytes | Confirm) -> None:
        self._last_reply = out.data if isinstance(out, Confirm) else out
        res.replies.append(out)

    def _address_before(self, b: int) -> bytes | None:
        """A printable byte joins the address being read (None); a control byte takes it: returns it, cleared."""
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
            return None
        addr = bytes(self._addr)
        self._addr.clear()
        return addr

    def _push_addr(self, b: int) -> None:
        self._addr.append(b)
        if len(self._addr) > _MAX_ADDR:
            del self._addr[0]

    def _byte(self, b: int, now: float, res: FeedResult) -> None:
        st = self._state
        if st is _St.IDLE:
            self._idle(b, now, res)
        elif st is _St.SELECTED:
            self._selected(b, now, res)
        elif st is _St.BLOCK:
            self._block(b, now, res)
        elif st is _St.BCC:
            self._check(b, now, res)
        elif st is _St.SKIP:
            self._skip(b, now, res)
        elif st is _St.SKIP_BCC:  # the overlong block's BCC, whatever it is
            self._state = _St.SELECTED
            self._reply(res, bytes([NAK]))
        else:  # another station's traffic: quiet time, not traffic, ends it
            self._deadline = now + self.opts.timeout_s
            if st is _St.POLLED:
                self._polled(b, now, res)
            elif st is _St.PASSIVE:
                self._passive(b, now, res)
            elif st is _St.FOREIGN:
                self._foreign(b, now, res)
            else:  # FOREIGN_BCC
                self._state = self._foreign_return

    def _select(self, now: float, res: FeedResult) -> None:
        """``<our address> ENQ`` as a selection: ready to receive."""
        self._state = _St.SELECTED
        self._deadline = now + self.opts.timeout_s
        self._last_block = None
        self._reply(res, bytes([ACK]))

    def _enter_foreign(self, back: _St, now: float) -> None:
        self._foreign_return = back
        self._state = _St.FOREIGN
        self._deadline = now + self.opts.timeout_s

    def _idle(self, b: int, now: float, res: FeedResult) -> None:
        """Poll phase. ``<address> ENQ`` here is a poll (ESPA 4.4.4 section 3.1), never a selection."""
        addr = self._address_before(b)
        if addr is None:
            return
        if b == ENQ:
            if addr and addr.endswith(self._our):  # polled: the hub never has anything to send
                self.polls += 1
                res.replies.append(bytes([EOT]))
            elif addr:  # another station polled (the caller polling itself before it selects)
                self._state = _St.POLLED
                self._deadline = now + self.opts.timeout_s
            else:
                self.errors["noise"] += 1
        elif b == SOH:
            self.errors["not_addressed"] += 1  # a block without our selection: not for us
            self._enter_foreign(_St.IDLE, now)
        elif b not in (EOT, STX, ETX, RS, US, ACK, NAK):
            self.errors["noise"] += 1

    def _polled(self, b: int, now: float, res: FeedResult) -> None:
        """Another station was polled: it answers EOT (nothing to send) or selects a station."""
        addr = self._address_before(b)
        if addr is None:
            return
        if b == EOT:
            self._to_idle()
        elif b == ENQ:
            if addr and addr.endswith(self._our):
                self._select(now, res)
            elif addr:
                self.errors["not_addressed"] += 1  # another station is selected
                self._state = _St.PASSIVE
            else:
                self.errors["noise"] += 1
        elif b == SOH:
            self.errors["not_addressed"] += 1
            self._enter_foreign(_St.PASSIVE, now)
        elif b not in (STX, ETX, RS, US, ACK, NAK):
            self.errors["noise"] += 1

    def _passive(self, b: int, now: float, res: FeedResult) -> None:
        """Another station's exchange: its blocks are skipped whole (a BCC may be any byte), up to EOT."""
        addr = self._address_before(b)
        if addr is None:
            return
        if b == EOT:
            self._to_idle()
        elif b == SOH:
            self._enter_foreign(_St.PASSIVE, now)
        elif b == ENQ and addr and addr.endswith(self._our):  # the master selects us next
            self._select(now, res)

    def _foreign(self, b: int, now: float, res: FeedResult) -> None:
        """Inside a block not for us."""
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
            return
        if b == ETX:
            self._addr.clear()
            self._state = _St.FOREIGN_BCC
        elif b == EOT:
            self._to_idle()
        elif b == ENQ:  # ENQ is never part of a block: the block was abandoned
            self._state = self._foreign_return
            self._byte(b, now, res)
        else:
            self._addr.clear()

    def _selected(self, b: int, now: float, res: FeedResult) -> None:
        addr = self._address_before(b)
        if addr is None:
            return
        if b == SOH:
            self._state = _St.BLOCK
            self._buf.clear()
            self._bcc = 0
        elif b == EOT:
            self._to_idle()
        elif b == ENQ:
            if addr.endswith(self._our) and addr:  # selected again (the caller missed our ACK)
                self._deadline = now + self.opts.timeout_s
                self._reply(res, bytes([ACK]))
            elif addr:  # another station selected without an EOT first: our session is over
                self.errors["not_addressed"] += 1
                self._to_idle()
                self._state = _St.PASSIVE
                self._deadline = now + self.opts.timeout_s
            elif self._last_reply is not None:  # bare ENQ: "say that again"
                res.replies.append(self._last_reply)
            else:
                self.errors["noise"] += 1
        else:
            self.errors["noise"] += 1

    def _abort_block(self, b: int, now: float, res: FeedResult) -> bool:
        """SOH, EOT or ENQ inside a block: the block is abandoned. True if handled."""
        if b == SOH:
            self.errors["framing"] += 1
            self._state = _St.BLOCK
            self._buf.clear()
            self._bcc = 0
            return True
        if b == EOT:
            self.errors["framing"] += 1
            self._to_idle()
            return True
        if b == ENQ:
            self.errors["framing"] += 1
            self._state = _St.SELECTED
            self._selected(b, now, res)  # with the printable bytes in front as the address
            return True
        return False

    def _block(self, b: int, now: float, res: FeedResult) -> None:
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
        else:
            if self._abort_block(b, now, res):
                return
            self._addr.clear()
        self._bcc ^= b
        if b == ETX:
            self._state = _St.BCC
            return
        self._buf.append(b)
        if len(self._buf) > _MAX_CONTENT:
            self.errors["overlong"] += 1
            self._buf.clear()
            self._state = _St.SKIP

    def _skip(self, b: int, now: float, res: FeedResult) -> None:
        if 0x20 <= b < 0x7F:
            self._push_addr(b)
            return
        if self._abort_block(b, now, res):
            return
        self._addr.clear()
        if b == ETX:
            self._state = _St.SKIP_BCC

    def _check(self, b: int, now: float, res: FeedResult) -> None:
        self._state = _St.SELECTED
        self._addr.clear()
        block = bytes(self._buf)
        self._buf.clear()
        self._deadline = now + self.opts.timeout_s
        if b != self._bcc:
            self.errors["checksum"] += 1
            self._reply(res, bytes([NAK]))
            return
        if block == self._last_block:  # our ACK was lost and the caller sent it again
            self.errors["duplicate"] += 1
            self._reply(res, bytes([ACK]))  # its call was taken the first time: confirms nothing new
            return
        header, stx, text = block.partition(bytes([STX]))
        if not stx or not header.strip() or STX in text:
            self.errors["framing"] += 1
            self._reply(res, bytes([NAK]))
            return
        function = header.split(bytes([US]))[0].strip()
        if function != CALL_TO_PAGER:
            # status information/request, call to subscriber line, other: the hub carries none of
            # them out, so it refuses them (NAK) rather than let the caller believe them delivered
            self.errors["unmapped_header"] += 1
            self._reply(res, bytes([NAK]))
            return
        self._last_block = block
        res.readings.append(self._call(header, text))
        self._reply(res, Confirm(bytes([ACK]), readings=len(res.readings)))

    def _call(self, header: bytes, text: bytes) -> Reading:
        reading, bad = decode_call(text, self.opts.charset)
        if bad:
            self.errors["record"] += bad
        return reading
