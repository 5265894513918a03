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
#: The least level logged now; :func:`set_level` changes it for every logger, cached or not (a config reload).
_threshold = [logging.INFO]

_Base: Any = structlog.make_filtering_bound_logger(logging.DEBUG)


class _LevelLogger(_Base):  # type: ignore[misc, valid-type]
    """structlog's filtering logger whose level is :data:`_threshold`, read at every call.

    structlog caches a logger on first use with the level it was made with;
    this one asks the threshold each time (one comparison), so a reload's
    ``[log] level`` reaches the loggers already in use. Error and critical
    always pass (no configurable level is above them).
    """

    def debug(self, event: str, *args: Any, **kw: Any) -> Any:
        if _threshold[0] > logging.DEBUG:
            return None
        return super().debug(event, *args, **kw)

    def info(self, event: str, *args: Any, **kw: Any) -> Any:
        if _threshold[0] > logging.INFO:
            return None
        return super().info(event, *args, **kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> Any:
        if _threshold[0] > logging.WARNING:
            return None
        return super().warning(event, *args, **kw)

    msg = info
    warn = warning

    def is_enabled_for(self, level: int) -> bool:
        return level >= _threshold[0]

    def get_effective_level(self) -> int:
        return _threshold[0]


def set_level(level: str) -> None:
    """Change the least level logged, for every logger of the process (``[log] level`` on a reload)."""
    _threshold[0] = _LEVELS[level]


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Set up structlog for the process. ``fmt`` is ``auto``, ``json`` or ``console``."""
    set_level(level)
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
        factory: Any = structlog.BytesLoggerFactory(_Stderr(binary=True))
    else:
        processors += [structlog.dev.ConsoleRenderer()]
        factory = structlog.PrintLoggerFactory(_Stderr(binary=False))
    structlog.configure(
        processors=processors,
        wrapper_class=_LevelLogger,
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: loggers are
    cached on first use, and one that kept a stream replaced since (a test's capture, closed after it)
    would fail on every line from then on."""

    def __init__(self, *, binary: bool) -> None:
        self.binary = binary

    def _stream(self) -> Any:
        return sys.stderr.buffer if self.binary else sys.stderr

    def write(self, data: Any) -> Any:
        return self._stream().write(data)

    def flush(self) -> None:
        self._stream().flush()


def _encode_json(obj: Any, **_: Any) -> bytes:
    return _encoder.encode(obj)


_encoder = msgspec.json.Encoder(enc_hook=str)
