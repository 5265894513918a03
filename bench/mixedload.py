"""A residence's hour, compressed: the mixed load after which the hub's memory is read again.

What one hour of a busy residence brings a hub (:data:`PER_HOUR`), all at once
and at the same compressed pace:

* BLE: 180,000 adverts (50 a second heard in a block of flats: phones, tags,
  the neighbours' sensors; 5 % from the residence's own five BTHome devices),
  sent as :mod:`bench.loads`' ``ble`` load sends them;
* serial: 3,600 bed-mat frames (one a second), a battery dip and recovery
  every 60 frames (60 ``device.battery_low`` events);
* 4 alarm presses, each acknowledged by the central (the bench's subscriber);
* 3,600 malformed commands (a misbehaving client, once a second), as
  :mod:`bench.loads`' ``commands`` load sends them;
* heartbeats: the hub under test beats every second, 60 to a compressed minute.

``hours`` hours in ``hours * seconds_per_hour`` seconds (60 s an hour in the
full run: each rate 60 times the real one). The loads run in processes of their
own (:class:`bench.loads.LoadProcess`); the serial frames and the presses
come from a thread here.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.common import Pacer
from bench.loads import LoadProcess

PER_HOUR = {"ble_adverts": 180_000, "serial_frames": 3_600, "alarms": 4, "commands": 3_600}
FLIP_EVERY = 60  # frames between battery dips


def _serial_and_presses(line: Any, frames: Any, sim: Any, n_frames: int, presses: int, seconds: float,
                        stop: threading.Event, out: dict[str, Any]) -> None:
    """Paced bed-mat frames (a dip below 20 % and back every FLIP_EVERY frames) and evenly spread presses."""
    pacer = Pacer(seconds / max(1, n_frames))
    press_at = {round((k + 0.5) * n_frames / presses) for k in range(presses)} if presses else set()
    written = pressed = 0
    try:
        for i in range(n_frames):
            if stop.is_set():
                break
            pacer.wait()
            battery = 19 if i % FLIP_EVERY == FLIP_EVERY - 2 else 100
            line.write_all(frames.frame(battery), deadline=time.monotonic() + 10)
            written += 1
            if i in press_at:
                sim.call({"op": "click", "device": "button-1" if pressed % 2 == 0 else "cord-1", "seconds": 0.05})
                pressed += 1
    except Exception as exc:  # noqa: BLE001 - reported with the load's figures
        out["error"] = repr(exc)
    out.update(frames=written, presses=pressed, late=pacer.late)


def mixed_load(*, line: Any, frames: Any, sim: Any, sim_socket: str, port: int, base: str, hours: float,
               seconds_per_hour: float) -> dict[str, Any]:
    """Run ``hours`` of the residence's traffic in ``hours * seconds_per_hour`` seconds; what was sent."""
    seconds = hours * seconds_per_hour
    ble_rate = PER_HOUR["ble_adverts"] / seconds_per_hour
    cmd_rate = PER_HOUR["commands"] / seconds_per_hour
    loads = [LoadProcess("ble", sim_socket=sim_socket, rate=ble_rate),
             LoadProcess("commands", port=port, base=base, rate=cmd_rate, batch_ms=100.0)]
    stop = threading.Event()
    serial_out: dict[str, Any] = {}
    achieved: dict[str, Any] = {}
    t0 = time.monotonic()
    try:
        for ld in loads:
            ld.start()
        th = threading.Thread(target=_serial_and_presses, name="mixed-serial", daemon=True, args=(
            line, frames, sim, round(PER_HOUR["serial_frames"] * hours), max(1, round(PER_HOUR["alarms"] * hours)),
            seconds, stop, serial_out))
        th.start()
        th.join(seconds + 30)
        stop.set()
        time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    finally:
        stop.set()
        for ld in loads:
            try:
                achieved[ld.kind] = ld.stop()
            except Exception as exc:  # noqa: BLE001
                achieved[ld.kind] = {"error": repr(exc)}
            ld.close()
    return {"hours": hours, "seconds": round(time.monotonic() - t0, 1), "serial": serial_out,
            "ble_adverts": achieved.get("ble", {}).get("adverts"), "commands": achieved.get("commands", {}).get("sent"),
            "errors": [v["error"] for v in [serial_out, *achieved.values()] if v.get("error")]}
