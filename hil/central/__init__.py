"""The central recorder: the alarm central as the rig sees it (:class:`hil.fixtures.Central`).

:class:`CentralRecorder` subscribes to one hub's topics on the broker, records every event as an
:class:`Arrival`, checks what an alarm central checks (seq gaps, one id with two bodies, a seq on
two ids, priorities, the JSON Schema) and acknowledges alarms through ``cmd/ack``::

    with CentralRecorder(port=broker.port, hub="test-hub", first_seq=1) as central:
        hub.press()
        central.wait_for(lambda a: any(x.event["type"] == "alarm.button" for x in a), 5)
        alarm = central.events("alarm.button")[0]
        assert central.ack(alarm["id"], "operator-1")["ok"]
        assert central.problems() == []

* :mod:`hil.central.recorder` - the MQTT side (:class:`CentralRecorder`, :class:`AckRecord`).
* :mod:`central.ledger` - the bookkeeping and checks, no MQTT (:class:`Ledger`, :class:`Arrival`): the
  reference central's own (:mod:`central`), which de-duplicates by the same rules.
* :mod:`central.policy` - the contract's schema and types, the priorities the hub fixes.
"""

from central.ledger import Arrival, Ledger
from central.policy import ALARM_TYPES, FIXED_PRIORITIES
from hil.central.recorder import AckRecord, CentralRecorder

__all__ = ["ALARM_TYPES", "FIXED_PRIORITIES", "AckRecord", "Arrival", "CentralRecorder", "Ledger"]
