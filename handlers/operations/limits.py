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
from dataclasses import dataclass, fields, replace
from ipaddress import ip_address
from typing import TYPE_CHECKING, Any, Protocol

from tornado.httputil import HTTPServerRequest

from ..engineio.stats import Stats, Watcher

if TYPE_CHECKING:
    from ..engineio.session import Session

log = logging.getLogger("board.limits")

OUT_OF_REACH = 10**9  # a rate or a bound no client reaches: `Limits.off()`
MAX_TRACKED_ADDRESSES = 100_000  # buckets kept per kind of limit; full ones are forgotten first


@dataclass
class Limits:
    """The abuse limits, each a `Hub(...)` option of the same name (rates per second).

    Defaults are generous: a whole office behind one NAT address reconnecting
    after a restart gets through, at worst after a retry or two.
    """

    event_rate: float = 50.0               # inbound events per socket per second, sustained
    event_burst: int = 100                 # ... and at once
    event_strikes: int = 200               # dropped events (net of refill) before the session is closed
    address_event_rate: float = 1000.0     # inbound events per client address per second, all its sessions
    address_event_burst: int = 2000        # ... and at once
    connect_rate: float = 2.0              # namespace CONNECT/DISCONNECT packets per session per second
    connect_burst: int = 50                # ... and at once; past it the session is closed
    max_auth_bytes: int = 4096             # a CONNECT packet's size on the wire (its auth payload); refused past it
    handshake_rate: float = 20.0           # new sessions per client address per second, sustained
    handshake_burst: int = 500             # ... and at once
    max_sessions_per_address: int = 5000   # open sessions from one address
    max_sessions: int = 100_000            # open sessions in all
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-For is believed
    header_timeout: float = 10.0           # seconds a connection may take to send a request's headers
    max_connections_per_address: int | None = None  # open TCP connections from one address; None: 10,000,
    #                                                 or half the descriptor limit if lower (trusted proxies: no cap)

    @classmethod
    def off(cls) -> "Limits":
        """No abuse limits (a load test, a benchmark): every rate and bound out of reach."""
        return cls(**{f.name: OUT_OF_REACH for f in fields(cls) if f.name != "trusted_proxies"})

    @classmethod
    def take(cls, limits: "Limits | bool", options: dict[str, Any]) -> "Limits":
        """`Hub(limits=...)`: True for the defaults, False for none, or a `Limits`; a limit also
        named among the hub's `options` (taken out of them) replaces its value."""
        base = cls() if limits is True else cls.off() if limits is False else limits
        named = {f.name: options.pop(f.name) for f in fields(cls) if f.name in options}
        return replace(base, **named) if named else base


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
        self.handshakes = AddressBuckets()            # a bucket per address
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
        if not self.handshakes.allow(address, limits.handshake_rate, limits.handshake_burst, time.monotonic()):
            self.throttled.fired("handshakes", "too many handshakes from %s", address)
            return 429, "Too many handshakes from this address, try again shortly"
        return None

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


class Bucket:
    """A token bucket: `take` spends one token and says how many are left (below 0: over the limit)."""

    __slots__ = ("tokens", "stamp")

    def __init__(self, burst: float):
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, rate: float, burst: float, now: float) -> float:
        tokens = self.tokens + max(0.0, now - self.stamp) * rate  # `now` may precede a new bucket
        if tokens > burst:
            tokens = burst
        self.stamp = now
        self.tokens = tokens - 1.0
        return self.tokens

    def allow(self, rate: float, burst: float, now: float) -> bool:
        """Spend one token if a whole one is there; a refusal costs nothing (no debt)."""
        tokens = min(float(burst), self.tokens + max(0.0, now - self.stamp) * rate)
        self.stamp = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True

    def full(self, rate: float, burst: float, now: float) -> bool:
        return self.tokens + (now - self.stamp) * rate >= burst


class AddressBuckets:
    """A bucket per client address, bounded: full ones (they hold nothing) are forgotten first.

    Rate and burst come with each call: they are the limits' own, which an operator may change.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}

    def _bucket(self, address: str, rate: float, burst: float, now: float) -> Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_ADDRESSES:
                self._forget(rate, burst, now)
            bucket = self._buckets[address] = Bucket(burst)
        return bucket

    def take(self, address: str, rate: float, burst: float, now: float) -> float:
        """Spend a token, in debt if need be (see `Bucket.take`)."""
        return self._bucket(address, rate, burst, now).take(rate, burst, now)

    def allow(self, address: str, rate: float, burst: float, now: float) -> bool:
        """Spend a token if a whole one is there (see `Bucket.allow`)."""
        return self._bucket(address, rate, burst, now).allow(rate, burst, now)

    def clear(self) -> None:
        self._buckets.clear()

    def _forget(self, rate: float, burst: float, now: float) -> None:
        full = [a for a, b in self._buckets.items() if b.full(rate, burst, now)]
        if len(full) < len(self._buckets) // 2:
            full = list(self._buckets)[: len(self._buckets) // 2]
        for address in full:
            del self._buckets[address]


class Metered(Protocol):
    """What the limiter needs of a client (a Socket.IO session, a layer above): the budgets it
    keeps there (they die with the session), its address and its Engine.IO session."""

    events: Bucket | None
    connects: Bucket | None
    address: str
    session: "Session"


class MeteredSocket(Protocol):
    """What the limiter needs of a socket: its client, and to be cut off."""

    client: Metered

    def disconnect(self, close: bool = False) -> None: ...


class EventLimiter:
    """Meters what a client sends: events per session and per address, namespace connects per session.

    The budgets follow the client, not one socket: a session that leaves a
    namespace and joins it again keeps its bucket, and every session from
    one address (as `trusted_proxies` sees it) draws on a shared one.
    """

    def __init__(self, limits: Limits, throttled: Throttled):
        self.limits = limits
        self.rate = limits.event_rate
        self.burst = float(limits.event_burst)
        self.strikes = float(limits.event_strikes)
        self.throttled = throttled
        self.addresses = AddressBuckets()
        # Limits out of reach (`Limits.off()`, a load test): no bucket to keep, nothing to count.
        self.unlimited = limits.event_rate >= OUT_OF_REACH and limits.address_event_rate >= OUT_OF_REACH

    def allow(self, socket: MeteredSocket) -> bool:
        """True if the event may go to the handlers; False if it is dropped (past the strikes,
        the socket is disconnected: a Socket.IO DISCONNECT, which official clients do not retry)."""
        if self.unlimited:
            return True
        client = socket.client
        now = time.monotonic()
        bucket = client.events
        if bucket is None:
            bucket = client.events = Bucket(self.burst)
        left = bucket.take(self.rate, self.burst, now)
        if left >= 0.0:
            limits = self.limits
            if self.addresses.take(client.address, limits.address_event_rate, limits.address_event_burst,
                                   now) >= 0.0:
                return True
            self.throttled.fired("address_events", "%s sends events too fast; dropped", client.address)
            return False
        # Each dropped event deepens the debt: a session that keeps going runs out of strikes.
        self.throttled.fired("events", "session %s sends events too fast; dropped", client.session.sid[:8])
        if left < -self.strikes:
            self.throttled.fired("event_strikes", "session %s kept flooding after %d dropped events; "
                                 "disconnecting", client.session.sid[:8], int(self.strikes))
            socket.disconnect()
        return False

    def connect_allowed(self, client: Metered) -> bool:
        """A namespace CONNECT or DISCONNECT: False closes the session (a client that churns
        namespaces makes the app announce arrivals and departures: an amplifier)."""
        limits = self.limits
        bucket = client.connects
        if bucket is None:
            bucket = client.connects = Bucket(limits.connect_burst)
        if bucket.take(limits.connect_rate, limits.connect_burst, time.monotonic()) >= 0.0:
            return True
        self.throttled.fired("connects", "session %s connects and disconnects namespaces too fast; closing",
                             client.session.sid[:8])
        client.session.close("too many connects")
        return False
