"""What the modem link asks of a modem, whatever drives it: a small sync interface and its values.

Every method but :meth:`ModemBackend.abort` runs in the link's worker thread
(one command at a time) and may block; the link bounds each call with a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Inbound", "ModemBackend", "ModemGone", "ModemReading", "NotAnswering", "SendRefused"]


class ModemGone(Exception):
    """The port cannot be opened or used: unplugged (``unplugged``) or an I/O error (``io_error``)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class NotAnswering(Exception):
    """The modem sent no final result code in time."""


class SendRefused(Exception):
    """The modem or the network refused a message: ``+CMS ERROR: <code>`` (``code`` None: a plain ERROR)."""

    def __init__(self, code: int | None, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ModemReading:
    """One check of the modem: the SIM (``ready``, ``not_inserted``, ``pin``, ``puk``, ``unknown``), the
    registration state of ``+CREG`` (1 home, 5 roaming: registered) and the ``+CSQ`` rssi (0-31, 99 unknown)."""

    sim: str
    registration: int | None = None
    signal: int | None = None


@dataclass(frozen=True)
class Inbound:
    """A message the modem received: who from, the text, when (as the network stamped it, text)."""

    number: str
    text: str
    at: str = ""


class ModemBackend(Protocol):
    """A modem the link can drive (real: :mod:`drivers.modem.atmodem`; simulated: :mod:`drivers.modem.sim`)."""

    def open(self) -> None:
        """Open the port and make sure the modem answers (raises :class:`ModemGone`, :class:`NotAnswering`)."""

    def close(self) -> None:
        """Close the port (idempotent)."""

    def abort(self) -> None:
        """From the loop's thread: close the port now, so a call stuck in the worker ends (idempotent)."""

    def read_state(self) -> ModemReading:
        """SIM, registration and signal. Registration and signal are None when the SIM is not ready."""

    def send(self, number: str, text: str, timeout: float) -> str | None:
        """Send one SMS in text mode; the ``+CMGS`` reference (raises :class:`SendRefused`, :class:`NotAnswering`,
        :class:`ModemGone`)."""

    def inbox(self) -> list[Inbound]:
        """The messages received and not read yet; read ones are deleted from the modem's store."""
