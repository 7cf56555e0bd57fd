"""The hub's counters: plain integers, read by `/metrics` only when scraped.

Counting sits on the hot paths (every emit, every inbound packet), so it is
an integer addition on a slotted object and nothing more: no lock, no label
lookup, no call per delivery. A broadcast to N sessions adds N once.
`handlers/operations/metrics.py` turns these numbers into Prometheus families.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session

# Upper bounds (seconds) of the event handler time histogram.
HANDLER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Watcher:
    """Told by the engine of each session's life: opened, upgraded, closed (once each)."""

    def opened(self, session: "Session", environ: dict) -> None:
        pass

    def upgraded(self, session: "Session") -> None:
        pass

    def closed(self, session: "Session", reason: str) -> None:
        pass


class Stats(Watcher):
    """Counters of one engine (and the hub on top of it)."""

    __slots__ = (
        "handshakes", "disconnects", "upgrades", "packets_received", "packets_sent",
        "broadcasts", "deliveries", "ack_timeouts", "slow_clients_dropped", "limits", "once_replayed",
        "polls_answered_again",
        "handler_buckets", "handler_sum", "handler_count",
    )

    def __init__(self) -> None:
        self.handshakes: dict[str, int] = {"websocket": 0, "polling": 0}
        self.disconnects: dict[str, int] = {}
        self.upgrades = 0
        self.packets_received = 0
        self.packets_sent = 0
        self.broadcasts = 0
        self.deliveries = 0
        self.ack_timeouts = 0
        self.once_replayed = 0  # retries of `once` events answered with the stored ack
        self.slow_clients_dropped = 0
        self.polls_answered_again = 0  # long-polling answers lost on the way, given to the GET's retry
        self.limits: dict[str, int] = {}
        self.handler_buckets = [0] * (len(HANDLER_BUCKETS) + 1)  # the last one is +Inf
        self.handler_sum = 0.0
        self.handler_count = 0

    def opened(self, session: "Session", environ: dict) -> None:
        transport = environ.get("transport", "polling")
        self.handshakes[transport] = self.handshakes.get(transport, 0) + 1

    def upgraded(self, session: "Session") -> None:
        self.upgrades += 1

    def closed(self, session: "Session", reason: str) -> None:
        # Reasons are the engine's own fixed strings, so the label set stays small.
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1

    def broadcast(self, receivers: int) -> None:
        """One emit addressed to a group, handed to `receivers` sessions."""
        self.broadcasts += 1
        self.deliveries += receivers
        self.packets_sent += receivers

    def limit(self, name: str) -> None:
        self.limits[name] = self.limits.get(name, 0) + 1

    def handler_time(self, seconds: float) -> None:
        self.handler_buckets[bisect_left(HANDLER_BUCKETS, seconds)] += 1
        self.handler_sum += seconds
        self.handler_count += 1
