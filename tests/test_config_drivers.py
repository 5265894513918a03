"""The config loader knows drivers only through the registry (issue 11, item 3).

Each driver's tables and checks live in its own config module
(``drivers/<driver>/config.py``, a ``DriverConfig`` called ``CONFIG``); the
loader imports none of them by name and none of the hardware libraries, and a
driver added to the registry gets its tables, its kinds, its check and its
place in the schema, with every error still at FILE:LINE:COL and its key path.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEAD = """\
[hub]
id = "h1"
resident = "R-001"

[[mqtt.broker]]
host = "127.0.0.1"

[store]
dir = "state"
"""


def run_python(code: str, *, cwd: Path = ROOT, path: list[Path] | None = None) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and return its stdout."""
    env_path = [str(p) for p in (path or [])] + [str(ROOT)]
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = {env_path!r}\n" + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_loading_the_config_imports_no_hardware_library_and_no_driver_runtime() -> None:
    out = run_python("""
        import json, sys
        import hub.config
        print(json.dumps(sorted(sys.modules)))
    """)
    modules = set(json.loads(out))
    # the drivers' config modules are what the loader reads them through
    assert {"drivers.gpio.config", "drivers.serial.config", "drivers.ble.config"} <= modules
    heavy = {"gpiozero", "serial", "bleak", "drivers.serial.port", "drivers.serial.emulator", "drivers.ble.scanner"}
    assert not heavy & modules
    gpio_ble = {m for m in modules if m.startswith(("drivers.gpio.", "drivers.ble."))}
    assert gpio_ble == {"drivers.gpio.config", "drivers.ble.config"}


def _imports(path: Path) -> set[str]:
    """The modules a source file imports at module level (``from x import y`` counts as ``x``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_config_package_names_no_driver() -> None:
    files = sorted((ROOT / "hub" / "config").glob("*.py"))
    assert files, "hub/config/ is a package"
    for path in files:
        drivers = {m for m in _imports(path) if m == "drivers" or m.startswith("drivers.")}
        assert drivers <= {"drivers.base", "drivers.registry"}, f"{path.name} imports {sorted(drivers)}"


def test_driver_config_modules_import_only_structs() -> None:
    allowed = ("__future__", "collections", "typing", "os", "msgspec", "hub.events", "drivers.base")
    for driver in ("gpio", "serial", "ble"):
        path = ROOT / "drivers" / driver / "config.py"
        extra = {"drivers.serial"} if driver == "serial" else set()  # the protocol registry, no protocol by name
        for name in _imports(path) - extra:
            assert name.split(".")[0] in allowed or name in allowed, f"drivers/{driver}/config.py imports {name}"


RELAY = '''
"""A driver for the test only: a relay board with numbered channels."""
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec

from drivers.base import DriverConfig, Report


class RelaySection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[relay]``: how the board is reached."""

    bus: Literal["i2c", "sim"] = "sim"


class RelayDevice(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """``[device.relay]``: one channel of the board."""

    channel: Annotated[int, msgspec.Meta(ge=1, le=8)]


def check(devices: Sequence[Any], settings: Any, report: Report) -> None:
    seen: dict[int, int] = {}
    for i, dev in enumerate(devices):
        if dev.relay is not None:
            if dev.relay.channel in seen:
                report(("device", i, "relay", "channel"), f"channel used twice on bus {settings.bus} (device[{seen[dev.relay.channel]}])")
            seen.setdefault(dev.relay.channel, i)


CONFIG = DriverConfig(
    name="relay",
    device_sections={"relay": RelayDevice},
    kinds={"relay": ("door",)},
    settings=("relay", RelaySection),
    check=check,
)
'''

WITH_RELAY = """
    import drivers.registry as registry
    registry.DRIVERS = registry.DRIVERS + (registry.Registered("relay", config="relayconfig", attach="relay:attach"),)
    import json, sys
    from hub import config
"""


def _relay_run(tmp_path: Path, toml: str, code: str) -> str:
    (tmp_path / "relayconfig.py").write_text(RELAY)
    (tmp_path / "hub.toml").write_text(HEAD + toml)
    return run_python(textwrap.dedent(WITH_RELAY) + textwrap.dedent(code), cwd=tmp_path, path=[tmp_path])


def test_a_registered_driver_gets_its_tables_kinds_check_and_schema(tmp_path: Path) -> None:
    toml = """
[relay]
bus = "i2c"

[[device]]
id = "front-door"
kind = "door"
[device.relay]
channel = 2

[[device]]
id = "back-door"
kind = "door"
[device.relay]
channel = 2

[[device]]
id = "cord"
kind = "pull_cord"
[device.relay]
channel = 3
"""
    out = _relay_run(tmp_path, toml, """
        try:
            config.load("hub.toml")
        except config.ConfigError as exc:
            print(exc)
        defs = config.config_schema()["$defs"]
        print("schema:", "relay" in defs["Config"]["properties"], "relay" in defs["Device"]["properties"])
    """)
    assert out.splitlines() == [
        "hub.toml:24:1: device[1].relay.channel: channel used twice on bus i2c (device[0])",
        "hub.toml:29:1: device[2].relay: expected one of gpio for kind 'pull_cord', found 'relay'",
        "schema: True True",
    ]


def test_a_registered_drivers_tables_are_walked_like_the_hubs(tmp_path: Path) -> None:
    toml = """
[relay]
bus = "spi"

[[device]]
id = "front-door"
kind = "door"
[device.relay]
channell = 2
"""
    out = _relay_run(tmp_path, toml, """
        try:
            config.load("hub.toml")
        except config.ConfigError as exc:
            print(exc)
        # without the [relay] table (and the devices), the driver's settings take their defaults
        print(config.parse(open("hub.toml").read().split("[relay]")[0]).relay.bus)
    """)
    assert out.splitlines() == [
        "hub.toml:12:1: relay.bus: expected one of 'i2c', 'sim', found a string 'spi'",
        "hub.toml:17:1: device[0].relay: missing required key 'channel'",
        "hub.toml:18:1: device[0].relay.channell: unknown key (did you mean 'channel'?); expected one of: channel",
        "sim",
    ]
