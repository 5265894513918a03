"""What every part of ``carehub demo`` shares: the console it prints on and the error that ends it."""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False, soft_wrap=True)


class DemoError(Exception):
    """The demo cannot go on (another hub on the state directory, the hub exited)."""
