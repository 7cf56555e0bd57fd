"""Where group emits go: the adapter between the hub and the sockets it reaches.

Every emit to a group (everyone, rooms, all but some) passes through one
adapter, as with socket.io's adapters and python-socketio's managers. This
one fans out within the process; an adapter for a cluster does the same for
its local sockets and carries the emit to the other processes. The hub's
emit path is the same either way.

With connection state recovery on, the adapter gives each group emit its
offset, keeps it in the recovery log, and appends the offset to the packet
as Socket.IO's recovery wire wants. A client that cannot use offsets (see
`wants_offsets`) gets the packet without it: two encodings at most per
emit, never one per receiver.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..wire.protocol import EVENT, Outgoing, Packet
from .recovery import RECOVERABLE, Recent, RecoveryLog, Saved

if TYPE_CHECKING:
    from .broadcast import Broadcast
    from .hub import Hub
    from .sockets import Socket

# HTTP clients of Python libraries: python-socketio's client ignores recovery,
# and its fixed-arity handlers would fail on the extra offset argument.
PYTHON_AGENTS = ("aiohttp", "python-requests", "python-urllib", "python/")


def wants_offsets(environ: dict) -> bool:
    """Whether this client's events should carry recovery offsets, until it says (the default).

    Every Socket.IO client that supports recovery (JavaScript's, ours) gets
    them; python-socketio's client, which does not, is recognised by its
    HTTP library's User-Agent and spared the extra argument. A client may
    say otherwise in its CONNECT auth (`{"recovery": true}` or `false`, or a
    `pid` it comes back with): see `Namespace._connect`.
    """
    headers = environ.get("headers")
    agent = (headers.get("User-Agent", "") if headers is not None else "").lower()
    return not any(name in agent for name in PYTHON_AGENTS)


class Adapter(Protocol):
    """What the hub asks of any adapter (MemoryAdapter here, RedisAdapter for a cluster).

    The whole interface: `Hub.start` and `Hub.stop` call `start` and `stop`,
    `Hub.fetch_count` calls `count`; the rest is the emit and recovery path.
    """

    recovering: bool

    async def start(self, hub: "Hub") -> None: ...
    async def stop(self) -> None: ...
    async def count(self, local: int) -> int: ...

    def start_offset(self) -> Any: ...
    def new_pid(self) -> str: ...
    def broadcast(self, group: "Broadcast", data: list) -> int: ...
    def send_own(self, socket: "Socket", data: list) -> None: ...
    def connected(self, socket: "Socket") -> None: ...
    def rooms_changed(self, socket: "Socket") -> None: ...
    def lost(self, socket: "Socket", reason: str) -> None: ...
    async def restore(self, namespace: str, pid: Any, offset: Any) -> tuple[Saved, list[Outgoing]] | None: ...
    def tick(self) -> None: ...


class MemoryAdapter:
    """Fan-out to the sockets of this process; with a `RecoveryLog`, recovery in memory.

    What the hub asks of any adapter: `broadcast` a group emit, `send_own` a
    socket's own emit with its offset, and for recovery `connected`, `rooms_changed`,
    `lost` and `restore`. A cluster adapter keeps the same calls.
    """

    def __init__(self, recovery: RecoveryLog | None = None):
        self.recovery = recovery

    async def start(self, hub: "Hub") -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing queued anywhere else."""

    async def count(self, local: int) -> int:
        """Sockets of the main namespace in the cluster, given `local`, this process's: the same here."""
        return local

    @property
    def recovering(self) -> bool:
        return self.recovery is not None

    def start_offset(self) -> Any:
        """The offset before the next emit: where a socket connecting now starts."""
        return self.recovery.offset

    def new_pid(self) -> str:
        return RecoveryLog.new_pid()

    def broadcast(self, group: "Broadcast", data: list) -> int:
        """Send the EVENT `data` to every receiver of `group`, encoded once; how many got it."""
        namespace = group.namespace.name
        targets = group.sockets()
        group.namespace.hub.stats.broadcast(len(targets))
        log = self.recovery
        if log is None:
            out = Outgoing.of(Packet(EVENT, namespace, data))
            for socket in targets:
                socket.client.session.send(out)
            return len(targets)
        offset = log.next_offset()
        out = Outgoing.of(Packet(EVENT, namespace, [*data, log.format(offset)]))
        log.append(offset, namespace, frozenset(group.include), frozenset(group.exclude), out)
        deliver(targets, out, lambda: Outgoing.of(Packet(EVENT, namespace, data)))
        return len(targets)

    def send_own(self, socket: "Socket", data: list) -> None:
        """An emit to one socket alone, with its offset, kept for replay after a drop."""
        log = self.recovery
        offset = log.next_offset()
        out = Outgoing.of(Packet(EVENT, socket.namespace.name, [*data, log.format(offset)]))
        recent = socket._recent
        if recent is None:
            recent = socket._recent = Recent()
        recent.add(offset, out, log.max_own_packets, log.max_own_bytes)
        socket.client.session.send(out)

    # -- recovery ------------------------------------------------------

    def connected(self, socket: "Socket") -> None:
        if socket.pid is not None:
            self.recovery.live[socket.pid] = socket

    def rooms_changed(self, socket: "Socket") -> None:
        """Rooms live in this process's memory: nothing to write elsewhere."""

    def lost(self, socket: "Socket", reason: str) -> None:
        """The socket left: keep its state for the window if its connection was lost."""
        if socket.pid is None:
            return
        log = self.recovery
        log.live.pop(socket.pid, None)
        if reason in RECOVERABLE:
            log.save(Saved(socket.pid, socket.id, socket.namespace.name, socket.joined or (), socket._data,
                           socket._start, socket._recent, time.monotonic() + log.window / 1000))

    async def restore(self, namespace: str, pid: Any, offset: Any) -> tuple[Saved, list[Outgoing]] | None:
        log = self.recovery
        old = log.live.get(pid) if isinstance(pid, str) else None
        if old is not None and old.namespace.name == namespace:
            # The client came back before its old connection was seen to die: the pid proves
            # it is the same client, so end the old one now and hand its state over.
            old.client.session.close("transport close", notify=False)
        return log.restore(namespace, pid, offset)

    def tick(self) -> None:
        if self.recovery is not None:
            self.recovery.expire()


def deliver(targets: list["Socket"], out: Outgoing, plain: Callable[[], Outgoing]) -> None:
    """Hand `out` (with its offset) to every target; clients without offsets get `plain()`, made once."""
    without = None
    for socket in targets:
        client = socket.client
        if client.offsets:
            client.session.send(out)
        else:
            if without is None:
                without = plain()
            client.session.send(without)
