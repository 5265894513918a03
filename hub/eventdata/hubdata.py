"""The data of what the hub says about itself: start, stop, health, Bluetooth radio, config reloads.

Producers: :mod:`hub.lifecycle` (hub.started, hub.stopping), :mod:`hub.health`
via the daemon (hub.degraded, hub.recovered), :mod:`drivers.ble.scanner`
(hub.ble_degraded, hub.ble_recovered), :mod:`hub.reload.reloader`
(hub.config_reloaded, hub.config_refused).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hub.eventdata.base import UNSET, Data, Seconds, Sha256, Unset

#: What a hub.degraded / hub.recovered is about.
Component = Annotated[str, msgspec.Meta(description="store, link, or task:<name> (a supervised task).")]


class HubStartedData(Data):
    """hub.started: the hub daemon started."""

    version: Annotated[str, msgspec.Meta(description="The hub's software version.")]
    config_sha256: Annotated[Sha256, msgspec.Meta(description="SHA-256 of the config file it runs with.")]
    pending_at_start: Annotated[
        int, msgspec.Meta(ge=0, description="Events stored but not yet delivered when it started.")
    ]


class HubStoppingData(Data):
    """hub.stopping: the hub daemon is stopping cleanly (no data)."""


class HubDegradedData(Data):
    """hub.degraded: a part of the hub is unhealthy and may not get every event through."""

    component: Component
    reason: Annotated[str, msgspec.Meta(description="What is wrong, in a few words (e.g. disk full).")]


class HubRecoveredData(Data):
    """hub.recovered: the component is well again."""

    component: Component
    outage_s: Annotated[Seconds, msgspec.Meta(description="How long it was unhealthy.")]
    was: Annotated[str, msgspec.Meta(description="The reason it was unhealthy (the last hub.degraded's).")]


class HubBleDegradedData(Data):
    """hub.ble_degraded: the BLE scanner stopped hearing configured devices; it is being rebuilt."""

    reason: Annotated[
        str,
        msgspec.Meta(description="in_progress (BlueZ stuck), adapter_gone, silent (no configured device heard) "
                                 "or error."),
    ]
    detail: Annotated[str, msgspec.Meta(description="The error as the Bluetooth stack gave it.")]
    adapter: Annotated[str, msgspec.Meta(description="The Bluetooth adapter, e.g. hci0.")]


class HubBleRecoveredData(Data):
    """hub.ble_recovered: adverts flow again after hub.ble_degraded."""

    outage_s: Annotated[Seconds, msgspec.Meta(description="How long the scanner was degraded.")]
    adapter: Annotated[str, msgspec.Meta(description="The Bluetooth adapter.")]


class HubConfigReloadedData(Data):
    """hub.config_reloaded: the hub applied a new config on SIGHUP without restarting."""

    sha256: Annotated[Sha256, msgspec.Meta(description="The new config file's SHA-256.")]
    previous_sha256: Annotated[Sha256, msgspec.Meta(description="The config's SHA-256 before.")]
    changed: Annotated[
        list[str],
        msgspec.Meta(description="The tables that changed (alarm, rules, mqtt, ...) and device:<id> added, "
                                 "removed or changed."),
    ]


class HubConfigRefusedData(Data):
    """hub.config_refused: the hub refused a new config on SIGHUP and runs on with the one it had."""

    reason: Annotated[
        Literal["invalid", "unreadable", "needs_restart", "attach_failed"],
        msgspec.Meta(description="invalid: errors in it; unreadable; needs_restart: it changes keys only a "
                                 "restart applies; attach_failed: a driver could not start with it."),
    ]
    running_sha256: Annotated[Sha256, msgspec.Meta(description="The config it runs on.")]
    sha256: Annotated[Sha256 | None, msgspec.Meta(description="The refused file's SHA-256 (null: unreadable).")]
    errors: Annotated[int, msgspec.Meta(ge=1, description="invalid: how many problems.")] | Unset = UNSET
    lines: Annotated[
        list[int], msgspec.Meta(description="invalid: their line numbers (the messages stay in the hub's journal).")
    ] | Unset = UNSET
    keys: Annotated[
        list[str], msgspec.Meta(description="needs_restart: the keys that changed, e.g. hub.id, mqtt.prefix.")
    ] | Unset = UNSET
    driver: Annotated[str, msgspec.Meta(description="attach_failed: the driver that could not start.")] | Unset = UNSET


DATA: dict[str, type[Data]] = {
    "hub.started": HubStartedData,
    "hub.stopping": HubStoppingData,
    "hub.degraded": HubDegradedData,
    "hub.recovered": HubRecoveredData,
    "hub.ble_degraded": HubBleDegradedData,
    "hub.ble_recovered": HubBleRecoveredData,
    "hub.config_reloaded": HubConfigReloadedData,
    "hub.config_refused": HubConfigRefusedData,
}
