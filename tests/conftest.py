"""Shared fixtures: a private Mosquitto per test, subscribers, and the hub as a subprocess."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from hil.harness.broker import Mosquitto, Subscriber
from hil.harness.emulators import EmulatedDevice
from hil.harness.hubproc import HubProcess, hub_config
from tests.support import alone, shown

# No time limit per hypothesis example (its default is 200 ms): on two busy cores an example's time
# says nothing about the code (a bed-mat parser's example took 254 ms once, 2 ms when tried again).
# A test that means a limit says so in its own @settings.
settings.register_profile("carehub", deadline=None)
settings.load_profile("carehub")


@pytest.fixture
def broker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """A real Mosquitto on a free port, with persistence, stopped after the test."""
    b = Mosquitto(workdir=tmp_path / "broker")
    b.start()
    yield b
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print("--- broker log ---\n" + b.log_tail(60))
    b.stop()


@pytest.fixture
def subscribe(broker: Mosquitto) -> Iterator[Callable[..., Subscriber]]:
    """Make subscribers on the test broker; closed after the test."""
    subs: list[Subscriber] = []

    def make(topics: list[str] | None = None, **kw: Any) -> Subscriber:
        kw.setdefault("port", broker.port)
        s = Subscriber(topics=topics or ["carehub/#"], **kw)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


@pytest.fixture
def make_hub(tmp_path: Path, broker: Mosquitto, request: pytest.FixtureRequest) -> Iterator[Callable[..., HubProcess]]:
    """Make (not start) hub processes on the test broker; stopped after the test, log shown on failure."""
    hubs: list[HubProcess] = []

    def make(*, name: str = "hub", env: dict[str, str] | None = None, **cfg: Any) -> HubProcess:
        cfg.setdefault("port", broker.port)
        path = hub_config(tmp_path / name, **cfg)
        h = HubProcess(path, env=env)
        hubs.append(h)
        return h

    yield make
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for h in hubs:
        if failed:
            print(f"--- hub log {h.config} ---\n{h.tail(80)}")
        try:
            h.stop()
        except AssertionError:
            pass


@pytest.fixture
def emulate(tmp_path: Path) -> Iterator[Callable[[str, str], EmulatedDevice]]:
    made: list[EmulatedDevice] = []

    def make(protocol: str, name: str) -> EmulatedDevice:
        d = EmulatedDevice(protocol, tmp_path, name).start()
        made.append(d)
        return d

    yield make
    for d in made:
        d.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", alone.DESCRIPTION)


#: Short tests between the alone tests and the slow ones: what the other workers take first (xdist hands each
#: worker two tests to start with), so the first alone test waits for short tests only, not for a slow one.
SHORT_FIRST = 8


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order the workers take the tests in (scripts/test.sh hands out one at a time: ``--dist load
    --maxschedchunk 1``): the ``alone`` tests first (those that use ``alone_done`` last among them), then a
    few short ones, then those marked ``slow``, then the rest; each group in file order.

    An alone test that comes later waits for its neighbours' tests to end, the idle workers with it (a slow
    one takes minutes); one that ends its quiet part early goes last, so the other alone tests need not wait
    for the rest of it. The slow tests start early, beside the many short ones, rather than last with the
    other workers idle."""
    def group(item: pytest.Item) -> int:
        if item.get_closest_marker(alone.MARKER):
            return 1 if "alone_done" in getattr(item, "fixturenames", ()) else 0
        return 3 if item.get_closest_marker("slow") else 4

    items.sort(key=group)
    alone_tests = [item for item in items if group(item) < 3]
    slow = [item for item in items if group(item) == 3]
    short = [item for item in items if group(item) == 4]
    items[:] = alone_tests + short[:SHORT_FIRST] + slow + short[SHORT_FIRST:]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Under xdist, an ``alone`` test runs while no other test does (tests/support/alone.py)."""
    shared = alone.run_dir(item.config)
    if shared is None:
        item.stash[alone.HELD] = alone.Held()
        return (yield)
    with alone.RunLock(shared).hold(alone=item.get_closest_marker(alone.MARKER) is not None) as held:
        item.stash[alone.HELD] = held
        return (yield)


@pytest.fixture
def alone_done(request: pytest.FixtureRequest) -> Callable[[], None]:
    """For an ``alone`` test: call it when the part that needs the machine to itself is over; ordinary
    tests may run beside the rest of it (tests/support/alone.py)."""
    return request.node.stash[alone.HELD].share


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What passed tests asked to show (tests/support/shown.py)."""
    shown.write_summary(terminalreporter)
