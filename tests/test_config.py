"""The residence config: valid examples load, every malformed config is refused
with ``FILE:LINE:COL: key.path: message`` naming the right line, and the
committed JSON Schema matches the code.

Malformed configs live in ``tests/configs/bad/*.toml``, one mistake per file.
Each file says what it expects in header comments::

    # expect: LINE:COL key.path: fragment of the message

and the test requires exactly those issues, in that order (sorted by line), no
more and no fewer. To add a case, add a file; run ``carehub check-config`` on it
to see what it reports, and check the line by hand before writing it down.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from hil.harness.broker import make_tls

from hub import config as cfg
from hub.config import ConfigError, ConfigUnreadable, load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.toml"))
CONFIGS = Path(__file__).resolve().parent / "configs"
BAD = sorted((CONFIGS / "bad").glob("*.toml"))
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\(top level\)|\S+): (.+)$", re.MULTILINE)


def expectations(path: Path) -> list[tuple[int, int, str, str]]:
    return [(int(line), int(col), key, frag) for line, col, key, frag in EXPECT.findall(path.read_text())]


def issues_of(path: Path, **kwargs: object) -> list[cfg.ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load(path, **kwargs)  # type: ignore[arg-type]
    # the exception's text is exactly the issue lines
    assert str(info.value) == "\n".join(str(i) for i in info.value.issues)
    return info.value.issues


def assert_issues(path: Path, issues: list[cfg.ConfigIssue], expected: list[tuple[int, int, str, str]]) -> None:
    shown = "\n".join(str(i) for i in issues)
    assert len(issues) == len(expected), f"expected {len(expected)} issue(s), got:\n{shown}"
    for issue, (line, col, key, fragment) in zip(issues, expected):
        assert issue.file == str(path), shown
        prefix = f"{path}:{line}:{col}: {key}: "
        assert str(issue).startswith(prefix), f"expected a line starting {prefix!r}, got:\n{shown}"
        assert fragment in issue.message, f"expected {fragment!r} in the message, got:\n{shown}"


# --------------------------------------------------------------------------- valid examples


def test_there_are_examples() -> None:
    assert any(p.name == "minimal.toml" for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    loaded = load(path, check_files=True)
    assert loaded.path == path.resolve()
    assert len(loaded.sha256) == 64


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_matches_schema(path: Path) -> None:
    """An independent validator agrees with the committed schema on every example."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "config" / "schema.json").read_text())
    jsonschema.validate(tomllib.loads(path.read_text()), schema)


def test_minimal_example_content() -> None:
    loaded = load(ROOT / "config" / "examples" / "minimal.toml")
    c = loaded.config
    assert c.gpio.factory == "sim"
    assert [(b.host, b.port) for b in c.mqtt.broker] == [("127.0.0.1", 1883)]
    assert [(d.kind, d.gpio.pin, d.gpio.led_pin) for d in c.devices if d.gpio] == [("alarm_button", 17, 27)]
    assert loaded.state_dir == (ROOT / "state" / "minimal").resolve()


# --------------------------------------------------------------------------- malformed configs


def test_enough_malformed_cases() -> None:
    assert len(BAD) >= 25
    for path in BAD:
        assert expectations(path), f"{path.name} has no '# expect: LINE:COL key: fragment' line"


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_malformed_config_is_refused(path: Path) -> None:
    assert_issues(path, issues_of(path), expectations(path))


def test_all_errors_at_once_sorted_by_line() -> None:
    path = CONFIGS / "four_errors.toml"
    issues = issues_of(path)
    assert_issues(path, issues, expectations(path))
    assert len(issues) == 4
    lines = [i.line for i in issues]
    assert lines == sorted(lines)


def test_relative_path_message_says_where_it_looked() -> None:
    path = CONFIGS / "bad" / "semantic_tls_ca_missing.toml"
    (issue,) = issues_of(path)
    assert str(path.parent / "certs" / "central-ca.pem") in issue.message


def test_check_files_false_skips_file_checks() -> None:
    load(CONFIGS / "bad" / "semantic_tls_ca_missing.toml", check_files=False)


# --------------------------------------------------------------------------- secret file permissions

SECRETS_CONFIG = """\
[hub]
id = "h1"
resident = "R-001"

[mqtt]
username = "hub-h1"
password_file = "secrets/mqtt.pw"

[mqtt.tls]
ca = "secrets/ca.pem"
cert = "secrets/client.pem"
key = "secrets/client.key"

[[mqtt.broker]]
host = "127.0.0.1"
port = 8883

[store]
dir = "state"
"""


def write_secrets(tmp_path: Path, modes: dict[str, int]) -> Path:
    """The config above with real TLS material (a throwaway CA, client certificate and key)."""
    tls = make_tls(tmp_path / "pki")
    (tmp_path / "secrets").mkdir()
    sources = {"mqtt.pw": None, "ca.pem": tls.ca, "client.pem": tls.client_cert, "client.key": tls.client_key}
    for name, src in sources.items():
        f = tmp_path / "secrets" / name
        f.write_bytes(src.read_bytes() if src else b"x\n")
        f.chmod(modes.get(name, 0o600))
    path = tmp_path / "residence.toml"
    path.write_text(SECRETS_CONFIG)
    return path


def test_a_ca_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    """The CA that used to pass check-config and kill the link at run time."""
    path = write_secrets(tmp_path, {"ca.pem": 0o644, "client.pem": 0o644})
    (tmp_path / "secrets" / "ca.pem").write_text("this is not a certificate\n")
    assert_issues(path, issues_of(path), [(10, 1, "mqtt.tls.ca", "expected PEM CA certificate(s)")])
    (tmp_path / "secrets" / "ca.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n")
    assert_issues(path, issues_of(path), [(10, 1, "mqtt.tls.ca", "with a body that does not parse")])


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path) -> None:
    path = write_secrets(tmp_path, {"ca.pem": 0o644, "client.pem": 0o644})
    other = make_tls(tmp_path / "other-pki")
    key = tmp_path / "secrets" / "client.key"
    key.write_bytes(other.client_key.read_bytes())
    assert_issues(path, issues_of(path), [(12, 1, "mqtt.tls.key", "a key that does not match it")])
    key.write_text("garbage\n")
    assert_issues(path, issues_of(path), [(12, 1, "mqtt.tls.key", "expected a PEM private key")])
    (tmp_path / "secrets" / "client.pem").write_text("")
    issues = issues_of(path)
    assert [(i.key, "an empty file" in i.message) for i in issues if i.key == "mqtt.tls.cert"] == [("mqtt.tls.cert", True)]


def test_check_config_cli_refuses_a_garbage_ca_with_file_line_and_key(tmp_path: Path) -> None:
    path = write_secrets(tmp_path, {"ca.pem": 0o644, "client.pem": 0o644})
    (tmp_path / "secrets" / "ca.pem").write_text("garbage\n")
    proc = subprocess.run([sys.executable, "-m", "hub.cli", "check-config", str(path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert f"{path}:10:1: mqtt.tls.ca: expected PEM CA certificate(s)" in proc.stderr


def test_private_secret_files_pass(tmp_path: Path) -> None:
    # the CA and the client certificate are public: 0644 is fine for them
    path = write_secrets(tmp_path, {"ca.pem": 0o644, "client.pem": 0o644})
    loaded = load(path)
    assert cfg.secret_text(loaded, loaded.config.mqtt.password_file or "") == "x"


@pytest.mark.parametrize(
    ("secret", "mode", "line", "key"),
    [
        ("mqtt.pw", 0o644, 7, "mqtt.password_file"),
        ("mqtt.pw", 0o640, 7, "mqtt.password_file"),
        ("client.key", 0o644, 12, "mqtt.tls.key"),
        ("client.key", 0o604, 12, "mqtt.tls.key"),
    ],
    ids=["password_file-0644", "password_file-0640", "tls-key-0644", "tls-key-0604"],
)
def test_readable_secret_file_is_refused(tmp_path: Path, secret: str, mode: int, line: int, key: str) -> None:
    path = write_secrets(tmp_path, {secret: mode})
    fragment = f"expected a file only its owner can read (chmod 600), found 'secrets/{secret}' with mode {mode:04o}"
    assert_issues(path, issues_of(path), [(line, 1, key, fragment)])


def test_secret_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    path = write_secrets(tmp_path, {})
    (tmp_path / "secrets" / "mqtt.pw").unlink()
    (tmp_path / "secrets" / "mqtt.pw").mkdir()
    assert_issues(path, issues_of(path), [(7, 1, "mqtt.password_file", "expected a regular file")])


# --------------------------------------------------------------------------- unreadable files


def test_unreadable_files_raise_config_unreadable(tmp_path: Path) -> None:
    bad_utf8 = tmp_path / "latin1.toml"
    bad_utf8.write_bytes('[hub]\nid = "h1"\nresident = "Bjørn"\n'.encode("latin-1"))
    for path in (tmp_path / "missing.toml", tmp_path, bad_utf8):
        with pytest.raises(ConfigUnreadable, match="cannot read"):
            load(path)


# --------------------------------------------------------------------------- the CLI


def check_config(path: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "check-config", str(path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def test_cli_valid_exits_0() -> None:
    path = ROOT / "config" / "examples" / "minimal.toml"
    proc = check_config(path)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
    assert proc.stderr == ""


@pytest.mark.parametrize("name", ["four_errors.toml", "bad/syntax_unclosed_string.toml", "bad/third_device_error.toml"])
def test_cli_invalid_exits_1_with_file_line_col(name: str) -> None:
    path = CONFIGS / name
    proc = check_config(path)
    assert proc.returncode == 1, proc.stderr
    issue_lines = [ln for ln in proc.stderr.splitlines() if re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", ln)]
    expected = expectations(path)
    assert len(issue_lines) == len(expected), proc.stderr
    for got, (line, col, key, fragment) in zip(issue_lines, expected):
        assert got.startswith(f"{path}:{line}:{col}: {key}: "), proc.stderr
        assert fragment in got
    n = len(expected)
    assert f"{n} error{'s' if n != 1 else ''}; the hub would refuse to start" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("kind", ["missing", "directory", "not-utf8"])
def test_cli_unreadable_exits_2(tmp_path: Path, kind: str) -> None:
    if kind == "missing":
        path = tmp_path / "nowhere.toml"
    elif kind == "directory":
        path = tmp_path
    else:
        path = tmp_path / "latin1.toml"
        path.write_bytes(b'[hub]\nid = "h1"\nresident = "Bj\xf8rn"\n')
    proc = check_config(path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {path}: cannot read"), proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- the JSON Schema


def test_schema_is_up_to_date() -> None:
    committed = ROOT / "config" / "schema.json"
    generated = cfg.schema_text()
    assert committed.exists(), "config/schema.json is missing: run `python -m hub.config --write-schema`"
    assert committed.read_text() == generated, (
        "config/schema.json differs from what hub/config/ generates: "
        "run `python -m hub.config --write-schema` and commit the result"
    )


def test_schema_shape() -> None:
    schema = cfg.config_schema()
    assert schema["title"] == "carehub residence config"
    assert schema["description"]
    assert schema["$ref"] == "#/$defs/Config"
    top = schema["$defs"]["Config"]
    assert top["additionalProperties"] is False
    assert set(top["required"]) == {"hub", "mqtt", "store"}
    assert "device" in top["properties"]
    assert cfg.schema_text().endswith("}\n")


def test_write_schema_command(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    proc = subprocess.run(
        [sys.executable, "-m", "hub.config", "--write-schema", str(out)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == cfg.schema_text()
