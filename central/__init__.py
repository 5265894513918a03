"""The reference alarm central: what a responssenter runs against carehub hubs.

It consumes the contract in ``contract/`` the way a central must: one MQTT 5 shared
subscription split between instances, de-duplication by event id, per-hub seq tracking with
gap fill through ``cmd/replay``, hub supervision from the retained status, the last will and
heartbeats, open alarms acknowledged through ``cmd/ack``, all kept in SQLite or PostgreSQL.
``carehub central`` runs it; :mod:`central.web` is the operator's console.

Several instances share the work: the broker splits the events between them (the shared
subscription), and they share one database. Each event is stored once (its id is the key), so
the instance that stores an alarm is the one that handles it (and auto-acks it, once). Every
instance's live feed reads the database's journal of changes (written in commit order, read in
order every ``poll_s``, at once after its own writes), so an alarm, an ack or a loss through any
instance reaches the consoles of all; the hubs' status and heartbeats each instance receives
itself (not shared) and supervises on its own.

The parts: :mod:`~central.engine` (the loop; implements :class:`~central.view.CentralView`),
:mod:`~central.mqtt`, :mod:`~central.store`, :mod:`~central.supervision`, :mod:`~central.gapfill`,
:mod:`~central.acks`, :mod:`~central.feed`, :mod:`~central.wire` (what comes off the broker),
:mod:`~central.problems`, :mod:`~central.config`, :mod:`~central.cli` and :mod:`~central.run`;
:mod:`~central.ledger` and :mod:`~central.policy`, pure, which the test rig uses too.

The hub never imports this package; the test rig (:mod:`hil.central`) and the demo use it.
"""
