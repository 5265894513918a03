"""The parts of config push without a hub running: the signature, the history on disk, the checks, the start.

Real files in a temporary state directory; the configs are the tests' own hub configs, read by the real loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hil.harness.hubproc import hub_config
from hub.config import load
from hub.configpush import select
from hub.configpush.history import Entry, HistoryStore, Probation, Record
from hub.configpush.signing import load_public_key, public_pem, sign, verify
from hub.configpush.validate import Invalid, check


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def local_config(tmp_path: Path, key: Ed25519PrivateKey, **cfg: object) -> Path:
    pub = tmp_path / "central.pub"
    pub.write_bytes(public_pem(key))
    return hub_config(tmp_path / "hub", port=1883, extra=f'[push]\nkey = "{pub}"\nprobation_s = 30\n', **cfg)


def test_a_signature_binds_the_hub_the_version_and_the_text(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    (tmp_path / "k.pub").write_bytes(public_pem(key))
    public = load_public_key(tmp_path / "k.pub")
    digest, signature = sign(key, "hub-a", 7, "[hub]\n")
    assert verify(public, "hub-a", 7, digest, signature)
    assert not verify(public, "hub-b", 7, digest, signature)
    assert not verify(public, "hub-a", 8, digest, signature)
    assert not verify(public, "hub-a", 7, "0" * 64, signature)
    assert not verify(public, "hub-a", 7, digest, "not base64!")
    other = Ed25519PrivateKey.generate()
    assert not verify(public, "hub-a", 7, digest, sign(other, "hub-a", 7, "[hub]\n")[1])


def test_the_history_is_written_whole_and_keeps_what_it_names(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, keep=3)
    for v in range(1, 6):
        store.save_text(v, f"# v{v}\n")
    record = Record(active=5, last_good=1, highest=5, local_sha256="a" * 64,
                    probation=Probation(version=5, started="2026-12-05T21:00:00.000Z", probation_s=30.0),
                    entries=[Entry(version=v, sha256="b" * 64, state="good", at="2026-12-05T21:00:00.000Z")
                             for v in range(1, 6)])
    store.write(record)
    assert [e.version for e in store.read().entries] == [1, 3, 4, 5]  # the newest 3, and the last good one
    assert sorted(p.name for p in store.dir.glob("v*.toml")) == ["v1.toml", "v3.toml", "v4.toml", "v5.toml"]
    assert store.read().probation == record.probation
    assert not list(store.dir.glob(".*.tmp"))
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    store.path.write_text("{not json")  # a torn or foreign file: put aside, start from the local file
    assert store.read() == Record() and (store.dir / "history.json.bad").exists()


def test_a_push_is_checked_as_check_config_and_may_not_move_the_pins(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = local_config(tmp_path, key)
    local = load(path)
    text = path.read_text()
    assert check(text.replace("ack_timeout_s = 60.0", "ack_timeout_s = 30"), 2, local=local, running=local)
    with pytest.raises(Invalid) as bad:
        check(text.replace("ack_timeout_s = 60.0", "ack_timeout_s = -1"), 2, local=local, running=local)
    assert bad.value.reason == "invalid" and str(bad.value.issues[0]).startswith("pushed:v2:")
    with pytest.raises(Invalid) as pinned:
        check(text.replace('dir = "state"', 'dir = "elsewhere"').replace("probation_s = 30", "probation_s = 300"),
              3, local=local, running=local)
    assert pinned.value.reason == "pinned"
    assert [i.key for i in pinned.value.issues] == ["store.dir", "push"]
    assert all(str(i).startswith("pushed:v3:") for i in pinned.value.issues)
    with pytest.raises(Invalid) as restart:
        check(text.replace('format = "json"', 'format = "console"'), 4, local=local, running=local)
    assert restart.value.reason == "needs_restart" and restart.value.issues[0].key == "log.format"


def _pushed(tmp_path: Path, local_path: Path, *, probation: bool, last_good: int | None = None) -> HistoryStore:
    local = load(local_path)
    store = HistoryStore(local.state_dir)
    text = local_path.read_text()
    for v in (1, 2):  # only the timeout changes: the text also holds paths, which may hold any digits
        store.save_text(v, text.replace("ack_timeout_s = 60.0", f"ack_timeout_s = {30 + v}"))
    store.write(Record(
        active=2, last_good=last_good, highest=2, local_sha256=local.sha256,
        probation=Probation(version=2, started="2026-12-05T21:00:00.000Z", probation_s=30) if probation else None,
        entries=[Entry(version=1, sha256="1" * 64, state="good", at="2026-12-05T21:00:00.000Z"),
                 Entry(version=2, sha256="2" * 64, state="probation" if probation else "good",
                       at="2026-12-05T21:00:01.000Z")]))
    return store


def test_a_start_on_probation_rolls_back_to_the_last_good(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = local_config(tmp_path, key)
    store = _pushed(tmp_path, path, probation=True, last_good=1)
    chosen = select(load(path))
    assert chosen.loaded.origin == "pushed:v1" and chosen.loaded.config.alarm.ack_timeout_s == 31
    record = store.read()
    assert record.active == 1 and record.probation is None and record.entry(2).state == "rolled_back"
    ((type_, data),) = record.unreported
    assert type_ == "config.rolled_back" and data["reason"] == "restarted" and data["to_version"] == 1
    assert select(load(path)).loaded.origin == "pushed:v1"  # and again: it stays there


def test_a_start_runs_the_active_push_and_an_edited_local_file_wins(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = local_config(tmp_path, key)
    store = _pushed(tmp_path, path, probation=False, last_good=2)
    assert select(load(path)).loaded.config.alarm.ack_timeout_s == 32
    path.write_text(path.read_text().replace("unack_repeat_s = 60.0", "unack_repeat_s = 90"))
    chosen = select(load(path))
    assert chosen.loaded.origin is None and chosen.loaded.config.alarm.unack_repeat_s == 90
    record = store.read()
    assert record.active is None and record.entry(2).state == "superseded"
    assert json.loads(store.path.read_text())["highest"] == 2  # a later push must still be higher


def test_the_central_signs_with_the_cli_and_the_hub_verifies(tmp_path: Path) -> None:
    import subprocess
    import sys

    run = [sys.executable, "-m", "hub.cli", "config"]
    assert subprocess.run([*run, "keygen", "--out", str(tmp_path)], capture_output=True).returncode == 0
    assert oct((tmp_path / "central-push.key").stat().st_mode & 0o777) == "0o600"
    assert subprocess.run([*run, "keygen", "--out", str(tmp_path)], capture_output=True).returncode == 2
    (tmp_path / "hub.toml").write_text("[hub]\n")
    out = subprocess.run([*run, "sign", "--key", str(tmp_path / "central-push.key"), "--hub", "h1", "--version", "4",
                          str(tmp_path / "hub.toml")], capture_output=True, text=True, check=True).stdout
    body = json.loads(out)
    assert body["toml"] == "[hub]\n" and body["version"] == 4
    public = load_public_key(tmp_path / "central-push.pub")
    assert verify(public, "h1", 4, body["sha256"], body["signature"])
