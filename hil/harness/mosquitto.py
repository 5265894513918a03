"""A private ``mosquitto`` broker per test or rig, on a free port, in a directory of its own.

* :func:`free_port` - an unused TCP port on 127.0.0.1.
* :class:`Mosquitto` - start/stop/kill/restart a private broker (optionally with
  TLS client certificates, a password file, an ACL and persistence, or with a
  whole config of the caller's, e.g. the shipped ``config/broker/mosquitto.conf``).

The system broker on 127.0.0.1:1883 is never used.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Self

from hil.harness.procstop import terminate
from hil.harness.tlsfiles import TlsFiles

__all__ = ["LOCALHOST", "MOSQUITTO", "MOSQUITTO_PASSWD", "Mosquitto", "free_port"]

LOCALHOST = "127.0.0.1"
_SEARCH_PATH = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", os.environ.get("PATH", "")])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH) or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    The port is found by binding to port 0 and closing the socket again, so
    there is an (unavoidable) race with other processes picking ports.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_bindable(host: str, port: int) -> bool:
    """True if a listening socket could be bound to ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option mosquitto uses, so TIME_WAIT leftovers don't count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True



def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """Finalizer: make sure a forgotten broker does not outlive the test run."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Mosquitto:
    """A private ``mosquitto`` broker process for one test.

    All files (config, log, password file, ACL, persistence DB, captured
    stdout/stderr) live in ``workdir``. The port is chosen once at construction
    and kept across :meth:`restart`, so clients can reconnect to the same
    address. Usable as a context manager (start on enter, stop on exit).
    """

    host: str = LOCALHOST

    def __init__(
        self,
        *,
        workdir: Path,
        tls: TlsFiles | None = None,
        passwords: dict[str, str] | None = None,
        acl: str | None = None,
        persistence: bool = True,
        host: str = LOCALHOST,
        extra_config: list[str] | None = None,
        config: str | None = None,
        extra_ports: int = 0,
    ) -> None:
        """``config``: a whole mosquitto.conf in place of the generated one (``tls``, ``passwords``,
        ``acl``, ``persistence`` and ``extra_config`` are then not used). ``{host}``, ``{workdir}``,
        ``{port}`` and, with ``extra_ports``, ``{port2}``, ``{port3}`` ... stand for this broker's
        values; ``user root`` is put ahead of it. :attr:`port` is the listener waited for."""
        self.host = host
        self.config = config
        self.extra_config = list(extra_config or [])  # general options, e.g. "max_queued_messages 0"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.passwords = dict(passwords) if passwords else None
        self.acl = acl
        self.persistence = persistence
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.output_path = self.workdir / "mosquitto.out"
        self.password_path = self.workdir / "passwd"
        self.acl_path = self.workdir / "acl"
        self.db_path = self.workdir / "mosquitto.db"
        self._port = free_port(self.host)
        self._extra_ports = [free_port(self.host) for _ in range(extra_ports)]
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._started_once = False
        self._write_auxiliary_files()
        self._write_config()

    # -- properties ---------------------------------------------------------

    @property
    def port(self) -> int:
        """TCP port of the (first) listener."""
        return self._port

    @property
    def ports(self) -> list[int]:
        """Every listener's port: :attr:`port`, then the ``extra_ports`` (``{port2}`` ...)."""
        return [self._port, *self._extra_ports]

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the running broker, or None."""
        return self._proc.pid if self.running and self._proc else None

    # -- files --------------------------------------------------------------

    def _write_auxiliary_files(self) -> None:
        if self.passwords:
            self.password_path.unlink(missing_ok=True)
            for i, (user, password) in enumerate(self.passwords.items()):
                args = [MOSQUITTO_PASSWD, "-b"]
                if i == 0:
                    args.append("-c")
                args += [str(self.password_path), user, password]
                subprocess.run(args, check=True, capture_output=True)
            os.chmod(self.password_path, 0o600)
        if self.acl is not None:
            self.acl_path.write_text(self.acl if self.acl.endswith("\n") else self.acl + "\n")

    def _write_config(self) -> None:
        if self.config is not None:
            text = self.config.replace("{host}", self.host).replace("{workdir}", str(self.workdir))
            for i, port in enumerate(self.ports):
                text = text.replace("{port}" if i == 0 else f"{{port{i + 1}}}", str(port))
            # Tests run as root: without "user root" mosquitto drops to user mosquitto and cannot read them.
            self.conf_path.write_text("# generated by hil/harness/mosquitto.py from a given config\nuser root\n" + text)
            return
        lines = [
            "# generated by hil/harness/mosquitto.py",
            # Tests run as root; without this mosquitto drops to user 'mosquitto'
            # and can no longer read files in the pytest tmp dir.
            "user root",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
            "log_timestamp true",
            "log_timestamp_format %H:%M:%S",
            f"persistence {'true' if self.persistence else 'false'}",
        ]
        if self.persistence:
            lines += [
                # 2.0.x joins location and file with "/" itself (no trailing slash needed).
                f"persistence_location {self.workdir}",
                f"persistence_file {self.db_path.name}",
                "autosave_interval 1",
            ]
        lines += self.extra_config
        lines += [
            "",
            f"listener {self._port} {self.host}",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                "require_certificate true",
                "use_identity_as_username true",
            ]
        if self.passwords:
            lines += [f"password_file {self.password_path}", "allow_anonymous false"]
        else:
            lines.append("allow_anonymous true")
        if self.acl is not None:
            lines.append(f"acl_file {self.acl_path}")
        self.conf_path.write_text("\n".join(lines) + "\n")

    # -- lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        """Start the broker and wait until its port accepts TCP connections.

        On the very first start a new port is picked if the reserved one was
        taken meanwhile; later starts (restarts) insist on the same port.
        Raises RuntimeError (with the log tail) if the broker does not come up.
        """
        if self.running:
            raise RuntimeError(f"mosquitto already running on port {self._port}")
        if not all(_port_bindable(self.host, p) for p in self.ports):
            if self._started_once:
                raise RuntimeError(f"a port of {self.ports} is in use; cannot restart mosquitto on it")
            self._port = free_port(self.host)
            self._extra_ports = [free_port(self.host) for _ in self._extra_ports]
            self._write_config()
        out = open(self.output_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf_path)],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        finally:
            out.close()
        self._finalizer = weakref.finalize(self, _terminate, self._proc)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise RuntimeError(
                    f"mosquitto exited with code {code} during startup\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self._port), timeout=0.5):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"mosquitto did not accept connections on {self.host}:{self._port} "
                    f"within {timeout}s\n{self.log_tail()}"
                )
            time.sleep(0.02)
        self._started_once = True
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the broker and wait for it (it writes its persistence DB on exit).

        Falls back to SIGKILL after ``timeout`` seconds. Returns the exit code,
        or None if it was not running.
        """
        proc = self._proc
        if proc is None:
            return None
        terminate(proc, timeout)
        self._detach()
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL the broker (no persistence save beyond the last autosave)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._detach()
        return proc.returncode

    def _detach(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        self._proc = None

    def restart(self, timeout: float = 10.0) -> Self:
        """Gracefully stop and start again on the same port."""
        self.stop()
        return self.start(timeout)

    # -- diagnostics --------------------------------------------------------

    def log_text(self) -> str:
        """Broker log file contents, plus captured stdout/stderr if non-empty
        (config errors are reported there before the log file is opened)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        if self.output_path.exists():
            out = "".join(
                line
                for line in self.output_path.read_text(errors="replace").splitlines(keepends=True)
                if "should not be run as root" not in line
            )
            if out.strip():
                text += "\n--- mosquitto stdout/stderr ---\n" + out
        return text

    def log_tail(self, lines: int = 40) -> str:
        """Last ``lines`` lines of :meth:`log_text`."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Mosquitto {self.host}:{self._port} {state} workdir={self.workdir}>"

    # -- context manager ----------------------------------------------------

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
