"""Where the control socket is: from ``[control] socket``, else ``/run/carehub`` or the state directory.

The daemon listens at :func:`socket_path`: the configured path (relative to
``[store] dir``), else ``/run/carehub/control.sock`` when that directory
exists and the hub may write there (systemd's ``RuntimeDirectory=carehub``),
else ``control.sock`` in the state directory. A client that did not say
``--socket`` reads the same two keys from the config file
(:func:`config_sockets`) and tries the same places (:func:`candidates`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

#: systemd's RuntimeDirectory=carehub (mode 0750, group carehub may enter).
RUN_DIR = Path("/run/carehub")
#: The socket's file name in either place.
SOCKET_NAME = "control.sock"
#: Where ``carehub status`` looks for the config when not told.
DEFAULT_CONFIG = "/etc/carehub/hub.toml"


class ConfigProblem(Exception):
    """The config file cannot be read for the socket's path (exit 2)."""


def _configured(configured: str, state_dir: Path) -> Path:
    return Path(configured) if os.path.isabs(configured) else state_dir / configured


def socket_path(configured: str | None, state_dir: Path, *, run_dir: Path = RUN_DIR) -> Path:
    """The path the daemon listens on."""
    if configured:
        return _configured(configured, state_dir)
    if run_dir.is_dir() and os.access(run_dir, os.W_OK | os.X_OK):
        return run_dir / SOCKET_NAME
    return state_dir / SOCKET_NAME


def candidates(configured: str | None, state_dir: Path, *, run_dir: Path = RUN_DIR) -> list[Path]:
    """Where a client looks, in order (it takes the first that exists): the daemon's choice, seen from outside.

    An operator in group carehub may enter ``/run/carehub`` but not write
    there, so the client does not ask :func:`socket_path` about writability.
    """
    if configured:
        return [_configured(configured, state_dir)]
    return [run_dir / SOCKET_NAME, state_dir / SOCKET_NAME]


def config_sockets(config: str | os.PathLike[str], *, run_dir: Path = RUN_DIR) -> list[Path]:
    """The :func:`candidates` for a config file, from its ``[store] dir`` and ``[control] socket`` only.

    The rest of the file is not validated here (``carehub check-config`` does
    that): an operator may read the status without the keys the config names.
    """
    path = Path(config)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise ConfigProblem(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigProblem(f"{path}: not valid TOML: {exc}") from None
    store, control = doc.get("store"), doc.get("control", {})
    if not isinstance(store, dict) or not isinstance(store.get("dir"), str):
        raise ConfigProblem(f"{path}: [store] dir is missing")
    configured = control.get("socket") if isinstance(control, dict) else None
    if configured is not None and not isinstance(configured, str):
        raise ConfigProblem(f"{path}: [control] socket must be a string")
    state_dir = Path(store["dir"])
    if not state_dir.is_absolute():
        state_dir = (path.resolve().parent / state_dir).resolve()
    return candidates(configured, state_dir, run_dir=run_dir)
