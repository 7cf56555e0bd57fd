"""A Socket.IO namespace: its sockets, rooms, handlers and middleware."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any, Iterable

from .broadcast import Broadcast
from ..wire.protocol import CONNECT, CONNECT_ERROR, Outgoing, Packet
from .sockets import Handler, Socket, log_task_error

if TYPE_CHECKING:
    from .hub import Client, Hub

log = logging.getLogger("board.hub")


class ConnectionRefused(Exception):
    """Raise from a middleware to refuse a connection; the client gets CONNECT_ERROR."""

    def __init__(self, message: str = "Connection refused", data: Any = None):
        super().__init__(message)
        self.message = message
        self.data = data

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
        self.once_events: set[str] = set()  # handled once per client emit (handlers/socketio/once.py)

    def __repr__(self) -> str:
        return f"<Namespace {self.name} ({len(self.sockets)} sockets)>"

    @property
    def count(self) -> int:
        """Sockets connected to this namespace in this process."""
        return len(self.sockets)

    def on(self, event: str, handler: Handler | None = None, *, once: bool = False) -> Any:
        """Register a handler; usable as a decorator.

        `connection` handlers get the new socket; `disconnect` ones the
        socket and the reason; any other event's handler gets the socket
        then the client's arguments, and its return value is the ack.
        `once=True`: a client's retry of an emit (the same ack id) gets the
        first try's ack again, the handler runs once (handlers/socketio/once.py).
        """
        if once and event in ("connection", "connect", "disconnect", "*"):
            raise ValueError(f"once=True is for a client's events, not {event!r}")

        def register(fn: Handler) -> Handler:
            if once:
                self.once_events.add(event)
            else:
                self.once_events.discard(event)
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
        """The sockets of this namespace in any of `rooms`: a group to emit to, call, or disconnect."""
        return Broadcast(self).to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> Broadcast:
        """Every socket of this namespace but those in `rooms`."""
        return Broadcast(self).except_(*rooms)

    def disconnect_sockets(self, room: str | None = None, close: bool = False) -> None:
        """Disconnect every socket of this namespace (`close`: their whole sessions too)."""
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
        if isinstance(auth, dict) and ("recovery" in auth or "pid" in auth):
            auth = dict(auth)
            stated = auth.pop("recovery", True)  # coming back with a pid says it recovers
            if type(stated) is bool:  # what a client says of itself wins over its User-Agent
                client.offsets = self.hub.adapter.recovering and stated
        if client.offsets and isinstance(auth, dict) and "pid" in auth:
            client.pending = client.pending | {self.name}
            asyncio.ensure_future(self._recover(client, dict(auth))).add_done_callback(log_task_error)
            return
        socket = Socket(self, client, auth)
        if not self.middlewares:
            self._accept(socket)
            return
        client.pending = client.pending | {self.name}
        asyncio.ensure_future(self._run_middlewares(socket)).add_done_callback(log_task_error)

    async def _recover(self, client: "Client", auth: dict) -> None:
        """A client coming back with {pid, offset}: itself again if the adapter still has its state."""
        pid, offset = auth.pop("pid"), auth.pop("offset", None)
        try:
            restored = await self.hub.adapter.restore(self.name, pid, offset)
        finally:
            client.pending = client.pending - {self.name}
        if client.session.closed:
            return
        if restored is None:
            self._connect(client, auth)  # as new: the app resyncs (socket.recovered is False)
            return
        saved, missed = restored
        # Middleware ran when it first connected (as socket.io's skipMiddlewares).
        self._accept(Socket(self, client, auth, saved), saved.rooms, missed)

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

    def install(self, socket: Socket, rooms: Iterable[str] = ()) -> None:
        """Make `socket` one of this namespace's, in `rooms`, and tell the adapter (a connect, a
        recovery, or a socket moved here from another process)."""
        socket.connected = True
        self.sockets[socket.id] = socket
        socket.client.sockets[self.name] = socket
        if rooms:
            socket.join(rooms)
        self.hub.adapter.connected(socket)

    def forget(self, socket: Socket) -> None:
        """Take `socket` out of this namespace without a word (it moved to another process)."""
        self.sockets.pop(socket.id, None)

    def _accept(self, socket: Socket, rooms: Iterable[str] = (), missed: Iterable[Outgoing] = ()) -> None:
        session = socket.client.session
        self.install(socket, rooms)
        if socket.pid is None:
            session.send(Outgoing.of(Packet(CONNECT, self.name, {"sid": socket.id})))
        else:
            session.send(Outgoing.of(Packet(CONNECT, self.name, {"sid": socket.id, "pid": socket.pid})))
        session.write_apart()  # the CONNECT answer reaches the client before what follows it
        for out in missed:
            session.send(out)
        for handler in self.connection_handlers:
            socket._run_lifecycle(handler, socket)
            if not socket.connected:
                break

