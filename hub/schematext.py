"""One whitespace rule for the prose in generated JSON Schemas.

msgspec turns a struct's docstring into its schema's ``description``, and how it
trims the indentation changed between releases (0.22 kept the docstring's
indentation after the first line, 0.23 removes it); Python 3.13 strips docstrings
itself. The committed contract and config schema must not change with either, so
every ``description`` goes through :func:`clean_description` after msgspec built
the schema.
"""

from __future__ import annotations

import inspect
from typing import Any


def clean_description(text: str) -> str:
    """Text without its docstring indentation: :func:`inspect.cleandoc`, then no trailing spaces.

    The first line loses its leading whitespace, the others their common indentation (lines
    indented further keep the difference), blank lines at either end go, and so does the
    whitespace at the end of every line (some tools turn indented blank lines into empty ones).
    """
    return "\n".join(line.rstrip() for line in inspect.cleandoc(text).split("\n"))


def clean_descriptions(node: Any) -> Any:
    """``node`` with :func:`clean_description` applied to every string ``"description"``, at any depth.

    A ``"description"`` whose value is not a string (a property of that name) is left as it is,
    and searched like any other value. Returns new dicts and lists; ``node`` is not changed.
    """
    if isinstance(node, dict):
        return {
            key: clean_description(value) if key == "description" and isinstance(value, str) else clean_descriptions(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [clean_descriptions(item) for item in node]
    return node
