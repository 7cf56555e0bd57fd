"""Limits against abuse: who may open a session, and how fast a socket may emit.

Every byte from the network is hostile, and so is the rate it arrives at.
`Admission` stands at the door (handshakes per address, open sessions per
address and in total, and the drain: no one new while the process stops);
`EventLimiter` meters each socket's inbound events with a token bucket. Each
limit is a hub option; each firing is counted in `board_limits_total` and
logged (at most once a second per limit, with the number left unsaid).
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, fields
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any, Protocol

from tornado.httputil import HTTPServerRequest

from ..engineio.stats import Stats, Watcher

if TYPE_CHECKING:
    from ..engineio.session import Session

log = logging.getLogger("board.limits")

MAX_TRACKED_ADDRESSES = 100_000  # handshake buckets kept; full ones are forgotten first


@dataclass
class Limits:
    """The abuse limits, each a `Hub(...)` option of the same name (rates per second).

    Defaults are generous: a whole office behind one NAT address reconnecting
    after a restart gets through, at worst after a retry or two.
    """

    event_rate: float = 50.0               # inbound events per socket per second, sustained
    event_burst: int = 100                 # ... and at once
    event_strikes: int = 200               # dropped events (net of refill) before the socket is disconnected
    handshake_rate: float = 20.0           # new sessions per client address per second, sustained
    handshake_burst: int = 500             # ... and at once
    max_sessions_per_address: int = 5000   # open sessions from one address
    max_sessions: int = 100_000            # open sessions in all
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For is believed

    @classmethod
    def take(cls, options: dict[str, Any]) -> "Limits":
        """The limits named in `options`, removed from it (the rest goes to the engine)."""
        return cls(**{f.name: options.pop(f.name) for f in fields(cls) if f.name in options})


class Throttled:
    """Counts every firing of a limit; logs at most one line a second per limit."""

    def __init__(self, stats: Stats):
        self.stats = stats
        self._last: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}

    def fired(self, name: str, message: str, *args: Any) -> None:
        self.stats.limit(name)
        now = time.monotonic()
        if now - self._last.get(name, -2.0) < 1.0:
            self._unsaid[name] = self._unsaid.get(name, 0) + 1
            return
        self._last[name] = now
        unsaid = self._unsaid.pop(name, 0)
        log.warning("limit %s: " + message + (" (and %d more since the last line)" if unsaid else ""),
                    name, *args, *((unsaid,) if unsaid else ()))


def forwarded_address(request: HTTPServerRequest, trusted: frozenset[str]) -> str:
    """The client's address: the peer's, or from X-Forwarded-For when the peer is a trusted proxy.

    Walks the header from the right (the entry our proxy added) past trusted
    hops; anything before the first untrusted hop is the client's to forge.
    """
    remote = request.remote_ip or ""
    if remote not in trusted:
        return remote
    header = request.headers.get("X-Forwarded-For", "")[:1024]
    for hop in reversed([h.strip() for h in header.split(",")]):
        try:
            hop = str(ip_address(hop))
        except ValueError:
            return remote
        if hop not in trusted:
            return hop
    return remote


class Admission(Watcher):
    """The door of the engine: decides whether a handshake may open a session."""

    def __init__(self, limits: Limits, stats: Stats, throttled: Throttled):
        self.limits = limits
        self.stats = stats
        self.throttled = throttled
        self.trusted = frozenset(str(ip_address(a)) for a in limits.trusted_proxies)
        self.draining = False
        self._buckets: dict[str, list[float]] = {}  # address -> [tokens, stamp]
        self._open: dict[str, int] = {}             # address -> open sessions
        self._address: dict[str, str] = {}          # sid -> address
        self.total = 0

    def address(self, request: HTTPServerRequest) -> str:
        return forwarded_address(request, self.trusted)

    def admit(self, request: HTTPServerRequest) -> tuple[int, str] | None:
        """None to let the handshake in, or (HTTP status, message) to refuse it."""
        if self.draining:
            return 503, "Server is restarting, try again shortly"
        limits = self.limits
        address = self.address(request)
        if self.total >= limits.max_sessions:
            self.throttled.fired("sessions", "%d sessions open, refusing %s", self.total, address)
            return 503, "Too many sessions"
        if self._open.get(address, 0) >= limits.max_sessions_per_address:
            self.throttled.fired("sessions_per_address", "%s has %d sessions open", address,
                                 self._open[address])
            return 429, "Too many sessions from this address"
        now = time.monotonic()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_ADDRESSES:
                self._forget(now)
            bucket = self._buckets[address] = [float(limits.handshake_burst), now]
        tokens = min(float(limits.handshake_burst), bucket[0] + (now - bucket[1]) * limits.handshake_rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            self.throttled.fired("handshakes", "too many handshakes from %s", address)
            return 429, "Too many handshakes from this address, try again shortly"
        bucket[0] = tokens - 1.0
        return None

    def _forget(self, now: float) -> None:
        """Drops the buckets that have refilled (they hold nothing), else the oldest half."""
        limits = self.limits
        full = [a for a, (tokens, stamp) in self._buckets.items()
                if tokens + (now - stamp) * limits.handshake_rate >= limits.handshake_burst]
        if len(full) < len(self._buckets) // 2:
            full = list(self._buckets)[: len(self._buckets) // 2]
        for address in full:
            del self._buckets[address]

    # -- open sessions, kept by watching the engine ----------------------

    def opened(self, session: "Session", environ: dict) -> None:
        address = environ.get("remote_ip") or ""
        self._address[session.sid] = address
        self._open[address] = self._open.get(address, 0) + 1
        self.total += 1

    def closed(self, session: "Session", reason: str) -> None:
        address = self._address.pop(session.sid, None)
        if address is None:
            return
        self.total -= 1
        left = self._open[address] - 1
        if left:
            self._open[address] = left
        else:
            del self._open[address]


class Metered(Protocol):
    """What the event limiter needs of a socket (a layer above): to be weakly keyed, and to be cut off."""

    def disconnect(self, close: bool = False) -> None: ...


class EventLimiter:
    """A token bucket per socket for inbound events (state dies with the socket)."""

    def __init__(self, limits: Limits, throttled: Throttled):
        self.rate = limits.event_rate
        self.burst = float(limits.event_burst)
        self.strikes = float(limits.event_strikes)
        self.throttled = throttled
        self._buckets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def allow(self, socket: Metered) -> bool:
        """True if the event may go to the handlers; False if it is dropped."""
        now = time.monotonic()
        bucket = self._buckets.get(socket)
        if bucket is None:
            bucket = self._buckets[socket] = [self.burst, now]
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return True
        # Each dropped event deepens the debt: a socket that keeps going runs out of strikes.
        bucket[0] = tokens - 1.0
        self.throttled.fired("events", "%s sends events too fast; dropped", socket)
        if bucket[0] < -self.strikes:
            log.warning("%s kept flooding after %d dropped events; disconnecting", socket, int(self.strikes))
            socket.disconnect()
        return False
