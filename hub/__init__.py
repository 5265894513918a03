"""carehub: the device hub for municipal home care.

The core lives here: the event contract (:mod:`hub.events`), the validated
config (:mod:`hub.config`), the durable outbox (:mod:`hub.outbox`), the MQTT 5
link (:mod:`hub.link`), alarm tracking (:mod:`hub.alarms`) and the daemon
(:mod:`hub.daemon`). Device drivers live in the sibling package ``drivers``.
"""

__version__ = "0.1.0"
