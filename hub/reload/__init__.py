"""SIGHUP (``systemctl reload carehub``): read the config file again and apply it, or refuse it.

The design, in the order a reload runs (:class:`~hub.reload.reloader.Reloader`,
one at a time on the hub's loop; SIGHUPs that come meanwhile make one more):

1. **systemd** is told ``RELOADING=1`` (with ``MONOTONIC_USEC``), and
   ``READY=1`` when the reload is over, applied or refused (:mod:`hub.sdnotify`).
   The unit's ``ExecReload=/bin/kill -HUP $MAINPID`` sends the signal.
2. **Validate** with the loader ``check-config`` uses (:func:`hub.config.load`,
   in a worker thread, so presses are taken meanwhile). A bad file is
   **refused**: one log event ``config_reload_refused`` with ``errors`` = the
   same ``FILE:LINE:COL: key: ...`` lines check-config prints, and one event
   ``hub.config_refused`` (HIGH) to the central, so whoever pushed the file
   learns it failed; it carries the reason, the error count and line numbers,
   never the values (a value could be a name). The running config stays;
   nothing restarts.
3. **Plan** (:mod:`hub.reload.plan`): what differs. Changing a key the
   running hub cannot take over (:data:`~hub.reload.plan.RESTART_KEYS`:
   ``hub.id``, ``mqtt.prefix``, ``store.dir``, ``store.reserve_kb``,
   ``sim.socket``, ``log.format``) is refused the same way (reason
   ``needs_restart``, each key with why): a restart is the operator's
   decision, never a side effect of a reload, and a hub that exits to apply
   a config would drop its LED patterns and its open connection for a
   moment. ``systemctl restart carehub`` applies such a file.
4. **Apply**, all or nothing:

   * **Drivers** whose devices (any key of them) or ``[<driver>]`` table
     changed are detached and attached again through the registry and the
     port (:class:`~hub.drivertable.DriverTable`): their supervised tasks
     are retired, then, with no await in between, the old driver is closed
     and the new one attached, its tasks started, its sim operations
     registered, and each of its devices' LEDs shown what its open alarm
     says. Drivers whose devices did not change are not touched: their
     events keep flowing and a press on them during the reload is taken as
     ever. A driver that fails to attach is put back as it was and the
     reload refused (``attach_failed``); if even that fails the hub exits
     70 and systemd starts it afresh.
   * ``[alarm]``: the new ``ack_timeout_s`` applies to alarms raised from
     now on and ``unack_repeat_s`` from each open alarm's next reminder; an
     alarm open at the reload keeps the clock it started with (no reminder
     is sent twice or skipped). ``steady_s`` from the next ack.
   * ``[rules]``, ``[hub] timezone``, and the devices' kinds and intervals:
     the rules are built anew and every rule that still exists carries on
     from its state (a bed exit waiting for its return still alarms; a new
     window applies from now on); a rule turned off drops its state.
   * ``[limits]``, ``[log] level`` (every logger, at once), ``[hub]
     resident`` (events accepted from now on), ``[store]`` bounds, ``[mqtt]
     heartbeat_s`` (from the next beat), ``batch_max`` and ``batch_bytes``
     (from the next message): in place.
   * What the MQTT link's settings hold (``[mqtt]`` brokers, client id,
     username and password, TLS, keepalive, timeouts, backoff,
     max_inflight) or the files they name (a renewed certificate or
     password at the same path counts): the link leaves the broker cleanly
     (DISCONNECT: no last will), connects with the new settings and
     publishes its birth again. Events waiting for their PUBACK are sent
     again from the outbox. Otherwise the retained status is published
     again, naming the new config's sha256 and devices.

5. **Tell**: the log event ``config_reloaded`` (``changed``: the tables and
   ``device:<id> added|removed|changed``; ``sha256``) and the event
   ``hub.config_reloaded`` (NORMAL) to the central. A file that means the
   same as the running one changes nothing.

A config pushed by the central (:mod:`hub.configpush`) is applied by the
same :meth:`~hub.reload.reloader.Reloader.apply`, under the same lock, after
its own checks; a SIGHUP while a pushed config runs keeps it unless the local
file changed since it was pushed (then the file wins).

What never changes in a reload: the outbox stays open (every event
accepted is kept until its PUBACK), the alarm tracker keeps every open
alarm with its reminders and LED pattern, supervision keeps running.
"""

from hub.reload.plan import RESTART_KEYS, Plan, make_plan
from hub.reload.reloader import Reloader

__all__ = ["RESTART_KEYS", "Plan", "Reloader", "make_plan"]
