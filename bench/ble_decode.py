"""BTHome decode rate: the hub's decoder beside TheengsDecoder and bthome-ble, on the same adverts.

A benchmark, not a test::

    python -m bench.ble_decode [--adverts N] [--rounds R] [--json-only]

The adverts are those of a residence's BTHome devices, in the layouts
TheengsDecoder knows them by (it matches fixed device layouts, by name and
length): a Shelly BLU Button1 (``SBBT-002C``: packet id, battery, a press), a
BLU Door/Window (``SBDW-002C``: battery, illuminance, window, rotation), a BLU
Motion (``SBMO-003Z``: battery, illuminance, motion), a BLU H&T
(``SBHT-003C``: battery, humidity, temperature) and a pvvx-firmware
thermometer (``ATC_...``: battery, temperature, humidity), each with its
packet id counting up and values drawn from a seeded generator. The
encrypted set is the same payloads sealed with each device's key (AES-CCM,
a counter counting up).

Each decoder gets its own input form, built before timing, and is timed to
values a program can use:

* the hub: ``drivers.ble.bthome.decode(service_data, mac=..., bindkey=...)``;
* bthome-ble: ``BTHomeBluetoothDeviceData(bindkey=...).update(service_info)``,
  one parser per device as Home Assistant keeps them (fresh each round, so
  its packet-id and counter checks see a new device);
* TheengsDecoder: ``decodeBLE(json)`` with the JSON a gateway hands it, and
  ``json.loads`` of the JSON it returns. It does not decrypt (its gateway
  does, before it): the encrypted rate is the hub's beside bthome-ble's.

Rate = adverts / the best of ``--rounds`` rounds over the whole set (the
round least disturbed by whatever else the machine runs). Then every advert's
values from every decoder are put in one shape (packet id, battery,
temperature, humidity, illuminance, window, motion, rotation, button event)
and compared: a disagreement is a failed figure. Goal (issue 15): the hub
decodes at least as fast as TheengsDecoder.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.figures import Figure, ratio  # noqa: E402
from drivers.ble import bthome  # noqa: E402

#: (name the device advertises, BTHome objects as (id, generator of a value)); the names pick Theengs' layouts
DEVICES: tuple[tuple[str, str, bool, tuple[tuple[int, Callable[[random.Random], Any]], ...]], ...] = (
    ("SBBT-002C", "3C:2E:F5:10:00:01", True, ((0x01, lambda r: r.randrange(5, 101)),)),
    ("SBDW-002C", "3C:2E:F5:10:00:02", True, (
        (0x01, lambda r: r.randrange(5, 101)), (0x05, lambda r: r.randrange(0, 1_000_000) / 100),
        (0x2D, lambda r: r.random() < 0.5), (0x3F, lambda r: r.randrange(-900, 900) / 10))),
    ("SBMO-003Z", "3C:2E:F5:10:00:03", True, (
        (0x01, lambda r: r.randrange(5, 101)), (0x05, lambda r: r.randrange(0, 100_000) / 100),
        (0x21, lambda r: r.random() < 0.5))),
    ("SBHT-003C", "3C:2E:F5:10:00:04", True, (
        (0x01, lambda r: r.randrange(5, 101)), (0x2E, lambda r: r.randrange(0, 101)),
        (0x45, lambda r: r.randrange(-200, 450) / 10))),
    ("ATC_100005", "A4:C1:38:10:00:05", False, (
        (0x01, lambda r: r.randrange(5, 101)), (0x02, lambda r: r.randrange(-2000, 4500) / 100),
        (0x03, lambda r: r.randrange(0, 10000) / 100))),
)
#: Theengs' and bthome-ble's names for what the hub calls by the BTHome object name
THEENGS_KEYS = {"packet": "packet_id", "packet_1": "packet_id", "batt": "battery", "tempc": "temperature", "hum": "humidity",
                "lux": "illuminance", "open": "window", "motion": "motion", "rot": "rotation", "button": "button"}
BUTTON_NAMES = dict(bthome.BUTTON_EVENTS)


@dataclass(frozen=True)
class Sample:
    """One advert in every decoder's input form."""

    name: str
    mac: str
    key: bytes | None
    service_data: bytes
    info: Any  # habluetooth.BluetoothServiceInfoBleak, for bthome-ble
    theengs_json: str | None  # None for an encrypted advert: Theengs does not decrypt


def service_info(name: str, mac: str, sd: bytes) -> Any:
    """What Home Assistant hands bthome-ble for one advert."""
    from habluetooth import BluetoothServiceInfoBleak

    return BluetoothServiceInfoBleak(
        name=name, address=mac, rssi=-60, manufacturer_data={}, service_data={bthome.SERVICE_UUID: sd},
        service_uuids=[bthome.SERVICE_UUID], source="bench", device=None, advertisement=None, connectable=False,
        time=1_700_000_000.0, tx_power=None,
    )


def corpus(n: int, *, encrypted: bool, seed: int = 15) -> list[Sample]:
    """``n`` adverts, the devices in turn, packet ids (and counters) counting up per device."""
    rng = random.Random(seed)
    out = []
    keys = {mac: bytes(rng.randrange(256) for _ in range(16)) for _, mac, _, _ in DEVICES}
    for i in range(n):
        name, mac, trigger, objs = DEVICES[i % len(DEVICES)]
        k = i // len(DEVICES)
        values = [(oid, gen(rng)) for oid, gen in objs]
        buttons = ["press"] if name.startswith("SBBT") else []
        key = keys[mac] if encrypted else None
        sd = bthome.encode(values, packet_id=k % 256, buttons=buttons, trigger_based=trigger and not encrypted,
                           bindkey=key, mac=mac if encrypted else None, counter=k + 1 if encrypted else None)
        tj = None if encrypted else json.dumps(
            {"id": mac, "name": name, "rssi": -60, "servicedata": sd.hex(), "servicedatauuid": "0xfcd2"})
        out.append(Sample(name, mac, key, sd, service_info(name, mac, sd), tj))
    return out


# --------------------------------------------------------------------------- the decoders, timed


class Decoder:
    """One decoder: :meth:`prepare` (untimed: parsers, imports), then :meth:`decode` (timed)."""

    def prepare(self, samples: Sequence[Sample]) -> Any:
        return None

    def decode(self, state: Any, samples: Sequence[Sample], shape: Callable[[Any], Any] | None = None) -> list[Any]:
        raise NotImplementedError


class Hub(Decoder):
    def decode(self, state: Any, samples: Sequence[Sample], shape: Callable[[Any], Any] | None = None) -> list[Any]:
        dec = bthome.decode
        if shape is None:
            return [dec(s.service_data, mac=s.mac, bindkey=s.key) for s in samples]
        return [shape(dec(s.service_data, mac=s.mac, bindkey=s.key)) for s in samples]


class BTHomeBle(Decoder):
    """One parser per device, as Home Assistant keeps them; its update is the parser's state, so a
    shape must be taken at once."""

    def prepare(self, samples: Sequence[Sample]) -> Any:
        from bthome_ble import BTHomeBluetoothDeviceData

        return {s.mac: BTHomeBluetoothDeviceData(bindkey=s.key) for s in samples}

    def decode(self, state: Any, samples: Sequence[Sample], shape: Callable[[Any], Any] | None = None) -> list[Any]:
        if shape is None:
            return [state[s.mac].update(s.info) for s in samples]
        return [shape(state[s.mac].update(s.info)) for s in samples]


class Theengs(Decoder):
    def prepare(self, samples: Sequence[Sample]) -> Any:
        from TheengsDecoder import decodeBLE

        return decodeBLE

    def decode(self, state: Any, samples: Sequence[Sample], shape: Callable[[Any], Any] | None = None) -> list[Any]:
        loads = json.loads
        out = [loads(r) if (r := state(s.theengs_json)) else None for s in samples]
        return out if shape is None else [shape(d) for d in out]


def timed(dec: Decoder, samples: Sequence[Sample], rounds: int) -> float:
    """The best round's adverts/s (each round with freshly prepared state)."""
    best = float("inf")
    for _ in range(rounds):
        state = dec.prepare(samples)
        t0 = time.perf_counter()
        dec.decode(state, samples)
        best = min(best, time.perf_counter() - t0)
    return len(samples) / best


def shaped(dec: Decoder, samples: Sequence[Sample], shape: Callable[[Any], Any]) -> list[Any]:
    """Every advert's values in the common shape (an untimed pass of its own)."""
    return dec.decode(dec.prepare(samples), samples, shape)


# --------------------------------------------------------------------------- one shape, compared


def _num(v: Any) -> Any:
    return round(float(v), 2) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def from_hub(a: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"packet_id": a.packet_id}
    d.update({m.name: _num(m.value) for m in a.values})
    d.update({m.name: m.value for m in a.states})
    if a.buttons:
        d["button"] = a.buttons[0]
    return d


def from_bthome_ble(u: Any) -> dict[str, Any]:
    d = {k.key: _num(v.native_value) for k, v in u.entity_values.items() if k.key != "signal_strength"}
    d.update({k.key: v.native_value for k, v in u.binary_entity_values.items()})
    d.update({k.key: v.event_type for k, v in u.events.items()})
    return d


def from_theengs(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    d = {THEENGS_KEYS[k]: _num(v) for k, v in doc.items() if k in THEENGS_KEYS}
    if "button" in d:  # Theengs gives the event code; the H&T's layout says 0 when no button object is there
        d["button"] = BUTTON_NAMES.get(int(d["button"])) if d["button"] else None
        if d["button"] is None:
            del d["button"]
    return d


def agreement(*outputs: list[dict[str, Any] | None]) -> tuple[int, str | None]:
    """How many adverts every decoder decoded to the same values; the first disagreement, in words."""
    agree, first = 0, None
    for i, row in enumerate(zip(*outputs)):
        if all(r == row[0] for r in row[1:]):
            agree += 1
        elif first is None:
            first = f"advert {i}: " + " | ".join(map(str, row))
    return agree, first


# --------------------------------------------------------------------------- the figures


def measure(n: int, rounds: int) -> dict[str, Any]:
    plain, sealed = corpus(n, encrypted=False), corpus(n, encrypted=True)
    res: dict[str, Any] = {"adverts": n, "rounds": rounds,
                           "versions": {"bthome-ble": version("bthome-ble"), "TheengsDecoder": version("TheengsDecoder")}}
    hub, bble, th = Hub(), BTHomeBle(), Theengs()
    res["rates"] = {"hub_plain": timed(hub, plain, rounds), "bthome_ble_plain": timed(bble, plain, rounds),
                    "theengs_plain": timed(th, plain, rounds), "hub_encrypted": timed(hub, sealed, rounds),
                    "bthome_ble_encrypted": timed(bble, sealed, rounds)}
    res["agree_plain"], res["disagree_plain"] = agreement(
        shaped(hub, plain, from_hub), shaped(bble, plain, from_bthome_ble), shaped(th, plain, from_theengs))
    res["agree_encrypted"], res["disagree_encrypted"] = agreement(
        shaped(hub, sealed, from_hub), shaped(bble, sealed, from_bthome_ble))
    return res


def figures(r: dict[str, Any]) -> list[Figure]:
    rt, v, n = r["rates"], r["versions"], r["adverts"]
    theengs, bble = f"TheengsDecoder {v['TheengsDecoder']}", f"bthome-ble {v['bthome-ble']}"
    note = f"{n:,} adverts of 5 devices, best of {r['rounds']} rounds"
    return [
        Figure(name="BLE decode rate, plain BTHome adverts", value=rt["hub_plain"], unit="adverts/s",
               baseline=theengs, baseline_value=rt["theengs_plain"], ratio=ratio(rt["hub_plain"], rt["theengs_plain"]),
               goal="ratio >= 1", ok=rt["hub_plain"] >= rt["theengs_plain"], note=note),
        Figure(name="BLE decode rate, plain, beside bthome-ble", value=rt["hub_plain"], unit="adverts/s",
               baseline=bble, baseline_value=rt["bthome_ble_plain"],
               ratio=ratio(rt["hub_plain"], rt["bthome_ble_plain"]), goal=None, ok=None),
        Figure(name="BLE decode rate, encrypted adverts", value=rt["hub_encrypted"], unit="adverts/s",
               baseline=bble, baseline_value=rt["bthome_ble_encrypted"],
               ratio=ratio(rt["hub_encrypted"], rt["bthome_ble_encrypted"]), goal=None, ok=None,
               note="TheengsDecoder does not decrypt (its gateway does)"),
        Figure(name="BLE decode agreement, plain (hub, bthome-ble, Theengs)", value=float(r["agree_plain"]),
               unit="adverts", baseline="adverts compared", baseline_value=float(n),
               ratio=ratio(r["agree_plain"], n), goal="ratio = 1 (all agree)", ok=r["agree_plain"] == n,
               note=r["disagree_plain"] and f"first disagreement: {r['disagree_plain'][:240]}"),
        Figure(name="BLE decode agreement, encrypted (hub, bthome-ble)", value=float(r["agree_encrypted"]),
               unit="adverts", baseline="adverts compared", baseline_value=float(n),
               ratio=ratio(r["agree_encrypted"], n), goal="ratio = 1 (all agree)", ok=r["agree_encrypted"] == n,
               note=r["disagree_encrypted"] and f"first disagreement: {r['disagree_encrypted'][:240]}"),
    ]


def run(quick: bool) -> list[Figure]:
    """``python -m bench``'s entry: 1,000 adverts x 3 rounds quick, 10,000 x 5 in full."""
    return figures(measure(1_000, 3) if quick else measure(10_000, 5))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.ble_decode", description=__doc__.split("\n\n")[0])
    ap.add_argument("--adverts", type=int, default=10_000, help="adverts per set (default 10000)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per decoder; the best counts (default 5)")
    ap.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    args = ap.parse_args(argv)
    r = measure(args.adverts, args.rounds)
    if not args.json_only:
        from bench.figures import render_table

        print(render_table(figures(r), title="BTHome decode"))
    print(json.dumps(r, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
