"""The lock (constraints.txt) against the environment this Python runs in.

tests/test_lock.py checks that the environment matches the lock. scripts/setup.sh
installs again when ``python tests/support/lock.py --check`` fails, then runs
``python tests/support/lock.py --leftovers`` and uninstalls what it prints. Stdlib and ``packaging`` only (``packaging``
is in the lock, as pytest needs it).
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
import sysconfig
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LOCK_PATH = ROOT / "constraints.txt"
PYPROJECT_PATH = ROOT / "pyproject.toml"
#: The project itself and the installer, never pinned by scripts/lock.sh (wheel: a build tool).
TOOLING = frozenset({"pip", "wheel", "carehub"})

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def canonical(name: str) -> str:
    """A distribution name in PEP 503 form (``PyRIC`` and ``pyric``, ``a_b`` and ``a-b`` agree)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK_PATH) -> dict[str, tuple[str, str]]:
    """Canonical name → (name as written, pinned version) of every ``name==version`` line.

    Raises ValueError naming the line for anything else that is not a comment: a lock pins exactly.
    """
    pins: dict[str, tuple[str, str]] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        if m is None:
            raise ValueError(f"{path.name}:{lineno}: not a `name==version` pin: {line!r}")
        pins[canonical(m[1])] = (m[1], m[2])
    return pins


def mismatches(pins: dict[str, tuple[str, str]]) -> list[str]:
    """One message per pinned distribution that is missing or installed at another version."""
    problems = []
    for name, version in sorted(pins.values()):
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            problems.append(f"{name}: the lock pins {version}, but it is not installed")
            continue
        if installed != version:
            problems.append(f"{name}: the lock pins {version}, installed is {installed}")
    return problems


def _project_requirements(path: Path = PYPROJECT_PATH) -> list[Requirement]:
    with path.open("rb") as f:
        project = tomllib.load(f)["project"]
    extras = project["optional-dependencies"].values()
    return [Requirement(r) for r in project["dependencies"] + [r for reqs in extras for r in reqs]]


def _applies(req: Requirement, extras: set[str]) -> bool:
    """Whether ``req`` holds on this interpreter when its parent was asked for with ``extras``."""
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def required() -> dict[str, str]:
    """Canonical name → who requires it, for every installed distribution ``carehub[test]`` needs.

    Walks pyproject.toml's requirements, then each installed distribution's own (with the
    extras asked for), evaluating markers for this interpreter. A requirement that is not
    installed is skipped (mismatches() reports the pinned ones).
    """
    need: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(r, "pyproject.toml") for r in _project_requirements() if _applies(r, set())]
    while todo:
        req, by = todo.pop()
        key = (canonical(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue
        need.setdefault(key[0], by)
        for sub in map(Requirement, dist.requires or []):
            if _applies(sub, set(req.extras)):
                todo.append((sub, dist.metadata["Name"]))
    return need


def leftovers(pins: dict[str, tuple[str, str]]) -> list[str]:
    """Distributions in this venv's site-packages that neither the lock nor carehub[bench,central,test] needs.

    What an earlier lock installed and the current one dropped; scripts/setup.sh uninstalls them.
    """
    paths = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    need = required()
    names = {dist.metadata["Name"] for dist in md.distributions(path=paths) if dist.metadata["Name"]}
    return sorted(
        n for n in names if canonical(n) not in pins and canonical(n) not in need and canonical(n) not in TOOLING
    )


def main(argv: list[str]) -> int:
    """``--check``: print what differs from the lock, exit 1 if anything does.
    ``--leftovers``: print the distributions to uninstall, one a line."""
    if argv == ["--check"]:
        problems = mismatches(read_lock())
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    if argv == ["--leftovers"]:
        for name in leftovers(read_lock()):
            print(name)
        return 0
    print("usage: python tests/support/lock.py --check | --leftovers", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
