"""The hub: Socket.IO v5 namespaces, sockets, rooms, events and acks.

It knows connections and rooms, not transports: each Engine.IO session,
WebSocket or long-polling alike, is a `Client`, and each namespace it joins
is a `Socket`. An emit is encoded once into an `Outgoing` and handed to every
receiving session, which only queues a reference to it.

    hub = Hub()

    @hub.on("connection")
    def connected(socket):
        hub.emit("news", {"msg": "One more person is online", "count": hub.count})
        socket.emit("private", {"msg": "Welcome"})

    app = tornado.web.Application(hub.routes() + [(r"/", IndexHandler)])
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Iterable

from tornado.web import StaticFileHandler

from .adapter import Adapter, MemoryAdapter, wants_offsets
from .broadcast import Broadcast, Peers
from .files import STATIC_DIR
from .once import MemoryOnce, RedisOnce
from ..engineio.engine import Engine
from ..operations.limits import Bucket, Limits
from ..operations.drain import drain
from ..operations.ops import Ops
from ..transports.server import engine_server
from ..transports.routing import engine_routes
from .namespace import ConnectionRefused, Namespace
from .recovery import RecoveryLog
from ..wire.protocol import (
    ACK, BINARY_ACK, BINARY_EVENT, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT,
    MAX_NAMESPACE_LENGTH, Decoder, Outgoing, Packet, ProtocolError,
)
from ..engineio.session import CLIENT_CLOSE, Session
from .sockets import AckTimeout, Disconnected, Handler, Socket

log = logging.getLogger("board.hub")


MAX_AUTH_VALUES = 256  # values in a CONNECT's auth (with max_auth_bytes: held at a few times its wire size)

NO_NAMES: frozenset[str] = frozenset()  # shared by every client with nothing pending

__all__ = ["Hub", "Client", "Namespace", "Socket", "Broadcast", "AckTimeout", "Disconnected", "ConnectionRefused"]


class Client:
    """One Engine.IO session seen from the hub: its namespaces and its decoder."""

    __slots__ = ("hub", "session", "environ", "decoder", "sockets", "pending", "offsets", "address",
                 "events", "connects")

    def __init__(self, hub: "Hub", session: Session, environ: dict):
        self.hub = hub
        self.session = session
        self.environ = environ
        self.address: str = environ.get("remote_ip") or ""  # as the limits see it (trusted proxies)
        self.events: Bucket | None = None     # its event budget (handlers/operations/limits.py), made on first event
        self.connects: Bucket | None = None   # its namespace CONNECT/DISCONNECT budget
        self.decoder = Decoder(hub.max_attachments)
        self.sockets: dict[str, Socket] = {}
        self.pending: frozenset[str] = NO_NAMES  # namespaces whose middleware is still running
        self.offsets = hub.adapter.recovering and wants_offsets(environ)  # its events carry offsets

    def on_message(self, data: str | bytes) -> None:
        if data[:1] == "0" and len(data) > self.hub.ops.limits.max_auth_bytes:
            self._refuse_large_connect(data)  # not parsed: its auth would be held for the socket's life
            return
        packet = self.decoder.feed(data)
        if packet is None:
            return
        self.hub.stats.packets_received += 1
        kind = packet.type
        if kind == EVENT or kind == BINARY_EVENT:
            socket = self.sockets.get(packet.namespace)
            if socket is not None:
                socket._on_event(packet)
            else:
                log.debug("event for namespace %s, not connected; ignored", packet.namespace)
        elif kind == ACK or kind == BINARY_ACK:
            socket = self.sockets.get(packet.namespace)
            if socket is not None:
                socket._on_ack(packet)
        elif kind == CONNECT:
            if self.hub.ops.events.connect_allowed(self):
                self._connect(packet)
        elif kind == DISCONNECT:
            if not self.hub.ops.events.connect_allowed(self):
                return
            socket = self.sockets.get(packet.namespace)
            if socket is not None:
                socket._gone("client namespace disconnect")
        else:
            raise ProtocolError("CONNECT_ERROR from a client")

    def _refuse_large_connect(self, data: str) -> None:
        """A CONNECT above `max_auth_bytes`: CONNECT_ERROR for its namespace, and nothing kept."""
        if not self.hub.ops.events.connect_allowed(self):
            return
        name = "/"
        if data[1:2] == "/":
            comma = data.find(",", 1, MAX_NAMESPACE_LENGTH + 2)
            if comma < 0:
                raise ProtocolError("namespace too long")
            name = data[1:comma]
        self.hub.stats.packets_received += 1
        self._refuse_auth(name, len(data))

    def _refuse_auth(self, name: str, size: int) -> None:
        self.hub.ops.throttled.fired("auth_bytes", "session %s sent a CONNECT auth too large (%d bytes); refused",
                                     self.session.sid[:8], size)
        self.session.send(Outgoing.of(Packet(CONNECT_ERROR, name, {"message": "Auth too large"})))

    def _connect(self, packet: Packet) -> None:
        name = packet.namespace
        if packet.data is not None and _too_many_values(packet.data, MAX_AUTH_VALUES):
            self._refuse_auth(name, len(str(packet.data)))
            return
        existing = self.sockets.get(name)
        if existing is not None:
            self.session.send(Outgoing.of(Packet(CONNECT, name, {"sid": existing.id})))
            return
        if name in self.pending:
            return
        namespace = self.hub.namespaces.get(name)
        if namespace is None:
            log.info("connect to unknown namespace %r refused", name[:64])
            self.session.send(Outgoing.of(Packet(CONNECT_ERROR, name, {"message": "Invalid namespace"})))
            return
        if len(self.sockets) + len(self.pending) >= self.hub.max_namespaces:
            self.session.send(Outgoing.of(Packet(CONNECT_ERROR, name, {"message": "Too many namespaces"})))
            return
        namespace._connect(self, packet.data)

    def closed(self, reason: str) -> None:
        for socket in list(self.sockets.values()):
            socket._gone(reason)


def _too_many_values(data: Any, most: int) -> bool:
    """True if `data` (parsed JSON) holds more than `most` values: a few KiB of `[[],[],…]` would
    otherwise be held as thousands of Python objects, many times their size on the wire."""
    stack, seen = [data], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > most:
            return True
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


# ---------------------------------------------------------------------------


class Hub:
    """The Socket.IO server: one per app, shared by every transport.

    Options (times in milliseconds, as on the wire): `ping_interval`,
    `ping_timeout`, `max_payload` (bytes per packet or polling payload),
    `allowed_origins` (None: same origin only; a list; or "*"),
    `connect_timeout` (a session must join a namespace within it),
    `max_namespaces` per session, `max_rooms` per socket,
    `max_pending_acks` per socket, `max_attachments` per packet,
    `recover_within` (how long a lost socket may come back with its state
    and what it missed; 0 turns recovery off), `recovery_log_packets` and
    `recovery_log_bytes` (the bounds of the log of group emits kept for it),
    `adapter` (where group emits go; in this process by default),
    `limits` (the abuse limits: True for the defaults, False for none, or a
    `Limits`; each limit may also be given as an option of its own name).
    `hub.on(event, handler, once=True)` keeps each emit's ack for the
    recovery window (`recover_within`, or 120 s without recovery): a
    client's retry gets it again (handlers/socketio/once.py).
    """

    def __init__(
        self,
        *,
        path: str = "/socket.io/",
        connect_timeout: int = 45000,
        max_namespaces: int = 32,
        max_rooms: int = 1000,
        max_pending_acks: int = 1000,
        max_attachments: int = 10,
        recover_within: int = 120_000,
        recovery_log_packets: int = 10_000,
        recovery_log_bytes: int = 32 * 2**20,
        adapter: Adapter | None = None,
        limits: Limits | bool = True,
        **engine_options: Any,
    ):
        self.path = path.rstrip("/") + "/"
        self.connect_timeout = connect_timeout
        self.max_namespaces = max_namespaces
        self.max_rooms = max_rooms
        self.max_pending_acks = max_pending_acks
        self.max_attachments = max_attachments
        self.cluster: Peers | None = None  # the other processes of a cluster (join_cluster)
        self.adapter = adapter or MemoryAdapter(
            RecoveryLog(recover_within, max_packets=recovery_log_packets, max_bytes=recovery_log_bytes)
            if recover_within > 0 else None)
        limits = Limits.take(limits, engine_options)  # the one switch, and any limit named as an option
        self.engine = Engine(on_open=self._open, on_message=self._message, on_close=self._close,
                             on_tick=self._tick, **engine_options)
        self.namespaces: dict[str, Namespace] = {"/": Namespace(self, "/")}
        self.main = self.namespaces["/"]
        self._ack_ids = itertools.count(1)
        # The acks of `once` events, for the recovery window (in Redis once a Redis adapter starts).
        self.once_window = recover_within or 120_000
        self.once: MemoryOnce | RedisOnce = MemoryOnce(self.once_window)
        self.stats = self.engine.stats
        self.ops = Ops(self, limits)  # limits, health, metrics, the Admin UI's hook

    # -- the app's API (main namespace) ---------------------------------

    def of(self, name: str) -> Namespace:
        """The namespace `name`, created on first use."""
        if not name.startswith("/"):
            name = "/" + name
        namespace = self.namespaces.get(name)
        if namespace is None:
            namespace = self.namespaces[name] = Namespace(self, name)
        return namespace

    def on(self, event: str, handler: Handler | None = None, *, once: bool = False) -> Any:
        """Register `handler` for `event` of the main namespace (or use as a decorator).

        "connection" gets each new socket, "disconnect" the socket and the
        reason; any other event gets the socket then the client's arguments,
        and what the handler returns (a tuple for several values) is the ack.
        `once=True`: a client's retry of an emit gets the first try's ack (handlers/socketio/once.py).
        """
        return self.main.on(event, handler, once=once)

    def use(self, middleware: Handler) -> Handler:
        """Run `middleware(socket, auth)` before each socket of the main namespace connects;
        raising `ConnectionRefused` refuses it. May be async."""
        return self.main.use(middleware)

    def emit(self, event: str, *args: Any, to: Any = None, skip: Any = None,
             namespace: str = "/") -> int:
        """Send `event` to everyone (or the rooms `to`, minus `skip`); encoded once."""
        return self.of(namespace).emit(event, *args, to=to, skip=skip)

    async def call(self, event: str, *args: Any, to: Any = None, skip: Any = None,
                   namespace: str = "/", timeout: float = 60.0) -> list:
        """Emit with acks to everyone (or `to`, minus `skip`): the replies that came within `timeout` s."""
        return await self.of(namespace).call(event, *args, to=to, skip=skip, timeout=timeout)

    def to(self, *rooms: str | Iterable[str]) -> Broadcast:
        """The sockets of the main namespace in any of `rooms`: a group to emit to, call, or disconnect."""
        return self.main.to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> Broadcast:
        """Every socket of the main namespace but those in `rooms`."""
        return self.main.except_(*rooms)

    @property
    def count(self) -> int:
        """Sockets connected to the main namespace."""
        return len(self.main.sockets)

    @property
    def sockets(self) -> dict[str, Socket]:
        """The main namespace's sockets of this process, by id."""
        return self.main.sockets

    def routes(self) -> list:
        """Tornado rules: the Engine.IO endpoint and our browser client at `<path>socket.io.js`."""
        return engine_routes(self.engine, self.path) + [
            (self.path + r"(socket\.io\.js)", StaticFileHandler, {"path": STATIC_DIR}),
        ]

    def server(self, app: Any, **options: Any) -> Any:
        """The fast way to serve `app` with this hub: a Tornado `HTTPServer` (call `listen(port)` or
        `add_sockets`) that answers polls and WebSocket handshakes of the hub below Tornado's
        RequestHandler and hands every other request to `app`. `options` go to `HTTPServer`."""
        return engine_server(app, self.engine, self.path, **options)

    async def drain(self, seconds: float) -> None:
        """Refuse new sessions at once (`/readyz` answers 503) and make every client reconnect
        elsewhere, spread over `seconds`; returns when all are gone."""
        await drain(self, seconds)

    def close(self) -> None:
        """Disconnect everyone (the server is stopping)."""
        self.engine.close()

    def join_cluster(self, peers: Peers) -> None:
        """Run as one process of a cluster: group operations reach `peers` too (its adapter calls this)."""
        self.cluster = peers

    async def start(self) -> None:
        """Start the adapter (a cluster adapter connects to Redis here; a clear error if it cannot)."""
        await self.adapter.start(self)
        redis = getattr(self.adapter, "redis", None)
        if redis is not None:  # a cluster's adapter: the acks of `once` events are kept in its Redis
            self.once = RedisOnce(redis, self.adapter.prefix, self.once_window)

    async def stop(self) -> None:
        """Stop the adapter, once what it has queued is written."""
        await self.adapter.stop()

    async def fetch_count(self) -> int:
        """Sockets of the main namespace in the whole cluster (this process alone in memory)."""
        return await self.adapter.count(self.count)

    def next_ack_id(self) -> int:
        """A new acknowledgement id, unique in this hub (a group's call shares one for all its receivers)."""
        return next(self._ack_ids)

    # -- engine callbacks ---------------------------------------------

    def _open(self, session: Session, environ: dict) -> None:
        session.context = Client(self, session, environ)

    def _message(self, session: Session, data: str | bytes) -> None:
        session.context.on_message(data)

    def _close(self, session: Session, reason: str) -> None:
        client = session.context
        if client is not None:
            # An Engine.IO close packet alone (no Socket.IO DISCONNECT) is the transport
            # going away, as socket.io reports it: the socket may come back.
            client.closed("transport close" if reason == CLIENT_CLOSE else reason)

    def _tick(self) -> None:
        """Close sessions that never joined a namespace within `connect_timeout`."""
        deadline = time.monotonic() - self.connect_timeout / 1000
        idle = [s for s in self.engine.sessions.values()
                if s.created < deadline and not s.context.sockets and not s.context.pending]
        for session in idle:
            log.info("session %s joined no namespace within %d ms; closing", session.sid[:8], self.connect_timeout)
            session.close("connect timeout")
        self.adapter.tick()
