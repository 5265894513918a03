"""The committed AsyncAPI document, checked by the official AsyncAPI parser (contract/check, node).

``scripts/setup.sh`` installs the parser from ``contract/check/package-lock.json``
(``npm ci``) when npm is on the machine. The test skips only when node is not;
node without the installed parser is a failure that says how to install it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hub import contract

CHECK = contract.CONTRACT_DIR / "check"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: the AsyncAPI parser cannot run")


def check(path: Path) -> subprocess.CompletedProcess[str]:
    if not (CHECK / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail(f"the AsyncAPI parser is not installed: run scripts/setup.sh (npm ci in {CHECK})")
    assert NODE is not None
    return subprocess.run([NODE, str(CHECK / "check.mjs"), str(path)], capture_output=True, text=True, timeout=120)


def test_the_official_parser_finds_the_committed_document_valid():
    done = check(contract.CONTRACT_DIR / "asyncapi.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid: AsyncAPI 3." in done.stdout
    assert "error:" not in done.stdout


def test_the_parser_rejects_a_broken_document(tmp_path):
    doc = json.loads((contract.CONTRACT_DIR / "asyncapi.json").read_text())
    doc["operations"]["publishEvent"]["bindings"]["mqtt"]["qos"] = 3
    doc["channels"]["status"]["messages"]["Status"] = {"$ref": "#/components/messages/NoSuchMessage"}
    broken = tmp_path / "asyncapi.json"
    broken.write_text(json.dumps(doc))
    done = check(broken)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "operations/publishEvent/bindings/mqtt/qos" in done.stdout
    assert "NoSuchMessage" in done.stdout
