"""Central instances for the tests: ``carehub central`` subprocesses on the test broker.

``make_central(name="c1", db=..., auto_ack=..., config=FAST)`` makes (and starts) one; every
one is stopped after the test, its log shown when the test failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hil.harness.centralproc import CentralProcess
from hil.harness.mosquitto import Mosquitto

#: Short timings, so gaps are asked for and hubs go silent within a test's patience.
FAST = """
[central]
reorder_timeout_s = 0.5
replay_timeout_s = 5
ack_timeout_s = 5
poll_s = 0.1
"""


@pytest.fixture
def make_central(tmp_path: Path, broker: Mosquitto, request: pytest.FixtureRequest
                 ) -> Iterator[Callable[..., CentralProcess]]:
    """Make and start central instances on the test broker; stopped after the test."""
    made: list[CentralProcess] = []

    def make(name: str = "c1", *, start: bool = True, config: str | None = FAST, port: int | None = None,
             **kw: Any) -> CentralProcess:
        c = CentralProcess(tmp_path / f"central-{name}", port=port or broker.port, instance=name, config=config, **kw)
        made.append(c)
        return c.start() if start else c

    yield make
    failed = request.node.rep_call.failed if hasattr(request.node, "rep_call") else False
    for c in made:
        if failed:
            print(f"--- central log {c.instance} ---\n{c.tail(60)}")
        try:
            c.stop()
        except AssertionError:
            c.kill()


async def next_change(feed: Any, predicate: Callable[[Any], bool], timeout: float) -> Any:
    """The first change from a central's change feed (``central.view``) that ``predicate`` accepts,
    within ``timeout`` seconds (TimeoutError), or AssertionError if the feed ends first."""
    async with asyncio.timeout(timeout):
        async for change in feed:
            if predicate(change):
                return change
    raise AssertionError("the feed ended")
