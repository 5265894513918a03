"""When the central cannot be reached: SMS to the on-call phones, and every path out of the residence watched.

* :mod:`~hub.fallback.watcher`: :class:`Fallback`, the open alarm episodes and
  the MQTT link watched; SMS through a driver's :class:`~drivers.base.TextPath`
  (``fallback.sent``, ``fallback.failed``); a reply ``OK`` acknowledges as ``cmd/ack`` does;
* :mod:`~hub.fallback.paths`: :class:`PathBoard`, the state of each path (``mqtt``,
  ``gsm``, ``interface``) for ``status`` and the heartbeat, ``path.lost`` / ``path.restored``;
* :mod:`~hub.fallback.text`: what the SMS says (residence, room, alarm type, local time; no name).

Configured in ``[fallback]``; the modem is a ``[[device]]`` of kind ``modem``
(:mod:`drivers.modem`), which the hub knows only through the seam.
"""

from hub.fallback.paths import PathBoard, read_interface
from hub.fallback.text import compose
from hub.fallback.watcher import Fallback

__all__ = ["Fallback", "PathBoard", "compose", "read_interface"]
