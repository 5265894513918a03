"""The local control socket: ``carehub status``, ``tail``, ``test-alarm``, ``ack``, ``ble-forget``, ``replay``.

A Unix stream socket served by the daemon (:mod:`hub.control.server`),
speaking JSON lines (:mod:`hub.control.protocol`): one request object with
an ``op`` per line, one or more reply objects per request. It needs no
network and no broker, so an installer or the care staff can see and test a
hub whose link is down. The commands run the same handlers as the central's
MQTT commands (:class:`hub.command_runner.CommandRunner`): one code path, two
doors. The blocking client the CLI uses is :mod:`hub.control.client`; where
the socket is, :mod:`hub.control.paths`.

This package's ``__init__`` imports nothing, so the CLI's client does not
load the daemon.
"""
