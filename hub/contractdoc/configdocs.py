"""The replies to ``cmd/config`` and ``cmd/config-status``, as structs (:mod:`hub.configpush` sends them).

Beside :mod:`hub.contractdoc.payloads`, which lists them in its ``REPLIES`` and ``DOCUMENTS``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hub.eventdata.base import Seconds, Sha256, Timestamp


class _Doc(msgspec.Struct, kw_only=True, frozen=True):
    pass


class ConfigPushReply(_Doc):
    """Reply to cmd/config: the config is signed, checked and saved; it is applied once this reply is sent.

    config.applied follows, then config.confirmed or config.rolled_back (config.refused if a driver cannot
    start with it)."""

    ok: Literal[True]
    result: Annotated[
        Literal["applying", "already_active"],
        msgspec.Meta(description="applying: it is applied now and then on probation; already_active: this version "
                                 "(same sha256) is the active one (a repeated command changes nothing)."),
    ]
    version: Annotated[int, msgspec.Meta(ge=1)]
    sha256: Sha256
    probation_s: Annotated[Seconds, msgspec.Meta(description="Seconds it has to reach the central.")]


class ConfigRefusedReply(_Doc):
    """Reply to cmd/config: refused, nothing changed."""

    ok: Literal[False]
    result: Annotated[
        Literal["not_enabled", "bad_signature", "stale_version", "busy", "not_found", "sha256_mismatch", "invalid",
                "pinned", "needs_restart"],
        msgspec.Meta(description="Why (as config.refused's data.reason)."),
    ]
    error: Annotated[str, msgspec.Meta(description="Why, for a person.")]
    version: Annotated[int, msgspec.Meta(ge=1)]
    errors: Annotated[
        list[str],
        msgspec.Meta(description="invalid, pinned, needs_restart: every problem as check-config prints it, "
                                 "pushed:v<version>:LINE:COL: key: message (the first 50)."),
    ] | msgspec.UnsetType = msgspec.UNSET


class ConfigRef(_Doc):
    """A config: a pushed version, or the hub's local file."""

    version: Annotated[int | None, msgspec.Meta(description="The pushed version; null: the local file.")]
    source: Literal["pushed", "local"]
    sha256: Sha256


class ConfigProbation(_Doc):
    """The active config's probation."""

    version: Annotated[int, msgspec.Meta(ge=1)]
    started: Timestamp
    probation_s: Seconds
    remaining_s: Annotated[Seconds | None, msgspec.Meta(description="Seconds left (null: being applied).")]


class ConfigHistoryEntry(_Doc):
    """A pushed version and what became of it."""

    version: Annotated[int, msgspec.Meta(ge=1)]
    sha256: Sha256
    state: Annotated[
        Literal["probation", "good", "rolled_back", "refused", "superseded"],
        msgspec.Meta(description="probation: active, not yet confirmed; good: passed its probation; rolled_back; "
                                 "refused; superseded: an installer changed the local file, which won."),
    ]
    at: Annotated[Timestamp, msgspec.Meta(description="When it was pushed.")]
    by: str
    reason: Annotated[str | None, msgspec.Meta(description="refused, rolled_back, superseded: why.")]


class ConfigStatusReply(_Doc):
    """Reply to cmd/config-status: the active config, the last good one, the probation, the history."""

    ok: Literal[True]
    enabled: Annotated[bool, msgspec.Meta(description="The hub takes pushed configs ([push] key is set).")]
    active: ConfigRef
    last_good: Annotated[ConfigRef, msgspec.Meta(description="What a rollback would go back to.")]
    probation: ConfigProbation | None
    highest: Annotated[int, msgspec.Meta(ge=0, description="The highest version applied: a push must be above it.")]
    local_sha256: Annotated[Sha256, msgspec.Meta(description="The hub's local file, as last read.")]
    history: Annotated[list[ConfigHistoryEntry], msgspec.Meta(description="Newest first ([push] history of them).")]
