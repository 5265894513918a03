"""The scripted part of the demo: the resident presses, the operator acknowledges, the LED goes steady."""

from __future__ import annotations

import time
from typing import Any

from drivers.simctl import SimClient
from hub.demo.central import Central
from hub.demo.common import console


def _led(sim: SimClient, device: str) -> str:
    st = sim.call({"op": "state", "device": device})
    return f"LED {st['feedback']}"


def heal_open_alarms(central: Central) -> None:
    """Acknowledge, as an operator, the alarms the hub re-opened from an earlier run."""
    status = central.command("status", {})
    for alarm in status.get("open_alarms", []):
        console.print(
            f"\n[bold]central[/bold]  open alarm from an earlier run: {alarm['event_id'][:13]}… on {alarm['device']}; "
            "operator acknowledges it"
        )
        reply = central.command("ack", {"event_id": alarm["event_id"], "by": "operator-demo"})
        console.print(f"  hub replies {reply}")


def script(central: Central, sim: SimClient, cfg: Any) -> None:
    """The scripted part: press, alarm at the central, ack, LED steady; the pull-cord and its cancel."""
    button = next(d.id for d in cfg.devices if d.kind == "alarm_button")
    console.print(f"\n[bold]resident[/bold] presses {button}")
    t0 = time.perf_counter()
    sim.call({"op": "press", "device": button})
    alarm = central.wait_event("alarm.button", device=button)
    ms = 1000 * (time.perf_counter() - t0)
    sim.call({"op": "release", "device": button})
    console.print(f"  alarm at the central {ms:.1f} ms after the press; {_led(sim, button)}")
    time.sleep(1.0)
    console.print(f"\n[bold]central[/bold]  operator acknowledges {alarm['id'][:13]}… (cmd/ack)")
    reply = central.command("ack", {"event_id": alarm["id"], "by": "operator-demo"})
    console.print(f"  hub replies {reply}")
    central.wait_event("alarm.acknowledged", cause=alarm["id"])
    time.sleep(0.2)
    console.print(f"  {_led(sim, button)}: help is on its way")
    cord = next((d.id for d in cfg.devices if d.kind == "pull_cord"), None)
    if cord:
        console.print(f"\n[bold]resident[/bold] pulls {cord}, then holds it to cancel")
        sim.call({"op": "click", "device": cord})
        pulled = central.wait_event("alarm.button", device=cord)
        sim.call({"op": "hold", "device": cord, "seconds": 3.5})
        central.wait_event("alarm.cancelled", cause=pulled["id"])
    status = central.command("status", {})
    console.print(
        f"\n[bold]status[/bold]   seq={status['seq']} pending={status['outbox']['pending']} link={status['link']['state']}"
    )
