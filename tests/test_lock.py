"""The environment the tests run in is the one constraints.txt (the lock) describes.

A long-lived venv once kept an older msgspec and hid that a fresh machine, which
resolves a newer one, fails the contract tests. These tests fail instead, naming
the package and both versions.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest

from tests.support import lock


def test_every_pinned_distribution_is_installed_at_its_pinned_version() -> None:
    problems = lock.mismatches(lock.read_lock())
    assert not problems, (
        "this environment differs from constraints.txt (run `bash scripts/setup.sh`, "
        "or `pip install -c constraints.txt -e '.[test]'`):\n  " + "\n  ".join(problems)
    )


def test_lock_pins_everything_carehub_and_its_tests_need() -> None:
    pins = lock.read_lock()
    unpinned = {name: by for name, by in lock.required().items() if name not in pins and name not in lock.TOOLING}
    assert not unpinned, (
        "installed and needed, but not pinned in constraints.txt (run `bash scripts/lock.sh`):\n  "
        + "\n  ".join(f"{name} (required by {by})" for name, by in sorted(unpinned.items()))
    )


def test_lock_pins_neither_the_project_nor_pip() -> None:
    pins = lock.read_lock()
    assert "carehub" not in pins and "pip" not in pins
    assert "msgspec" in pins  # the one whose version changes the committed contract


def test_a_wrong_version_is_named_with_both_versions(tmp_path: Path) -> None:
    installed = md.version("msgspec")
    path = tmp_path / "constraints.txt"
    path.write_text(f"# comment\n\nmsgspec==0.0.1\nPyYAML-not-installed-here==1.0\nPytest=={md.version('pytest')}\n")
    assert lock.mismatches(lock.read_lock(path)) == [
        "PyYAML-not-installed-here: the lock pins 1.0, but it is not installed",
        f"msgspec: the lock pins 0.0.1, installed is {installed}",
    ]


@pytest.mark.parametrize("line", ["msgspec>=0.18", "msgspec", "-e .", "msgspec==0.23.0 --hash=sha256:00"])
def test_a_line_that_does_not_pin_exactly_is_refused(tmp_path: Path, line: str) -> None:
    path = tmp_path / "constraints.txt"
    path.write_text(f"pytest==9.2.0\n{line}\n")
    with pytest.raises(ValueError, match=r"constraints\.txt:2: not a `name==version` pin"):
        lock.read_lock(path)


def test_names_compare_in_canonical_form() -> None:
    assert lock.canonical("PyRIC") == lock.canonical("pyric")
    assert lock.canonical("typing_extensions") == lock.canonical("typing-extensions")
    assert lock.canonical("zope.interface") == "zope-interface"
