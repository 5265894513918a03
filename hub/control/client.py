"""The blocking client of the control socket, for the ``carehub`` commands and for tests.

:func:`find_socket` says where the socket is (``--socket``, else the
config's ``[control] socket`` or the default places, :mod:`hub.control.paths`);
:class:`ControlClient` sends one JSON request a line and reads the replies.
Anything that keeps it from reaching the hub raises :class:`Unreachable`,
with the path and what to do about it: the commands exit 3 on it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from hub.control.paths import DEFAULT_CONFIG, RUN_DIR, SOCKET_NAME, ConfigProblem, config_sockets


class Unreachable(Exception):
    """The hub's socket cannot be reached (not there, refused, no permission, no answer)."""


def find_socket(socket_arg: str | None, config: str | None) -> Path:
    """The socket to use: ``--socket``, else the first of the config's candidates that exists.

    Without ``--config``, a default config this user may not read still
    finds the service's socket in ``/run/carehub``. Raises
    :class:`~hub.control.paths.ConfigProblem` when the config cannot be
    read, :class:`Unreachable` when no candidate exists.
    """
    if socket_arg:
        return Path(socket_arg)
    try:
        tried = config_sockets(config or DEFAULT_CONFIG)
    except ConfigProblem:
        if config is None and (RUN_DIR / SOCKET_NAME).exists():
            return RUN_DIR / SOCKET_NAME  # the default config is root's to read; the service's socket is there
        raise
    for path in tried:
        if path.exists():
            return path
    raise Unreachable(f"no control socket at {' or '.join(map(str, tried))}: is the hub running? "
                      "(systemctl status carehub; or say --socket PATH)")


class ControlClient:
    """One connection to the control socket."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float | None = 10.0) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(self.path)
        except FileNotFoundError:
            self.sock.close()
            raise Unreachable(f"{self.path}: no such socket: is the hub running? (systemctl status carehub)") from None
        except PermissionError:
            self.sock.close()
            raise Unreachable(f"{self.path}: permission denied: use an account in group carehub, or sudo") from None
        except ConnectionRefusedError:
            self.sock.close()
            raise Unreachable(f"{self.path}: nobody answers: the hub is not running (a socket left behind)") from None
        except OSError as exc:
            self.sock.close()
            raise Unreachable(f"{self.path}: cannot connect: {exc.strerror or exc}") from None
        self._buf = b""

    def settimeout(self, timeout: float | None) -> None:
        """How long a reply may take (None: for ever, as ``tail`` waits)."""
        self.sock.settimeout(timeout)

    def send(self, request: dict[str, Any]) -> None:
        """Send one request line."""
        try:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise Unreachable(f"{self.path}: the hub closed the connection: {exc.strerror or exc}") from None

    def reply(self) -> dict[str, Any]:
        """The next reply line; :class:`Unreachable` when the hub hung up or took too long."""
        try:
            line = self._readline()
        except TimeoutError:
            raise Unreachable(f"{self.path}: no reply in time: the hub is busy or stuck") from None
        except OSError as exc:
            raise Unreachable(f"{self.path}: connection lost: {exc.strerror or exc}") from None
        if not line:
            raise Unreachable(f"{self.path}: the hub closed the connection")
        return json.loads(line)

    def poll(self, timeout: float) -> dict[str, Any] | None:
        """The next reply if one comes within ``timeout`` seconds, else None (the connection stays usable)."""
        before = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            line = self._readline()
        except TimeoutError:
            return None
        except OSError as exc:
            raise Unreachable(f"{self.path}: connection lost: {exc.strerror or exc}") from None
        finally:
            self.sock.settimeout(before)
        if not line:
            raise Unreachable(f"{self.path}: the hub closed the connection")
        return json.loads(line)

    def _readline(self) -> bytes:
        """One line (b"" at the end); a timeout leaves what was read in the buffer."""
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self._buf = self._buf, b""
                return line
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line + b"\n"

    def replies(self) -> Iterator[dict[str, Any]]:
        """Reply lines until the hub closes the connection."""
        while True:
            try:
                yield self.reply()
            except Unreachable:
                return

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request, one reply."""
        self.send(request)
        return self.reply()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
