"""The shape of the tree, as a newcomer relies on it: one seam between the hub and its drivers.

* no import cycle among the hub's and the drivers' modules at load time
  (imports inside functions, for lazy backends, do not count);
* drivers reach the hub only through the seam: they import ``drivers.*`` and
  the event contract ``hub.events``, nothing else of the hub;
* the daemon names no driver: its modules import only the seam
  (``drivers.base``, ``drivers.helpers``, ``drivers.registry``, ``drivers.simctl``),
  never a driver package;
* the hub never imports the central (``carehub central`` in ``hub.cli`` and the demo load it
  lazily, inside a function); the central may use the hub's contract and link, never the test rig;
* no module over 400 lines, but data tables.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hub", "drivers", "hil", "central")
#: The seam: what the daemon may import of drivers/.
SEAM = {"drivers", "drivers.base", "drivers.helpers", "drivers.registry", "drivers.simctl"}
#: The installer's command-line tools reach drivers directly (a BLE scan, a serial emulator); not the daemon.
TOOLS = {"hub.cli", "hub.scan", "hub.demo", "hub.simcli.advert"}
#: Modules allowed past 400 lines: data tables only.
DATA_TABLES: set[str] = set()
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path, module: str, *, top_level_only: bool) -> set[str]:
    """Modules ``module`` imports (absolute names); top level only: not in functions or TYPE_CHECKING."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                continue
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and top_level_only:
                continue
            elif isinstance(node, (ast.ClassDef, ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []) or []:
                        visit([child] if isinstance(child, ast.stmt) else child.body)
            elif not top_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(node.body)

    visit(tree.body)
    return found


def graph(*, top_level_only: bool) -> dict[str, set[str]]:
    """Module-level import edges. A module's own ancestor packages are left out: Python initialises a
    package before any of its modules (``from pkg import sibling`` inside ``pkg`` is not a cycle)."""
    mods = modules()
    out = {}
    for m, p in mods.items():
        ancestors = {".".join(m.split(".")[:k]) for k in range(1, m.count(".") + 1)}
        out[m] = {i for i in imports(p, m, top_level_only=top_level_only) if i in mods} - {m} - ancestors
    return out


def test_no_import_cycle_at_load_time() -> None:
    g = graph(top_level_only=True)
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                dfs(n)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            dfs(m)


def test_drivers_reach_the_hub_only_through_the_event_contract() -> None:
    wrong = {}
    for m, path in modules().items():
        if not m.startswith("drivers"):
            continue
        bad = sorted(i for i in imports(path, m, top_level_only=False) if i.startswith("hub") and i != "hub.events"
                     and not i.startswith("hub.events."))
        if bad:
            wrong[m] = bad
    assert not wrong, f"drivers importing hub internals: {wrong}"


def test_the_daemon_names_no_driver() -> None:
    wrong = {}
    for m, path in modules().items():
        if not m.startswith("hub") or m in TOOLS:
            continue
        bad = sorted(
            i for i in imports(path, m, top_level_only=False)
            if i.startswith("drivers.") and i not in SEAM and i.rpartition(".")[0] not in SEAM
        )
        if bad:
            wrong[m] = bad
    assert not wrong, f"hub modules naming a driver (use drivers.registry and the port): {wrong}"


def test_the_hub_never_imports_the_central_nor_the_central_the_rig() -> None:
    wrong = {}
    for m, path in modules().items():
        lazy_ok = m == "hub.cli" or m == "hub.demo" or m.startswith("hub.demo.")  # the command line, the demo
        found = imports(path, m, top_level_only=lazy_ok)
        if m.startswith(("hub", "drivers")):
            bad = sorted(i for i in found if i == "central" or i.startswith("central."))
        elif m.startswith("central"):
            bad = sorted(i for i in found if i == "hil" or i.startswith("hil."))
        else:
            continue
        if bad:
            wrong[m] = bad
    assert not wrong, f"imports across the central's boundary: {wrong}"


def test_no_module_over_400_lines_but_data_tables() -> None:
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES
            and m not in DATA_TABLES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
