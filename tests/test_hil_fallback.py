"""The rig's fallback_sms scenario on the virtual rig: the modem emulator on a pty beside the hub, the broker
stopped for real, the SMS read off the modem, the nurse's OK sent into it; run as an installer runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hil.fixtures import needed
from hil.loader import load_scenario
from tests.support.shown import show

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "hil" / "scenarios" / "fallback_sms.toml"


def test_the_scenario_needs_a_modem_and_a_physical_rig_without_one_skips_it():
    sc = load_scenario(SCENARIO)
    assert {"gsm_modem", "broker_control", "gpio_loopback", "led_readback", "uart_loopback"} <= needed(sc)


def test_fallback_sms_passes_on_the_virtual_rig(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("the virtual rig needs root and iproute2")
    record = tmp_path / "hil.json"
    proc = subprocess.run(
        [sys.executable, "-m", "hil", "run", "fallback_sms", "--rig", "virtual", "--quick",
         "--workdir", str(tmp_path / "work"), "--record", str(record)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "160"},
    )
    show(request, "hil run fallback_sms", proc.stdout + proc.stderr[-3000:])
    (run,) = json.loads(record.read_text())["runs"]
    (sc,) = run["scenarios"]
    assert sc["name"] == "fallback_sms" and sc["outcome"] in ("pass", "marginal"), (sc.get("reason"), proc.stdout)
    assert proc.returncode == 0
