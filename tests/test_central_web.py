"""The web console's HTTP API and live stream, and the terminal console, over a fake CentralView.

The server is the real one (uvicorn in the test's loop, on a free port); only the central
behind it is a fake, so each answer the operator would see can be set up and checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import socket
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from rich.console import Console

from central.console import run_console
from central.view import DeviceProblem
from central.web import serve
from tests.support.fakecentral import FakeCentral, alarm, http, hub, iso, serving
from tests.support.until import until

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site() -> AsyncIterator[tuple[FakeCentral, str]]:
    fake = FakeCentral()
    async with serving(fake, keepalive_s=0.3) as base:
        yield fake, base


@pytest_asyncio.fixture(loop_scope="module")
async def fake(site: tuple[FakeCentral, str]) -> FakeCentral:
    """The site's central, emptied; no stream of an earlier test still subscribed."""
    site[0].reset()
    await until(lambda: site[0].subscribers == 0, timeout=5, what="earlier streams closed")
    return site[0]


@pytest.fixture
def base(site: tuple[FakeCentral, str]) -> str:
    return site[1]


class Stream:
    """A client of /api/stream, reading it line by line in a thread, as a browser's EventSource would."""

    def __init__(self, url: str) -> None:
        self.resp = urllib.request.urlopen(url, timeout=10)  # noqa: S310 (a test's own server)
        self.comments = 0

    async def next_event(self, timeout: float = 5.0) -> tuple[str, Any]:
        """The next event's name and decoded data (comments are counted and skipped)."""
        name, data = "message", None
        async with asyncio.timeout(timeout):
            while True:
                line = (await asyncio.to_thread(self.resp.readline)).decode()
                if line == "":
                    raise EOFError("the stream ended")
                line = line.rstrip("\n")
                if line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = msgspec.json.decode(line[6:])
                elif line == "" and data is not None:
                    return name, data

    async def read_to_end(self, timeout: float = 5.0) -> bytes:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(self.resp.read)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)  # the client goes away: the socket closes
        self.resp.close()


async def open_stream(fake: FakeCentral, base: str) -> Stream:
    s = await asyncio.to_thread(Stream, f"{base}/api/stream")
    name, _ = await s.next_event()
    assert name == "hello"
    assert fake.subscribers >= 1, "hello comes once the stream is subscribed to the changes"
    return s


async def test_healthz(base: str) -> None:
    assert await http("GET", f"{base}/healthz") == (200, {"ok": True})


async def test_snapshot_has_open_alarms_by_priority_then_age_hubs_and_problems(fake: FakeCentral, base: str) -> None:
    fake.add_alarm(alarm("new-critical", priority="critical", age_s=5))
    fake.add_alarm(alarm("old-critical", priority="critical", age_s=60))
    fake.add_alarm(alarm("high", priority="high", age_s=600, route="care"))
    fake.set_hub(hub("hub-a"))
    fake.set_hub(hub("hub-b", "offline", reason="last will: connection lost"))
    fake.add_problem(DeviceProblem(hub="hub-a", device="mat-1", kind="bed_mat", room="bedroom",
                                   problem="battery_low", since=iso(30), detail="2.1 V"))
    status, snap = await http("GET", f"{base}/api/snapshot")
    assert status == 200
    assert [a["event_id"] for a in snap["alarms"]] == ["old-critical", "new-critical", "high"]
    assert snap["alarms"][2]["route"] == "care" and snap["alarms"][2]["room"] == "bedroom"
    assert {h["hub"]: h["state"] for h in snap["hubs"]} == {"hub-a": "online", "hub-b": "offline"}
    assert snap["hubs"][1]["reason"] == "last will: connection lost"
    assert [(p["device"], p["problem"]) for p in snap["problems"]] == [("mat-1", "battery_low")]
    assert snap["at"].endswith("Z")


async def test_snapshot_filtered_by_route(fake: FakeCentral, base: str) -> None:
    fake.add_alarm(alarm("n", route="nurse"))
    fake.add_alarm(alarm("c", route="care"))
    fake.add_alarm(alarm("a", route="any"))

    async def ids(query: str) -> set[str]:
        status, snap = await http("GET", f"{base}/api/snapshot{query}")
        assert status == 200
        return {a["event_id"] for a in snap["alarms"]}

    assert await ids("?route=nurse") == {"n", "a"}
    assert await ids("?route=care") == {"c", "a"}
    assert await ids("?route=all") == await ids("") == {"n", "c", "a"}
    status, body = await http("GET", f"{base}/api/snapshot?route=doctor")
    assert status == 400 and "unknown route 'doctor'" in body["error"]


@pytest.mark.parametrize("how", ["json", "form", "header"])
async def test_ack_confirmed_by_the_hub(fake: FakeCentral, base: str, how: str) -> None:
    fake.add_alarm(alarm("e1"))
    kw: dict[str, Any] = {"json": {"json": {"by": "Kari"}}, "form": {"form": {"by": "Kari"}}, "header": {"headers": {"X-Operator": "Kari"}}}[how]
    status, outcome = await http("POST", f"{base}/api/alarms/e1/ack", **kw)
    assert status == 200
    assert outcome == {"ok": True, "event_id": "e1", "by": "Kari", "result": "acknowledged", "error": None, "closes": ["e1"]}
    assert fake.acks == [("e1", "Kari")]
    _, snap = await http("GET", f"{base}/api/snapshot")
    assert snap["alarms"] == []


async def test_ack_the_hub_refused(fake: FakeCentral, base: str) -> None:
    status, outcome = await http("POST", f"{base}/api/alarms/nope/ack", json={"by": "Kari"})
    assert status == 404
    assert outcome["ok"] is False and outcome["result"] == "unknown_event"
    assert "does not know the event nope" in outcome["error"]


async def test_ack_no_reply_from_the_hub(fake: FakeCentral, base: str) -> None:
    fake.add_alarm(alarm("e1"))
    fake.ack_reply = None
    status, outcome = await http("POST", f"{base}/api/alarms/e1/ack", json={"by": "Kari"})
    assert status == 502
    assert outcome["ok"] is False and outcome["error"] == "no reply from the hub within 10 s"
    _, snap = await http("GET", f"{base}/api/snapshot")
    assert [a["event_id"] for a in snap["alarms"]] == ["e1"], "still open: nobody confirmed the ack"


async def test_ack_the_central_failed(fake: FakeCentral, base: str) -> None:
    fake.ack_reply = ConnectionError("broker unreachable")
    status, outcome = await http("POST", f"{base}/api/alarms/e1/ack", json={"by": "Kari"})
    assert status == 502
    assert outcome["ok"] is False and "could not send the ack: broker unreachable" in outcome["error"]
    assert (await http("GET", f"{base}/healthz"))[0] == 200, "the console keeps serving"


@pytest.mark.parametrize(("kw", "message"), [
    ({}, "who is acknowledging?"),
    ({"json": {"by": "  "}}, "who is acknowledging?"),
    ({"json": ["Kari"]}, "must be a JSON object"),
    ({"json": {"by": "x" * 81}}, "over 80 characters"),
])
async def test_ack_without_a_usable_operator_name(fake: FakeCentral, base: str, kw: dict[str, Any], message: str) -> None:
    fake.add_alarm(alarm("e1"))
    status, body = await http("POST", f"{base}/api/alarms/e1/ack", **kw)
    assert status == 400 and message in body["error"]
    assert fake.acks == []


async def test_ack_from_another_sites_page_is_refused(fake: FakeCentral, base: str) -> None:
    fake.add_alarm(alarm("e1"))
    status, body = await http("POST", f"{base}/api/alarms/e1/ack", form={"by": "Kari"},
                              headers={"Origin": "http://evil.example"})
    assert status == 403 and "another site" in body["error"]
    assert fake.acks == []


async def test_stream_delivers_changes_resync_and_keepalives(fake: FakeCentral, base: str) -> None:
    s = await open_stream(fake, base)
    try:
        fake.add_alarm(alarm("e1", room="kitchen"))
        name, change = await s.next_event()
        assert name == "change" and change["kind"] == "alarm"
        assert change["alarm"]["event_id"] == "e1" and change["alarm"]["room"] == "kitchen"
        fake.set_hub(hub("hub-a", "late", reason="no heartbeat for 200 s (level 180 s)"))
        name, change = await s.next_event()
        assert change["kind"] == "hub" and change["hub"]["state"] == "late"
        fake.resync()
        assert await s.next_event() == ("change", {"kind": "resync", "alarm": None, "hub": None, "problem": None,
                                                   "detail": None})
        await asyncio.sleep(1.0)  # an idle spell: keep-alives every 0.3 s here
        fake.add_alarm(alarm("e2"))  # and after it the stream still delivers
        name, change = await s.next_event()
        assert change["alarm"]["event_id"] == "e2"
        assert s.comments >= 2, "keep-alive comments while idle"
    finally:
        s.close()


async def test_a_subscriber_that_falls_behind_gets_resync(fake: FakeCentral, base: str) -> None:
    s = await open_stream(fake, base)
    try:
        for i in range(200):  # more than the fake's queue holds: the stream is told to re-read
            fake.add_alarm(alarm(f"e{i}"))
        kinds = set()
        while "resync" not in kinds:
            _, change = await s.next_event()
            kinds.add(change["kind"])
    finally:
        s.close()


async def test_snapshot_failing_in_the_central_is_a_clear_503(fake: FakeCentral, base: str) -> None:
    fake.snapshot_error = OSError("database is locked")
    status, body = await http("GET", f"{base}/api/snapshot")
    assert status == 503 and body == {"ok": False, "error": "the central could not read its state: database is locked"}
    fake.snapshot_error = None
    assert (await http("GET", f"{base}/api/snapshot"))[0] == 200


async def test_a_broken_change_feed_ends_the_stream_cleanly(fake: FakeCentral, base: str) -> None:
    s = await open_stream(fake, base)
    fake.add_alarm(alarm("e1"))
    assert (await s.next_event())[1]["alarm"]["event_id"] == "e1"
    fake.fail_feed()
    assert await s.read_to_end() == b"", "ended, not cut: the browser reconnects and re-reads the snapshot"
    s.close()
    s = await open_stream(fake, base)  # and the next one works
    fake.add_alarm(alarm("e2"))
    assert (await s.next_event())[1]["alarm"]["event_id"] == "e2"
    s.close()


async def test_stream_ends_when_the_client_goes_away(fake: FakeCentral, base: str) -> None:
    s = await open_stream(fake, base)
    assert fake.subscribers == 1
    s.close()
    await until(lambda: fake.subscribers == 0, timeout=5, what="the view's change feed closed")


async def test_stream_ends_cleanly_when_the_server_stops() -> None:
    fake = FakeCentral()
    async with serving(fake) as base:
        s = await open_stream(fake, base)
    # serving() cancelled serve(): the stream was ended, not cut
    assert await s.read_to_end() == b""
    assert fake.subscribers == 0
    s.close()


async def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"the web console cannot listen on 127.0.0.1:{port}"):
            await serve(FakeCentral(), "127.0.0.1", port)


async def test_page_and_static_files_are_served(base: str) -> None:
    def get(path: str) -> tuple[int, Any, str]:
        with urllib.request.urlopen(base + path, timeout=10) as r:  # noqa: S310
            return r.status, r.headers, r.read().decode()

    status, headers, html = await asyncio.to_thread(get, "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and "/static/console.js" in html
    # nothing from a CDN, no inline script: the browser is told to refuse both
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "<script>" not in html and "http" not in html.replace('http-equiv', '')
    status, headers, js = await asyncio.to_thread(get, "/static/console.js")
    assert headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in js, "data goes into the page as text"


async def test_terminal_console_shows_alarms_hubs_and_problems() -> None:
    fake = FakeCentral()
    fake.set_hub(hub("hub-a", "online"))
    fake.set_hub(hub("hub-b", "silent", reason="no heartbeat for 212 s (level 180 s)"))
    fake.add_problem(DeviceProblem(hub="hub-a", device="mat-1", kind="bed_mat", room="bedroom",
                                   problem="battery_low", since=iso(30)))
    out = io.StringIO()
    console = Console(file=out, record=True, width=200, force_terminal=True, color_system=None)
    task = asyncio.ensure_future(run_console(fake, refresh_s=60.0, console=console))
    try:
        await until(lambda: "hub-b" in console.export_text(clear=False), what="the first screen")
        assert "no open alarms" in console.export_text(clear=False)
        # the refresh is a minute away: what follows is drawn because of the change
        fake.add_alarm(alarm("e1", hub="hub-a", room="kitchen", route="care", age_s=75, alarms=3))
        await until(lambda: "kitchen" in console.export_text(clear=False), what="the alarm drawn")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    screen = console.export_text()
    last = screen[screen.rindex("carehub alarm central"):]
    for text in ("Open alarms (1)", "critical", "hub-a · R-0001", "kitchen", "care (omsorgsteam)",
                 "button-1 (alarm_button)", "alarm.button (3 presses)", "silent", "no heartbeat for 212 s",
                 "battery low", "mat-1 (bed_mat)"):
        assert text in last, f"{text!r} not on the screen:\n{last}"
    # ages as an operator reads them (75 s and 30 s when the test began; a slow machine adds a few)
    assert re.search(r"\b1 min 1\d s\b", last), "the alarm's age"
    assert re.search(r"\b3\d s ago\b", last), "the problem's age"
