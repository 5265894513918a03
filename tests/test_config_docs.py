"""The config is documented where an installer looks: every key of ``config/schema.json`` says what
it means and, when it may be left out, what it defaults to; every example passes ``check-config``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.config import config_schema, load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.toml"))


def properties(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], bool]]:
    """(table, key, property schema, required) for every key of every table in the schema."""
    for table, node in schema["$defs"].items():
        required = set(node.get("required", ()))
        for key, prop in node.get("properties", {}).items():
            yield table, key, prop, key in required


@pytest.mark.parametrize("source", ["code", "committed"])
def test_every_key_has_a_description_and_its_default(source: str) -> None:
    schema = config_schema() if source == "code" else json.loads((ROOT / "config" / "schema.json").read_text())
    keys = list(properties(schema))
    assert len(keys) > 120, "the walk found too few keys: has the schema's shape changed?"
    undescribed = [f"{t}.{k}" for t, k, p, _ in keys if len(str(p.get("description", "")).strip()) < 12]
    no_default = [f"{t}.{k}" for t, k, p, required in keys if not required and "default" not in p]
    assert not undescribed, f"keys without a description (msgspec.Meta(description=...)): {undescribed}"
    assert not no_default, f"optional keys without a default: {no_default}"


def test_the_descriptions_reach_the_key_not_only_a_branch() -> None:
    """An optional key's description is on the key itself, not inside its anyOf (editors show the key's)."""
    schema = config_schema()
    device = schema["$defs"]["Device"]["properties"]
    assert "bindkey" in schema["$defs"]["BleDevice"]["properties"]
    assert device["expected_interval_s"]["description"].startswith("Seconds within which the device is heard")
    assert device["gpio"]["description"].startswith("A button or pull-cord on a GPIO pin")
    assert "pseudonymous" in schema["$defs"]["HubSection"]["properties"]["resident"]["description"].lower()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_passes_check_config(path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hub.cli", "check-config", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


def test_the_examples_include_a_ble_residence() -> None:
    """An encrypted BTHome button, a BTHome door sensor and a GATT scale, as an installer would copy them."""
    assert ROOT / "config" / "examples" / "ble.toml" in EXAMPLES
    c = load(ROOT / "config" / "examples" / "ble.toml").config
    assert c.ble.backend == "bleak"
    kinds = {(d.kind, d.ble is not None, bool(d.ble and d.ble.bindkey), d.gatt is not None) for d in c.devices}
    assert ("alarm_button", True, True, False) in kinds  # encrypted BTHome button
    assert ("door", True, False, False) in kinds  # BTHome door sensor
    scale = next(d for d in c.devices if d.gatt is not None)
    assert scale.kind == "sensor" and scale.gatt.notify and scale.gatt.notify[0].scale == 0.01
