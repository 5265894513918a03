"""Reading a residence config: :func:`load` a file, :func:`parse` text, every issue at once.

The text is decoded as TOML (:mod:`hub.tomldoc`), walked against
:class:`~hub.config.Config` (:mod:`hub.structwalk`, in the config's words:
:mod:`hub.config.walk`), converted, then checked across keys and devices
(:mod:`hub.config.checks`, the drivers' checks included). Every problem
becomes a :class:`ConfigIssue` at the line and column of its key in the
source; :class:`ConfigError` carries them all, sorted by position.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from hub.config.checks import check_semantics
from hub.config.model import Config
from hub.config.walk import CONFIG_WORDS
from hub.tomldoc import Issue, TomlDocument

__all__ = ["ConfigError", "ConfigIssue", "ConfigUnreadable", "LoadedConfig", "load", "parse", "secret_text"]


#: One thing wrong with a config file (the generic :class:`hub.tomldoc.Issue`).
ConfigIssue = Issue


class ConfigError(Exception):
    """The config is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class ConfigUnreadable(Exception):
    """The config file could not be read at all (missing, no permission, not UTF-8)."""


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from."""

    config: Config
    path: Path
    sha256: str

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
    config = parse(text, filename=str(path), base_dir=path.parent, check_files=check_files)
    return LoadedConfig(config=config, path=path.resolve(), sha256=hashlib.sha256(raw).hexdigest())


def parse(text: str, *, filename: str = "<config>", base_dir: Path | None = None, check_files: bool = True) -> Config:
    """Decode and check config text; raises :class:`ConfigError` listing every issue."""
    doc = TomlDocument.parse(text, filename)
    config = doc.decode(Config, CONFIG_WORDS)
    if config is None:
        raise ConfigError(doc.sorted_issues())
    check_semantics(config, base_dir or Path("."), check_files, doc.report)
    if doc.issues:
        raise ConfigError(doc.sorted_issues())
    return config


def secret_text(loaded: LoadedConfig, name: str) -> str:
    """Read a password file named in the config (first line, stripped)."""
    return loaded.resolve(name).read_text().splitlines()[0].strip()
