"""A GSM/LTE modem on a serial port: the hub's second way to reach people when the central cannot be reached.

The modem speaks the standard AT commands of 3GPP TS 27.005 and 27.007
(``AT+CMGF=1``, ``AT+CMGS`` with its ``> `` prompt and Ctrl-Z, ``+CMGS`` and
``+CMS ERROR``, ``AT+CMGL``, ``AT+CREG?``, ``AT+CSQ``, ``AT+CPIN?``), through
the ``atlib`` library (sync, pyserial), run off the loop in one worker thread
per modem, one command at a time, each with a timeout (:mod:`drivers.modem.link`).

The pieces, one module each: ``config`` (``[device.modem]``), ``backend`` (the
small interface the link drives and its value types), ``atmodem`` (the real
backend over atlib), ``sim`` (a simulated modem driven through the sim socket),
``link`` (one modem: the worker thread, timeouts, checks, the inbox, the
:class:`~drivers.base.TextPath` the hub sends through), ``driver`` (``attach``)
and ``emulator`` (a modem on a pty: ``carehub emulate modem``).

The driver decides nothing about alarms: it registers each modem with the hub
as a text path (``port.text_path``), reports what it reads (``port.path_state``)
and what arrives (``port.text_received``). When to send, to whom and what an
``OK`` reply means is the hub's (:mod:`hub.fallback`).
"""
