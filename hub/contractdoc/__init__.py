"""The published contract with the alarm central, generated from the code.

* ``contract/event.schema.json``: the JSON Schema (2020-12) of one event, each
  known type's data checked (:mod:`hub.contractdoc.schemas`);
* ``contract/asyncapi.json``: the AsyncAPI 3 document of every topic, with the
  servers, security schemes, each event type's message, the status, heartbeat
  and reply documents and their examples (:mod:`hub.contractdoc.asyncapi`);
* ``contract/examples/``: every example as a file (:mod:`hub.contractdoc.examples`), an event batch's
  (``event-batch.json``, the ``events`` topic of contract 1.5) among them.

All are committed; ``python -m hub.contract --write`` regenerates them and a
test fails when they drift from the code. Every ``description`` is cleaned by
:func:`hub.schematext.clean_descriptions`, so the documents do not change with
how a msgspec release trims docstrings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from hub.contractdoc import examples
from hub.contractdoc.asyncapi import asyncapi as _asyncapi
from hub.contractdoc.schemas import event_schema as _event_schema
from hub.schematext import clean_descriptions

CONTRACT_DIR = Path(__file__).resolve().parents[2] / "contract"
#: Where the example files go, under CONTRACT_DIR.
EXAMPLES = "examples"


def event_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of one event, descriptions cleaned."""
    return clean_descriptions(_event_schema())


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the hub's topics, descriptions cleaned."""
    return clean_descriptions(_asyncapi())


def render(doc: Any) -> str:
    """Stable text form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def example_files() -> dict[str, Any]:
    """Path under ``contract/`` -> example document."""
    out: dict[str, Any] = {f"{EXAMPLES}/events/{t}.json": e for t, e in examples.by_type().items()}
    out[f"{EXAMPLES}/status-online.json"] = msgspec.to_builtins(examples.STATUS_ONLINE)
    out[f"{EXAMPLES}/status-offline.json"] = msgspec.to_builtins(examples.STATUS_LOST)
    out[f"{EXAMPLES}/heartbeat.json"] = msgspec.to_builtins(examples.HEARTBEAT)
    out[f"{EXAMPLES}/event-batch.json"] = examples.batch()
    for name, cases in examples.COMMANDS.items():
        request, reply = cases[0][1], cases[0][2]
        out[f"{EXAMPLES}/cmd-{name}.json"] = request
        out[f"{EXAMPLES}/reply-{name}.json"] = msgspec.to_builtins(reply)
    return out


def documents() -> dict[str, str]:
    """Path under ``contract/`` -> content of every generated contract document."""
    out = {"event.schema.json": render(event_schema()), "asyncapi.json": render(asyncapi())}
    out.update({path: render(doc) for path, doc in example_files().items()})
    return out


def stale_files(generated: dict[str, str]) -> list[str]:
    """Example files under ``contract/examples/`` that the code no longer makes."""
    root = CONTRACT_DIR / EXAMPLES
    have = {p.relative_to(CONTRACT_DIR).as_posix() for p in root.rglob("*.json")} if root.exists() else set()
    return sorted(have - set(generated))
