"""The forwarder: moves events from the durable outbox to the broker.

While the link is online it keeps up to ``max_inflight`` QoS 1 publishes in
flight, critical first, then by priority and seq. An event is marked
delivered only when the broker's PUBACK for it arrives; one whose publish is
lost with the connection stays pending and goes out again, with the same id
and seq, after the reconnect.

Memory is bounded, whatever the backlog: the forwarder holds at most
:attr:`Forwarder.window_max` events (a few hundred) beside those in flight.
The backlog itself stays on disk, where the outbox put it:

* *Caught up* (the usual case): every pending event is in flight or in the
  window. A fresh event goes out at once when the window has room, else it
  waits in the window, and every PUBACK sends the next one, with no read of
  the disk.
* *Paging* (a burst faster than the broker acks, a reconnect, a restart): the
  window overflowed, so it keeps only its first half and the rest is read
  back from the outbox page by page, in sending order after a ``(rank, seq)``
  cursor, as the raw stored bytes (nothing decoded, nothing encoded again). A
  fresh event the cursor has passed (a higher priority than the page being
  sent) joins the window; any other is left to the pages. A page that comes
  back short means caught up again: the read's snapshot says which events
  committed meanwhile it could not see, and those wait in the window.

Alarms first, whatever the mode: a critical event goes on the wire the
moment it is committed while the link is up, even when the window is full or
a page read is running; it never waits for the disk. An alarm the disk
refused (held, ``seq`` 0) is published from memory, again after every
reconnect until the broker has it, and is never marked delivered: once the
outbox stores it, it comes back with its seq and goes out again, same id.

Telemetry is batched when it waits (contract 1.5): a normal or low priority
event taken from the window takes the telemetry right behind it along, up to
``batch_max`` events and ``batch_bytes`` of payload, into one QoS 1 message on
``{prefix}/{hub}/events`` (:mod:`hub.eventbatch`: the stored bodies joined,
nothing decoded). One alone goes on ``event/{type}`` as ever, so an idle hub
sends one message per event; under a burst or a drain each PUBACK frees a
slot and the next message takes what accumulated meanwhile: no timer, no
added latency. A batch is one message in flight; its PUBACK delivers all its
events, a lost connection or a refusal counts for each of them as for one.
Events in flight are bounded as well, by ``window_max``: batches of 100 in
50 messages would otherwise hold 5,000 events' bodies in memory.
Alarms and high or critical events are never batched, and go first.

The ``on_delivered`` hooks hear the alarm lane's events (every ``alarm.*``
type and everything critical: what the hub acts on once the broker has it);
telemetry is counted, not handed round.
"""

from hub.forwarder.core import PAGE, DeliveredHook, Forwarder

__all__ = ["PAGE", "DeliveredHook", "Forwarder"]
