"""The residence config: TOML decoded into msgspec Structs, refused when wrong.

A hub is provisioned from one TOML file. :func:`load` reads it, checks every
key against the structs (unknown keys are errors: a typo must not pass
silently), then checks what the structs cannot say alone (unique device ids,
files that exist and are private, a real time zone, a pin or a port used
twice). All errors are reported at once, each as
``FILE:LINE:COL: key.path: what was expected, what was found`` with the line
taken from the TOML source.

The hub's own tables are in :mod:`hub.config.sections`; each driver declares
its own (``[gpio]``, ``[device.serial]`` ...) in its config module, registered
in :mod:`drivers.registry`, and :mod:`hub.config.model` joins them into
:class:`Device` and :class:`Config`. This package imports no driver by name.

Relative paths in the file are relative to the file's own directory.
"""

from hub.config.loader import (
    ConfigError,
    ConfigIssue,
    ConfigUnreadable,
    LoadedConfig,
    load,
    load_text,
    parse,
    secret_text,
)
from hub.config.model import DRIVER_FIELDS, DRIVERS_FOR_KIND, Config, Device
from hub.config.schema import SCHEMA_PATH, config_schema, schema_text
from hub.config.sections import (
    DEFAULT_ROUTE,
    AlarmSection,
    LimitsSection,
    Broker,
    DeviceKind,
    HubSection,
    LogSection,
    MqttSection,
    PushSection,
    SimSection,
    StoreSection,
    TlsSection,
)
from hub.config.walk import check_value as _check_value  # the rules tests walk their structs with it

__all__ = [
    "DEFAULT_ROUTE",
    "DRIVERS_FOR_KIND",
    "DRIVER_FIELDS",
    "SCHEMA_PATH",
    "AlarmSection",
    "LimitsSection",
    "Broker",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "ConfigUnreadable",
    "Device",
    "DeviceKind",
    "HubSection",
    "LoadedConfig",
    "LogSection",
    "MqttSection",
    "PushSection",
    "SimSection",
    "StoreSection",
    "TlsSection",
    "config_schema",
    "load",
    "load_text",
    "parse",
    "schema_text",
    "secret_text",
]
