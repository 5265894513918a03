"""``carehub demo``: a simulated residence, a broker, and the reference alarm central.

Runs the hub on ``config/examples/demo.toml`` as a real subprocess against the
Mosquitto the config names (127.0.0.1:1883) when it answers, else against one
it starts on a free port, and the real central (:class:`central.engine.Engine`,
as ``carehub central`` runs it) in this process, its store in
``state/demo-central.db``, with the operator's web console on 127.0.0.1:8080
(another free port when that is taken). It prints every message as the central
takes it in, presses the simulated alarm button, waits for the alarm on the
central's live feed, acknowledges it through the central (``cmd/ack``) as an
operator would, and shows the button's LED go from blinking to steady ("help is
on its way"). With ``--keep-running`` the hub and the central stay up: press
buttons with ``carehub sim`` and acknowledge in the browser.

Stopping and running again:

* Ctrl-C (SIGINT) or SIGTERM stops the demo at any point with one line and no
  traceback; it stops the hub (and the private broker) it started first. Exit
  status 130 (SIGINT) or 143 (SIGTERM) while the scripted part runs; 0 when
  ``--keep-running`` is ended that way, as it says to. 0 after the scripted
  part, 1 when it fails.
* The demo can be run again at once, whatever the last run left: a hub or
  broker of a demo that was killed (kill -9) is stopped first (they also get
  SIGTERM from the kernel when their demo dies, on Linux); alarms the hub
  re-opens from its state directory are acknowledged by the operator before
  the resident presses; events the hub re-sends from an earlier run are shown
  as such and never taken for this run's; a stale sim socket is replaced by the
  hub. A hub or demo that is really still running on the same state directory
  is reported, not fought with.
* The central's store keeps what earlier runs stored: an event the hub re-sends
  is shown as a duplicate; a seq an earlier run missed is asked for with
  ``cmd/replay`` (the central's gap filling) and shown when it comes.
* The status the central receives is labelled: a retained one the broker kept
  from before this run as ``previous run (retained)``, one the hub publishes
  now (its birth, its clean offline) as ``live``. (MQTT sets the retain flag
  only on messages the broker replays to a new subscription.)

The parts: :mod:`~hub.demo.run` (:func:`run_demo`), :mod:`~hub.demo.central`
(the engine on its own thread, and why), :mod:`~hub.demo.wiretap` (what the
central hears, printed and waited for), :mod:`~hub.demo.script` (what the
resident and the operator do), :mod:`~hub.demo.procs` (children, pid file, leftovers of an
earlier run) and :mod:`~hub.demo.signals` (Ctrl-C and SIGTERM).
"""

from __future__ import annotations

from hub.demo.common import DemoError
from hub.demo.procs import HUB_STOP_S, PIDFILE
from hub.demo.run import run_demo
from hub.demo.signals import EXIT_ON_SIGNAL, Stopped

__all__ = ["EXIT_ON_SIGNAL", "HUB_STOP_S", "PIDFILE", "DemoError", "Stopped", "run_demo"]
