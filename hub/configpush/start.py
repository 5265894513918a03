"""Which config a starting hub runs: its local file, or the pushed version the history names.

Run once before the hub is built (:func:`hub.daemon.run_daemon`), in this order:

1. no pushed version active: the local file;
2. the local file changed since the active version was pushed (an installer
   edited it): the local file wins, the pushed version is ``superseded``;
3. the active version was still on probation: the last run ended before it
   passed (a crash, kill -9, a power cut, or a stop): it is ``rolled_back``
   to the last good version (or the local file), and ``config.rolled_back``
   is stored as soon as the hub has started;
4. the active version is read and checked again exactly as when it was
   pushed; one that no longer passes (a TLS file gone, a changed local
   file's pins) is rolled back the same way, to the local file.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from hub.config import LoadedConfig
from hub.configpush.history import HistoryStore, Record
from hub.configpush.validate import Invalid, check
from hub.events import rfc3339

log = structlog.get_logger("hub.configpush")

#: ``config.rolled_back`` data.reason when the last run ended during the probation.
RESTARTED = "restarted"
#: ... when the active version does not pass its checks at start.
UNUSABLE = "unusable"


@dataclass
class Selected:
    """What :func:`select` chose: the config to run, and the history it read (and perhaps changed)."""

    loaded: LoadedConfig
    store: HistoryStore
    record: Record


def _load(store: HistoryStore, version: int, local: LoadedConfig) -> LoadedConfig | str:
    """Version ``version`` checked again; the problem as text when it does not pass."""
    text = store.text(version)
    if text is None:
        return f"{store.text_path(version)} is missing"
    try:
        return check(text, version, local=local, running=local)
    except Invalid as exc:
        return "; ".join(str(i) for i in exc.issues[:5])


def _roll_back(record: Record, reason: str, detail: str, to: int | None, to_sha256: str) -> None:
    version = record.active
    assert version is not None
    entry = record.entry(version)
    if entry is not None:
        entry.state, entry.reason = "rolled_back", detail
    record.unreported.append(("config.rolled_back", {
        "version": version, "sha256": entry.sha256 if entry else "0" * 64, "reason": reason, "detail": detail,
        "to_version": to, "to_sha256": to_sha256, "at": rfc3339(),
    }))
    record.active, record.probation = to, None
    if to is None:
        record.local_sha256 = None
    log.warning("config_rolled_back", version=version, reason=reason, detail=detail, to_version=to)


def select(local: LoadedConfig) -> Selected:
    """The config a starting hub runs (blocking file I/O: before the loop starts)."""
    store = HistoryStore(local.state_dir, keep=local.config.push.history)
    record = store.read()
    if record.active is None:
        return Selected(local, store, record)
    changed = False
    if record.local_sha256 != local.sha256:
        entry = record.entry(record.active)
        if entry is not None:
            entry.state, entry.reason = "superseded", "the local file changed since it was pushed"
        log.warning("config_local_file_wins", version=record.active, local_sha256=local.sha256)
        record.active = record.last_good = record.probation = record.local_sha256 = None
        store.write(record)
        return Selected(local, store, record)
    if record.probation is not None:
        to = record.last_good
        good = _load(store, to, local) if to is not None else local
        if isinstance(good, str):
            to, good = None, local
        _roll_back(record, RESTARTED, f"the hub stopped before version {record.active} passed its probation "
                                      f"of {record.probation.probation_s:g} s (a crash, a kill, a power cut or a stop)",
                   to, good.sha256)
        changed = True
    chosen: LoadedConfig = local
    if record.active is not None:
        loaded = _load(store, record.active, local)
        if isinstance(loaded, str):
            _roll_back(record, UNUSABLE, f"version {record.active} does not pass its checks now: {loaded}"[:1000],
                       None, local.sha256)
            record.last_good = None
            changed = True
        else:
            chosen = loaded
    if changed:
        store.write(record)
    log.info("config_selected", origin=chosen.origin or str(chosen.path), sha256=chosen.sha256)
    return Selected(chosen, store, record)
