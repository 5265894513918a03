"""The operator's web console: open alarms, hubs, device problems, ack, live updates.

:func:`serve` runs it inside the caller's asyncio loop (``carehub central --web HOST:PORT``);
:func:`make_app` is the Starlette app itself. Both see the central only through
:class:`central.view.CentralView`.
"""

from __future__ import annotations

from central.web.app import make_app
from central.web.server import serve

__all__ = ["make_app", "serve"]
