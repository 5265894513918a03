"""The data of what becomes of a config pushed by the central (``cmd/config``): refused, applied, confirmed,
rolled back.

Producer: :mod:`hub.configpush` (the manager on a running hub; a rollback
decided at start is stored once the hub has started).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hub.eventdata.base import UNSET, Data, Seconds, Sha256, Timestamp, Unset

#: A pushed config's version, as the central numbered it.
Version = Annotated[int, msgspec.Meta(ge=1, description="The pushed config's version.")]


class ConfigRefusedData(Data):
    """config.refused: the hub refused a pushed config and runs on with the one it had."""

    version: Version
    sha256: Annotated[Sha256, msgspec.Meta(description="The refused text's SHA-256, as the command named it.")]
    reason: Annotated[
        Literal["not_enabled", "bad_signature", "stale_version", "busy", "not_found", "sha256_mismatch", "invalid",
                "pinned", "needs_restart", "attach_failed"],
        msgspec.Meta(description="not_enabled: no [push] key in the hub's local file; bad_signature: not signed by "
                                 "the central's key; stale_version: not above every version applied; busy: another "
                                 "is on probation; not_found: no retained text to fetch; sha256_mismatch: the text "
                                 "is not the one signed; invalid: check-config's errors; pinned: it changes what a "
                                 "push may not (hub.id, [push], credentials' files...); needs_restart: a key only a "
                                 "restart applies; attach_failed: a driver could not start with it."),
    ]
    running_sha256: Annotated[Sha256, msgspec.Meta(description="The config the hub runs on.")]
    errors: Annotated[int, msgspec.Meta(ge=1, description="invalid, pinned, needs_restart: how many problems (the "
                                                          "reply to cmd/config has every line).")] | Unset = UNSET
    lines: Annotated[list[int], msgspec.Meta(description="Their line numbers in the pushed text.")] | Unset = UNSET


class ConfigAppliedData(Data):
    """config.applied: the hub applied a pushed config, as a reload applies a file; it is now on probation."""

    version: Version
    sha256: Annotated[Sha256, msgspec.Meta(description="Its SHA-256 (the retained status names it too).")]
    previous_sha256: Annotated[Sha256, msgspec.Meta(description="The config it ran before (the rollback's target).")]
    changed: Annotated[list[str], msgspec.Meta(description="The tables and device:<id> added, removed or changed.")]
    probation_s: Annotated[Seconds, msgspec.Meta(description="Seconds it has to reach the central.")]
    by: Annotated[str, msgspec.Meta(description="Who pushed it (the command's by).")]


class ConfigConfirmedData(Data):
    """config.confirmed: the pushed config passed its probation (the central was reached on it); it is the
    last good config from now on."""

    version: Version
    sha256: Sha256
    after_s: Annotated[Seconds, msgspec.Meta(description="Seconds from the apply to the central reached.")]


class ConfigRolledBackData(Data):
    """config.rolled_back: the hub gave up a pushed config by itself and went back to the last good one;
    stored at once, delivered once the link is back."""

    version: Version
    sha256: Annotated[Sha256, msgspec.Meta(description="The rolled-back config's SHA-256.")]
    reason: Annotated[
        Literal["unreachable", "restarted", "unusable"],
        msgspec.Meta(description="unreachable: the central was not reached within probation_s; restarted: the hub "
                                 "stopped (crash, kill, power cut, stop) before the probation passed; unusable: it "
                                 "no longer passed its checks at start."),
    ]
    detail: Annotated[str, msgspec.Meta(description="What happened, for a person (the link's last error...).")]
    to_version: Annotated[int | None, msgspec.Meta(description="The version it went back to; null: the local file.")]
    to_sha256: Annotated[Sha256, msgspec.Meta(description="The SHA-256 of the config it runs now.")]
    at: Annotated[Timestamp, msgspec.Meta(description="When the hub rolled back (the event may come later).")]


DATA: dict[str, type[Data]] = {
    "config.refused": ConfigRefusedData,
    "config.applied": ConfigAppliedData,
    "config.confirmed": ConfigConfirmedData,
    "config.rolled_back": ConfigRolledBackData,
}
