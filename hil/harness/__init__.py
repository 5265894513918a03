"""Real parts the virtual rig and the tests drive: a private Mosquitto, the hub as a subprocess,
serial device emulators on ptys, a small filesystem to fill. Nothing here is a mock."""
