"""Where ``carehub sim`` sends a request, and which device a name means: the config, the socket, the errors.

Exit codes (``carehub sim --help`` says them too):

* 0 -- done;
* 2 -- the request is wrong: usage, an unknown device, a device that is not
  simulated, a bad value, an unreadable or invalid config, or the hub (or the
  emulator) refused the request;
* 3 -- nobody to ask: no sim socket, nothing listening on it (the hub or the
  emulator is not running), or no answer in time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.simctl import SimClient, SimCommandError

#: Exit codes of ``carehub sim``.
EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 2, 3
#: The config read when ``--config`` is not given (and ``$CAREHUB_CONFIG`` is not set).
DEFAULT_CONFIG = "/etc/carehub/hub.toml"


class SimCliError(Exception):
    """A clear message for the person at the terminal, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


class Target:
    """The config (read lazily, only when a device name or the socket needs it) and the sim socket."""

    def __init__(self, config: str | None, sock: str | None, timeout: float) -> None:
        self.config_path = config or os.environ.get("CAREHUB_CONFIG") or DEFAULT_CONFIG
        self.config_given = config is not None or "CAREHUB_CONFIG" in os.environ
        self.socket_arg = sock
        self.timeout = timeout
        self._loaded: Any = None

    @property
    def loaded(self) -> Any:
        """The residence config, checked as the hub checks it (but not its key files: the hub reads those)."""
        if self._loaded is None:
            from hub import config

            try:
                self._loaded = config.load(self.config_path, check_files=False)
            except config.ConfigUnreadable as exc:
                hint = "" if self.config_given else " (give --config FILE, or --socket PATH for GPIO and raw ops)"
                raise SimCliError(f"{exc}{hint}") from None
            except config.ConfigError as exc:
                lines = "\n".join(str(i) for i in exc.issues)
                raise SimCliError(f"{lines}\n{self.config_path}: invalid config (carehub check-config says more)") from None
        return self._loaded

    @property
    def has_config(self) -> bool:
        """Device names are checked against a config: one was given, or no ``--socket`` (the config names it)."""
        return self.config_given or self.socket_arg is None

    @property
    def socket(self) -> Path:
        """The hub's sim socket: ``--socket``, else ``[sim] socket`` of the config."""
        return Path(self.socket_arg) if self.socket_arg else self.loaded.sim_socket

    def device(self, name: str, table: str, *, what: str) -> Any:
        """The configured device ``name``, which must have a ``[device.<table>]``; else a clear error."""
        cfg = self.loaded.config
        having = [d.id for d in cfg.devices if getattr(d, table, None) is not None]
        dev = next((d for d in cfg.devices if d.id == name), None)
        if dev is None or getattr(dev, table, None) is None:
            known = "no such device" if dev is None else f"it has no [device.{table}] table"
            raise SimCliError(f"unknown {what} device {name!r} in {self.config_path} ({known}); "
                              f"{what} devices: {', '.join(having) or 'none'}")
        return dev

    def call(self, request: dict[str, Any], *, path: Path | None = None, who: str = "hub") -> dict[str, Any]:
        """One request on the hub's sim socket (or an emulator's control socket ``path``)."""
        path = path or self.socket
        return call(path, request, self.timeout, who=who)


def call(path: Path, request: dict[str, Any], timeout: float, *, who: str = "hub") -> dict[str, Any]:
    """Send ``request`` to the JSON-lines socket at ``path``; its reply, or :class:`SimCliError`."""
    if not path.exists():
        hint = {"hub": "is the hub running, with a simulated device ([gpio] factory or [ble] backend \"sim\")?",
                "emulator": "is the emulator running (carehub emulate ... --control PATH)?"}[who]
        raise SimCliError(f"no sim socket at {path}: {hint}", EXIT_UNREACHABLE)
    try:
        with SimClient(path, timeout=timeout) as client:
            return client.call(request)
    except SimCommandError as exc:
        raise SimCliError(f"the {who} refused {request.get('op')!r}: {exc}") from None
    except (ConnectionRefusedError, FileNotFoundError):
        raise SimCliError(f"the {who} is not running: nothing listens on {path}", EXIT_UNREACHABLE) from None
    except (TimeoutError, socket.timeout):
        raise SimCliError(f"no answer from the {who} on {path} within {timeout:g} s", EXIT_UNREACHABLE) from None
    except PermissionError:
        raise SimCliError(f"no permission to use {path} (run as the hub's user)", EXIT_UNREACHABLE) from None
    except (ConnectionError, OSError) as exc:
        raise SimCliError(f"cannot talk to the {who} on {path}: {exc}", EXIT_UNREACHABLE) from None


#: An operation: (target, parsed args) -> (request sent, reply, human line). See :mod:`hub.simcli.ops`.
Op = Callable[[Target, Any], tuple[dict[str, Any], dict[str, Any], str]]
