"""The scripted part of the demo: the resident presses, the operator acknowledges, the LED goes steady.

The operator works through the real central (:class:`~hub.demo.central.DemoCentral`): the alarm
is waited for on the engine's live feed, acknowledged with the engine's ``ack`` (``cmd/ack``,
recorded, the alarm closed at the central), and ``cmd/status`` goes through the engine's link.
"""

from __future__ import annotations

import time
from typing import Any

from drivers.simctl import SimClient
from hub.demo.central import OPERATOR, DemoCentral
from hub.demo.common import console


def _led(sim: SimClient, device: str) -> str:
    st = sim.call({"op": "state", "device": device})
    return f"LED {st['feedback']}"


def _replied(outcome: Any) -> str:
    """An :class:`~central.view.AckOutcome` in a few words."""
    if not outcome.ok:
        return f"[red]not acknowledged[/red]: {outcome.error or outcome.result}"
    closes = f", closes {len(outcome.closes)} alarm{'s' if len(outcome.closes) != 1 else ''}" if outcome.closes else ""
    return f"{outcome.result}{closes}"


def heal_open_alarms(central: DemoCentral) -> None:
    """Acknowledge, as an operator, the alarms the hub re-opened from an earlier run."""
    status = central.command("status", {})
    for alarm in status.get("open_alarms", []):
        event_id = alarm["event_id"]
        console.print(
            f"\n[bold]central[/bold]  open alarm from an earlier run: {event_id[:13]}… on {alarm['device']}; "
            "operator acknowledges it"
        )
        outcome = central.ack(event_id)
        if not outcome.ok and outcome.result is None and "has not received it" in (outcome.error or ""):
            # the central's store does not have it (state/demo-central.db removed): straight to the hub
            reply = central.command("ack", {"event_id": event_id, "by": OPERATOR})
            console.print(f"  not in the central's store (a new {central.db.name}); acknowledged at the hub directly: "
                          f"{reply.get('result')}")
            continue
        console.print(f"  hub replies {_replied(outcome)}")


def script(central: DemoCentral, sim: SimClient, cfg: Any) -> None:
    """The scripted part: press, alarm at the central, ack, LED steady; the pull-cord and its cancel."""
    button = next(d.id for d in cfg.devices if d.kind == "alarm_button")
    feed = central.changes()  # subscribed before the press: the alarm cannot slip past
    console.print(f"\n[bold]resident[/bold] presses {button}")
    central.tap.pressed(button)
    sim.call({"op": "press", "device": button})
    alarm = central.wait_alarm(feed, lambda a: a.device == button and a.state == "open")
    sim.call({"op": "release", "device": button})
    ms = central.tap.press_ms
    took = f" {ms:.1f} ms after the press" if ms is not None else ""
    console.print(
        f"  alarm at the central{took}: {alarm.priority} {alarm.type} in {alarm.room or alarm.device}, "
        f"route {alarm.route}, {len(central.open_alarms())} open; {_led(sim, button)}"
    )
    time.sleep(1.0)
    console.print(f"\n[bold]central[/bold]  operator acknowledges {alarm.event_id[:13]}… (cmd/ack)")
    outcome = central.ack(alarm.event_id)
    console.print(f"  hub replies {_replied(outcome)}")
    closed = central.wait_alarm(feed, lambda a: a.event_id == alarm.event_id and a.state != "open")
    central.tap.wait_event("alarm.acknowledged", cause=alarm.event_id)
    time.sleep(0.2)
    led = _led(sim, button)
    console.print(f"  alarm {closed.state} at the central by {closed.acked_by}; {led}: help is on its way")
    cord = next((d.id for d in cfg.devices if d.kind == "pull_cord"), None)
    if cord:
        console.print(f"\n[bold]resident[/bold] pulls {cord}, then holds it to cancel")
        central.tap.pressed(cord)
        sim.call({"op": "click", "device": cord})
        pulled = central.tap.wait_event("alarm.button", device=cord)
        sim.call({"op": "hold", "device": cord, "seconds": 3.5})
        central.tap.wait_event("alarm.cancelled", cause=pulled["id"])
        cancelled = central.wait_alarm(feed, lambda a: a.event_id == pulled["id"] and a.state != "open")
        console.print(f"  alarm {cancelled.state} at the central")
    status = central.command("status", {})
    view = central.hub_view()
    console.print(
        f"\n[bold]status[/bold]   hub: seq={status['seq']} pending={status['outbox']['pending']} "
        f"link={status['link']['state']}"
    )
    if view is not None:
        console.print(
            f"         central: {view.hub} {view.state}, last seq {view.seq_last}, gaps open {view.gaps_open}, "
            f"lost {view.lost}; open alarms {len(central.open_alarms())}; "
            f"duplicate copies {central.tap.again} (stored once)"
        )
