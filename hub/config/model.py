"""The residence config's two structs, :class:`Device` and :class:`Config`, built from the drivers.

The loader knows no driver by name. Each registered driver
(:data:`drivers.registry.DRIVERS`) hands over a :class:`~drivers.base.DriverConfig`:
its ``[device.<key>]`` tables become optional fields of :class:`Device` (after the
core keys of :class:`~hub.config.sections.DeviceCore`), its ``[<key>]`` settings a
defaulted field of :class:`Config` (after ``log``, as the tables read in a file),
and its ``kinds`` say which device kinds may use which table.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from drivers.base import DriverConfig
from drivers.registry import configs
from hub.config.sections import DEFAULT_ROUTE, SECTION_FLAGS, ConfigCore, DeviceCore, DeviceKind
from hub.events import Route

__all__ = ["DRIVER_CONFIGS", "DRIVER_FIELDS", "DRIVERS_FOR_KIND", "Config", "Device"]

#: Every registered driver's config, in registry order.
DRIVER_CONFIGS: list[DriverConfig] = configs()


def _fields(core: type) -> list[tuple[Any, ...]]:
    """A struct's fields as :func:`msgspec.defstruct` takes them, defaults included."""
    out: list[tuple[Any, ...]] = []
    for f in msgspec.structs.fields(core):
        if f.default is not msgspec.NODEFAULT:
            out.append((f.name, f.type, msgspec.field(default=f.default, name=f.encode_name)))
        elif f.default_factory is not msgspec.NODEFAULT:
            out.append((f.name, f.type, msgspec.field(default_factory=f.default_factory, name=f.encode_name)))
        else:
            out.append((f.name, f.type, msgspec.field(name=f.encode_name)))
    return out


def _driver_keys(drivers: Sequence[DriverConfig]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The drivers' device tables and settings tables as fields; a key claimed twice is a bug."""
    device_keys = {f.encode_name for f in msgspec.structs.fields(DeviceCore)}
    top_keys = {f.encode_name for f in msgspec.structs.fields(ConfigCore)} | {"device"}
    known_kinds = set(typing.get_args(DeviceKind))
    device_fields: list[tuple[Any, ...]] = []
    settings_fields: list[tuple[Any, ...]] = []
    for d in drivers:
        for key, struct in d.device_sections.items():
            if key in device_keys:
                raise ValueError(f"driver {d.name!r}: [device.{key}] is already taken")
            unknown = set(d.kinds.get(key, ())) - known_kinds
            if unknown:
                raise ValueError(f"driver {d.name!r}: [device.{key}] names unknown kinds {sorted(unknown)}")
            device_keys.add(key)
            device_fields.append((key, Annotated[struct | None, msgspec.Meta(description=summary(struct))], None))
        if d.settings is not None:
            key, struct = d.settings
            if key in top_keys:
                raise ValueError(f"driver {d.name!r}: [{key}] is already taken")
            top_keys.add(key)
            settings_fields.append((key, Annotated[struct, msgspec.Meta(description=summary(struct))], struct()))
    return device_fields, settings_fields


def summary(struct: type) -> str:
    """A table's description from its docstring: the first paragraph, without its ````[name]``: ```` head."""
    first = inspect.cleandoc(struct.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    text = re.sub(r"^``\[[^`]*\]``:\s*", "", first).strip()
    return text[:1].upper() + text[1:]


def _routing(self: Any) -> Route:
    """The route from the config, or the kind's default."""
    return self.route if self.route is not None else DEFAULT_ROUTE[self.kind]


_DEVICE_FIELDS, _SETTINGS_FIELDS = _driver_keys(DRIVER_CONFIGS)

Device = msgspec.defstruct(
    "Device",
    _fields(DeviceCore) + _DEVICE_FIELDS,
    module="hub.config",
    namespace={"__doc__": "``[[device]]``: one device of the residence.", "routing": property(_routing)},
    **SECTION_FLAGS,
)

_core = _fields(ConfigCore)
_after_log = [f[0] for f in _core].index("log") + 1
Config = msgspec.defstruct(
    "Config",
    _core[:_after_log]
    + _SETTINGS_FIELDS
    + _core[_after_log:]
    + [(
        "devices",
        Annotated[list[Device], msgspec.Meta(description="The devices of the residence, one [[device]] table each.")],  # type: ignore[valid-type]
        msgspec.field(default_factory=list, name="device"),
    )],
    module="hub.config",
    namespace={"__doc__": "The whole residence config."},
    **SECTION_FLAGS,
)

#: The driver tables a device may have, in registry order (``gpio``, ``serial``, ``ble``, ``gatt``).
DRIVER_FIELDS: tuple[str, ...] = tuple(f[0] for f in _DEVICE_FIELDS)

#: Which driver tables each device kind may use, from the drivers' ``kinds``, in registry order.
DRIVERS_FOR_KIND: dict[str, tuple[str, ...]] = {
    kind: tuple(key for d in DRIVER_CONFIGS for key in d.device_sections if kind in d.kinds.get(key, ()))
    for kind in typing.get_args(DeviceKind)
}
