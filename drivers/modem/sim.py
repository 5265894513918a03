"""A simulated modem inside the hub (``backend = "sim"``), driven through the sim socket: the demo's.

Sim operations (``carehub sim raw '{"op": "modem_sms", ...}'``):

* ``modem_sms {device, from, text}``: a message arrives;
* ``modem_fault {device, fault, on?}``: ``no_sim``, ``no_network``, ``weak_signal``,
  ``cms_error``, ``silent`` on (default) or off; ``fault: "none"`` clears them all;
* ``modem_state {device}``: the messages it was asked to send, its faults.

The tests and the rig use the emulator on a real pty instead (:mod:`drivers.modem.emulator`),
with the real backend: this one skips the serial line and atlib altogether.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from drivers.base import SimCommandError, SimOps
from drivers.modem.backend import Inbound, ModemReading, NotAnswering, SendRefused

FAULTS = ("no_sim", "no_network", "weak_signal", "cms_error", "silent")


class SimModem:
    """A modem that answers from memory; thread-safe (the link calls it from its worker)."""

    def __init__(self) -> None:
        self.faults: set[str] = set()
        self.sent: list[dict[str, Any]] = []
        self.received: list[Inbound] = []
        self._ref = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        self._answering()

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def _answering(self) -> None:
        if "silent" in self.faults:
            time.sleep(0.05)
            raise NotAnswering("the simulated modem is silent")

    def read_state(self) -> ModemReading:
        self._answering()
        if "no_sim" in self.faults:
            return ModemReading(sim="not_inserted")
        return ModemReading(sim="ready", registration=0 if "no_network" in self.faults else 1,
                            signal=2 if "weak_signal" in self.faults else 20)

    def send(self, number: str, text: str, timeout: float) -> str | None:
        self._answering()
        with self._lock:
            if "no_sim" in self.faults:
                raise SendRefused(310, "+CMS ERROR: 310")
            if "no_network" in self.faults:
                raise SendRefused(331, "+CMS ERROR: 331")
            if "cms_error" in self.faults:
                raise SendRefused(500, "+CMS ERROR: 500")
            self._ref = self._ref % 255 + 1
            self.sent.append({"to": number, "text": text, "ref": self._ref, "at": time.time()})
            del self.sent[:-256]
            return str(self._ref)

    def inbox(self) -> list[Inbound]:
        self._answering()
        with self._lock:
            out, self.received = self.received, []
            return out


def register(sim: SimOps, modems: dict[str, SimModem]) -> None:
    """The simulated modems' operations on the sim socket."""

    def modem(req: dict[str, Any]) -> SimModem:
        dev = req.get("device")
        if dev not in modems:
            raise SimCommandError(f"unknown simulated modem {dev!r}; have: {', '.join(sorted(modems))}")
        return modems[dev]

    async def sms(req: dict[str, Any]) -> dict[str, Any]:
        m = modem(req)
        number, text = req.get("from"), req.get("text")
        if not isinstance(number, str) or not isinstance(text, str):
            raise SimCommandError("modem_sms needs 'from' and 'text' (strings)")
        with m._lock:
            m.received.append(Inbound(number=number, text=text, at=time.strftime("%y/%m/%d,%H:%M:%S")))
        return {"queued": len(m.received)}

    async def fault(req: dict[str, Any]) -> dict[str, Any]:
        m = modem(req)
        kind = req.get("fault")
        if kind == "none":
            m.faults.clear()
        elif kind in FAULTS:
            (m.faults.add if req.get("on", True) else m.faults.discard)(kind)
        else:
            raise SimCommandError(f"fault must be one of none, {', '.join(FAULTS)}; found {kind!r}")
        return {"faults": sorted(m.faults)}

    async def state(req: dict[str, Any]) -> dict[str, Any]:
        m = modem(req)
        return {"faults": sorted(m.faults), "sent": list(m.sent), "waiting": len(m.received)}

    sim.register("modem_sms", sms)
    sim.register("modem_fault", fault)
    sim.register("modem_state", state)
