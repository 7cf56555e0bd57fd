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

import asyncio
import inspect
import itertools
import logging
import os
import secrets
import time
from typing import Any, Callable, Iterable

from tornado.web import StaticFileHandler

from .engine import Engine
from .protocol import (
    ACK, BINARY_ACK, BINARY_EVENT, CONNECT, CONNECT_ERROR, DISCONNECT, EVENT,
    Decoder, Outgoing, Packet, ProtocolError,
)
from .session import Session

log = logging.getLogger("board.hub")

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")

# Events a client may not emit: they belong to the connection's life cycle.
RESERVED_EVENTS = frozenset({
    "connect", "connection", "connect_error", "disconnect", "disconnecting",
    "newListener", "removeListener",
})

Handler = Callable[..., Any]
NO_NAMES: frozenset[str] = frozenset()  # shared by every client with nothing pending


class AckTimeout(TimeoutError):
    """The client did not acknowledge in time."""


class Disconnected(ConnectionError):
    """The socket went away before it acknowledged."""


class ConnectionRefused(Exception):
    """Raise from a middleware to refuse a connection; the client gets CONNECT_ERROR."""

    def __init__(self, message: str = "Connection refused", data: Any = None):
        super().__init__(message)
        self.message = message
        self.data = data


def _ack_args(result: Any) -> list:
    """A handler's return value as the ack's argument list (a tuple spreads)."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


def _ack_value(data: list) -> Any:
    """The ack's arguments as the app gets them: the single one, a tuple of several, or None."""
    return data[0] if len(data) == 1 else tuple(data) if data else None


def _log_task_error(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("error in event handler", exc_info=task.exception())


# ---------------------------------------------------------------------------


class Socket:
    """One client in one namespace: what the app talks to."""

    __slots__ = (
        "id", "namespace", "client", "auth", "_data", "joined", "connected",
        "_handlers", "_acks", "__weakref__",
    )

    def __init__(self, namespace: "Namespace", client: "Client", auth: Any):
        self.id = secrets.token_urlsafe(15)
        self.namespace = namespace
        self.client = client
        self.auth = auth
        self._data: dict | None = None
        self.joined: set[str] | None = None   # rooms beyond its own, made on first join
        self.connected = False
        self._handlers: dict[str, Handler] | None = None
        self._acks: dict[int, Callable[[list], None]] | None = None

    def __repr__(self) -> str:
        return f"<Socket {self.id} {self.namespace.name}>"

    @property
    def data(self) -> dict:
        """The app's own per-socket storage (made on first use: most sockets never need it)."""
        if self._data is None:
            self._data = {}
        return self._data

    @property
    def transport(self) -> str:
        """'websocket' or 'polling': what carries this socket right now."""
        return self.client.session.transport

    @property
    def rooms(self) -> set[str]:
        """Its rooms, its own id among them."""
        return {self.id, *(self.joined or ())}

    @property
    def handshake(self) -> dict:
        return self.client.environ

    # -- handlers ------------------------------------------------------

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register `handler(*args)` for `event` from this client; usable as a decorator.

        The handler's return value is the acknowledgement (a tuple gives
        several arguments); it may be a coroutine function. `disconnect`
        handlers get the reason, `disconnecting` ones too, rooms still known.
        """
        def register(fn: Handler) -> Handler:
            if self._handlers is None:
                self._handlers = {}
            self._handlers[event] = fn
            return fn
        return register(handler) if handler is not None else register

    def off(self, event: str) -> None:
        if self._handlers:
            self._handlers.pop(event, None)

    # -- emitting ------------------------------------------------------

    def emit(self, event: str, *args: Any, callback: Callable[..., Any] | None = None) -> None:
        """Send `event` to this client; `callback(*ack_args)` runs on its acknowledgement."""
        if not self.connected:
            return
        ack_id = None
        if callback is not None:
            ack_id = self._expect_ack(lambda data: callback(*data))
        self.client.session.send(Outgoing.of(Packet(EVENT, self.namespace.name, [event, *args], ack_id)))

    async def call(self, event: str, *args: Any, timeout: float = 60.0) -> Any:
        """Send `event` and wait for the client's acknowledgement.

        Returns its single argument (or a tuple of several); raises
        `AckTimeout` after `timeout` seconds, `Disconnected` if the socket
        goes first.
        """
        if not self.connected:
            raise Disconnected(f"socket {self.id} is not connected")
        loop = asyncio.get_running_loop()
        future = loop.create_future()

        def settle(data: list) -> None:
            if not future.done():
                future.set_result(_ack_value(data))

        def fail() -> None:
            if not future.done():
                future.set_exception(Disconnected(f"socket {self.id} left before acknowledging {event!r}"))

        settle.fail = fail  # type: ignore[attr-defined]
        ack_id = self._expect_ack(settle)
        self.client.session.send(Outgoing.of(Packet(EVENT, self.namespace.name, [event, *args], ack_id)))
        timer = loop.call_later(timeout, self._expire_ack, ack_id, future, event, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    def _expect_ack(self, settle: Callable[[list], None], ack_id: int | None = None) -> int:
        acks = self._acks
        if acks is None:
            acks = self._acks = {}
        elif len(acks) >= self.namespace.hub.max_pending_acks:
            raise RuntimeError(f"socket {self.id} has {len(acks)} acknowledgements pending")
        if ack_id is None:
            ack_id = next(self.namespace.hub._ack_ids)
        acks[ack_id] = settle
        return ack_id

    def _expire_ack(self, ack_id: int, future: asyncio.Future, event: str, timeout: float) -> None:
        if self._acks:
            self._acks.pop(ack_id, None)
        if not future.done():
            future.set_exception(AckTimeout(f"no acknowledgement of {event!r} within {timeout} s"))

    @property
    def broadcast(self) -> "Broadcast":
        """Everyone in the namespace but this socket."""
        return Broadcast(self.namespace, exclude={self.id})

    def to(self, *rooms: str | Iterable[str]) -> "Broadcast":
        """The given rooms, this socket excluded (as `socket.to(room)` in Socket.IO)."""
        return Broadcast(self.namespace, exclude={self.id}).to(*rooms)

    # -- rooms ---------------------------------------------------------

    def join(self, *rooms: str | Iterable[str]) -> None:
        names = _names(rooms)
        joined = self.joined
        if joined is None:
            joined = self.joined = set()
        limit = self.namespace.hub.max_rooms
        for room in names:
            if room in joined or room == self.id:
                continue
            if len(joined) >= limit:
                raise RuntimeError(f"socket {self.id} is already in {limit} rooms")
            joined.add(room)
            self.namespace.rooms.setdefault(room, {})[self.id] = self

    def leave(self, *rooms: str | Iterable[str]) -> None:
        if not self.joined:
            return
        for room in _names(rooms):
            if room in self.joined:
                self.joined.discard(room)
                members = self.namespace.rooms.get(room)
                if members is not None:
                    members.pop(self.id, None)
                    if not members:
                        del self.namespace.rooms[room]

    # -- leaving -------------------------------------------------------

    def disconnect(self, close: bool = False) -> None:
        """Disconnect from this namespace; `close` ends the whole connection."""
        if close:
            self.client.session.close("forced close")
            return
        if self.connected:
            self.client.session.send(Outgoing.of(Packet(DISCONNECT, self.namespace.name)))
            self._gone("server namespace disconnect")

    def _gone(self, reason: str) -> None:
        """Runs once when the socket leaves: handlers, rooms, pending acks."""
        if not self.connected:
            return
        handlers = self._handlers or {}
        self._run_lifecycle(handlers.get("disconnecting"), reason)
        self.connected = False
        if self.joined:
            self.leave(list(self.joined))
        self.namespace.sockets.pop(self.id, None)
        self.client.sockets.pop(self.namespace.name, None)
        acks, self._acks = self._acks, None
        if acks:
            for settle in acks.values():
                _drop_ack(settle)
        self._run_lifecycle(handlers.get("disconnect"), reason)
        for handler in self.namespace.disconnect_handlers:
            self._run_lifecycle(handler, self, reason)

    def _run_lifecycle(self, handler: Handler | None, *args: Any) -> None:
        if handler is None:
            return
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                asyncio.ensure_future(result).add_done_callback(_log_task_error)
        except Exception:
            log.exception("error in %s handler of %s", getattr(handler, "__name__", "?"), self)

    # -- inbound -------------------------------------------------------

    def _on_event(self, packet: Packet) -> None:
        args = packet.data
        event = args[0]
        if event in RESERVED_EVENTS:
            log.info("%s emitted reserved event %r; ignored", self, event)
            return
        handler = self._handlers.get(event) if self._handlers else None
        if handler is not None:
            call_args = args[1:]
        else:
            handler = self.namespace.handlers.get(event) or self.namespace.any_handler
            if handler is None:
                log.debug("%s: no handler for %r", self, event)
                return
            call_args = [self, *args[1:]] if handler is not self.namespace.any_handler else [self, *args]
        try:
            result = handler(*call_args)
        except Exception:
            log.exception("error in handler of %r for %s", event, self)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            task.add_done_callback(_log_task_error)
            if packet.id is not None:
                ack_id = packet.id

                def ack_when_done(task: asyncio.Task) -> None:
                    if not task.cancelled() and task.exception() is None:
                        self._ack(ack_id, task.result())
                task.add_done_callback(ack_when_done)
        elif packet.id is not None:
            self._ack(packet.id, result)

    def _ack(self, ack_id: int, result: Any) -> None:
        if self.connected:
            self.client.session.send(Outgoing.of(Packet(ACK, self.namespace.name, _ack_args(result), ack_id)))

    def _on_ack(self, packet: Packet) -> None:
        settle = self._acks.pop(packet.id, None) if self._acks else None
        if settle is None:
            log.debug("%s: unexpected ack %s", self, packet.id)
            return
        try:
            settle(packet.data)
        except Exception:
            log.exception("error in ack callback of %s", self)


def _drop_ack(settle: Callable[[list], None]) -> None:
    """A pending ack whose socket left: futures fail with Disconnected, callbacks are dropped."""
    fail = getattr(settle, "fail", None)
    if fail is not None:
        fail()


def _names(rooms: tuple) -> list[str]:
    names: list[str] = []
    for room in rooms:
        if isinstance(room, str):
            names.append(room)
        else:
            names.extend(room)
    return names


# ---------------------------------------------------------------------------


class Broadcast:
    """A set of receivers in one namespace: rooms to include, rooms to exclude."""

    __slots__ = ("namespace", "include", "exclude")

    def __init__(self, namespace: "Namespace", include: set[str] | None = None,
                 exclude: set[str] | None = None):
        self.namespace = namespace
        self.include = include or set()
        self.exclude = exclude or set()

    def to(self, *rooms: str | Iterable[str]) -> "Broadcast":
        return Broadcast(self.namespace, self.include | set(_names(rooms)), self.exclude)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> "Broadcast":
        return Broadcast(self.namespace, self.include, self.exclude | set(_names(rooms)))

    def sockets(self) -> list[Socket]:
        """The receivers, each once."""
        nsp = self.namespace
        if self.include:
            found: dict[str, Socket] = {}
            for room in self.include:
                members = nsp.rooms.get(room)
                if members is not None:
                    found.update(members)
                elif room in nsp.sockets:
                    found[room] = nsp.sockets[room]
            targets: Iterable[Socket] = found.values()
        else:
            targets = nsp.sockets.values()
        if not self.exclude:
            return list(targets)
        excluded: set[str] = set()
        for room in self.exclude:
            members = nsp.rooms.get(room)
            if members is not None:
                excluded.update(members)
            else:
                excluded.add(room)
        return [s for s in targets if s.id not in excluded]

    def emit(self, event: str, *args: Any) -> int:
        """Send to every receiver, encoded once; returns how many got it."""
        out = Outgoing.of(Packet(EVENT, self.namespace.name, [event, *args]))
        targets = self.sockets()
        for socket in targets:
            socket.client.session.send(out)
        return len(targets)

    async def call(self, event: str, *args: Any, timeout: float = 60.0) -> list:
        """Send to every receiver and collect their acknowledgements.

        Returns the replies that arrived within `timeout` seconds (one per
        receiver that answered, each its single argument or a tuple).
        """
        targets = self.sockets()
        if not targets:
            return []
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        replies: list = []
        ack_id = next(self.namespace.hub._ack_ids)
        waiting = len(targets)

        def give_up() -> None:  # a receiver left before answering
            nonlocal waiting
            waiting -= 1
            if waiting == 0 and not done.done():
                done.set_result(None)

        def settle(data: list) -> None:
            replies.append(_ack_value(data))
            give_up()

        settle.fail = give_up  # type: ignore[attr-defined]
        out = Outgoing.of(Packet(EVENT, self.namespace.name, [event, *args], ack_id))
        for socket in targets:
            socket._expect_ack(settle, ack_id)
            socket.client.session.send(out)
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            for socket in targets:
                if socket._acks:
                    socket._acks.pop(ack_id, None)
        return replies

    def disconnect(self, close: bool = False) -> None:
        """Disconnect every receiver."""
        for socket in self.sockets():
            socket.disconnect(close)


# ---------------------------------------------------------------------------


class Namespace:
    """A Socket.IO namespace: its sockets, rooms, handlers and middleware."""

    def __init__(self, hub: "Hub", name: str):
        self.hub = hub
        self.name = name
        self.sockets: dict[str, Socket] = {}
        self.rooms: dict[str, dict[str, Socket]] = {}
        self.handlers: dict[str, Handler] = {}
        self.connection_handlers: list[Handler] = []
        self.disconnect_handlers: list[Handler] = []
        self.middlewares: list[Handler] = []
        self.any_handler: Handler | None = None

    def __repr__(self) -> str:
        return f"<Namespace {self.name} ({len(self.sockets)} sockets)>"

    @property
    def count(self) -> int:
        return len(self.sockets)

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Register a handler; usable as a decorator.

        `connection` handlers get the new socket; `disconnect` ones the
        socket and the reason; any other event's handler gets the socket
        then the client's arguments, and its return value is the ack.
        """
        def register(fn: Handler) -> Handler:
            if event in ("connection", "connect"):
                self.connection_handlers.append(fn)
            elif event == "disconnect":
                self.disconnect_handlers.append(fn)
            elif event == "*":
                self.any_handler = fn
            else:
                self.handlers[event] = fn
            return fn
        return register(handler) if handler is not None else register

    def use(self, middleware: Handler) -> Handler:
        """Add `middleware(socket, auth)`: raise `ConnectionRefused` to refuse, may be async."""
        self.middlewares.append(middleware)
        return middleware

    def emit(self, event: str, *args: Any, to: str | Iterable[str] | None = None,
             skip: "str | Socket | Iterable[str] | None" = None) -> int:
        """Send to everyone, or to the rooms `to`, minus `skip` (a socket, id or room)."""
        return self._broadcast(to, skip).emit(event, *args)

    async def call(self, event: str, *args: Any, to: str | Iterable[str] | None = None,
                   skip: "str | Socket | Iterable[str] | None" = None, timeout: float = 60.0) -> list:
        """Emit to many and collect the acknowledgements that arrive within `timeout`."""
        return await self._broadcast(to, skip).call(event, *args, timeout=timeout)

    def to(self, *rooms: str | Iterable[str]) -> Broadcast:
        return Broadcast(self).to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> Broadcast:
        return Broadcast(self).except_(*rooms)

    def disconnect_sockets(self, room: str | None = None, close: bool = False) -> None:
        (Broadcast(self).to(room) if room else Broadcast(self)).disconnect(close)

    def _broadcast(self, to: Any, skip: Any) -> Broadcast:
        b = Broadcast(self)
        if to is not None:
            b = b.to(to)
        if skip is not None:
            if isinstance(skip, Socket):
                skip = skip.id
            b = b.except_(skip)
        return b

    # -- connecting ----------------------------------------------------

    def _connect(self, client: "Client", auth: Any) -> None:
        socket = Socket(self, client, auth)
        if not self.middlewares:
            self._accept(socket)
            return
        client.pending = client.pending | {self.name}
        asyncio.ensure_future(self._run_middlewares(socket)).add_done_callback(_log_task_error)

    async def _run_middlewares(self, socket: Socket) -> None:
        client = socket.client
        try:
            for middleware in self.middlewares:
                result = middleware(socket, socket.auth)
                if inspect.isawaitable(result):
                    await result
        except ConnectionRefused as refused:
            data: dict = {"message": refused.message}
            if refused.data is not None:
                data["data"] = refused.data
            client.session.send(Outgoing.of(Packet(CONNECT_ERROR, self.name, data)))
            return
        except Exception:
            log.exception("error in middleware of %s", self.name)
            client.session.send(Outgoing.of(Packet(CONNECT_ERROR, self.name, {"message": "Server error"})))
            return
        finally:
            client.pending = client.pending - {self.name}
        if not client.session.closed:
            self._accept(socket)

    def _accept(self, socket: Socket) -> None:
        client = socket.client
        socket.connected = True
        self.sockets[socket.id] = socket
        client.sockets[self.name] = socket
        client.session.send(Outgoing.of(Packet(CONNECT, self.name, {"sid": socket.id})))
        client.session.write_apart()  # the CONNECT answer reaches the client before what handlers emit
        for handler in self.connection_handlers:
            socket._run_lifecycle(handler, socket)
            if not socket.connected:
                break


# ---------------------------------------------------------------------------


class Client:
    """One Engine.IO session seen from the hub: its namespaces and its decoder."""

    __slots__ = ("hub", "session", "environ", "decoder", "sockets", "pending")

    def __init__(self, hub: "Hub", session: Session, environ: dict):
        self.hub = hub
        self.session = session
        self.environ = environ
        self.decoder = Decoder(hub.max_attachments)
        self.sockets: dict[str, Socket] = {}
        self.pending: frozenset[str] = NO_NAMES  # namespaces whose middleware is still running

    def on_message(self, data: str | bytes) -> None:
        packet = self.decoder.feed(data)
        if packet is None:
            return
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
            self._connect(packet)
        elif kind == DISCONNECT:
            socket = self.sockets.get(packet.namespace)
            if socket is not None:
                socket._gone("client namespace disconnect")
        else:
            raise ProtocolError("CONNECT_ERROR from a client")

    def _connect(self, packet: Packet) -> None:
        name = packet.namespace
        existing = self.sockets.get(name)
        if existing is not None:
            self.session.send(Outgoing.of(Packet(CONNECT, name, {"sid": existing.id})))
            return
        if name in self.pending:
            return
        namespace = self.hub.namespaces.get(name)
        if namespace is None:
            log.info("connect to unknown namespace %r refused", name)
            self.session.send(Outgoing.of(Packet(CONNECT_ERROR, name, {"message": "Invalid namespace"})))
            return
        if len(self.sockets) + len(self.pending) >= self.hub.max_namespaces:
            self.session.send(Outgoing.of(Packet(CONNECT_ERROR, name, {"message": "Too many namespaces"})))
            return
        namespace._connect(self, packet.data)

    def closed(self, reason: str) -> None:
        for socket in list(self.sockets.values()):
            socket._gone(reason)


# ---------------------------------------------------------------------------


class Hub:
    """The Socket.IO server: one per app, shared by every transport.

    Options (times in milliseconds, as on the wire): `ping_interval`,
    `ping_timeout`, `max_payload` (bytes per packet or polling payload),
    `allowed_origins` (None: same origin only; a list; or "*"),
    `connect_timeout` (a session must join a namespace within it),
    `max_namespaces` per session, `max_rooms` per socket,
    `max_pending_acks` per socket, `max_attachments` per packet.
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
        **engine_options: Any,
    ):
        self.path = path.rstrip("/") + "/"
        self.connect_timeout = connect_timeout
        self.max_namespaces = max_namespaces
        self.max_rooms = max_rooms
        self.max_pending_acks = max_pending_acks
        self.max_attachments = max_attachments
        self.engine = Engine(on_open=self._open, on_message=self._message, on_close=self._close,
                             on_tick=self._tick, **engine_options)
        self.namespaces: dict[str, Namespace] = {"/": Namespace(self, "/")}
        self.main = self.namespaces["/"]
        self._ack_ids = itertools.count(1)

    # -- the app's API (main namespace) ---------------------------------

    def of(self, name: str) -> Namespace:
        """The namespace `name`, created on first use."""
        if not name.startswith("/"):
            name = "/" + name
        namespace = self.namespaces.get(name)
        if namespace is None:
            namespace = self.namespaces[name] = Namespace(self, name)
        return namespace

    def on(self, event: str, handler: Handler | None = None) -> Any:
        return self.main.on(event, handler)

    def use(self, middleware: Handler) -> Handler:
        return self.main.use(middleware)

    def emit(self, event: str, *args: Any, to: Any = None, skip: Any = None,
             namespace: str = "/") -> int:
        """Send `event` to everyone (or the rooms `to`, minus `skip`); encoded once."""
        return self.of(namespace).emit(event, *args, to=to, skip=skip)

    async def call(self, event: str, *args: Any, to: Any = None, skip: Any = None,
                   namespace: str = "/", timeout: float = 60.0) -> list:
        return await self.of(namespace).call(event, *args, to=to, skip=skip, timeout=timeout)

    def to(self, *rooms: str | Iterable[str]) -> Broadcast:
        return self.main.to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> Broadcast:
        return self.main.except_(*rooms)

    @property
    def count(self) -> int:
        """Sockets connected to the main namespace."""
        return len(self.main.sockets)

    @property
    def sockets(self) -> dict[str, Socket]:
        return self.main.sockets

    def routes(self) -> list:
        """Tornado rules: the Engine.IO endpoint and our browser client at `<path>socket.io.js`."""
        return self.engine.routes(self.path) + [
            (self.path + r"(socket\.io\.js)", StaticFileHandler, {"path": STATIC_DIR}),
        ]

    def close(self) -> None:
        """Disconnect everyone (the server is stopping)."""
        self.engine.close()

    # -- engine callbacks ---------------------------------------------

    def _open(self, session: Session, environ: dict) -> None:
        session.context = Client(self, session, environ)

    def _message(self, session: Session, data: str | bytes) -> None:
        session.context.on_message(data)

    def _close(self, session: Session, reason: str) -> None:
        client = session.context
        if client is not None:
            client.closed("client namespace disconnect" if reason == "client close" else reason)

    def _tick(self) -> None:
        """Close sessions that never joined a namespace within `connect_timeout`."""
        deadline = time.monotonic() - self.connect_timeout / 1000
        idle = [s for s in self.engine.sessions.values()
                if s.created < deadline and not s.context.sockets and not s.context.pending]
        for session in idle:
            log.info("session %s joined no namespace within %d ms; closing", session.sid[:8], self.connect_timeout)
            session.close("connect timeout")
