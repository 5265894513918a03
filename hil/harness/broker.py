"""Real-MQTT test support, by its old name: everything is re-exported from the modules that hold it.

* :mod:`hil.harness.mosquitto` - :func:`free_port`, :class:`Mosquitto` (a private broker per test).
* :mod:`hil.harness.tlsfiles` - :class:`TlsFiles`, :func:`make_tls` (a throwaway CA, server and client certs).
* :mod:`hil.harness.subscriber` - :class:`Subscriber`, :class:`Received` (a recording MQTT v5 client).
* :mod:`hil.harness.mqttclient` - :func:`request` (MQTT v5 request/response), :func:`new_client`.

Everything talks to a real ``mosquitto`` process; nothing is mocked. The system
broker on 127.0.0.1:1883 is never used.
"""

from __future__ import annotations

from hil.harness.mosquitto import LOCALHOST, MOSQUITTO, MOSQUITTO_PASSWD, Mosquitto, free_port
from hil.harness.mqttclient import Payload, encode_payload, new_client, request
from hil.harness.subscriber import Received, Subscriber
from hil.harness.tlsfiles import TlsFiles, make_tls

__all__ = [
    "LOCALHOST",
    "MOSQUITTO",
    "MOSQUITTO_PASSWD",
    "Mosquitto",
    "Payload",
    "Received",
    "Subscriber",
    "TlsFiles",
    "encode_payload",
    "free_port",
    "make_tls",
    "new_client",
    "request",
]
