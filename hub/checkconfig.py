"""``carehub check-config FILE [--json]``: is this config one the hub will start with?

Every error of the file in one pass, sorted by line, each
``FILE:LINE:COL: key.path: message``; then warnings (doubtful but not wrong,
such as a serial adapter not plugged in yet), which do not change the exit
code. ``--json`` prints one JSON document instead, for scripts::

    {"file": ..., "valid": true|false,
     "errors": [{"line", "col", "key", "message"}, ...], "warnings": [...same...]}

Exit codes: 0 valid (warnings or not), 1 invalid, 2 unreadable (missing, a
directory, no permission, not UTF-8; in JSON one error at line 0).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from hub.config import ConfigError, ConfigIssue, ConfigUnreadable, LoadedConfig, load

__all__ = ["CheckResult", "check_file", "issue_dict", "run_check_config", "warning_line"]


@dataclass(frozen=True)
class CheckResult:
    """What check-config found in one file: ``loaded`` is None unless it is valid."""

    file: str
    code: int
    errors: list[ConfigIssue]
    warnings: list[ConfigIssue]
    loaded: LoadedConfig | None = None

    @property
    def valid(self) -> bool:
        """The hub would start with it (warnings or not)."""
        return self.code == 0


def check_file(path: str, *, check_files: bool = True) -> CheckResult:
    """Load ``path`` as the hub would; every error and warning, and the exit code."""
    try:
        loaded = load(path, check_files=check_files)
    except ConfigUnreadable as exc:
        return CheckResult(path, 2, [ConfigIssue(path, 0, 0, "", str(exc).removeprefix(f"{path}: "))], [])
    except ConfigError as exc:
        return CheckResult(path, 1, list(exc.issues), list(exc.warnings))
    return CheckResult(path, 0, [], list(loaded.warnings), loaded)


def issue_dict(issue: ConfigIssue) -> dict[str, Any]:
    """An issue as the JSON output has it."""
    return {"line": issue.line, "col": issue.col, "key": issue.key, "message": issue.message}


def warning_line(issue: ConfigIssue) -> str:
    """``FILE:LINE:COL: key.path: warning: message``."""
    return f"{issue.file}:{issue.line}:{issue.col}: {issue.key}: warning: {issue.message}"


def run_check_config(file: str, as_json: bool) -> int:
    """The command: print the result (text on stderr and stdout, or one JSON document); the exit code."""
    result = check_file(file)
    if as_json:
        doc = {
            "file": file,
            "valid": result.valid,
            "errors": [issue_dict(i) for i in result.errors],
            "warnings": [issue_dict(i) for i in result.warnings],
        }
        print(json.dumps(doc, indent=2))
        return result.code
    if result.code == 2:
        print(f"error: {result.errors[0]}", file=sys.stderr)
        return 2
    for issue in result.errors:
        print(issue, file=sys.stderr)
    for issue in result.warnings:
        print(warning_line(issue), file=sys.stderr)
    w = len(result.warnings)
    warned = f"{w} warning{'s' if w != 1 else ''}"
    if result.loaded is None:
        n = len(result.errors)
        also = f" (and {warned})" if w else ""
        print(f"{file}: {n} error{'s' if n != 1 else ''}; the hub would refuse to start{also}", file=sys.stderr)
        return 1
    cfg = result.loaded.config
    also = f", {warned}" if w else ""
    print(f"{file}: valid (hub {cfg.hub.id}, {len(cfg.devices)} devices, sha256 {result.loaded.sha256[:12]}{also})")
    return 0
