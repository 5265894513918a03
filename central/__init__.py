"""The reference alarm central: what a responssenter runs against carehub hubs.

It consumes the contract in ``contract/`` the way a central must: one MQTT 5 shared
subscription split between instances, de-duplication by event id, per-hub seq tracking with
gap fill through ``cmd/replay``, hub supervision from the retained status, the last will and
heartbeats, open alarms acknowledged through ``cmd/ack``, all kept in SQLite or PostgreSQL.
``carehub central`` runs it; :mod:`central.web` is the operator's console.

The hub never imports this package; the test rig (:mod:`hil.central`) and the demo use it.
"""
