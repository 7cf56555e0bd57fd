"""Running the hub in production: limits wired in, health, readiness, metrics routes.

Every hub has one `Ops` (`hub.ops`). It installs the abuse limits on the
engine's door and on each inbound event, holds the drain state that
`/readyz` reports, and gives the app the routes to mount:

    app = tornado.web.Application(hub.routes() + hub.ops.routes() + [...])
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any, Callable, Protocol

from tornado.web import RequestHandler

from .limits import Admission, EventLimiter, Limits, MeteredSocket, Throttled
from .logs import SessionLog, throttle_logs

if TYPE_CHECKING:
    from ..engineio.engine import Engine
    from ..wire.protocol import Packet

RATE_LIMITED = {"error": "Too many events, slow down"}

YOUNG_COLLECTION_EVERY = 50_000  # allocations (less deallocations) between collections of the youngest generation


def tune_gc(young: int = YOUNG_COLLECTION_EVERY) -> None:
    """Collect garbage cycles less often, and never look at what start-up made again.

    Each connection opened, request served and message handled allocates
    container objects; at Python's default (a collection every 700 net
    allocations) opening 10,000 WebSockets spent nearly half its time in the
    collector (bench/RESULTS.md). Objects freed by reference counting, nearly
    all of them, are not affected; cycles wait a little longer (a few MB at
    most). Call it once the app is built: what exists then (modules, routes,
    the hub) is frozen out of every later full collection.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)


class Monitor(Protocol):
    """What watches the hub's traffic (the Admin UI's instrumentation, a layer above)."""

    def event_received(self, socket: Any, data: list) -> None:
        """An event a socket sent, allowed in."""

    def room_joined(self, socket: Any, room: str) -> None:
        """A socket joined `room`."""

    def room_left(self, socket: Any, room: str) -> None:
        """A socket left `room`."""


class Guarded(Protocol):
    """What operations need of the hub they run: its engine (the hub is a layer above)."""

    engine: "Engine"


class Ops:
    """The operational side of one hub: limits, readiness, metrics, the Admin UI's hook."""

    def __init__(self, hub: Guarded, limits: Limits):
        self.hub = hub
        self.limits = limits
        self.throttled = Throttled(hub.engine.stats)
        throttle_logs()  # what a client can make the server log is bounded
        self.admission = Admission(limits, hub.engine.stats, self.throttled)
        hub.engine.admit_with(self.admission)
        hub.engine.watchers.append(self.admission)
        hub.engine.watchers.append(SessionLog())
        self.events = EventLimiter(limits, self.throttled)
        self.monitor: Monitor | None = None  # the Admin UI's instrumentation, when on (watch_with)
        self.room_watchers: list[Any] = []   # told of every join and leave too (a cluster's room groups)
        # Readiness checks besides the drain: each returns None when fine, else why not.
        self.checks: list[Callable[[], str | None]] = []

    # -- inbound events (called by each socket before its handlers) -----

    def event_allowed(self, socket: MeteredSocket, packet: "Packet") -> bool:
        """False drops the event (the socket answers an ack asked for with `RATE_LIMITED`)."""
        if not self.events.allow(socket):
            return False
        monitor = self.monitor
        if monitor is not None:
            monitor.event_received(socket, packet.data)
        return True

    def watch_with(self, monitor: Monitor) -> None:
        """Let `monitor` see every event allowed in and every room joined or left from now on."""
        self.monitor = monitor

    def room_joined(self, socket: Any, room: str) -> None:
        """A socket joined `room` (told to the monitor, if any)."""
        if self.monitor is not None:
            self.monitor.room_joined(socket, room)
        for watcher in self.room_watchers:
            watcher.room_joined(socket, room)

    def room_left(self, socket: Any, room: str) -> None:
        """A socket left `room` (told to the monitor, if any)."""
        if self.monitor is not None:
            self.monitor.room_left(socket, room)
        for watcher in self.room_watchers:
            watcher.room_left(socket, room)

    # -- health ----------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self.admission.draining

    def not_ready(self) -> str | None:
        """None while the process accepts new sessions, else the reason it does not."""
        if self.admission.draining:
            return "draining"
        for check in self.checks:
            reason = check()
            if reason:
                return reason
        return None

    def routes(self, prefix: str = "/") -> list:
        """`/metrics`, `/healthz` and `/readyz` under `prefix`, for the app to mount."""
        from .metrics import MetricsHandler, registry_for  # prometheus_client only when mounted

        prefix = prefix.rstrip("/")
        return [
            (prefix + "/metrics", MetricsHandler, {"registry": registry_for(self.hub.engine)}),
            (prefix + "/healthz", HealthHandler),
            (prefix + "/readyz", ReadyHandler, {"ops": self}),
        ]


class HealthHandler(RequestHandler):
    """200 while the process runs (Kubernetes' liveness probe)."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish("ok\n")


class ReadyHandler(RequestHandler):
    """200 while new sessions are accepted, 503 while draining (the readiness probe)."""

    def initialize(self, ops: Ops) -> None:
        self.ops = ops

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        reason = self.ops.not_ready()
        if reason is not None:
            self.set_status(503)
            self.finish(reason + "\n")
        else:
            self.finish("ready\n")
