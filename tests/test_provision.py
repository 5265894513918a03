"""``carehub provision``: what an installer gets on site, run as the installer (or a script) runs it.

Each run writes into a temporary directory; its output is checked the way
the installer would check it (``carehub check-config``, file modes, the CSR
opened with ``cryptography``) and, at the end, used for real: the hub logs in
with the provisioned password or the certificate signed from the CSR on a
private Mosquitto.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hil.harness.broker import Mosquitto
from hil.harness.hubproc import HubProcess
from hil.harness.tlsfiles import TlsFiles
from hub.config.sections import NAME_PATTERN
from hub.configpush.signing import public_pem

ROOT = Path(__file__).resolve().parent.parent


def carehub(*args: str, stdin: str | None = None, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, timeout=60, preexec_fn=lambda: os.umask(umask) and None)


def provision(out: Path, *args: str, stdin: str | None = None, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    extra = () if stdin is not None else ("--non-interactive",)
    return carehub("provision", "--out", str(out), *extra, *args, stdin=stdin, umask=umask)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- a throwaway CA that can sign


class CA:
    """A CA whose key we hold (the municipality's, in the tests), with a server certificate for localhost."""

    def __init__(self, dir: Path) -> None:  # noqa: A002
        dir.mkdir(parents=True, exist_ok=True)
        self.dir = dir
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "municipality test CA")])
        cert = (self._builder(self.name, self.key.public_key())
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.pem = dir / "ca.pem"
        self.pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), server_key.public_key())
                  .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                              x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                 critical=False)
                  .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                  .sign(self.key, hashes.SHA256()))
        (dir / "server.crt").write_bytes(server.public_bytes(serialization.Encoding.PEM))
        (dir / "server.key").write_bytes(server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        os.chmod(dir / "server.key", 0o600)
        self.tls = TlsFiles(ca=self.pem, server_cert=dir / "server.crt", server_key=dir / "server.key")

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30)))

    def sign(self, csr_pem: bytes) -> bytes:
        """What the municipality does with the hub's CSR."""
        csr = x509.load_pem_x509_csr(csr_pem)
        cert = (self._builder(csr.subject, csr.public_key())  # type: ignore[arg-type]
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM)


# --------------------------------------------------------------------------- password


def test_password_auth_passes_check_config_with_private_secrets(tmp_path: Path) -> None:
    ca = CA(tmp_path / "pki")
    out = tmp_path / "etc"
    proc = provision(out, "--hub-id", "omsorgsbolig-3", "--resident", "R-00042", "--auth", "password",
                     "--broker", "mqtt1.responssenter.example", "--broker", "mqtt2.responssenter.example:8884",
                     "--ca", str(ca.pem), umask=0)  # a careless shell: the modes are set, not left to it
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check-config" in proc.stdout and ": valid" in proc.stdout
    assert "mosquitto_passwd /etc/mosquitto/carehub/passwd omsorgsbolig-3" in proc.stdout

    check = carehub("check-config", str(out / "hub.toml"))
    assert check.returncode == 0, check.stderr

    password = (out / "mqtt.pass").read_text()
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}\n", password)
    assert password.strip() not in proc.stdout + proc.stderr  # never printed
    assert mode(out / "mqtt.pass") == 0o600 and (out / "mqtt.pass").stat().st_uid == 0  # no user carehub here
    assert "no user 'carehub'" in proc.stdout
    assert mode(out / "hub.toml") == 0o640 and mode(out) == 0o750
    assert (out / "central-ca.pem").read_bytes() == ca.pem.read_bytes()

    cfg = tomllib.loads((out / "hub.toml").read_text())
    assert cfg["hub"] == {"id": "omsorgsbolig-3", "resident": "R-00042", "timezone": "Europe/Oslo"}
    assert cfg["mqtt"]["username"] == "omsorgsbolig-3" and cfg["mqtt"]["password_file"] == "mqtt.pass"
    assert cfg["mqtt"]["tls"] == {"ca": "central-ca.pem"}
    assert cfg["mqtt"]["broker"] == [{"host": "mqtt1.responssenter.example", "port": 8884},
                                     {"host": "mqtt2.responssenter.example", "port": 8884}]
    assert cfg["store"]["dir"] == "/var/lib/carehub"
    text = (out / "hub.toml").read_text()
    assert "# the store takes at most this much disk" in text  # the template's comments are kept
    assert len(cfg["device"]) == 5  # the residence template's devices


def test_a_broker_on_this_machine_needs_no_tls_and_the_json_says_it_all(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    proc = provision(out, "--resident", "R-00042", "--auth", "password", "--broker", "127.0.0.1", "--json",
                     "--template", "minimal")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert re.match(NAME_PATTERN, doc["hub_id"]) and doc["hub_id"].startswith("hub-")
    assert doc["valid"] is True and doc["errors"] == [] and doc["pending"] == []
    assert doc["files"] == {"mqtt.pass": str(out / "mqtt.pass"), "hub.toml": str(out / "hub.toml")}
    assert any("mosquitto_passwd" in s for s in doc["next_steps"])
    assert any('[gpio] factory = "sim"' in s for s in doc["next_steps"])  # the minimal template is a demo's
    cfg = tomllib.loads((out / "hub.toml").read_text())
    assert "tls" not in cfg["mqtt"] and cfg["mqtt"]["broker"] == [{"host": "127.0.0.1", "port": 1883}]


# --------------------------------------------------------------------------- certificate


def test_cert_auth_writes_a_key_and_a_csr_for_the_hub_id(tmp_path: Path) -> None:
    ca = CA(tmp_path / "pki")
    out = tmp_path / "etc"
    proc = provision(out, "--resident", "R-00042", "--broker", "mqtt1.responssenter.example", "--ca", str(ca.pem))
    assert proc.returncode == 3, proc.stdout + proc.stderr  # valid except the certificate still to come
    hub_id = re.search(r"^hub (\S+) \(a new id\)$", proc.stdout, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"hub-[a-z2-7]{8}", hub_id)
    assert "valid except the files still to install" in proc.stdout
    assert f"send {out / 'client.csr'} (CN = {hub_id})" in proc.stdout

    key = serialization.load_pem_private_key((out / "client.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert mode(out / "client.key") == 0o600
    csr = x509.load_pem_x509_csr((out / "client.csr").read_bytes())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == hub_id
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert csr.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)

    cfg = tomllib.loads((out / "hub.toml").read_text())
    assert cfg["mqtt"]["tls"] == {"ca": "central-ca.pem", "cert": "client.crt", "key": "client.key"}
    assert "username" not in cfg["mqtt"] and cfg["mqtt"]["broker"] == [{"host": "mqtt1.responssenter.example",
                                                                         "port": 8883}]
    # check-config itself still refuses it, for the one missing file
    check = carehub("check-config", "--json", str(out / "hub.toml"))
    assert check.returncode == 1
    assert [e["key"] for e in json.loads(check.stdout)["errors"]] == ["mqtt.tls.cert"]
    # the municipality signs, the installer installs: valid
    (out / "client.crt").write_bytes(ca.sign((out / "client.csr").read_bytes()))
    assert carehub("check-config", str(out / "hub.toml")).returncode == 0


def test_without_the_ca_both_files_are_pending(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    proc = provision(out, "--resident", "R-00042", "--broker", "mqtt.example", "--json")
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert [p["key"] for p in doc["pending"]] == ["mqtt.tls.ca", "mqtt.tls.cert"] and doc["errors"] == []
    assert "central-ca.pem" in doc["pending"][0]["todo"]


# --------------------------------------------------------------------------- interactive, refusals


def test_interactive_answers_from_stdin(tmp_path: Path) -> None:
    ca = CA(tmp_path / "pki")
    out = tmp_path / "etc"
    push_key = tmp_path / "central-push.pub"
    push_key.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    answers = "\n".join([
        "Hub 7",                      # refused (a space, upper case): asked again
        "omsorgsbolig-7",
        "R-0007",
        "ble",
        "password",
        "mqtt1.responssenter.example:99999",  # refused: asked again
        "mqtt1.responssenter.example",
        "mqtt2.responssenter.example:8884",
        "",                           # no more brokers
        str(ca.pem),
        str(ca.pem),                  # refused: a certificate, not the central's Ed25519 key: asked again
        str(push_key),
        str(out),
    ]) + "\n"
    proc = carehub("provision", stdin=answers)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "expected lower-case letters" in proc.stdout and "expected a port from 1 to 65535" in proc.stdout
    cfg = tomllib.loads((out / "hub.toml").read_text())
    assert cfg["hub"]["id"] == "omsorgsbolig-7" and cfg["mqtt"]["username"] == "omsorgsbolig-7"
    assert [b["host"] for b in cfg["mqtt"]["broker"]] == ["mqtt1.responssenter.example", "mqtt2.responssenter.example"]
    assert cfg["ble"]["backend"] == "bleak"  # the BLE template
    assert mode(out / "mqtt.pass") == 0o600
    assert "push key" in proc.stdout and "not a PEM public key" in proc.stdout
    assert cfg["push"]["key"] == "central-push.pub"
    assert (out / "central-push.pub").read_bytes() == push_key.read_bytes()


def test_config_push_is_on_with_the_centrals_key_and_off_without(tmp_path: Path) -> None:
    """The residence template's [push]: pointed at the key copied beside the config, or left out."""
    ca = CA(tmp_path / "pki")
    push_key = tmp_path / "central-push.pub"
    push_key.write_bytes(public_pem(Ed25519PrivateKey.generate()))
    common = ("--resident", "R-00042", "--auth", "password", "--broker", "mqtt1.responssenter.example",
              "--ca", str(ca.pem))
    with_key, without = tmp_path / "with", tmp_path / "without"
    assert provision(with_key, "--hub-id", "omsorgsbolig-4", *common, "--push-key", str(push_key)).returncode == 0
    assert provision(without, "--hub-id", "omsorgsbolig-5", *common).returncode == 0
    assert tomllib.loads((with_key / "hub.toml").read_text())["push"]["key"] == "central-push.pub"
    assert (with_key / "central-push.pub").read_bytes() == push_key.read_bytes()
    assert "push" not in tomllib.loads((without / "hub.toml").read_text())
    assert not (without / "central-push.pub").exists()
    for out in (with_key, without):
        check = carehub("check-config", str(out / "hub.toml"))
        assert check.returncode == 0, check.stderr
    bad = provision(tmp_path / "bad", "--hub-id", "omsorgsbolig-6", *common, "--push-key", str(ca.pem))
    assert bad.returncode == 2 and "not a PEM public key" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_input_that_ends_early_writes_nothing(tmp_path: Path) -> None:
    proc = carehub("provision", "--out", str(tmp_path / "etc"), stdin="hub-9\n")
    assert proc.returncode == 2 and "input ended" in proc.stderr
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--broker", "mqtt.example"), "--non-interactive needs --resident"),
    (("--resident", "Kari Nordmann", "--broker", "mqtt.example"), "resident id 'Kari Nordmann'"),
    (("--resident", "R-0001", "--broker", "mqtt.example", "--hub-id", "Hub_1"), "hub id 'Hub_1'"),
])
def test_refused_answers_write_nothing(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    proc = provision(tmp_path / "etc", *args)
    assert proc.returncode == 2 and message in proc.stderr and "nothing written" in proc.stderr
    assert not (tmp_path / "etc").exists()


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    ca = CA(tmp_path / "pki")
    out = tmp_path / "etc"
    args = ("--hub-id", "hub-1", "--resident", "R-0001", "--broker", "mqtt.example", "--ca", str(ca.pem))
    assert provision(out, *args).returncode == 3
    (out / "client.crt").write_bytes(ca.sign((out / "client.csr").read_bytes()))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    again = provision(out, *args)
    assert again.returncode == 2
    assert f"error: {out / 'client.key'} exists" in again.stderr and "--force replaces them" in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched

    forced = provision(out, *args, "--force")
    assert forced.returncode == 3, forced.stdout + forced.stderr  # a new key: the old certificate is moved aside
    assert (out / "client.key").read_bytes() != before["client.key"]
    assert (out / "client.crt.old").read_bytes() == before["client.crt"] and not (out / "client.crt").exists()
    assert mode(out / "client.key") == 0o600


def test_an_unedited_example_is_named_when_refused(tmp_path: Path) -> None:
    """install.sh puts config/examples/residence.toml in place; provision says so."""
    out = tmp_path / "etc"
    out.mkdir()
    (out / "hub.toml").write_bytes((ROOT / "config" / "examples" / "residence.toml").read_bytes())
    proc = provision(out, "--resident", "R-0001", "--broker", "mqtt.example")
    assert proc.returncode == 2
    assert "(an unedited copy of config/examples/residence.toml)" in proc.stderr


# --------------------------------------------------------------------------- the credentials work


def test_the_hub_logs_in_with_the_provisioned_password(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    proc = provision(out, "--hub-id", "hub-pw", "--resident", "R-0001", "--auth", "password", "--template",
                     "minimal", "--broker", "127.0.0.1:1", "--state-dir", str(out / "state"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    password = (out / "mqtt.pass").read_text().splitlines()[0]
    # register it as config/broker/README.md says (the harness runs mosquitto_passwd)
    with Mosquitto(workdir=tmp_path / "broker", passwords={"hub-pw": password}) as broker:
        text = (out / "hub.toml").read_text().replace("port = 1\n", f"port = {broker.port}\n")
        (out / "hub.toml").write_text(text)
        hub = HubProcess(out / "hub.toml").start()
        try:
            hub.wait_online(timeout=20)
        finally:
            hub.stop()
        assert "u'hub-pw'" in broker.log_path.read_text()


def test_the_hub_logs_in_with_the_certificate_signed_from_its_csr(tmp_path: Path) -> None:
    ca = CA(tmp_path / "pki")
    out = tmp_path / "etc"
    with Mosquitto(workdir=tmp_path / "broker", tls=ca.tls) as broker:  # use_identity_as_username
        proc = provision(out, "--resident", "R-0001", "--template", "minimal", "--ca", str(ca.pem),
                         "--broker", f"localhost:{broker.port}", "--state-dir", str(out / "state"), "--json")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        hub_id = json.loads(proc.stdout)["hub_id"]
        (out / "client.crt").write_bytes(ca.sign((out / "client.csr").read_bytes()))
        assert carehub("check-config", str(out / "hub.toml")).returncode == 0
        hub = HubProcess(out / "hub.toml").start()
        try:
            hub.wait_online(timeout=20)
        finally:
            hub.stop()
        assert f"u'{hub_id}'" in broker.log_path.read_text()  # the CN became the MQTT username


def test_secrets_go_to_the_service_user_whatever_the_umask(tmp_path: Path) -> None:
    """Where the service user exists (here ``nobody`` stands in for ``carehub``) a secret is its own,
    0600, from the moment it exists; a permissive umask changes nothing."""
    from hub.provision.files import owner_for, write_file

    owner = owner_for("nobody")
    assert owner.uid == 65534 and owner.note is None
    old = os.umask(0)
    try:
        write_file(tmp_path / "client.key", b"secret\n", mode=0o600, uid=owner.uid, gid=owner.gid)
    finally:
        os.umask(old)
    st = (tmp_path / "client.key").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, owner.uid, owner.gid)
    with pytest.raises(FileExistsError):
        write_file(tmp_path / "client.key", b"other\n", mode=0o600)
    assert (tmp_path / "client.key").read_bytes() == b"secret\n"
    assert [p.name for p in tmp_path.iterdir()] == ["client.key"]  # no temporary file left behind
    assert "no user 'no-such-user-x'" in (owner_for("no-such-user-x").note or "")


def test_a_certificate_already_there_is_not_left_beside_a_new_key(tmp_path: Path) -> None:
    out = tmp_path / "etc"
    out.mkdir()
    (out / "client.crt").write_text("a certificate of some other key\n")
    proc = provision(out, "--resident", "R-0001", "--broker", "mqtt.example")
    assert proc.returncode == 2 and f"{out / 'client.crt'} exists" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["client.crt"]
