"""A GSM modem on a pty, for the tests, the rig and an installer's bench: ``carehub emulate modem``.

``python -m drivers.modem.emulator --link PATH --control SOCKET`` plays the
modem on a pty pair behind the symlink ``PATH`` (or ``--port`` a real serial
port), with the serial emulators' runner (:mod:`drivers.serial.emulator`):
the same control socket, ``unplug`` and ``replug`` (the pty goes away and a
new one comes back behind the link), ``state``. It speaks the AT subset the
hub uses, in text mode: ``AT``, ``ATE0``/``ATE1``, ``AT+CMEE``, ``AT+CSCS``,
``AT+CSMP``, ``AT+CMGF=1``, ``AT+CMGS="<number>"`` with the ``> `` prompt, the
text and Ctrl-Z (Esc aborts), answered ``+CMGS: <ref>`` or ``+CMS ERROR: <n>``;
``AT+CREG?``, ``AT+CSQ``, ``AT+CPIN?``; ``AT+CMGL="<stat>"``, ``AT+CMGR=<i>`` and
``AT+CMGD=<i>[,<flag>]`` for what it received, announced with ``+CMTI: "SM",<i>``.

Control requests (``carehub sim serial --control SOCKET WHAT key=value ...``):

* ``sms from=+4791234567 text=OK``: a message arrives (``+CMTI`` goes to the hub);
* ``fault kind=no_sim|no_network|weak_signal|cms_error|silent [on=false] [code=500]``,
  ``fault kind=none``: faults on and off at runtime (``silent``: answers nothing at all);
* ``state``: every ``AT+CMGS`` it was asked for (``cmgs``), every message sent
  (``sent``: to, text, ref), what it holds, its faults.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from drivers.serial.base import Emulator
from drivers.serial.emulator import EmulatorRunner, PtyDevice, RealPortDevice, run_until_stopped

CTRL_Z, ESC = 0x1A, 0x1B
FAULTS = ("no_sim", "no_network", "weak_signal", "cms_error", "silent")
#: What AT+CMGD=<i>,<flag> deletes besides <i>: 1 read, 2 read and sent, 3 read, sent and unsent, 4 all.
DELETE_FLAGS = {1: {"REC READ"}, 2: {"REC READ", "STO SENT"}, 3: {"REC READ", "STO SENT", "STO UNSENT"},
                4: {"REC READ", "REC UNREAD", "STO SENT", "STO UNSENT"}}


class ModemEmulator(Emulator):
    """The modem's side of the AT dialogue (see the module docstring)."""

    name = "modem"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.echo = True
        self.faults: set[str] = set()
        self.cms_code = 500
        self.ref = 0
        self.buf = bytearray()
        self.text_to: str | None = None  # after AT+CMGS: the number the text being typed goes to
        self.store: dict[int, dict[str, Any]] = {}  # index -> {stat, from, text, ts}
        self.cmgs: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.commands = 0
        self._after_cr = False

    # --- the hub writes ----------------------------------------------------------------------

    def on_data(self, data: bytes, now: float) -> bytes:
        if "silent" in self.faults:
            return b""
        out = bytearray()
        for byte in data:
            after_cr, self._after_cr = self._after_cr, byte == 0x0D
            if byte == 0x0A and after_cr:  # the LF of a CR LF ends nothing more (not even a text's first line)
                continue
            if self.text_to is not None:
                out += self._text_byte(byte)
            elif byte in (0x0D, 0x0A):
                line = self.buf.decode("utf-8", "replace").strip()
                self.buf.clear()
                if line:
                    out += self._line(line)
            else:
                self.buf.append(byte)
                del self.buf[:-1024]
        return bytes(out)

    def _text_byte(self, byte: int) -> bytes:
        if byte == ESC:
            self.text_to = None
            self.buf.clear()
            return b"\r\nOK\r\n"
        if byte != CTRL_Z:
            self.buf.append(byte)
            return bytes([byte]) if self.echo else b""
        to, text = self.text_to, self.buf.decode("utf-8", "replace")
        self.text_to = None
        self.buf.clear()
        if "cms_error" in self.faults:
            return f"\r\n+CMS ERROR: {self.cms_code}\r\n".encode()
        self.ref = self.ref % 255 + 1
        self.sent.append({"to": to, "text": text, "ref": self.ref, "at": time.time()})
        return f"\r\n+CMGS: {self.ref}\r\n\r\nOK\r\n".encode()

    def _line(self, line: str) -> bytes:
        self.commands += 1
        echo = (line + "\r\n").encode() if self.echo else b""
        upper = line.upper()
        if upper.startswith("AT+CMGS="):
            number = line.split("=", 1)[1].split(",")[0].strip().strip('"')
            self.cmgs.append(number)
            refused = self._refusal()
            if refused:
                return echo + refused
            self.text_to = number
            return echo + b"\r\n> "
        return echo + self._answer(upper, line)

    def _refusal(self) -> bytes:
        if "no_sim" in self.faults:
            return b"\r\n+CMS ERROR: 310\r\n"
        if "no_network" in self.faults:
            return b"\r\n+CMS ERROR: 331\r\n"
        return b""

    def _answer(self, upper: str, line: str) -> bytes:
        ok = b"\r\nOK\r\n"
        if upper in ("AT", "ATZ") or upper.startswith(("AT+CMEE", "AT+CSCS", "AT+CSMP", "AT+CMGF", "AT+CNMI")):
            return ok
        if upper in ("ATE0", "ATE1"):
            self.echo = upper == "ATE1"
            return ok
        if upper == "AT+CPIN?":
            return b"\r\n+CME ERROR: 10\r\n" if "no_sim" in self.faults else b"\r\n+CPIN: READY\r\n" + ok
        if upper == "AT+CREG?":
            if "no_sim" in self.faults:
                return b"\r\n+CME ERROR: 10\r\n"
            return f"\r\n+CREG: 0,{2 if 'no_network' in self.faults else 1}\r\n".encode() + ok
        if upper == "AT+CSQ":
            rssi = 99 if "no_network" in self.faults else 2 if "weak_signal" in self.faults else 20
            return f"\r\n+CSQ: {rssi},0\r\n".encode() + ok
        if upper.startswith("AT+CMGL"):
            return self._list(line.split("=", 1)[1].strip().strip('"').upper() if "=" in line else "REC UNREAD")
        if upper.startswith("AT+CMGR="):
            return self._read(line.split("=", 1)[1])
        if upper.startswith("AT+CMGD="):
            return self._delete(line.split("=", 1)[1])
        return b"\r\nERROR\r\n"

    def _listing(self, index: int, m: dict[str, Any]) -> str:
        return f'+CMGL: {index},"{m["stat"]}","{m["from"]}","","{m["ts"]}"\r\n{m["text"]}\r\n'

    def _list(self, stat: str) -> bytes:
        if "no_sim" in self.faults:
            return b"\r\n+CMS ERROR: 310\r\n"
        out = "\r\n"
        for index, m in sorted(self.store.items()):
            if stat in ("ALL", "4") or m["stat"] == stat:
                out += self._listing(index, m)
                if m["stat"] == "REC UNREAD":
                    m["stat"] = "REC READ"
        return (out + "\r\nOK\r\n").encode()

    def _read(self, arg: str) -> bytes:
        m = self.store.get(int(arg)) if arg.strip().isdigit() else None
        if m is None:
            return b"\r\n+CMS ERROR: 321\r\n"
        text = f'\r\n+CMGR: "{m["stat"]}","{m["from"]}","","{m["ts"]}"\r\n{m["text"]}\r\n\r\nOK\r\n'
        m["stat"] = "REC READ"
        return text.encode()

    def _delete(self, arg: str) -> bytes:
        parts = [p.strip() for p in arg.split(",")]
        if not parts[0].isdigit() or (len(parts) > 1 and not parts[1].isdigit()):
            return b"\r\n+CMS ERROR: 302\r\n"
        self.store.pop(int(parts[0]), None)
        flag = int(parts[1]) if len(parts) > 1 else 0
        for index in [i for i, m in self.store.items() if m["stat"] in DELETE_FLAGS.get(flag, set())]:
            del self.store[index]
        return b"\r\nOK\r\n"

    # --- the control socket --------------------------------------------------------------------

    def command(self, op: str, args: dict[str, Any], now: float) -> bytes:
        if op == "sms":
            number, text = args.get("from"), args.get("text")
            if isinstance(number, int) and not isinstance(number, bool):  # key=value made +4791234567 a number
                number = f"+{number}"
            if not isinstance(number, str) or not isinstance(text, (str, int)):
                raise ValueError("sms needs from=<number> and text=<text>")
            index = max(self.store, default=0) + 1
            self.store[index] = {"stat": "REC UNREAD", "from": number, "text": str(text),
                                 "ts": time.strftime("%y/%m/%d,%H:%M:%S+04")}
            return b"" if "silent" in self.faults else f'\r\n+CMTI: "SM",{index}\r\n'.encode()
        if op == "fault":
            kind = args.get("kind")
            if kind == "none":
                self.faults.clear()
            elif kind in FAULTS:
                (self.faults.add if args.get("on", True) else self.faults.discard)(kind)
                if kind == "cms_error" and isinstance(args.get("code"), int):
                    self.cms_code = args["code"]
            else:
                raise ValueError(f"fault kind must be none or one of {', '.join(FAULTS)}, found {kind!r}")
            return b""
        raise ValueError(f"unknown request {op!r}: sms, fault (or unplug, replug, state)")

    def state(self) -> dict[str, Any]:
        return {
            "faults": sorted(self.faults),
            "echo": self.echo,
            "cmgs": list(self.cmgs),
            "sent": list(self.sent),
            "stored": [{"index": i, **m} for i, m in sorted(self.store.items())],
            "commands": self.commands,
        }


def main(argv: list[str] | None = None) -> int:
    """``carehub emulate modem``: the modem on a pty (or a real port), until SIGTERM or Ctrl-C."""
    ap = argparse.ArgumentParser(prog="carehub emulate modem",
                                 description="Play a GSM modem (AT commands, SMS in text mode) on a pty, with faults "
                                             "switched through a control socket.")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--link", help="symlink to create to a new pty (the hub's [device.modem] port)")
    where.add_argument("--port", help="a real serial port to play the modem on")
    ap.add_argument("--baud", type=int, default=115200, help="with --port")
    ap.add_argument("--control", required=True, help="control socket path")
    args = ap.parse_args(argv)
    device = RealPortDevice(args.port, args.baud) if args.port else PtyDevice(Path(args.link))
    run_until_stopped(EmulatorRunner(ModemEmulator(), device, Path(args.control)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
