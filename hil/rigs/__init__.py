"""The rigs that implement :class:`hil.fixtures.Rig`.

* :mod:`hil.rigs.virtual` -- :class:`~hil.rigs.virtual.VirtualRig`: this machine, everything real
  (Mosquitto, the hub subprocess, pty emulators, the simulated BLE source), with
  :mod:`hil.rigs.residence` (the config), :mod:`hil.rigs.simdevices` (driving the devices),
  :mod:`hil.rigs.netfault` and :mod:`hil.rigs.netwire` (cut, delay, loss),
  :mod:`hil.rigs.powercut` (power cut, full disk);
* :mod:`hil.rigs.physical` -- a Raspberry Pi with loopback wiring, described by a rig file.

Nothing is imported here, so loading one rig never imports the other's dependencies.
"""
