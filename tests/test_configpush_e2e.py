"""Config pushed by the central (cmd/config): a real hub process, a real Mosquitto with the shipped ACL.

A good push is applied, confirmed once the central is reached on it, and
still runs after a restart; a bad one is refused with check-config's own
FILE:LINE:COL lines and nothing changes; one that points at a broker nobody
listens on is rolled back within probation_s, and config.rolled_back
arrives once the hub is back; a push from an account or key that may not
push is refused; kill -9 during a probation, then a restart, ends on the
last good config.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hil.harness.broker import Mosquitto, Subscriber
from hil.harness.mosquitto import free_port
from hub.eventdata import problems
from tests.support.central import events
from tests.test_contract import asyncapi_validator, errors, event_validator
from tests.support.pushrig import BASE, PASSWORDS, SHIPPED_ACL, PushRig
from tests.test_reload_e2e import BUTTON_2


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PushRig]:
    broker = Mosquitto(workdir=tmp_path / "broker", passwords=PASSWORDS, acl=SHIPPED_ACL).start()
    r = PushRig(tmp_path / "rig", broker)
    yield r
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if not failed:
        for sub in r.subs:  # every config.* event and reply the central got holds to the contract
            for e in events(sub, base=BASE):
                assert errors(event_validator(), e) == [] and problems(e["type"], e["data"]) == [], e
        for name, reply in r.replies:
            schema = {"config-status": "ConfigStatusReply", "config": "ConfigPushReply" if reply["ok"] else
                      "ConfigRefusedReply"}[name]
            assert errors(asyncapi_validator(f"/components/schemas/{schema}"), reply) == [], reply
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed and r.hub is not None:
        print(f"--- hub log ---\n{r.hub.tail(80)}\n--- broker log ---\n{broker.log_tail(40)}")
    r.close()
    broker.stop()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def wait_event(sub: Subscriber, type_: str, n: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
    sub.wait_for(lambda _: len(events(sub, type_, base=BASE)) >= n, timeout=timeout)
    return events(sub, type_, base=BASE)


def births(sub: Subscriber) -> list[dict[str, Any]]:
    return [m.json() for m in sub.messages if m.topic == f"{BASE}/status" and m.json().get("state") == "online"]


def wait_birth(sub: Subscriber, sha256: str, timeout: float = 20.0) -> dict[str, Any]:
    sub.wait_for(lambda _: any(b["config_sha256"] == sha256 for b in births(sub)), timeout=timeout)
    return births(sub)[-1]


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_a_good_push_is_applied_confirmed_and_kept_across_a_restart(rig: PushRig) -> None:
    sub = rig.subscribe()
    hub = rig.start_hub().wait_online()
    local_sha = sha(hub.config.read_text())
    wait_birth(sub, local_sha)
    text = rig.text(ack_timeout_s=45, extra=BUTTON_2)

    reply = rig.push(1, text)
    assert reply == {"ok": True, "result": "applying", "version": 1, "sha256": sha(text), "probation_s": 30.0}
    (applied,) = wait_event(sub, "config.applied")
    assert applied["data"]["version"] == 1 and applied["data"]["sha256"] == sha(text)
    assert applied["data"]["previous_sha256"] == local_sha and applied["data"]["by"] == "central.main"
    assert "alarm" in applied["data"]["changed"] and "device:button-2 added" in applied["data"]["changed"]
    (confirmed,) = wait_event(sub, "config.confirmed")
    assert confirmed["data"]["version"] == 1 and confirmed["seq"] > applied["seq"]
    birth = wait_birth(sub, sha(text))
    assert "button-2" in [d["id"] for d in birth["devices"]]

    status = rig.status()
    assert status["active"] == {"version": 1, "source": "pushed", "sha256": sha(text)}
    assert status["last_good"] == {"version": 1, "source": "pushed", "sha256": sha(text)}
    assert status["probation"] is None and status["enabled"] is True and status["local_sha256"] == local_sha
    assert [(e["version"], e["state"]) for e in status["history"]] == [(1, "good")]
    assert rig.push(1, text)["result"] == "already_active"  # a repeated command changes nothing

    before = len(births(sub))
    hub.stop()
    hub.start().wait_online()
    sub.wait_for(lambda _: len(births(sub)) > before)
    assert births(sub)[-1]["config_sha256"] == sha(text)  # the pushed config, not the local file
    assert rig.status()["active"]["version"] == 1
    hub.press("button-2")  # the pushed device works after the restart
    alarms = wait_event(sub, "alarm.button")
    assert alarms[-1]["source"]["device"] == "button-2"
    history = (hub.dir / "state" / "config" / "history.json").read_text()
    assert sha(text) in history and (hub.dir / "state" / "config" / "v1.toml").read_text() == text


def test_a_push_by_reference_fetches_the_retained_text(rig: PushRig) -> None:
    sub = rig.subscribe()
    rig.start_hub().wait_online()
    text = rig.text(ack_timeout_s=40)
    assert rig.push(2, text, toml=False)["result"] == "not_found"  # nothing retained yet
    rig.retain(2, text.replace("ack_timeout_s = 40", "ack_timeout_s = 41"))  # not the text signed
    assert rig.push(2, text, toml=False)["result"] == "sha256_mismatch"
    rig.retain(2, text)
    assert rig.push(2, text, toml=False)["result"] == "applying"
    (confirmed,) = wait_event(sub, "config.confirmed")
    assert confirmed["data"] == {"version": 2, "sha256": sha(text), "after_s": confirmed["data"]["after_s"]}
    assert rig.status()["active"]["version"] == 2


def test_a_reload_keeps_the_pushed_config_until_the_installer_edits_the_local_file(rig: PushRig) -> None:
    sub = rig.subscribe()
    hub = rig.start_hub().wait_online()
    text = rig.text(ack_timeout_s=40)
    assert rig.push(1, text)["result"] == "applying"
    wait_event(sub, "config.confirmed")
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGHUP)  # the local file is as it was when version 1 came: version 1 stays
    hub.wait_log(lambda e: e.get("event") == "config_reload_kept_pushed" and e.get("version") == 1)
    assert rig.status()["active"]["version"] == 1
    edited = hub.config.read_text().replace("unack_repeat_s = 60.0", "unack_repeat_s = 90")
    hub.config.write_text(edited)
    hub.proc.send_signal(signal.SIGHUP)  # the installer's edit wins
    hub.wait_log(lambda e: e.get("event") == "config_local_file_wins")
    wait_birth(sub, sha(edited))
    status = rig.status()
    assert status["active"] == {"version": None, "source": "local", "sha256": sha(edited)}
    assert status["history"][0]["state"] == "superseded" and status["highest"] == 1
    assert rig.push(1, text)["result"] == "stale_version"  # a later push must still be higher


def test_a_bad_push_is_refused_with_check_configs_lines_and_nothing_changes(rig: PushRig) -> None:
    sub = rig.subscribe()
    hub = rig.start_hub().wait_online()
    local_sha = sha(hub.config.read_text())
    good = rig.text()
    bad = good.replace("ack_timeout_s = 60.0", 'ack_timeout_s = "soon"').replace("[hub]\n", '[hub]\ntimezon = "x"\n')
    lines = bad.splitlines()
    ack_line = next(i for i, s in enumerate(lines, 1) if s.startswith("ack_timeout_s"))
    tz_line = next(i for i, s in enumerate(lines, 1) if s.startswith("timezon"))

    reply = rig.push(3, bad)
    assert reply["ok"] is False and reply["result"] == "invalid" and reply["version"] == 3
    # the very lines check-config prints for the same text, with pushed:v3 for the file name
    path = rig.dir / "hub" / "bad.toml"
    path.write_text(bad)
    checked = subprocess.run([sys.executable, "-m", "hub.cli", "check-config", str(path)], capture_output=True,
                             text=True)
    expected = [line.replace(str(path), "pushed:v3") for line in checked.stderr.splitlines()
                if re.match(rf"{re.escape(str(path))}:\d+:", line)]
    # ... except what was found: the reply crosses the broker, so the pushed text's values stay out of it
    assert len(expected) == 2 and any("'soon'" in line for line in expected)
    assert reply["errors"] == [line.replace("'soon'", "<value>") for line in expected]
    assert "soon" not in json.dumps(reply)
    assert reply["errors"][0].startswith(f"pushed:v3:{tz_line}:") and "timezon" in reply["errors"][0]
    assert reply["errors"][1].startswith(f"pushed:v3:{ack_line}:") and "alarm.ack_timeout_s" in reply["errors"][1]
    (refused,) = wait_event(sub, "config.refused")
    assert refused["data"] == {"version": 3, "sha256": sha(bad), "reason": "invalid", "running_sha256": local_sha,
                               "errors": 2, "lines": [tz_line, ack_line]}
    assert "soon" not in str(refused)

    pinned = rig.text(hub_id="other-hub")
    reply = rig.push(4, pinned)
    assert reply["result"] == "pinned"
    id_line = next(i for i, s in enumerate(pinned.splitlines(), 1) if s.startswith("id = "))
    assert reply["errors"] == [f"pushed:v4:{id_line}:1: hub.id: a pushed config may not change hub.id (the hub's "
                               f"identity: in every topic, its client id and the broker's ACL); keep 'test-hub'"]
    key_moved = good.replace(f'key = "{rig.dir / "secrets" / "central-push.pub"}"', 'key = "/tmp/mine.pub"')
    assert rig.push(5, key_moved)["result"] in ("pinned", "invalid")  # the trust anchor stays the installer's

    status = rig.status()
    assert status["active"] == {"version": None, "source": "local", "sha256": local_sha}
    assert [(e["version"], e["state"]) for e in status["history"]] == [(5, "refused"), (4, "refused"), (3, "refused")]
    assert not events(sub, "config.applied", base=BASE) and hub.returncode is None
    hub.press("button-1")
    wait_event(sub, "alarm.button")


def test_a_push_to_a_broker_nobody_listens_on_is_rolled_back_within_probation(rig: PushRig) -> None:
    rig.probation_s = 6.0
    sub = rig.subscribe()
    hub = rig.start_hub().wait_online()
    local_sha = sha(hub.config.read_text())
    wrong = rig.text(port=free_port())  # nothing listens there

    assert rig.push(1, wrong)["result"] == "applying"
    (rolled,) = wait_event(sub, "config.rolled_back", timeout=6.0 + 30)
    assert rolled["priority"] == "high"
    data = rolled["data"]
    assert data["version"] == 1 and data["sha256"] == sha(wrong) and data["reason"] == "unreachable"
    assert data["to_version"] is None and data["to_sha256"] == local_sha
    assert "not reached within probation_s = 6" in data["detail"] and "127.0.0.1:" in data["detail"]
    # stored while the link was gone, sent from the outbox once back (the high-priority rollback first)
    (applied,) = wait_event(sub, "config.applied")
    assert applied["seq"] < rolled["seq"]
    took = epoch(data["at"]) - epoch(applied["ts"])
    assert 6.0 - 0.5 <= took <= 6.0 + 5, took  # within probation_s (slack for a loaded machine)
    wait_birth(sub, local_sha)
    status = rig.status()
    assert status["active"]["source"] == "local" and status["probation"] is None
    assert status["history"][0]["state"] == "rolled_back" and "probation_s" in status["history"][0]["reason"]
    assert not events(sub, "config.confirmed", base=BASE)
    # the central can push again (a higher version) once it is back
    assert rig.push(1, rig.text())["result"] == "stale_version"


def test_only_the_central_may_push(rig: PushRig) -> None:
    sub = rig.subscribe()
    hub = rig.start_hub().wait_online()
    text = rig.text(ack_timeout_s=30)

    # the broker's ACL: the staff account may send commands, but not cmd/config
    with pytest.raises(TimeoutError):
        rig.push(1, text, user="central.staff", timeout=4.0)
    # a key that is not the central's, or a signature made for another hub
    reply = rig.push(1, text, key=Ed25519PrivateKey.generate())
    assert reply["ok"] is False and reply["result"] == "bad_signature"
    assert rig.push(1, text, hub="other-hub")["result"] == "bad_signature"
    body = rig.command(1, text)
    body["toml"] = text.replace("ack_timeout_s = 30", "ack_timeout_s = 31")  # signed text, changed on the way
    from hil.harness.broker import request

    reply = request("127.0.0.1", rig.broker.port, f"{BASE}/cmd/config", body, timeout=15,
                    username="central.main", password=PASSWORDS["central.main"])
    assert reply["result"] == "sha256_mismatch"

    refused = wait_event(sub, "config.refused", 3)
    assert [e["data"]["reason"] for e in refused] == ["bad_signature", "bad_signature", "sha256_mismatch"]
    status = rig.status()
    assert status["active"]["source"] == "local" and status["highest"] == 0
    assert [e["state"] for e in status["history"]] == ["refused"]  # only what the central signed is kept
    # the central's own push, signed, goes through
    assert rig.push(1, text)["result"] == "applying"
    wait_event(sub, "config.confirmed")
    assert hub.returncode is None


def test_kill9_during_probation_then_restart_ends_on_the_good_config(rig: PushRig) -> None:
    rig.probation_s = 120.0
    sub = rig.subscribe()
    hub = rig.start_hub().wait_online()
    good = rig.text(ack_timeout_s=45)
    assert rig.push(1, good)["result"] == "applying"
    wait_event(sub, "config.confirmed")
    wrong = rig.text(ack_timeout_s=45, port=free_port())
    assert rig.push(2, wrong)["result"] == "applying"
    hub.wait_log(lambda e: e.get("event") == "config_applied" and e.get("version") == 2)

    hub.kill()  # kill -9 on probation: nothing of the hub's runs
    hub.start().wait_online()
    (rolled,) = wait_event(sub, "config.rolled_back")
    data = rolled["data"]
    assert data["version"] == 2 and data["reason"] == "restarted"
    assert data["to_version"] == 1 and data["to_sha256"] == sha(good)
    wait_birth(sub, sha(good))
    status = rig.status()
    assert status["active"] == {"version": 1, "source": "pushed", "sha256": sha(good)}
    assert status["last_good"]["version"] == 1 and status["probation"] is None
    assert [(e["version"], e["state"]) for e in status["history"]] == [(2, "rolled_back"), (1, "good")]

    hub.stop()  # and it stays so: the next start runs version 1 and reports nothing again
    hub.start().wait_online()
    wait_event(sub, "hub.started", 3)
    assert len(events(sub, "config.rolled_back", base=BASE)) == 1
    assert rig.status()["active"]["version"] == 1
