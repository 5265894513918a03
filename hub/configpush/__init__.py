"""Configs pushed by the alarm central (``cmd/config``): signed, checked, applied, held on probation.

The central sends a whole config as TOML text (or names a retained copy on
``{prefix}/{hub}/config/<version>``) with a version and its Ed25519
signature. The hub checks the signature against the central's public key in
its local file (``[push] key``), the text exactly as ``carehub check-config``
does (errors as ``pushed:v<N>:LINE:COL: key: message``), and that it leaves
alone what a push may not change (:data:`~hub.configpush.validate.PINNED`);
it applies it as a SIGHUP applies a file (:mod:`hub.reload`), and holds it on
probation for ``[push] probation_s``: unless the central is reached on it by
then, the hub rolls back to the last good config by itself. Every version,
its SHA-256 and outcome is kept in ``<store dir>/config/``, written
atomically and fsynced (:mod:`~hub.configpush.history`), and a restart during
a probation rolls back (:mod:`~hub.configpush.start`).

The parts: :mod:`~hub.configpush.signing` (the signature),
:mod:`~hub.configpush.validate` (check-config and the pins),
:mod:`~hub.configpush.history` (the durable history),
:mod:`~hub.configpush.start` (which config a starting hub runs),
:mod:`~hub.configpush.manager` (``cmd/config``, ``cmd/config-status``, the
probation). The threat model: docs/config-push.md.
"""

from hub.configpush.history import HistoryStore, Record
from hub.configpush.manager import ConfigPush
from hub.configpush.start import Selected, select

__all__ = ["ConfigPush", "HistoryStore", "Record", "Selected", "select"]
