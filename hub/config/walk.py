"""The config's struct walker: :func:`hub.structwalk.check_value` in an installer's words.

The walking itself is generic (:mod:`hub.structwalk`, which the test rig's
loader uses too); here are only the config's own words: what its patterns
mean (:data:`hub.config.sections.PATTERN_HELP`) and that ``int | str`` is a pin.
"""

from __future__ import annotations

from typing import Any

from hub.config.sections import PATTERN_HELP
from hub.structwalk import Report, Vocabulary, describe
from hub.structwalk import check_value as _walk
from hub.tomlpos import Path

__all__ = ["CONFIG_WORDS", "check_value", "describe"]

#: The residence config's words for its patterns and types.
CONFIG_WORDS = Vocabulary(
    patterns=PATTERN_HELP,
    types={"`int | str`": "a pin number or name"},
)


def check_value(value: Any, tp: Any, path: Path, report: Report) -> None:
    """Check ``value`` against the config type ``tp``, reporting every problem (not just the first)."""
    _walk(value, tp, path, report, CONFIG_WORDS)
