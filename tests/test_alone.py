"""The suite runs on two xdist workers; a test marked ``alone`` still runs with no other test beside it.

A small suite in a temporary directory, using this suite's conftest hooks, runs on two workers as
scripts/test.sh runs the suite (``--dist load --maxschedchunk 1``, the alone tests first): each test
notes when it ran and on which worker. The ordinary tests do run side by side (so the
check below can fail), and none of them overlaps the alone one; another alone one says when its
quiet part is over (``alone_done``), and ordinary tests run beside the rest of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SUITE = """
import os, time, pytest

def note(name, seconds):
    t0 = time.monotonic(); time.sleep(seconds); t1 = time.monotonic()
    with open(os.environ["ALONE_LOG"], "a") as f:
        f.write(f"{name} {t0} {t1} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.mark.parametrize("i", range(6))
def test_before(i): note(f"before{i}", 0.2)

@pytest.mark.alone
def test_alone(): note("ALONE", 0.6)

@pytest.mark.alone
def test_quiet_then_shared(alone_done):
    note("QUIET", 0.6)
    alone_done()
    t0 = time.monotonic()  # now the other worker's tests run beside this one: wait (20 s at most) for one to end
    while time.monotonic() < t0 + 20 and not [l for l in open(os.environ["ALONE_LOG"]) if float(l.split()[1]) > t0]:
        time.sleep(0.05)
    note("SHARED", 0.2)

@pytest.mark.parametrize("i", range(6))
def test_after(i): note(f"after{i}", 0.2)
"""


@pytest.mark.slow
def test_an_alone_test_shares_the_machine_with_no_other(tmp_path: Path) -> None:
    suite, log = tmp_path / "suite", tmp_path / "log"
    suite.mkdir()
    (suite / "test_timeline.py").write_text(SUITE)
    hooks = "from tests.conftest import alone_done, pytest_collection_modifyitems, pytest_configure, pytest_runtest_protocol  # noqa: F401\n"
    (suite / "conftest.py").write_text(hooks)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "load", "--maxschedchunk", "1", "-c", os.devnull,
         "--rootdir", str(suite), "--basetemp", str(tmp_path / "tmp"), str(suite)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "ALONE_LOG": str(log)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = map(str.split, log.read_text().splitlines())
    rows = [(name, float(t0), float(t1), worker) for name, t0, t1, worker in lines]
    assert len(rows) == 15
    (alone,) = [r for r in rows if r[0] == "ALONE"]
    (quiet,) = [r for r in rows if r[0] == "QUIET"]
    (shared,) = [r for r in rows if r[0] == "SHARED"]
    others = [r for r in rows if r[0] not in ("ALONE", "QUIET", "SHARED")]
    assert {r[3] for r in rows} == {"gw0", "gw1"}
    side_by_side = [(a[0], b[0]) for a in others for b in others if a[3] < b[3] and a[1] < b[2] and b[1] < a[2]]
    assert side_by_side, "the ordinary tests never ran at the same time: this check would prove nothing"
    assert not [r[0] for r in others if r[1] < alone[2] and alone[1] < r[2]], "a test ran beside the alone one"
    assert not [r[0] for r in others if r[1] < quiet[2] and quiet[1] < r[2]], "a test ran beside an alone one's quiet part"
    assert [r[0] for r in others if quiet[2] < r[1] and r[2] < shared[1]], "after alone_done() no test ran beside it"
