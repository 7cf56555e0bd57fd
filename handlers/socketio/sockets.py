"""A socket: one client in one namespace, the object an app talks to.

Events in, emits and acknowledgements out, rooms joined and left. It hands
encoded packets to its client's Engine.IO session and never sees a transport.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .arity import describe, takes
from .broadcast import Broadcast, ack_value, names
from .once import handle_once
from ..operations.ops import RATE_LIMITED
from ..wire.protocol import ACK, DISCONNECT, EVENT, Outgoing, Packet

if TYPE_CHECKING:
    from .hub import Client
    from .namespace import Namespace
    from .recovery import Recent, Saved

log = logging.getLogger("board.hub")

# Events a client may not emit: they belong to the connection's life cycle.
RESERVED_EVENTS = frozenset({
    "connect", "connection", "connect_error", "disconnect", "disconnecting",
    "newListener", "removeListener",
})

Handler = Callable[..., Any]


class AckTimeout(TimeoutError):
    """The client did not acknowledge in time."""


class Disconnected(ConnectionError):
    """The socket went away before it acknowledged."""


# What a handler returns most often, known not to be awaitable without asking `inspect` (three checks).
PLAIN = frozenset((type(None), str, int, float, bool, list, dict, tuple))


def _ack_args(result: Any) -> list:
    """A handler's return value as the ack's argument list (a tuple spreads)."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]


def log_task_error(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("error in event handler", exc_info=task.exception())



class Socket:
    """One client in one namespace: what the app talks to."""

    __slots__ = (
        "id", "namespace", "client", "auth", "_data", "joined", "connected",
        "_handlers", "_acks", "pid", "recovered", "_start", "_recent", "__weakref__",
    )

    def __init__(self, namespace: "Namespace", client: "Client", auth: Any, saved: "Saved | None" = None):
        self.namespace = namespace
        self.client = client
        self.auth = auth
        self.joined: set[str] | None = None   # rooms beyond its own, made on first join
        self.connected = False
        self._handlers: dict[str, Handler] | None = None
        self._acks: dict[int, PendingAck] | None = None
        self.recovered = saved is not None    # it came back with its state after a drop
        if saved is not None:
            self.id, self.pid, self._data = saved.sid, saved.pid, saved.data
            self._start, self._recent = saved.start, saved.recent
            return
        self.id = secrets.token_urlsafe(15)
        self._data: dict | None = None
        adapter = namespace.hub.adapter
        # A private session id, only for clients that get offsets and so can come back.
        self.pid: str | None = adapter.new_pid() if client.offsets else None
        self._start = adapter.start_offset() if client.offsets else None
        self._recent: Recent | None = None

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
    def eio_sid(self) -> str:
        """The Engine.IO session's id: the connection, whatever namespaces it joins and leaves."""
        return self.client.session.sid

    @property
    def address(self) -> str:
        """The client's address (from X-Forwarded-For when the peer is one of `trusted_proxies`)."""
        return self.client.address

    @property
    def handshake(self) -> dict:
        """The handshake as socket.io gives it: headers, address, time, url, query, auth."""
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
        """Remove this socket's handler of `event`."""
        if self._handlers:
            self._handlers.pop(event, None)

    # -- emitting ------------------------------------------------------

    def emit(self, event: str, *args: Any, callback: Callable[..., Any] | None = None) -> None:
        """Send `event` to this client; `callback(*ack_args)` runs on its acknowledgement."""
        if not self.connected:
            return
        if callback is not None:
            ack_id = self._expect_ack(lambda data: callback(*data))
            self.client.session.send(Outgoing.of(Packet(EVENT, self.namespace.name, [event, *args], ack_id)))
        elif self.pid is not None:
            self.namespace.hub.adapter.send_own(self, [event, *args])
        else:
            self.client.session.send(Outgoing.of(Packet(EVENT, self.namespace.name, [event, *args])))
        self.namespace.hub.stats.packets_sent += 1

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
                future.set_result(ack_value(data))

        def fail() -> None:
            if not future.done():
                future.set_exception(Disconnected(f"socket {self.id} left before acknowledging {event!r}"))

        ack_id = self._expect_ack(settle, fail=fail)
        self.namespace.hub.stats.packets_sent += 1
        self.client.session.send(Outgoing.of(Packet(EVENT, self.namespace.name, [event, *args], ack_id)))
        timer = loop.call_later(timeout, self._expire_ack, ack_id, future, event, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    def _expect_ack(self, settle: Callable[[list], None], ack_id: int | None = None,
                    fail: Callable[[], None] | None = None) -> int:
        acks = self._acks
        if acks is None:
            acks = self._acks = {}
        elif len(acks) >= self.namespace.hub.max_pending_acks:
            raise RuntimeError(f"socket {self.id} has {len(acks)} acknowledgements pending")
        if ack_id is None:
            ack_id = self.namespace.hub.next_ack_id()
            while ack_id in acks:  # one that moved here from another process (handlers/cluster/handoff.py)
                ack_id = self.namespace.hub.next_ack_id()
        acks[ack_id] = PendingAck(settle, fail)
        return ack_id

    # -- what the hub's own parts ask of a socket (a group's call, a move to another process) --

    def expect_ack(self, settle: Callable[[list], None], ack_id: int | None = None,
                   fail: Callable[[], None] | None = None) -> int:
        """Wait for the client's ack `ack_id` (a new id if None): `settle(data)` when it comes,
        `fail()` if the socket leaves first. Bounded by the hub's `max_pending_acks`."""
        return self._expect_ack(settle, ack_id, fail)

    def forget_ack(self, ack_id: int) -> None:
        """Stop waiting for the ack `ack_id` (its caller gave up)."""
        if self._acks:
            self._acks.pop(ack_id, None)

    def pending_acks(self) -> list[int]:
        """The ids of the acks this socket waits for, in order."""
        return sorted(self._acks or ())

    def give_up_acks(self) -> None:
        """Every ack still awaited fails now (callers waiting with `call` get `Disconnected`)."""
        acks, self._acks = self._acks, None
        for ack in (acks or {}).values():
            ack.give_up()

    def acknowledged(self, ack_id: int, data: list) -> None:
        """The client's ack `ack_id` with `data` (read here, or forwarded from another process)."""
        self._on_ack(Packet(ACK, self.namespace.name, data, ack_id))

    def state(self) -> dict:
        """What moves with this socket to another process (JSON-able but for `data` and `auth`)."""
        return {"ns": self.namespace.name, "id": self.id, "pid": self.pid, "rooms": sorted(self.joined or ()),
                "data": self._data, "auth": self.auth, "start": self._start, "acks": self.pending_acks()}

    def _expire_ack(self, ack_id: int, future: asyncio.Future, event: str, timeout: float) -> None:
        if self._acks:
            self._acks.pop(ack_id, None)
        if not future.done():
            self.namespace.hub.stats.ack_timeouts += 1
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
        """Put this socket in `rooms` (bounded by the hub's `max_rooms`)."""
        joined = self.joined
        if joined is None:
            joined = self.joined = set()
        limit = self.namespace.hub.max_rooms
        for room in names(rooms):
            if room in joined or room == self.id:
                continue
            if len(joined) >= limit:
                raise RuntimeError(f"socket {self.id} is already in {limit} rooms")
            joined.add(room)
            self.namespace.rooms.setdefault(room, {})[self.id] = self
            self.namespace.hub.ops.room_joined(self, room)
        if self.pid is not None and self.connected:
            self.namespace.hub.adapter.rooms_changed(self)

    def leave(self, *rooms: str | Iterable[str]) -> None:
        """Take this socket out of `rooms`."""
        if not self.joined:
            return
        for room in names(rooms):
            if room in self.joined:
                self.joined.discard(room)
                members = self.namespace.rooms.get(room)
                if members is not None:
                    members.pop(self.id, None)
                    if not members:
                        del self.namespace.rooms[room]
                self.namespace.hub.ops.room_left(self, room)
        if self.pid is not None and self.connected:
            self.namespace.hub.adapter.rooms_changed(self)

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
        self.namespace.hub.adapter.lost(self, reason)
        if self.joined:
            self.leave(list(self.joined))
        self.namespace.sockets.pop(self.id, None)
        self.client.sockets.pop(self.namespace.name, None)
        self.give_up_acks()
        self._run_lifecycle(handlers.get("disconnect"), reason)
        for handler in self.namespace.disconnect_handlers:
            self._run_lifecycle(handler, self, reason)

    def _run_lifecycle(self, handler: Handler | None, *args: Any) -> None:
        if handler is None:
            return
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                asyncio.ensure_future(result).add_done_callback(log_task_error)
        except Exception:
            log.exception("error in %s handler of %s", getattr(handler, "__name__", "?"), self)

    # -- inbound -------------------------------------------------------

    def _on_event(self, packet: Packet) -> None:
        args, ack_id, namespace = packet.data, packet.id, self.namespace
        event = args[0]
        if not namespace.hub.ops.event_allowed(self, packet):
            if ack_id is not None:  # over its rate: dropped (see handlers/operations/limits.py)
                self._ack(ack_id, RATE_LIMITED)
            return
        if event in RESERVED_EVENTS:
            log.info("%s emitted reserved event %r; ignored", self, event)
            return
        handler = self._handlers.get(event) if self._handlers else None
        if handler is not None:
            call_args = args[1:]
        else:
            handler = namespace.handlers.get(event) or namespace.any_handler
            if handler is None:
                log.debug("%s: no handler for %r", self, event)
                return
            call_args = [self, *args[1:]] if handler is not namespace.any_handler else [self, *args]
        if not takes(handler, len(call_args)):
            name = str(event)[:64]
            log.warning("%s: %r came with %d argument(s) for a handler that takes %s; dropped", self, name,
                        len(call_args), describe(handler))
            if ack_id is not None:
                self._ack(ack_id, {"error": f"Wrong number of arguments for {name!r}"})
            return
        if ack_id is not None and event in namespace.once_events and handler is namespace.handlers.get(event):
            task = asyncio.ensure_future(handle_once(self, ack_id, event, handler, call_args))
            task.add_done_callback(log_task_error)
            return
        started = perf_counter()
        try:
            result = handler(*call_args)
        except Exception:
            log.exception("error in handler of %r for %s", event, self)
            return
        finally:
            namespace.hub.stats.handler_time(perf_counter() - started)
        if type(result) not in PLAIN and inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            task.add_done_callback(log_task_error)
            if ack_id is not None:

                def ack_when_done(task: asyncio.Task) -> None:
                    if not task.cancelled() and task.exception() is None:
                        self._ack(ack_id, task.result())
                task.add_done_callback(ack_when_done)
        elif ack_id is not None:
            self._ack(ack_id, result)

    def _ack(self, ack_id: int, result: Any) -> None:
        self._send_ack(ack_id, _ack_args(result))

    def _send_ack(self, ack_id: int, data: list) -> None:
        if self.connected:
            self.namespace.hub.stats.packets_sent += 1
            self.client.session.send(Outgoing.of(Packet(ACK, self.namespace.name, data, ack_id)))

    def _on_ack(self, packet: Packet) -> None:
        ack = self._acks.pop(packet.id, None) if self._acks else None
        if ack is None:
            log.debug("%s: unexpected ack %s", self, packet.id)
            return
        try:
            ack.settle(packet.data)
        except Exception:
            log.exception("error in ack callback of %s", self)


class PendingAck:
    """An acknowledgement a socket waits for: what its answer does, and what happens if none comes.

    An emit's callback is simply dropped when the socket leaves; a `call`
    (one socket or a group) has a `fail` that ends its wait at once.
    """

    __slots__ = ("settle", "fail")

    def __init__(self, settle: Callable[[list], None], fail: Callable[[], None] | None = None):
        self.settle = settle
        self.fail = fail

    def give_up(self) -> None:
        """The socket left (or moved away and stopped forwarding) before the client answered."""
        if self.fail is not None:
            self.fail()

