"""The real modem: atlib's :class:`~atlib.GSM_Device` on a serial port, with three small overrides.

atlib (pure pyserial, sync) does the AT work: command echo and URC filing,
``+CPIN?`` (``get_sim_status``), ``+CREG?`` (``get_network_registration``),
``+CSQ`` (``get_signal``), ``AT+CMGL`` (``receive_sms``), ``AT+CMGD``
(``delete_read_sms``), the ``+CME``/``+CMS ERROR`` parsing (:class:`atlib.Response`).
What the hub needs otherwise, and why:

* ``GSM_Device.__init__`` retries ``AT`` until the modem answers, forever, and
  ``reset_state`` sends ``AT`` up to ten times at ten seconds each: a modem that
  stopped answering would hold the worker thread for minutes. Here one ``AT``
  decides (:class:`NotAnswering` otherwise), and every command is bounded by
  ``command_timeout_s``.
* ``send_sms`` returns only the final status, dropping the ``+CMGS`` reference:
  :meth:`AtlibModem.send` runs the same steps (text mode, ``AT+CMGS`` and its
  ``> `` prompt, the text, Ctrl-Z) with atlib's own ``command``, ``write``,
  ``write_ctrlz`` and ``read``, and reads the reference and ``+CMS ERROR`` from
  the answer with atlib's :class:`~atlib.Response`.
"""

from __future__ import annotations

import os
from typing import Any

import atlib
import serial
from atlib import AT_Device, GSM_Device, Response, SMS_Group, Status

from drivers.modem.backend import Inbound, ModemGone, ModemReading, NotAnswering, SendRefused

#: atlib's get_sim_status -> the words the hub reports.
SIM_WORDS = {Status.OK: "ready", Status.ERROR_SIM_NOT_INSERTED: "not_inserted", Status.ERROR_SIM_PUK: "puk"}


class _Device(GSM_Device):
    """atlib's GSM device: one ``AT`` to sync, every command bounded by ``timeout_s``."""

    def __init__(self, path: str, baudrate: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        AT_Device.__init__(self, path, baudrate)  # opens the port, ATE1, AT+CMEE=1 (each bounded, below)
        if self.sync_baudrate(retry=False) != Status.OK:
            self.serial.close()
            raise NotAnswering("no OK to AT")

    def command(self, cmd: str, timeout: float = 10, stopterm: str = "") -> Response:
        return super().command(cmd, min(timeout, self.timeout_s), stopterm)

    def reset_state(self) -> str:
        if self.serial.in_waiting > 0:
            self.serial.read(self.serial.in_waiting)
        response = self.command("AT")
        if response.final in Response.INCOMPLETE_OUTCOMES or not response.final:
            raise NotAnswering("no answer to AT")
        return response.final


def _gone(path: str, exc: BaseException) -> ModemGone:
    reason = "unplugged" if not os.path.exists(path) else "io_error"
    return ModemGone(reason, f"{type(exc).__name__}: {exc}")


class AtlibModem:
    """A modem on ``port`` driven through atlib (see the module docstring)."""

    def __init__(self, port: str, baud: int, *, command_timeout_s: float) -> None:
        self.port = port
        self.baud = baud
        self.command_timeout_s = command_timeout_s
        self._dev: _Device | None = None

    # --- the port --------------------------------------------------------------------------

    def open(self) -> None:
        self.close()
        if not os.path.exists(self.port):
            raise ModemGone("unplugged", f"{self.port} does not exist")
        try:
            self._dev = _Device(self.port, self.baud, self.command_timeout_s)
        except NotAnswering:
            raise
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise _gone(self.port, exc) from exc

    def close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None and dev.serial is not None:
            try:
                dev.serial.close()
            except Exception:  # closing a port that is gone
                pass

    def abort(self) -> None:
        dev = self._dev
        if dev is not None and dev.serial is not None:
            try:
                dev.serial.close()
            except Exception:
                pass

    def _device(self) -> _Device:
        if self._dev is None or self._dev.serial is None or not self._dev.serial.is_open:
            raise ModemGone("io_error", "port not open")
        return self._dev

    def _run(self, fn: Any) -> Any:
        """Run one atlib step: a port that fails is :class:`ModemGone`, a modem that is silent :class:`NotAnswering`."""
        try:
            return fn(self._device())
        except atlib.ATTimeout as exc:
            raise NotAnswering(str(exc)) from exc
        except (NotAnswering, ModemGone, SendRefused):
            raise
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            raise _gone(self.port, exc) from exc

    # --- what the link asks ----------------------------------------------------------------

    def read_state(self) -> ModemReading:
        sim = SIM_WORDS.get(self._run(lambda d: d.get_sim_status()), "unknown")
        if sim != "ready":
            return ModemReading(sim=sim)
        _, stat = self._run(lambda d: d.get_network_registration())
        rssi, _ = self._run(lambda d: d.get_signal())
        return ModemReading(sim=sim, registration=stat, signal=rssi)

    def send(self, number: str, text: str, timeout: float) -> str | None:
        def steps(d: _Device) -> str | None:
            d.reset_state()
            d.command("AT+CMGF=1").raise_for_status()
            prompt = d.command(f'AT+CMGS="{number}"')
            if prompt.final != Status.PROMPT:
                _raise(prompt)
                raise NotAnswering(f"no prompt to AT+CMGS ({prompt.final or 'nothing'})")
            d.write(text, endline=False)
            d.write_ctrlz()
            answer = Response(d.read(timeout=timeout))
            _raise(answer)
            try:
                return answer.value("+CMGS")
            except atlib.ATParseError:
                return None

        return self._run(steps)

    def inbox(self) -> list[Inbound]:
        def steps(d: _Device) -> list[Inbound]:
            d.reset_state()
            d.command("AT+CMGF=1").raise_for_status()
            cmd = f'AT+CMGL="{SMS_Group.UNREAD}"'
            response = d.command(cmd)
            if response.final in Response.INCOMPLETE_OUTCOMES:
                raise NotAnswering(f"no answer to {cmd}")
            tokens = response.tokens[response.tokens.index(cmd) + 1:] if cmd in response.tokens else response.tokens
            tokens += [t for t in d.read(timeout=QUIET_S) if t and t not in Response.INCOMPLETE_OUTCOMES]
            messages = parse_cmgl(tokens)
            for index, _ in messages:
                d.command(f"AT+CMGD={index}")
            return [m for _, m in messages]

        return self._run(steps)


#: Seconds of silence that end a message listing (see :func:`parse_cmgl`).
QUIET_S = 0.3


def parse_cmgl(tokens: list[str]) -> list[tuple[int, Inbound]]:
    """The messages of an ``AT+CMGL`` answer in text mode, by index: each ``+CMGL:`` header and the lines up to
    the next, the last line being the final result code.

    Not atlib's ``receive_sms``: it ends the answer at the first line that reads as a final result code, and a
    reply ``OK`` is exactly that (its text came back empty). The caller reads on until the modem is quiet, so the
    last line is the true final result code. Raises :class:`SendRefused` for an error answer.
    """
    if not tokens:
        return []
    final = tokens[-1]
    if Response.is_final_line(final) and final != Status.OK:
        raise SendRefused(None, f"AT+CMGL answered {final}")
    body = tokens[:-1] if final == Status.OK else tokens
    headers: list[tuple[int, str, str]] = []
    texts: list[list[str]] = []
    for line in body:
        if line.startswith("+CMGL:"):
            fields = Response.split_fields(line.split(":", 1)[1])
            if not fields or not fields[0].isdigit():
                continue
            headers.append((int(fields[0]), fields[2] if len(fields) > 2 else "", fields[4] if len(fields) > 4 else ""))
            texts.append([])
        elif texts and not line.startswith("+CMTI:"):  # a new-message notice in between is not text
            texts[-1].append(line)
    return [(i, Inbound(number=n, text="\n".join(t), at=at)) for (i, n, at), t in zip(headers, texts)]


def _raise(response: Response) -> None:
    """A failed answer as the link's exceptions: ``+CMS ERROR`` refused, silence not answering."""
    err = response.error
    if err is None:
        return
    if isinstance(err, atlib.ATTimeout):
        raise NotAnswering(str(err))
    if isinstance(err, atlib.CMSError):
        raise SendRefused(err.code, str(err))
    raise SendRefused(None, str(err))
