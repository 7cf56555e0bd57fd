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

from typing import TYPE_CHECKING

from .protocol import EVENT, Outgoing, Packet
from .recovery import RecoveryLog

if TYPE_CHECKING:
    from .broadcast import Broadcast

# HTTP clients of Python libraries: python-socketio's client ignores recovery,
# and its fixed-arity handlers would fail on the extra offset argument.
PYTHON_AGENTS = ("aiohttp", "python-requests", "python-urllib", "python/")


def wants_offsets(environ: dict) -> bool:
    """Whether this client's events should carry recovery offsets.

    Every Socket.IO client that supports recovery (JavaScript's, ours) gets
    them; python-socketio's client, which does not, is recognised by its
    HTTP library's User-Agent and spared the extra argument.
    """
    headers = environ.get("headers")
    agent = (headers.get("User-Agent", "") if headers is not None else "").lower()
    return not any(name in agent for name in PYTHON_AGENTS)


class MemoryAdapter:
    """Fan-out to the sockets of this process, and the recovery log if on."""

    def __init__(self, recovery: RecoveryLog | None = None):
        self.recovery = recovery

    def broadcast(self, group: "Broadcast", data: list) -> int:
        """Send the EVENT `data` to every receiver of `group`, encoded once; how many got it."""
        namespace = group.namespace.name
        targets = group.sockets()
        log = self.recovery
        if log is None:
            out = Outgoing.of(Packet(EVENT, namespace, data))
            for socket in targets:
                socket.client.session.send(out)
            return len(targets)
        offset = log.next_offset()
        out = Outgoing.of(Packet(EVENT, namespace, [*data, log.format(offset)]))
        log.append(offset, namespace, frozenset(group.include), frozenset(group.exclude), out)
        plain = None
        for socket in targets:
            client = socket.client
            if client.offsets:
                client.session.send(out)
            else:
                if plain is None:
                    plain = Outgoing.of(Packet(EVENT, namespace, data))
                client.session.send(plain)
        return len(targets)
