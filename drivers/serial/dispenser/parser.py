"""The hub side of the dispenser: decodes frames, ACKs every intact one, drops re-sent duplicates.

The ACK of a frame that gave a reading is a :class:`~drivers.serial.base.Confirm`: it
goes out once the reading's events are committed; if they are not,
:meth:`DispenserParser.unconfirmed` forgets the frame so its re-send is read again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from drivers.serial.base import Confirm, FeedResult, Parser
from drivers.serial.dispenser.options import options_from
from drivers.serial.dispenser.wire import ACK, Frame, FrameDecoder, FrameError, decode_payload, encode_ack


class DispenserParser(Parser):
    """Hub side: decodes frames, ACKs every intact one, drops re-sent duplicates."""

    name: ClassVar[str] = "dispenser"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.opts = options_from(options)
        self._decoder = FrameDecoder()
        #: seq -> (type + payload, last time seen): what each sequence number last carried
        self._seen: dict[int, tuple[bytes, float]] = {}

    def feed(self, data: bytes, now: float) -> FeedResult:
        result = FeedResult()
        try:
            items = self._decoder.feed(bytes(data))
        except Exception:  # pragma: no cover - the decoder does not raise; belt and braces
            self._decoder.reset()
            self.errors["framing"] += 1
            return result
        for item in items:
            if isinstance(item, FrameError):
                self.errors[item.kind] += 1
                continue
            self._frame(item, now, result)
        return result

    def _frame(self, frame: Frame, now: float, result: FeedResult) -> None:
        if frame.type & 0x80:  # a hub frame (our own ACK echoed back): never ACK an ACK
            self.errors["unsupported"] += 1
            return
        ack = encode_ack(frame)
        content = bytes((frame.type,)) + frame.payload
        seen = self._seen.get(frame.seq)
        self._seen[frame.seq] = (content, now)
        if seen is not None and seen[0] == content and now - seen[1] <= self.opts.dedup_window_s:
            self.errors["duplicate"] += 1
            result.replies.append(ack)  # its reading was taken the first time: confirms nothing new
            return
        reading = decode_payload(frame)
        if reading is None:
            self.errors["unsupported"] += 1
            result.replies.append(ack)  # nothing to store: the ACK need not wait
            return
        result.readings.append(reading)
        result.replies.append(Confirm(ack, readings=len(result.readings)))

    def unconfirmed(self, confirm: Confirm) -> None:
        """The ACK in ``confirm`` was not sent: forget its frame's seq, so the re-send is read again."""
        for item in FrameDecoder().feed(confirm.data):
            if isinstance(item, Frame) and item.type == ACK and len(item.payload) == 1:
                seen = self._seen.get(item.seq)
                if seen is not None and seen[0][:1] == item.payload:
                    del self._seen[item.seq]

    def reset(self) -> None:
        self._decoder.reset()
