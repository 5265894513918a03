"""Node-RED 4.x doing the hub's bed-mat serial job, for bench/nodered_vs_hub.py.

* ``package.json`` / ``package-lock.json``: node-red and node-red-node-serialport from the npm registry,
  installed by :func:`runner.ensure_installed` (``npm ci``; ``node_modules`` is gitignored).
* ``flow.json``: serial in (the emulator's pty, lines split on ``\\n``) -> a function node (NMEA checksum,
  the hub's battery hysteresis, the hub's ``device.battery_low`` JSON, seq from a flow counter) -> mqtt out
  at QoS 1.
* ``settings.js``: headless on 127.0.0.1, no auth prompts, no telemetry, JSON log lines to a file.
* :mod:`runner`: :class:`runner.NodeRed` starts it on a free port with its own userDir in a temp dir.
"""
