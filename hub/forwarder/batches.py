"""Batches of telemetry (contract 1.5): what waits together in the window goes as one message."""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from hub import eventbatch
from hub.forwarder.rows import is_telemetry
from hub.outbox import Row

if TYPE_CHECKING:
    from hub.forwarder.core import Forwarder

    _Base = Forwarder
else:
    _Base = object


class BatchesMixin(_Base):
    """:meth:`_send_batch`, which :meth:`Forwarder._pump` calls for telemetry with telemetry behind it."""

    def _send_batch(self, first: Row) -> None:
        """``first`` and the telemetry right behind it in the window, within the batch limits, as one
        message (two or more) or alone (one)."""
        window, seen = self._window, self._recent_set
        rows: list[Row] = []
        bodies: list[bytes] = []
        size = eventbatch.OVERHEAD - 1
        most = min(self.batch_max, self.window_max - len(self._inflight))  # events in flight stay bounded too
        row = first
        while True:
            seq = row[1]
            if seq not in self._inflight and seq not in seen:
                body = row[3] if row[3] is not None else row[4].to_json()
                if rows and size + len(body) + 1 > self.batch_bytes:
                    heapq.heappush(window, row)  # the next message's
                    break
                rows.append(row)
                bodies.append(body)
                size += len(body) + 1
            if not window or len(rows) >= most or not is_telemetry(window[0]):
                break
            row = heapq.heappop(window)
        if len(rows) < 2:
            if rows:
                self._publish(rows[0], self._topic(rows[0][2]), bodies[0], rows[0])
            return
        self._publish(rows[0], self._batch_topic, eventbatch.pack(bodies), rows)  # type: ignore[arg-type]
