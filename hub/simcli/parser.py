"""``carehub sim``'s command line: the operations, their arguments, and ``key=value`` values."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from hub.simcli.target import SimCliError

EPILOG = """\
examples:
  carehub sim click button-1                       a short press and release (GPIO, by device id)
  carehub sim hold button-1 --seconds 4            held: cancels the open alarm
  carehub sim state button-1                       pressed? the LED's pattern
  carehub sim advert ble-button button=press       a BTHome advert, encrypted with the configured bindkey
  carehub sim advert ble-door opening=1 battery=80
  carehub sim ble-fault in_progress --running      the radio fails (in_progress, adapter_gone, silent, adapter_back)
  carehub sim gatt notify scale 2a9d 0264          a GATT device notifies (hex payload)
  carehub sim serial --control /tmp/bed.ctl occupancy state=out
  carehub sim serial --control /tmp/bed.ctl unplug      (replug, state)

Devices are named by their id in the config (--config, $CAREHUB_CONFIG, or /etc/carehub/hub.toml), which
also gives the sim socket ([sim] socket) unless --socket does. key=value: true/false become booleans,
numbers become numbers, "quoted" or [..]/{..} values are read as JSON, the rest stays text.

exit codes: 0 done; 2 the request is wrong (usage, unknown device, not simulated, bad value, invalid
config, refused by the hub or emulator); 3 nobody to ask (no socket, hub or emulator not running, no answer).
"""

#: The operations, for the old form ``carehub sim SOCKET OP ...`` (a socket first).
OPS = ("press", "release", "click", "hold", "state", "devices", "advert", "ble-fault", "ble-state", "gatt",
       "serial", "crash", "raw")


def value(text: str) -> Any:
    """A ``key=value`` value: a bool, an int, a float, JSON when quoted or bracketed, else the text."""
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text[:1] in ('"', "[", "{"):
        try:
            return json.loads(text)
        except ValueError:
            raise SimCliError(f"bad JSON value {text!r}") from None
    return text


def pairs(items: Sequence[str]) -> dict[str, Any]:
    """``["state=out", "battery=80"]`` -> ``{"state": "out", "battery": 80}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise SimCliError(f"expected key=value, found {item!r}")
        out[key] = value(raw)
    return out


def legacy(argv: list[str]) -> list[str]:
    """``carehub sim SOCKET press DEVICE`` (the old form) -> ``carehub sim --socket SOCKET press DEVICE``."""
    if argv and argv[0] not in OPS and not argv[0].startswith("-") and len(argv) > 1 and argv[1] in OPS:
        return ["--socket", argv[0], *argv[1:]]
    return argv


def build_parser() -> argparse.ArgumentParser:
    """The parser; every option of the parent may come before or after the operation."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", default=argparse.SUPPRESS,
                        help="residence config (default: $CAREHUB_CONFIG, else /etc/carehub/hub.toml)")
    common.add_argument("--socket", default=argparse.SUPPRESS, help="the hub's sim socket (default: from the config)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the raw JSON reply")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="seconds to wait for a reply (10)")
    p = argparse.ArgumentParser(
        prog="carehub sim", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Drive the simulated devices of a running hub (and serial emulators) the way a finger, a "
                    "radio and a cable would: no socat, no raw JSON.",
    )
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")

    def op(name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002
        return ops.add_parser(name, parents=[common], help=help, description=help)

    for name, text in (("press", "press a GPIO button and keep it pressed"), ("release", "release a GPIO button"),
                       ("state", "a GPIO button's state and its LED's pattern")):
        op(name, text).add_argument("device", help="device id in the config")
    for name, text in (("click", "press and release a GPIO button (default 0.05 s)"),
                       ("hold", "hold a GPIO button (default: its hold_s + 0.5 s: cancels the open alarm)")):
        s = op(name, text)
        s.add_argument("device", help="device id in the config")
        s.add_argument("--seconds", type=float, default=None, help="how long it is held")
    op("devices", "the simulated GPIO devices the hub has")
    s = op("advert", "a BTHome advert from a configured BLE device (encrypted when it has a bindkey)")
    s.add_argument("device", help="device id in the config (its [device.ble] address and bindkey are used)")
    s.add_argument("values", nargs="*", metavar="NAME=VALUE",
                   help="BTHome objects by name (button=press, opening=1, battery=80, temperature=21.5, motion=1)")
    s.add_argument("--rssi", type=int, default=-60)
    s.add_argument("--counter", type=int, default=None, help="encryption counter (default: above the last one sent)")
    s = op("ble-fault", "make the simulated radio fail")
    s.add_argument("kind", choices=["in_progress", "adapter_gone", "silent", "adapter_back"])
    s.add_argument("--times", type=int, default=None, help="in_progress: how many starts fail (1)")
    s.add_argument("--running", action="store_true", help="in_progress: the running scan fails too")
    s.add_argument("--adapter", default=None, help="adapter_back: its name (default: the next hciN)")
    op("ble-state", "the simulated radio's state and the scanner's health")
    s = op("gatt", "drive a simulated GATT device")
    s.add_argument("action", choices=["notify", "set", "link", "drop", "state"])
    s.add_argument("args", nargs="*", metavar="ARG",
                   help="notify|set DEVICE UUID HEX; link DEVICE up|down; drop DEVICE; state")
    s = op("serial", "drive a serial device emulator (carehub emulate) through its control socket")
    s.add_argument("--control", required=True, help="the emulator's control socket")
    s.add_argument("what", help="unplug, replug, state, or a frame to send: occupancy, status, dose_due, call, corrupt ...")
    s.add_argument("values", nargs="*", metavar="KEY=VALUE", help="the frame's fields (state=out battery=80)")
    s = op("crash", "fail one of the hub's supervised tasks (fault injection)")
    s.add_argument("task")
    s.add_argument("--times", type=int, default=1)
    s = op("raw", "send one JSON request as it is (for ops not covered here)")
    s.add_argument("request", help='e.g. \'{"op": "ble_state"}\'')
    return p
