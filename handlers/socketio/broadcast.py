"""A group of receivers in one namespace: rooms to include, rooms to exclude.

`hub.to("room").except_("other").emit(...)` builds one of these; its emit
encodes the packet once and hands it to every receiver's session.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Iterable, Protocol

from ..wire.protocol import EVENT, Outgoing, Packet

if TYPE_CHECKING:
    from .namespace import Namespace
    from .sockets import Socket


class Peers(Protocol):
    """The other processes of a cluster, as a group sees them (`hub.cluster`, from the cluster layer)."""

    async def call(self, group: "Broadcast", event: str, args: list, timeout: float) -> list:
        """`group.call` on every process: the replies that came in time."""

    async def fetch_sockets(self, group: "Broadcast", timeout: float = 5.0) -> list[dict]:
        """The group's sockets on every process."""

    async def tell(self, op: str, group: "Broadcast", **extra: Any) -> None:
        """`op` (join, leave, disconnect) for the group's sockets on the other processes."""


def names(rooms: tuple) -> list[str]:
    names: list[str] = []
    for room in rooms:
        if isinstance(room, str):
            names.append(room)
        else:
            names.extend(room)
    return names


def ack_value(data: list) -> Any:
    """The ack's arguments as the app gets them: the single one, a tuple of several, or None."""
    return data[0] if len(data) == 1 else tuple(data) if data else None


class Broadcast:
    """A set of receivers in one namespace: rooms to include, rooms to exclude."""

    __slots__ = ("namespace", "include", "exclude")

    def __init__(self, namespace: "Namespace", include: set[str] | None = None,
                 exclude: set[str] | None = None):
        self.namespace = namespace
        self.include = include or set()
        self.exclude = exclude or set()

    def to(self, *rooms: str | Iterable[str]) -> "Broadcast":
        """This group narrowed to the sockets also in any of `rooms`."""
        return Broadcast(self.namespace, self.include | set(names(rooms)), self.exclude)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> "Broadcast":
        """This group without the sockets in `rooms`."""
        return Broadcast(self.namespace, self.include, self.exclude | set(names(rooms)))

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
        """Send to every receiver, encoded once; returns how many got it (a cluster delivers later: 0)."""
        return self.namespace.hub.adapter.broadcast(self, [event, *args])

    async def call(self, event: str, *args: Any, timeout: float = 60.0) -> list:
        """Send to every receiver and collect their acknowledgements.

        Returns the replies that arrived within `timeout` seconds (one per
        receiver that answered, each its single argument or a tuple); on a
        cluster, from the receivers of every process.
        """
        cluster = self.namespace.hub.cluster
        if cluster is not None:
            return await cluster.call(self, event, list(args), timeout)
        return await self.call_local(event, *args, timeout=timeout)

    async def call_local(self, event: str, *args: Any, timeout: float = 60.0) -> list:
        """`call` for the receivers of this process only."""
        targets = self.sockets()
        if not targets:
            return []
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        replies: list = []
        ack_id = self.namespace.hub.next_ack_id()
        waiting = len(targets)

        def give_up() -> None:  # a receiver left before answering
            nonlocal waiting
            waiting -= 1
            if waiting == 0 and not done.done():
                done.set_result(None)

        def settle(data: list) -> None:
            replies.append(ack_value(data))
            give_up()

        out = Outgoing.of(Packet(EVENT, self.namespace.name, [event, *args], ack_id))
        for socket in targets:
            socket.expect_ack(settle, ack_id, fail=give_up)
            socket.client.session.send(out)
        self.namespace.hub.stats.broadcast(len(targets))
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout)
        except asyncio.TimeoutError:
            self.namespace.hub.stats.ack_timeouts += waiting
        finally:
            for socket in targets:
                socket.forget_ack(ack_id)
        return replies

    # -- what a cluster does on every process ---------------------------

    async def fetch_sockets(self) -> list[dict]:
        """The receivers, on every process of a cluster: {id, rooms, data, process}."""
        cluster = self.namespace.hub.cluster
        if cluster is not None:
            return await cluster.fetch_sockets(self)
        return [{"id": s.id, "rooms": sorted(s.rooms), "data": s._data, "process": ""} for s in self.sockets()]

    def sockets_join(self, *rooms: str | Iterable[str]) -> None:
        """Make every receiver join `rooms` (on every process of a cluster)."""
        self.sockets_join_local(names(rooms))
        self._tell("join", rooms=names(rooms))

    def sockets_leave(self, *rooms: str | Iterable[str]) -> None:
        """Make every receiver leave `rooms` (on every process of a cluster)."""
        self.sockets_leave_local(names(rooms))
        self._tell("leave", rooms=names(rooms))

    def disconnect(self, close: bool = False) -> None:
        """Disconnect every receiver (on every process of a cluster)."""
        self.disconnect_local(close)
        self._tell("disconnect", close=close)

    def sockets_join_local(self, rooms: list[str]) -> None:
        """`socketsJoin` for the receivers of this process only."""
        for socket in self.sockets():
            socket.join(rooms)

    def sockets_leave_local(self, rooms: list[str]) -> None:
        """`socketsLeave` for the receivers of this process only."""
        for socket in self.sockets():
            socket.leave(rooms)

    def disconnect_local(self, close: bool = False) -> None:
        """`disconnect` for the receivers of this process only."""
        for socket in self.sockets():
            socket.disconnect(close)

    def _tell(self, op: str, **what: Any) -> None:
        cluster = self.namespace.hub.cluster
        if cluster is not None:
            asyncio.ensure_future(cluster.tell(op, self, **what))

