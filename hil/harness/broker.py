"""Real-MQTT test support: a throwaway mosquitto broker, TLS material and clients.

Everything here talks to a real ``mosquitto`` process started per test in a
temporary directory; nothing is mocked.

* :func:`free_port` - an unused TCP port on 127.0.0.1.
* :class:`Mosquitto` - start/stop/kill/restart a private broker (optionally with
  TLS client certificates, a password file, an ACL and persistence).
* :class:`TlsFiles` / :func:`make_tls` - a throwaway CA plus server and client
  certificates generated with ``cryptography``.
* :class:`Subscriber` - a paho-mqtt 2.x MQTT v5 client that records everything it
  receives and can wait for conditions on it.
* :func:`request` - MQTT v5 request/response (ResponseTopic + CorrelationData).

The system broker on 127.0.0.1:1883 is never used.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import json as _json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = [
    "LOCALHOST",
    "MOSQUITTO",
    "MOSQUITTO_PASSWD",
    "Mosquitto",
    "Received",
    "Subscriber",
    "TlsFiles",
    "free_port",
    "make_tls",
    "request",
]

LOCALHOST = "127.0.0.1"
_SEARCH_PATH = os.pathsep.join(["/usr/sbin", "/usr/local/sbin", os.environ.get("PATH", "")])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH) or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

Payload = bytes | bytearray | str | dict[str, Any] | list[Any]


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


def _encode_payload(payload: Payload) -> bytes:
    """bytes pass through, str is UTF-8 encoded, dict/list become JSON."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return _json.dumps(payload).encode()


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    """Paths of PEM files for a CA, a server identity and a client identity."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_pem(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _issue(
    *,
    subject_cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    eku: x509.ObjectIdentifier,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = _dt.datetime.now(_dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_tls(dir: Path, client_cn: str = "hub-test") -> TlsFiles:  # noqa: A002 - name from the spec
    """Generate a throwaway PKI in ``dir`` and return the file paths.

    Creates a self-signed EC P-256 CA, a server certificate for ``CN=localhost``
    (SAN ``DNS:localhost``, ``IP:127.0.0.1``, EKU serverAuth) and a client
    certificate for ``CN=<client_cn>`` (EKU clientAuth), both signed by the CA.
    Certificates are written with mode 0644, private keys with mode 0600.
    """
    dir = Path(dir)
    dir.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.UTC)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carehub test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _issue(
        subject_cn="localhost",
        key=server_key,
        issuer=ca_name,
        issuer_key=ca_key,
        eku=ExtendedKeyUsageOID.SERVER_AUTH,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _issue(
        subject_cn=client_cn,
        key=client_key,
        issuer=ca_name,
        issuer_key=ca_key,
        eku=ExtendedKeyUsageOID.CLIENT_AUTH,
    )

    files = TlsFiles(
        ca=dir / "ca.crt",
        server_cert=dir / "server.crt",
        server_key=dir / "server.key",
        client_cert=dir / "client.crt",
        client_key=dir / "client.key",
    )
    pem = serialization.Encoding.PEM
    _write_pem(files.ca, ca_cert.public_bytes(pem), 0o644)
    _write_pem(files.server_cert, server_cert.public_bytes(pem), 0o644)
    _write_pem(files.server_key, _key_pem(server_key), 0o600)
    _write_pem(files.client_cert, client_cert.public_bytes(pem), 0o644)
    _write_pem(files.client_key, _key_pem(client_key), 0o600)
    return files


# --------------------------------------------------------------------- Mosquitto


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
    ) -> None:
        self.host = host
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
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None
        self._started_once = False
        self._write_auxiliary_files()
        self._write_config()

    # -- properties ---------------------------------------------------------

    @property
    def port(self) -> int:
        """TCP port of the (single) listener."""
        return self._port

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
        lines = [
            "# generated by hil/harness/broker.py",
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
        if not _port_bindable(self.host, self._port):
            if self._started_once:
                raise RuntimeError(f"port {self._port} is in use; cannot restart mosquitto on it")
            self._port = free_port(self.host)
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
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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


# ------------------------------------------------------------------- Subscriber


@dataclass(frozen=True)
class Received:
    """One message received by a :class:`Subscriber`."""

    topic: str
    payload: bytes
    retain: bool
    properties: Properties | None
    t: float  # time.monotonic() at receipt

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return _json.loads(self.payload)


def _new_client(
    client_id: str,
    tls: TlsFiles | None,
    username: str | None,
    password: str | None,
) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if tls is not None:
        client.tls_set(
            ca_certs=str(tls.ca),
            certfile=str(tls.client_cert),
            keyfile=str(tls.client_key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if username is not None:
        client.username_pw_set(username, password)
    return client


class Subscriber:
    """A recording MQTT v5 test client (paho-mqtt 2.x, network loop in a thread).

    It connects in the background, subscribes to ``topics`` at QoS 1 after
    every (re)connect and reconnects automatically (0.1 s .. 1 s backoff), e.g.
    across broker restarts. With ``persistent=True`` it uses clean_start=False
    and SessionExpiryInterval=3600, so the broker keeps its subscriptions and
    queues QoS 1 messages while it (or the broker) is down.

    ``connect_timeout``: if not None (the default), the constructor blocks until
    the first CONNACK and SUBACK arrived, raising AssertionError otherwise. Use
    None for clients that are expected not to connect (or before the broker runs).
    ``topics=[]`` gives a publish-only client.
    """

    def __init__(
        self,
        *,
        host: str = LOCALHOST,
        port: int,
        topics: list[str] | None = None,
        client_id: str | None = None,
        persistent: bool = False,
        tls: TlsFiles | None = None,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float | None = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.topics = ["#"] if topics is None else list(topics)
        self.client_id = client_id or f"test-{uuid.uuid4().hex[:12]}"
        self.persistent = persistent
        self._lock = threading.RLock()  # re-entrant: wait_for predicates may read .json()
        self._cond = threading.Condition(self._lock)
        self._messages: list[Received] = []
        self._connack: list[ReasonCode] = []
        self._suback: list[list[ReasonCode]] = []
        self._puback: dict[int, ReasonCode] = {}
        self._disconnects = 0
        self._ready = False  # connected and subscribed
        self._closed = False

        client = _new_client(self.client_id, tls, username, password)
        client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # floats work fine
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client

        props: Properties | None = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
        # connect_async + loop_start: the loop thread retries the first connect too.
        client.connect_async(host, port, keepalive=30, clean_start=not persistent, properties=props)
        client.loop_start()
        if connect_timeout is not None:
            try:
                self.wait_connected(connect_timeout)
            except BaseException:
                self.close()
                raise

    # -- paho callbacks (network thread) -------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._connack.append(reason_code)
            if reason_code.is_failure:
                self._cond.notify_all()
                return
            if not self.topics:
                self._ready = True
                self._cond.notify_all()
                return
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._suback.append(list(reason_codes))
            self._ready = True
            self._cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received = Received(
            topic=msg.topic,
            payload=bytes(msg.payload),
            retain=bool(msg.retain),
            properties=getattr(msg, "properties", None),
            t=time.monotonic(),
        )
        with self._cond:
            self._messages.append(received)
            self._cond.notify_all()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._ready = False
            self._disconnects += 1
            self._cond.notify_all()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._puback[mid] = reason_code
            self._cond.notify_all()

    # -- state -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while connected and the subscriptions of this connection are acknowledged."""
        with self._lock:
            return self._ready

    @property
    def connack_reasons(self) -> list[ReasonCode]:
        """Reason codes of every CONNACK received so far (oldest first)."""
        with self._lock:
            return list(self._connack)

    @property
    def suback_reasons(self) -> list[list[ReasonCode]]:
        """Granted QoS / failure codes of every SUBACK received so far."""
        with self._lock:
            return [list(codes) for codes in self._suback]

    @property
    def disconnects(self) -> int:
        """How many times the connection was lost or refused."""
        with self._lock:
            return self._disconnects

    @property
    def messages(self) -> list[Received]:
        """A copy of all messages received so far."""
        with self._lock:
            return list(self._messages)

    def json(self, topic_filter: str | None = None) -> list[Any]:
        """JSON-decoded payloads of received messages whose topic matches the
        MQTT filter (``+``/``#`` wildcards); all messages if None.
        Raises ValueError if a matching payload is not JSON."""
        return [
            m.json()
            for m in self.messages
            if topic_filter is None or mqtt.topic_matches_sub(topic_filter, m.topic)
        ]

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._lock:
            self._messages.clear()

    def summary(self, limit: int = 20) -> str:
        """Human-readable description of connection state and received messages."""
        with self._lock:
            msgs = list(self._messages)
            state = (
                f"client_id={self.client_id} {self.host}:{self.port} ready={self._ready} "
                f"connacks={[str(rc) for rc in self._connack]} disconnects={self._disconnects}"
            )
        lines = [state, f"{len(msgs)} message(s) received" + (":" if msgs else "")]
        if len(msgs) > limit:
            lines.append(f"  ... {len(msgs) - limit} earlier omitted")
        for m in msgs[-limit:]:
            body = m.payload[:200].decode(errors="replace")
            lines.append(f"  {m.topic}{' (retained)' if m.retain else ''}: {body}")
        return "\n".join(lines)

    # -- waiting -----------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[list[Received]], bool],
        timeout: float = 10.0,
    ) -> list[Received]:
        """Wait until ``predicate(messages)`` is true; return that message list.

        The predicate gets a copy of all messages received so far and is
        re-evaluated on every arrival. Raises AssertionError with a summary of
        what was received when ``timeout`` passes.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                snapshot = list(self._messages)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        raise AssertionError(
            f"condition not met within {timeout}s: {getattr(predicate, '__name__', predicate)}\n"
            + self.summary()
        )

    def wait_for_topic(self, topic_filter: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """Wait until at least ``count`` messages matching ``topic_filter`` arrived;
        return the matching ones."""

        def enough(msgs: list[Received]) -> bool:
            return sum(mqtt.topic_matches_sub(topic_filter, m.topic) for m in msgs) >= count

        enough.__name__ = f"{count} message(s) on {topic_filter!r}"
        msgs = self.wait_for(enough, timeout)
        return [m for m in msgs if mqtt.topic_matches_sub(topic_filter, m.topic)]

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until connected and subscribed; AssertionError (with the last
        CONNACK reason, if any) after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._ready:
                return
        raise AssertionError(f"not connected within {timeout}s\n" + self.summary())

    # -- publishing --------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: Payload = b"",
        qos: int = 1,
        retain: bool = False,
        properties: Properties | None = None,
        timeout: float = 5.0,
    ) -> ReasonCode | None:
        """Publish and wait until it is acknowledged (PUBACK for QoS 1,
        PUBCOMP for QoS 2, written to the socket for QoS 0).

        ``payload`` may be bytes, str or a dict/list (sent as JSON). Returns the
        broker's reason code for QoS > 0 (None for QoS 0). Raises AssertionError
        if not connected or not acknowledged within ``timeout``.
        """
        self.wait_connected(timeout)
        info = self._client.publish(
            topic, _encode_payload(payload), qos=qos, retain=retain, properties=properties
        )
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise AssertionError(f"publish to {topic!r} failed: {exc}\n{self.summary()}") from exc
        if not info.is_published():
            raise AssertionError(f"publish to {topic!r} not acknowledged within {timeout}s")
        if qos == 0:
            return None
        with self._lock:
            return self._puback.pop(info.mid, None)

    # -- teardown ----------------------------------------------------------

    def close(self) -> None:
        """Disconnect (a persistent session stays on the broker) and stop the loop thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Subscriber {self.client_id} {self.host}:{self.port} topics={self.topics}>"


# ----------------------------------------------------------------- request/reply


def request(
    host: str,
    port: int,
    topic: str,
    payload: Payload,
    timeout: float = 5.0,
    tls: TlsFiles | None = None,
    *,
    username: str | None = None,
    password: str | None = None,
    response_topic: str | None = None,
) -> Any:
    """MQTT v5 request/response round trip with a fresh client.

    Subscribes to a unique response topic (``carehub-test/reply/<uuid>`` unless
    ``response_topic`` is given), publishes ``payload`` (bytes/str as is,
    dict/list as JSON) to ``topic`` with ResponseTopic and random
    CorrelationData, and returns the JSON-decoded payload of the first reply
    carrying the same CorrelationData. Raises TimeoutError if connecting,
    subscribing or the reply takes longer than ``timeout`` overall, and
    ConnectionError if the broker refuses the connection.
    """
    deadline = time.monotonic() + timeout
    reply_topic = response_topic or f"carehub-test/reply/{uuid.uuid4().hex}"
    correlation = secrets.token_bytes(16)
    cond = threading.Condition()
    state: dict[str, Any] = {"connack": None, "subscribed": None, "reply": None}

    def on_connect(c: mqtt.Client, u: Any, f: Any, rc: ReasonCode, p: Any) -> None:
        with cond:
            state["connack"] = rc
            cond.notify_all()

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, rcs: list[ReasonCode], p: Any) -> None:
        with cond:
            state["subscribed"] = rcs
            cond.notify_all()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        if getattr(props, "CorrelationData", None) != correlation:
            return
        with cond:
            if state["reply"] is None:
                state["reply"] = bytes(msg.payload)
            cond.notify_all()

    def wait(key: str, what: str) -> Any:
        with cond:
            while state[key] is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"request to {topic!r}: no {what} within {timeout}s")
                cond.wait(remaining)
            return state[key]

    client = _new_client(f"test-req-{uuid.uuid4().hex[:12]}", tls, username, password)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise ConnectionError(f"cannot connect to {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        rc = wait("connack", "CONNACK")
        if rc.is_failure:
            raise ConnectionError(f"broker refused connection: {rc}")
        client.subscribe(reply_topic, options=SubscribeOptions(qos=1))
        rcs = wait("subscribed", "SUBACK")
        if any(r.is_failure for r in rcs):
            raise ConnectionError(f"subscription to {reply_topic!r} refused: {rcs}")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = reply_topic
        props.CorrelationData = correlation
        client.publish(topic, _encode_payload(payload), qos=1, properties=props)
        return _json.loads(wait("reply", "reply"))
    finally:
        client.disconnect()
        client.loop_stop()
