"""Reading a residence config: :func:`load` a file, :func:`parse` text, every issue at once.

The text is decoded as TOML (:mod:`hub.tomldoc`), walked against
:class:`~hub.config.Config` (:mod:`hub.structwalk`, in the config's words:
:mod:`hub.config.walk`), converted, then checked across keys and devices
(:mod:`hub.config.checks`, the drivers' checks included). When the structs
refuse the file the cross-key checks still run on what can be kept of it
(:mod:`hub.config.salvage`), so every error shows in one pass. Every problem
becomes a :class:`ConfigIssue` at the line and column of its key in the
source; :class:`ConfigError` carries them all, sorted by position.

Warnings are issues that do not make the file invalid (a serial port not
plugged in yet): ``LoadedConfig.warnings`` and ``ConfigError.warnings``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from hub.config.checks import check_advice, check_semantics
from hub.config.model import Config
from hub.config.salvage import salvage_checks
from hub.config.walk import CONFIG_WORDS
from hub.tomldoc import Issue, TomlDocument
from hub.tomlpos import Path as KeyPath
from hub.tomlpos import format_path, locate

__all__ = ["ConfigError", "ConfigIssue", "ConfigUnreadable", "LoadedConfig", "load", "load_text", "parse",
           "secret_text"]


#: One thing wrong with a config file (the generic :class:`hub.tomldoc.Issue`).
ConfigIssue = Issue


class ConfigError(Exception):
    """The config is invalid; ``issues`` lists every problem found, ``warnings`` what is doubtful."""

    def __init__(self, issues: list[ConfigIssue], warnings: list[ConfigIssue] | None = None):
        self.issues = issues
        self.warnings = warnings or []
        super().__init__("\n".join(str(i) for i in issues))


class ConfigUnreadable(Exception):
    """The config file could not be read at all (missing, no permission, not UTF-8)."""


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from."""

    config: Config
    path: Path
    sha256: str
    #: What is doubtful but not wrong (a serial port not on this machine now), sorted by line.
    warnings: tuple[ConfigIssue, ...] = field(default=())
    #: None: read from ``path``. ``pushed:v<N>``: version N pushed by the central (:mod:`hub.configpush`);
    #: ``path`` is then the local file, against whose directory relative paths are resolved.
    origin: str | None = None

    def resolve(self, p: str) -> Path:
        """A path from the config, relative to the config file's directory."""
        return (self.path.parent / p).resolve() if not os.path.isabs(p) else Path(p)

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.config.store.dir)

    @property
    def sim_socket(self) -> Path:
        p = self.config.sim.socket
        return Path(p) if os.path.isabs(p) else self.state_dir / p


def load(path: str | os.PathLike[str], *, check_files: bool = True) -> LoadedConfig:
    """Read, decode and check a config file.

    Raises :class:`ConfigUnreadable` when the file cannot be read and
    :class:`ConfigError` (with every issue) when it is invalid.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigUnreadable(f"{path}: cannot read: {exc}") from exc
    config, warnings = _parse(text, str(path), path.parent, check_files)
    return LoadedConfig(config=config, path=path.resolve(), sha256=hashlib.sha256(raw).hexdigest(),
                        warnings=tuple(warnings))


def load_text(text: str, *, origin: str, path: Path, check_files: bool = True) -> LoadedConfig:
    """Check config ``text`` exactly as :func:`load` checks a file; issues name ``origin`` as their file
    (``pushed:v7:4:1: ...``) and relative paths start at ``path``'s directory (the local config file)."""
    config, warnings = _parse(text.removeprefix("\ufeff"), origin, path.parent, check_files)
    return LoadedConfig(config=config, path=path.resolve(), sha256=hashlib.sha256(text.encode()).hexdigest(),
                        warnings=tuple(warnings), origin=origin)


def parse(text: str, *, filename: str = "<config>", base_dir: Path | None = None, check_files: bool = True) -> Config:
    """Decode and check config text; raises :class:`ConfigError` listing every issue."""
    return _parse(text, filename, base_dir or Path("."), check_files)[0]


@dataclass
class _ConfigDocument(TomlDocument):
    """A :class:`TomlDocument` that keeps the key path of every issue (for the salvage) and its warnings."""

    reported: list[KeyPath] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)

    def report(self, path: KeyPath, message: str) -> None:
        self.reported.append(path)
        super().report(path, message)

    def warn(self, path: KeyPath, message: str) -> None:
        line, col = locate(self.positions, path)
        self.warnings.append(ConfigIssue(self.filename, line, col, format_path(path), message))

    def sorted_warnings(self) -> list[ConfigIssue]:
        return sorted(set(self.warnings), key=lambda i: (i.line, i.col, i.key, i.message))


def _parse(text: str, filename: str, base: Path, check_files: bool) -> tuple[Config, list[ConfigIssue]]:
    """The config and its warnings; raises :class:`ConfigError` with every issue and the warnings."""
    doc = _ConfigDocument.parse(text, filename)
    config = doc.decode(Config, CONFIG_WORDS)
    if config is None:
        if doc.data is not None:  # not a syntax error: check what can be kept
            salvage_checks(doc.data, list(doc.reported), base, check_files, doc.report, doc.warn)
        raise ConfigError(doc.sorted_issues(), doc.sorted_warnings())
    check_semantics(config, base, check_files, doc.report)
    if check_files:
        check_advice(config, base, doc.warn)
    if doc.issues:
        raise ConfigError(doc.sorted_issues(), doc.sorted_warnings())
    return config, doc.sorted_warnings()


def secret_text(loaded: LoadedConfig, name: str) -> str:
    """Read a password file named in the config (first line, stripped)."""
    return loaded.resolve(name).read_text().splitlines()[0].strip()
