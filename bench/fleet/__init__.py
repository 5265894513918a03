"""The fleet bench: N simulated hubs with real MQTT 5 connections against one Mosquitto and the reference central.

    python -m bench.fleet --hubs 200 [--processes 2] [--seconds 30] [--find-max]

Each simulated hub (:mod:`bench.fleet.simhub`) is one :class:`hub.link.MqttLink` (paho on the asyncio
loop, no thread per client), hundreds to a worker process (:mod:`bench.fleet.worker`), speaking the
contract as a real hub does: retained birth and last will, heartbeats with ``seq``, events with UUIDv7
ids and gapless seqs (telemetry now and then, an alarm now and then), ``cmd/ack`` and ``cmd/replay``
answered on the MQTT 5 response topic, and a few hubs losing the network mid-run (the backlog sent
when they are back). The central is ``carehub central --auto-ack --json`` on a SQLite file
(:mod:`bench.fleet.session`).

Reported (:mod:`bench.fleet.results`): alarm latency p50/p99 end to end (press at the hub -> the
central's auto-ack at the hub) and press -> stored at the central (its ``--json`` feed), against one
hub alone on the same broker and central in the same run; loss (every seq stored, every alarm acked:
must be zero); with ``--find-max``, the largest fleet this machine carries at p99 under 1 s with
zero loss. :func:`run` gives the bench runner its figures.
"""

from __future__ import annotations

from bench.fleet.bench import run

__all__ = ["run"]
