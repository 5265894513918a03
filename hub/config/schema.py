"""The residence config's JSON Schema (``config/schema.json``), for editors and reviewers.

Generated from :class:`~hub.config.Config`, the drivers' tables included, by
``python -m hub.config --write-schema``; a test checks the committed file is current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from hub.config.model import Config
from hub.schematext import clean_descriptions

__all__ = ["SCHEMA_PATH", "config_schema", "main", "schema_text"]

#: Where ``python -m hub.config --write-schema`` writes the schema (committed; a test checks it).
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schema.json"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of the residence config (as decoded from TOML), for editors and reviewers.

    Descriptions come from the structs' docstrings, cleaned by :func:`hub.schematext.clean_descriptions`
    so that the committed file does not change with how a msgspec release trims them.
    """
    schema = msgspec.json.schema(Config)
    return clean_descriptions({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "carehub residence config",
        "description": (
            "One TOML file per hub, checked with `carehub check-config FILE`. Unknown keys are refused; "
            "relative paths are relative to the config file's directory. "
            "Generated from hub/config/ and the drivers' config modules by "
            "`python -m hub.config --write-schema`: do not edit."
        ),
        **schema,
    })


def schema_text() -> str:
    """:func:`config_schema` as written to ``config/schema.json``: pretty, sorted keys, trailing newline."""
    return json.dumps(config_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m hub.config``: write the schema (``--write-schema [PATH]``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hub.config", description="Residence config tools.")
    parser.add_argument(
        "--write-schema", nargs="?", const=str(SCHEMA_PATH), metavar="PATH",
        help=f"write the config JSON Schema (default {SCHEMA_PATH})",
    )
    args = parser.parse_args(argv)
    if args.write_schema is None:
        parser.print_help()
        return 2
    out = Path(args.write_schema)
    out.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {out}")
    return 0
