"""`GET /metrics`: the hub's counters in Prometheus' text format.

Each hub gets its own `CollectorRegistry` (never the process-wide default),
so several hubs, or the tests, do not collide. The collector reads the plain
counters of `Stats` and counts open sessions by transport when scraped: the
cost is paid by the scraper, not by the fan-out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from tornado.web import RequestHandler

from ..engineio.stats import HANDLER_BUCKETS

if TYPE_CHECKING:
    from ..engineio.engine import Engine


class HubCollector(Collector):
    """Prometheus families made from one engine's `Stats` and sessions at scrape time."""

    def __init__(self, engine: "Engine"):
        self.engine = engine

    def collect(self) -> Iterator:
        stats = self.engine.stats
        connections = GaugeMetricFamily(
            "board_connections", "Open Engine.IO sessions by current transport", labels=["transport"])
        counts = {"websocket": 0, "polling": 0}
        for session in self.engine.sessions.values():
            counts["websocket" if session.ws is not None else "polling"] += 1
        for transport, n in counts.items():
            connections.add_metric([transport], n)
        yield connections

        yield _labelled("board_handshakes", "Sessions opened, by first transport", "transport", stats.handshakes)
        yield _labelled("board_disconnects", "Sessions closed, by reason", "reason", stats.disconnects)
        yield _labelled("board_limits", "Times an abuse limit fired, by limit", "limit", stats.limits)
        for name, doc, value in (
            ("board_upgrades", "Sessions moved from polling to WebSocket", stats.upgrades),
            ("board_packets_received", "Socket.IO packets received", stats.packets_received),
            ("board_packets_sent", "Socket.IO packets sent (a broadcast to N counts N)", stats.packets_sent),
            ("board_broadcasts", "Emits addressed to a group", stats.broadcasts),
            ("board_deliveries", "Packets handed to sessions by group emits", stats.deliveries),
            ("board_ack_timeouts", "Acknowledgements not received in time", stats.ack_timeouts),
            ("board_once_replayed", "Retries of once events answered with the stored ack", stats.once_replayed),
            ("board_polls_answered_again", "Long-polling answers lost on the way, given again to the GET's retry",
             stats.polls_answered_again),
            ("board_slow_clients_dropped", "Sessions closed for falling too far behind",
             stats.slow_clients_dropped),
        ):
            yield CounterMetricFamily(name, doc, value=value)

        cumulative, buckets = 0, []
        for bound, n in zip((*HANDLER_BUCKETS, float("inf")), stats.handler_buckets):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily("board_handler_seconds", "Time spent in event handlers",
                                    buckets=buckets, sum_value=stats.handler_sum)


def _labelled(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, n in sorted(values.items()):
        family.add_metric([key], n)
    return family


def registry_for(engine: "Engine") -> CollectorRegistry:
    """A registry of its own holding the engine's collector (made once per engine)."""
    registry = getattr(engine, "_metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(HubCollector(engine))
        engine._metrics_registry = registry  # type: ignore[attr-defined]
    return registry


class MetricsHandler(RequestHandler):
    """Serves a registry in Prometheus' text format; mount with `{"registry": ...}`."""

    def initialize(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def compute_etag(self) -> None:
        return None

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.set_header("Cache-Control", "no-store")
        self.finish(generate_latest(self.registry))
