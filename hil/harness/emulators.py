"""Serial device emulators as subprocesses on real pty pairs, driven like the rig drives them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drivers.simctl import SimClient, answers

REPO = Path(__file__).resolve().parents[2]


class EmulatedDevice:
    """``python -m drivers.serial.emulator PROTOCOL --link LINK --control SOCK`` and a client for it.

    With ``port``, the emulator plays the device on that existing serial port
    (``--port``, as an installer does on a USB-serial adapter) instead of a pty of its own.
    """

    def __init__(self, protocol: str, dir: Path, name: str, *, port: str | None = None) -> None:  # noqa: A002
        self.protocol = protocol
        self.port = port
        self.link = Path(port) if port else dir / f"tty-{name}"
        self.control = dir / f"{name}.ctl"
        self.log = dir / f"{name}.emulator.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: SimClient | None = None

    def start(self) -> EmulatedDevice:
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [
                *self.program(),
                *(["--port", self.port] if self.port else ["--link", str(self.link)]),
                "--control", str(self.control),
            ],
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # the socket's file is there from bind(), before listen(): a connect then is refused
            if answers(self.control) and (self.port is not None or self.link.is_symlink()):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"emulator did not start:\n{self.log.read_text()}")

    def program(self) -> list[str]:
        """The emulator's command line before its options."""
        return [sys.executable, "-m", "drivers.serial.emulator", self.protocol]

    @property
    def client(self) -> SimClient:
        if self._client is None:
            self._client = SimClient(self.control)
        return self._client

    def send(self, what: str, **args: Any) -> dict[str, Any]:
        return self.client.call({"op": "send", "what": what, "args": args})

    def unplug(self) -> None:
        self.client.call({"op": "unplug"})

    def replug(self) -> None:
        self.client.call({"op": "replug"})

    def state(self) -> dict[str, Any]:
        return self.client.call({"op": "state"})

    def unacked(self, timeout: float = 5.0) -> list[int]:
        """The frames the device still waits to have acked, once there are none or after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := self.state()["emulator"]["unacked"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
            self._logf.close()


class EmulatedModem(EmulatedDevice):
    """``python -m drivers.modem.emulator`` (``carehub emulate modem``) on a pty, and what a test asks of it."""

    def __init__(self, dir: Path, name: str = "modem", *, port: str | None = None) -> None:  # noqa: A002
        super().__init__("modem", dir, name, port=port)

    def program(self) -> list[str]:
        return [sys.executable, "-m", "drivers.modem.emulator"]

    def modem(self) -> dict[str, Any]:
        """The emulator's own state: ``cmgs`` (every AT+CMGS number), ``sent``, ``stored``, ``faults``."""
        return self.state()["emulator"]

    def cmgs(self) -> list[str]:
        """The number of every AT+CMGS the hub sent, in order (failed ones too)."""
        return list(self.modem()["cmgs"])

    def sent(self) -> list[dict[str, Any]]:
        """Every SMS the modem sent: to, text, ref."""
        return list(self.modem()["sent"])

    def sms(self, sender: str, text: str) -> None:
        """A message arrives from ``sender`` (the modem tells the hub with +CMTI)."""
        self.send("sms", **{"from": sender, "text": text})

    def fault(self, kind: str, on: bool = True, **args: Any) -> None:
        """Switch a fault (no_sim, no_network, weak_signal, cms_error, silent) on or off; ``none`` clears all."""
        self.send("fault", kind=kind, on=on, **args)


def modem_device(link: "EmulatedDevice | Path | str", *, device_id: str = "modem", check_s: float = 0.5,
                 inbox_s: float = 0.3, command_timeout_s: float = 1.0) -> str:
    """Config for a modem on the emulator (or a pty path), checked and read often (tests and the rig)."""
    return f"""
[[device]]
id = "{device_id}"
kind = "modem"
[device.modem]
port = "{getattr(link, 'link', link)}"
check_s = {check_s}
inbox_s = {inbox_s}
command_timeout_s = {command_timeout_s}
send_timeout_s = 5
"""


def serial_devices(ids: dict[str, str] | None = None, **links: "EmulatedDevice | Path | str") -> str:
    """Config for the serial devices (bed mat, dispenser, nurse call) on the given emulators (or pty paths);
    ``ids`` names them otherwise than ``bedmat-1``, ``dispenser-1``, ``nursecall-1`` (keyed bed, disp, espa)."""
    links = {k: getattr(v, "link", v) for k, v in links.items()}
    ids = {"bed": "bedmat-1", "disp": "dispenser-1", "espa": "nursecall-1", **(ids or {})}
    out = []
    if "bed" in links:
        out.append(f"""
[[device]]
id = "{ids['bed']}"
kind = "bed_mat"
room = "bedroom"
[device.serial]
port = "{links['bed']}"
protocol = "bedmat"
[device.serial.bedmat]
exit_after_s = 0.6
return_after_s = 0.3
""")
    if "disp" in links:
        out.append(f"""
[[device]]
id = "{ids['disp']}"
kind = "medication_dispenser"
room = "kitchen"
[device.serial]
port = "{links['disp']}"
protocol = "dispenser"
""")
    if "espa" in links:
        out.append(f"""
[[device]]
id = "{ids['espa']}"
kind = "nurse_call"
[device.serial]
port = "{links['espa']}"
protocol = "espa444"
[device.serial.espa444]
rooms = {{ "101" = "bedroom", "102" = "bathroom" }}
""")
    return "\n".join(out)
