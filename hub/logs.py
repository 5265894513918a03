"""Logging: structlog, one event per line with key=value fields.

JSON lines when stderr is not a terminal (journald, CI, the rig parses them),
coloured key=value on a terminal. ``log.info("alarm_published", seq=12)``,
never a formatted sentence.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog.tracebacks

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Set up structlog for the process. ``fmt`` is ``auto``, ``json`` or ``console``."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        # msgspec renders straight to bytes: a line per event costs little even in a telemetry burst
        processors += [
            # tracebacks as data, without local variables (they could hold a resident's readings)
            structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False)),
            structlog.processors.JSONRenderer(serializer=_encode_json),
        ]
        factory: Any = structlog.BytesLoggerFactory(sys.stderr.buffer)
    else:
        processors += [structlog.dev.ConsoleRenderer()]
        factory = structlog.PrintLoggerFactory(sys.stderr)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )


def _encode_json(obj: Any, **_: Any) -> bytes:
    return _encoder.encode(obj)


_encoder = msgspec.json.Encoder(enc_hook=str)
