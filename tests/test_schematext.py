"""Generated schemas do not depend on how a msgspec release (or Python) trims docstrings."""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

import msgspec
import pytest

from hub.schematext import clean_description, clean_descriptions

ROOT = Path(__file__).resolve().parent.parent


class Documented(msgspec.Struct):
    """``[thing]``: the first line.

    The second paragraph, indented in the source
    as every docstring is.

        An indented example stays indented by the difference.
    """

    size: int = 1


def _msgspec_022(doc: str) -> str:
    """How msgspec 0.22 turned a docstring into a description (keeps the indentation)."""
    return textwrap.dedent(doc).strip("\r\n")


def _msgspec_023(doc: str) -> str:
    """How msgspec 0.23 does it (and Python 3.13 for the docstring itself): no indentation."""
    return inspect.cleandoc(doc)


def test_an_indented_and_a_dedented_docstring_give_the_same_description() -> None:
    doc = Documented.__doc__
    assert doc is not None
    indented, dedented = _msgspec_022(doc), _msgspec_023(doc)
    assert indented != dedented  # the difference that made a fresh install fail the contract test
    assert clean_description(indented) == clean_description(dedented) == (
        "``[thing]``: the first line.\n"
        "\n"
        "The second paragraph, indented in the source\n"
        "as every docstring is.\n"
        "\n"
        "    An indented example stays indented by the difference."
    )


def test_whitespace_only_lines_and_trailing_spaces_do_not_count() -> None:
    a = "First line.  \n    \n    Second,\n        \n    third."
    b = "First line.\n\nSecond,\n\nthird.\n"
    assert clean_description(a) == clean_description(b) == "First line.\n\nSecond,\n\nthird."


def test_the_installed_msgspec_description_is_cleaned_to_the_same_text() -> None:
    doc = Documented.__doc__
    assert doc is not None
    schema = clean_descriptions(msgspec.json.schema(Documented))
    assert schema["$defs"]["Documented"]["description"] == clean_description(_msgspec_022(doc))


def test_every_description_at_any_depth_and_nothing_else() -> None:
    schema = {
        "description": "Top.\n    Indented.",
        "title": "  kept  as\n    it is",
        "properties": {
            # A property called "description" is a schema, not prose: searched, not cleaned.
            "description": {"type": "string", "description": "\n    The note.\n    "},
            "items": {"anyOf": [{"description": "A.\n    B."}, {"type": "null"}]},
        },
        "examples": [" x "],
    }
    assert clean_descriptions(schema) == {
        "description": "Top.\nIndented.",
        "title": "  kept  as\n    it is",
        "properties": {
            "description": {"type": "string", "description": "The note."},
            "items": {"anyOf": [{"description": "A.\nB."}, {"type": "null"}]},
        },
        "examples": [" x "],
    }
    assert schema["description"] == "Top.\n    Indented."  # the input is not changed


def _descriptions(node: object) -> list[str]:
    """Every string ``"description"`` in a JSON document, at any depth."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                found.append(value)
            else:
                found += _descriptions(value)
    elif isinstance(node, list):
        for item in node:
            found += _descriptions(item)
    return found


@pytest.mark.parametrize("path", ["contract/asyncapi.json", "contract/event.schema.json", "config/schema.json"])
def test_committed_documents_carry_only_clean_descriptions(path: str) -> None:
    descriptions = _descriptions(json.loads((ROOT / path).read_text()))
    assert descriptions
    unclean = [d for d in descriptions if clean_description(d) != d]
    assert not unclean, f"{path}: descriptions with docstring indentation (regenerate): {unclean[:3]}"
