"""``carehub demo`` as a user runs it: a real subprocess, stopped with Ctrl-C, SIGTERM or kill -9, run again.

The demo uses the broker its config names when it answers; the config here
names the test broker (or, for the private broker, a port nothing listens on),
so the system broker on :1883 is never touched. The demo runs the real central
(its store in state/demo-central.db) and its web console, which the tests read
as a user would: the printed lines, the URL, the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.simctl import SimClient
from hil.harness.broker import Mosquitto
from hil.harness.hubproc import REPO

DEMO_TOML = REPO / "config" / "examples" / "demo.toml"


@pytest.fixture
def demo_config(tmp_path: Path, broker: Mosquitto) -> Path:
    """config/examples/demo.toml on the test broker, with its state under tmp_path."""
    text = DEMO_TOML.read_text()
    assert "port = 1883" in text and 'dir = "../../state/demo"' in text
    text = text.replace("port = 1883", f"port = {broker.port}").replace('dir = "../../state/demo"', 'dir = "state/demo"')
    path = tmp_path / "cfg" / "demo.toml"
    path.parent.mkdir()
    path.write_text(text)
    return path


class Demo:
    """``python -m hub.cli demo`` in a session of its own (a terminal's Ctrl-C reaches its whole group)."""

    def __init__(self, config: Path, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "demo", "--config", str(config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=config.parent,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is not None and needle in line:
                return line
            if line is None and (time.monotonic() >= deadline or self.proc.poll() is not None):
                self.proc.kill()
                raise AssertionError(f"no line with {needle!r}; output:\n{self.output}")

    def wait(self, timeout: float = 60.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"the demo did not end within {timeout}s; output:\n{self.output}")
        time.sleep(0.1)  # the reader takes the last lines
        return rc


def _hub_pid(demo: Demo) -> int:
    """The pid of the hub the demo started: its child running ``hub.cli run``."""
    for child in Path(f"/proc/{demo.proc.pid}/task/{demo.proc.pid}/children").read_text().split():
        if b"hub.cli\0run" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise AssertionError("the demo has no hub child")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def _status_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if "central ← status" in line]


def _assert_full_run(demo: Demo) -> None:
    rc = demo.wait()
    out = demo.output
    assert rc == 0, out
    assert "demo done" in out and "LED steady: help is on its way" in out, out
    assert "Traceback" not in out and "demo failed" not in out, out


def test_ctrl_c_mid_run_stops_cleanly_and_the_next_run_succeeds(demo_config: Path) -> None:
    first = Demo(demo_config)
    first.wait_line("alarm at the central")  # the alarm is open: the press is done, the ack not yet sent
    hub_pid = _hub_pid(first)
    os.killpg(first.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    rc = first.wait()
    out = first.output
    assert rc == 130, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert "demo stopped (Ctrl-C)" in out, out
    assert "hub stopped (exit status 0)" in out, out
    assert _wait_gone(hub_pid, 1), "the hub it started is gone when the demo returns"
    # live statuses of the first run are labelled live, never "retained=False"
    assert _status_lines(out) == ["central ← status online  live", "central ← status offline  live"], out

    second = Demo(demo_config)  # at once, with the open alarm left in the state directory
    _assert_full_run(second)
    out = second.output
    assert "open alarm from an earlier run" in out, out
    statuses = _status_lines(out)
    assert statuses[0] == "central ← status offline  previous run (retained)", out
    assert statuses[1] == "central ← status online  live", out
    assert statuses[-1] == "central ← status offline  live", out
    assert "retained=" not in out
    # the central's store outlived the first run: its alarm, left open, was acknowledged through the second
    with sqlite3.connect(demo_config.parent / "state" / "demo-central.db") as db:
        alarms = db.execute("SELECT device, state, acked_by FROM alarms ORDER BY received").fetchall()
    assert alarms == [("button-bedroom", "acknowledged", "operator-demo"),
                      ("button-bedroom", "acknowledged", "operator-demo"), ("cord-bathroom", "cancelled", None)], alarms


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("content-type", ""), r.read()


def _snapshot(url: str) -> dict[str, Any]:
    status, ctype, body = _get(url + "api/snapshot")
    assert status == 200 and ctype.startswith("application/json")
    return json.loads(body)


def _until(what: str, found: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (hit := found()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        time.sleep(0.1)
    return hit


def _sse(stream: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events of an open ``/api/stream`` response: (event, data)."""
    event = None
    for raw in stream:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: ") and event is not None:
            yield event, json.loads(line[len("data: "):])
            event = None


def test_keep_running_serves_the_operators_console_where_an_ack_turns_the_led_steady(demo_config: Path) -> None:
    """What a user of ``carehub demo --keep-running`` does: opens the printed URL (its live feed open, as a
    browser tab has it), presses a button, acks the alarm there, and ends the demo with Ctrl-C."""
    state = demo_config.parent / "state"
    demo = Demo(demo_config, "--keep-running")
    url = demo.wait_line("the operator's web console: ").split("console: ")[1].strip()
    keep = demo.wait_line("Ctrl-C to stop")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/") and url in keep, keep
    status, ctype, page = _get(url)
    assert status == 200 and ctype.startswith("text/html") and b"<html" in page.lower()
    snap = _snapshot(url)
    assert [(h["hub"], h["state"]) for h in snap["hubs"]] == [("demo-hub", "online")]
    assert snap["alarms"] == [], "the script acknowledged its alarms"

    stream = urllib.request.urlopen(url + "api/stream", timeout=30)
    events = _sse(stream)
    assert next(events)[0] == "hello"
    with SimClient(state / "demo" / "sim.sock") as sim:
        sim.call({"op": "click", "device": "button-bedroom"})
        alarm = next(c["alarm"] for e, c in events if e == "change" and c["kind"] == "alarm")  # live, no reload
        assert (alarm["device"], alarm["state"], alarm["room"]) == ("button-bedroom", "open", "bedroom")
        assert [a["event_id"] for a in _snapshot(url)["alarms"]] == [alarm["event_id"]]
        assert sim.call({"op": "state", "device": "button-bedroom"})["feedback"] == "slow_blink"
        ack = urllib.request.Request(url + f"api/alarms/{alarm['event_id']}/ack", method="POST",
                                     data=json.dumps({"by": "operator-browser"}).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(ack, timeout=20) as r:
            outcome = json.loads(r.read())
        assert (r.status, outcome["ok"], outcome["result"]) == (200, True, "acknowledged"), outcome
        _until("steady LED", lambda: sim.call({"op": "state", "device": "button-bedroom"})["feedback"] == "steady")
    assert _snapshot(url)["alarms"] == []
    demo.wait_line("central ← alarm.acknowledged")  # the demo's screen shows the events of the browser's ack too

    os.killpg(demo.proc.pid, signal.SIGINT)  # with the live feed still open
    rc = demo.wait()
    assert rc == 0 and "demo done" in demo.output and "Traceback" not in demo.output, demo.output
    with contextlib.suppress(OSError):  # the feed ends with the demo (no hang): at its end, or cut off
        for _ in events:
            pass
    stream.close()
    with sqlite3.connect(state / "demo-central.db") as db:  # and the central stored what it showed
        acked = db.execute("SELECT state, acked_by FROM alarms WHERE event_id = ?", (alarm["event_id"],)).fetchall()
    assert acked == [("acknowledged", "operator-browser")]


def test_without_a_broker_it_runs_on_a_private_one_and_stops_it(tmp_path: Path) -> None:
    """No Mosquitto where the config says: the demo starts its own for the run, and leaves none behind."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = DEMO_TOML.read_text().replace("port = 1883", f"port = {port}")
    config = tmp_path / "cfg" / "demo.toml"
    config.parent.mkdir()
    config.write_text(text.replace('dir = "../../state/demo"', 'dir = "state/demo"'))
    demo = Demo(config)
    line = demo.wait_line("started a private Mosquitto on 127.0.0.1:")
    private = int(line.rsplit(":", 1)[1])
    _assert_full_run(demo)
    assert "central ← status online  live" in demo.output and "central ← alarm.acknowledged" in demo.output
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", private)) != 0, "the private broker is stopped"
    assert not list(config.parent.glob(".demo-*.toml")), "its config copy is removed"


def test_sigterm_stops_the_demo_and_its_hub(demo_config: Path) -> None:
    demo = Demo(demo_config)
    demo.wait_line("central ← hub.started")
    state = demo_config.parent / "state" / "demo"
    hub_pid = _hub_pid(demo)
    os.kill(demo.proc.pid, signal.SIGTERM)  # to the demo only, as a service manager would
    rc = demo.wait()
    out = demo.output
    assert rc == 143, out
    assert "Traceback" not in out and "demo stopped (SIGTERM)" in out, out
    assert _wait_gone(hub_pid, 1), "the demo stopped its hub before it returned"
    assert not (state / "demo.pid").exists()


def test_ctrl_c_ends_keep_running_as_it_says(demo_config: Path) -> None:
    demo = Demo(demo_config, "--keep-running")
    demo.wait_line("Ctrl-C to stop")
    hub_pid = _hub_pid(demo)
    os.killpg(demo.proc.pid, signal.SIGINT)
    rc = demo.wait()
    out = demo.output
    assert rc == 0 and "demo done" in out and "Traceback" not in out, out
    assert _wait_gone(hub_pid, 1)


@pytest.mark.parametrize("leftover", ["hub_running", "stopped_hub", "everything_killed"])
def test_next_run_succeeds_after_kill_9(demo_config: Path, leftover: str) -> None:
    """kill -9 of the demo mid-run. Its hub ends by itself (hub_running); or it is still there, stopped
    so that it cannot react (stopped_hub); or it was killed as well, leaving a stale sim socket, an
    open alarm and events never delivered (everything_killed). Either way the next run works."""
    state = demo_config.parent / "state" / "demo"
    first = Demo(demo_config)
    first.wait_line("alarm at the central")
    hub_pid = _hub_pid(first)
    if leftover == "stopped_hub":
        os.kill(hub_pid, signal.SIGSTOP)  # the SIGTERM the kernel sends it when the demo dies waits
    else:
        os.kill(hub_pid, signal.SIGKILL)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.wait()
    try:
        if leftover == "everything_killed":
            assert _wait_gone(hub_pid, 5)
            assert (state / "sim.sock").exists(), "kill -9 leaves the sim socket file"
        elif leftover == "hub_running":
            assert _wait_gone(hub_pid, 15), "a hub whose demo was killed stops by itself"
        else:
            assert _alive(hub_pid)

        second = Demo(demo_config)
        _assert_full_run(second)
        out = second.output
        assert "open alarm from an earlier run" in out, out
        if leftover == "stopped_hub":
            assert f"stopping the hub an earlier demo left running (pid {hub_pid})" in out, out
        assert not _alive(hub_pid)
    finally:
        if _alive(hub_pid):
            os.kill(hub_pid, signal.SIGKILL)
