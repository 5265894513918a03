"""The control socket's pieces without a hub: where the socket is, how requests are read, times for people."""

from __future__ import annotations

import asyncio
import json
import re
import os
from pathlib import Path

import pytest

from hub import commands
from hub.control import paths, protocol
from hub.control.tail import TailHub
from hub.events import Event, Priority, Source
from hub.opscli.common import ago, duration


def test_the_daemon_listens_in_run_carehub_when_it_may_write_there(tmp_path: Path) -> None:
    run, state = tmp_path / "run-carehub", tmp_path / "state"
    assert paths.socket_path(None, state, run_dir=run) == state / "control.sock"  # no /run/carehub
    run.mkdir()
    assert paths.socket_path(None, state, run_dir=run) == run / "control.sock"
    assert paths.socket_path("ctl.sock", state, run_dir=run) == state / "ctl.sock"  # said: relative to the state dir
    assert paths.socket_path("/srv/x.sock", state, run_dir=run) == Path("/srv/x.sock")
    if os.getuid() != 0:  # root may write anywhere
        run.chmod(0o500)
        assert paths.socket_path(None, state, run_dir=run) == state / "control.sock"


def test_a_client_finds_the_socket_from_the_config(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "hub.toml"
    cfg.parent.mkdir()
    cfg.write_text('[hub]\nid = "x"\n[store]\ndir = "../state"\n')
    run = tmp_path / "run"
    assert paths.config_sockets(cfg, run_dir=run) == [run / "control.sock", tmp_path / "state" / "control.sock"]
    cfg.write_text('[store]\ndir = "/var/lib/carehub"\n[control]\nsocket = "/tmp/c.sock"\n')
    assert paths.config_sockets(cfg, run_dir=run) == [Path("/tmp/c.sock")]
    for text, why in (("[store]\n", "[store] dir is missing"), ("[store\n", "not valid TOML"),
                      ('[store]\ndir = "s"\n[control]\nsocket = 1\n', "must be a string")):
        cfg.write_text(text)
        with pytest.raises(paths.ConfigProblem, match=re.escape(why)):
            paths.config_sockets(cfg, run_dir=run)
    with pytest.raises(paths.ConfigProblem, match="cannot read"):
        paths.config_sockets(tmp_path / "none.toml")


def test_requests_are_the_central_commands_with_the_same_checks() -> None:
    assert protocol.parse(b'{"op": "status"}') == ("status", {})
    op, fields = protocol.parse(b'{"op": "ack", "event_id": "01900000-0000-7000-8000-000000000000"}')
    cmd = protocol.command(op, fields, user="anna")
    assert cmd == commands.Ack(event_id="01900000-0000-7000-8000-000000000000", by="local:anna")
    assert protocol.command("ble-forget", {"device": "d", "by": "tech"}, user="anna").by == "tech"
    assert protocol.command("replay", {"from_seq": 1, "to_seq": 2}, user=None) == commands.Replay(from_seq=1, to_seq=2)
    cmd, timeout = protocol.test_alarm_command({"device": "button-1", "timeout_s": 5})
    assert cmd == commands.TestAlarm(device="button-1") and timeout == 5
    for line, reason in ((b"{", "invalid"), (b'{"op": "shutdown"}', "unknown_op"), (b"[1]", "invalid")):
        with pytest.raises(protocol.RequestError) as err:
            protocol.parse(line)
        assert err.value.reason == reason
    for bad in ({"from_seq": 0, "to_seq": 1}, {"from_seq": 1}, {"from_seq": 1, "to_seq": 2, "x": 1}):
        with pytest.raises(protocol.RequestError, match="bad replay payload"):
            protocol.command("replay", bad, user=None)
    with pytest.raises(protocol.RequestError):
        protocol.test_alarm_command({"timeout_s": 10_000})
    with pytest.raises(protocol.RequestError):
        protocol.tail_request({"types": ["x"] * 33})
    assert json.loads(protocol.encode({"ok": True, "n": 1})) == {"ok": True, "n": 1}


def _event(type_: str, device: str, seq: int) -> Event:
    return Event(v=1, id=f"01900000-0000-7000-8000-{seq:012d}", hub="h", seq=seq, ts="2026-01-01T00:00:00.000Z",
                 type=type_, priority=Priority.LOW, source=Source(device=device, kind="sensor"), resident="R-1",
                 route="any")


def test_a_tail_client_that_falls_behind_is_dropped_not_waited_for() -> None:
    async def main() -> None:
        dropped = []
        hub = TailHub(size=3)
        hub.on_drop = dropped.append
        door = hub.subscribe(["door.*"], [], peer="p1")
        slow = hub.subscribe([], ["bed"], peer="p2")
        for seq in range(1, 6):
            hub.tap(_event("bed.exit", "bed", seq))
            hub.tap(_event("door.open", "front", 100 + seq))
        assert door.queue.qsize() == 3 and door.dropped is not None  # door.* from any device: 5 > 3
        assert slow.queue.qsize() == 3 and slow.dropped == "too slow: 3 events queued unread"
        assert dropped == [door, slow] or dropped == [slow, door]
        assert hub.status() == {"clients": 0, "dropped": {"slow": 2}, "queue": 3}
        ok = hub.subscribe(["alarm.*", "door.open"], ["front"], peer="p3")
        hub.tap(_event("door.open", "front", 200))
        hub.tap(_event("door.open", "back", 201))
        hub.tap(_event("alarm.button", "front", 202))
        assert [ok.queue.get_nowait().seq for _ in range(ok.queue.qsize())] == [200, 202]

    asyncio.run(main())


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (2, "just now"), (12, "12 s ago"), (150, "2 min ago"),
                                               (7300, "2 h ago"), (3 * 86400, "3 d ago")])
def test_times_as_a_person_reads_them(seconds: float | None, text: str) -> None:
    assert ago(seconds) == text


def test_durations() -> None:
    assert [duration(s) for s in (None, 5, 125, 3 * 3600 + 300, 2 * 86400 + 7200)] == [
        "-", "5 s", "2 min", "3 h 05 min", "2 d 2 h"]


def test_a_socket_a_running_process_holds_is_left_alone_and_tried_again(tmp_path: Path) -> None:
    """Another hub on the same path: this one logs, keeps its alarms, and takes the path once it is free."""
    import socket

    import structlog

    from hub.control.client import ControlClient
    from hub.control.server import ControlServer

    path = tmp_path / "control.sock"
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    other.listen()

    async def status(control: dict) -> dict:
        return {"hub": "h", "control": control}

    async def main() -> None:
        server = ControlServer(path, run=lambda cmd: None, status=status)  # type: ignore[arg-type, return-value]
        with structlog.testing.capture_logs() as logs:
            task = asyncio.create_task(server.run())
            await asyncio.sleep(0.3)
            assert [e["event"] for e in logs if e["event"].startswith("control_")] == ["control_socket_failed"]
            assert not task.done()
            other.close()
            path.unlink()
            deadline = asyncio.get_running_loop().time() + 5
            while not any(e["event"] == "control_listening" for e in logs):
                assert asyncio.get_running_loop().time() < deadline, logs
                await asyncio.sleep(0.05)
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        def ask() -> dict:
            with ControlClient(path) as client:
                return client.request({"op": "status"})

        doc = await asyncio.to_thread(ask)
        assert doc == {"ok": True, "hub": "h", "control": doc["control"]} and doc["control"]["clients"] == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not path.exists()

    asyncio.run(main())
