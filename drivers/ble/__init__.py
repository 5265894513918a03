"""BLE sensors. :mod:`drivers.ble.bthome` decodes (and, for the simulator and
the tests, encodes) BTHome v2 service data: pure functions over bytes, no radio."""
