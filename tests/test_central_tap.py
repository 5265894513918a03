"""The engine's tap and request (what ``carehub demo`` and tools use), against a real Mosquitto and a real hub.

A tap sees each message as the central takes it in: the hub's retained birth as old news, an
event once stored and, replayed by the hub with the same id, as a duplicate; a clean stop as a
live offline status. A tap that raises harms neither the engine nor the other taps; a removed one
hears nothing more. ``request`` sends any command and returns the hub's reply, or times out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from central import config as central_config
from central.engine import Engine, Heard
from central.mqtt import MqttOptions
from central.store import open_store
from hub.link import Endpoint
from tests.support.centrals import FAST


async def _until(heard: list[Heard], found: Callable[[Heard], bool], what: str, timeout: float = 10.0) -> Heard:
    """The first message heard that ``found`` accepts (waiting for it)."""
    async with asyncio.timeout(timeout):
        while True:
            hit = next((h for h in heard if found(h)), None)
            if hit is not None:
                return hit
            await asyncio.sleep(0.02)
    raise AssertionError(f"never heard: {what}")


async def _wait(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not cond():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never: {what}") from None


async def test_a_tap_hears_each_message_with_its_outcome_and_request_gets_the_hubs_reply(
        broker, make_hub, tmp_path: Path) -> None:
    hub = make_hub(heartbeat_s=1)
    await asyncio.to_thread(lambda: hub.start().wait_online())  # its birth is retained before the central comes
    store = await open_store(str(tmp_path / "central.db"), instance="tap")
    engine = Engine(store=store, config=central_config.parse(FAST), instance="tap",
                    mqtt=MqttOptions(brokers=(Endpoint(host="127.0.0.1", port=broker.port),),
                                     client_id="central-tap", account="central-tap"))
    heard: list[Heard] = []
    removed: list[Heard] = []

    def broken(h: Heard) -> None:
        raise RuntimeError("a tap's own bug")

    engine.tap(broken)  # first: the taps after it are called all the same
    engine.tap(heard.append)
    remove = engine.tap(removed.append)
    runner = asyncio.create_task(engine.run())
    try:
        await asyncio.wait_for(engine.ready.wait(), 10)
        birth = await _until(heard, lambda h: h.kind == "status", "the retained birth")
        assert (birth.hub, birth.body["state"], birth.retained) == ("test-hub", "online", True)

        await asyncio.to_thread(hub.press, "button-1")
        alarm = await _until(heard, lambda h: h.kind == "event" and h.body["type"] == "alarm.button", "the alarm")
        assert alarm.outcome is not None and alarm.outcome.kind == "new" and alarm.outcome.opened == alarm.body["id"]
        assert alarm.body["source"]["device"] == "button-1" and alarm.hub == "test-hub"
        assert await store.event_hub(alarm.body["id"]) == "test-hub", "tapped once stored"

        def copies(taken: list[Heard]) -> list[Heard]:
            """The alarm as each tap heard it: once per copy the broker delivered (an instance may get an
            alarm on more than one subscription) and per replay."""
            return [h for h in taken if h.kind == "event" and h.body["id"] == alarm.body["id"]]

        seq = alarm.body["seq"]
        reply = await engine.request("test-hub", "replay", {"from_seq": seq, "to_seq": seq}, 10)
        assert (reply["ok"], reply["sent"]) == (True, 1)
        # the broker keeps each connection's order: the replay's copy comes after the press's copies
        await _wait(lambda: len(copies(heard)) >= 2, "the replayed alarm")
        assert copies(heard)[0] is alarm
        assert {h.outcome.kind for h in copies(heard)[1:] if h.outcome is not None} == {"duplicate"}
        assert all(h.outcome is not None for h in copies(heard))
        assert [a.state for a in (await engine.snapshot()).alarms] == ["open"], "one alarm, not two"
        assert copies(removed) == copies(heard), "every tap hears every message"

        remove()
        remove()  # twice is harmless
        before = len(copies(heard))
        assert len(copies(removed)) == before
        reply = await engine.request("test-hub", "replay", {"from_seq": seq, "to_seq": seq}, 10)
        assert reply["ok"]
        await _wait(lambda: len(copies(heard)) > before, "the second replay")
        assert len(copies(removed)) == before, "a removed tap hears nothing more"

        beat = await _until(heard, lambda h: h.kind == "heartbeat", "a heartbeat")
        assert beat.hub == "test-hub" and beat.body["seq"] >= 1 and beat.outcome is None

        status = await engine.request("test-hub", "status", {}, 10)
        assert status["seq"] >= seq and [a["event_id"] for a in status["open_alarms"]] == [alarm.body["id"]]
        with pytest.raises(TimeoutError):
            await engine.request("no-such-hub", "status", {}, 0.5)

        await asyncio.to_thread(hub.stop)
        offline = await _until(heard, lambda h: h.kind == "status" and h.body["state"] == "offline", "the clean stop")
        assert not offline.retained
        assert not runner.done(), "the broken tap never stopped the engine"
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await store.close()
