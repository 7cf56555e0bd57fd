"""One Engine.IO session: its outbound queue, heartbeat state and transport.

A session outlives its transport: it may start on long-polling and move to
a WebSocket mid-way. Whatever the transport, the hub hands it `Outgoing`
packets (already encoded) and the session queues references to them; the
engine flushes every session that has something queued once per loop
iteration, so a burst of emits becomes one write per connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from .protocol import (
    CLOSE, MESSAGE, NOOP, PING, PONG, UPGRADE, Outgoing, ProtocolError, decode_payload,
)

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("board.engine")

PING_PACKET = Outgoing(["2"])
NOOP_PACKET = Outgoing(["6"])
CLOSE_PACKET = Outgoing(["1"])


class Writer(Protocol):
    """What a WebSocket transport offers the session."""

    def send_packets(self, queue: list[Outgoing]) -> bool: ...
    def close_transport(self, code: int, reason: str) -> None: ...


class Poller(Protocol):
    """What a pending long-poll GET offers the session."""

    def deliver(self, payload: str) -> None: ...


class Session:
    """An Engine.IO session, whichever transport currently carries it."""

    __slots__ = (
        "engine", "sid", "ws", "poller", "queue", "queued_bytes", "dirty",
        "awaiting_pong", "upgrading", "probed", "closed", "posting", "created", "context",
        "__weakref__",
    )

    def __init__(self, engine: "Engine", sid: str, created: float):
        self.engine = engine
        self.sid = sid
        self.ws: Writer | None = None        # set once the session runs on a WebSocket
        self.poller: Poller | None = None    # the GET waiting for packets, on polling
        self.queue: list[Outgoing] = []
        self.queued_bytes = 0
        self.dirty = False
        self.awaiting_pong = 0                # the heartbeat tick of the unanswered ping, or 0
        self.upgrading = False               # a WebSocket with our sid is open, not yet confirmed
        self.probed = False                  # ... and it has answered the probe: polling must pause
        self.closed = False
        self.posting = False
        self.created = created
        self.context: Any = None             # the layer above (the hub's client) keeps its state here

    @property
    def transport(self) -> str:
        return "websocket" if self.ws is not None else "polling"

    # -- outbound ------------------------------------------------------

    def send(self, out: Outgoing) -> None:
        """Queue encoded packets; they leave at the end of this loop iteration."""
        if self.closed:
            return
        self.queue.append(out)
        self.queued_bytes += out.size
        if self.queued_bytes > self.engine.max_queue_bytes:
            log.warning("session %s: %d bytes waiting, client too slow; closing",
                        self.sid[:8], self.queued_bytes)
            self.engine.stats.slow_clients_dropped += 1
            self.close("transport error", notify=False)
            return
        if not self.dirty:
            self.dirty = True
            self.engine.mark_dirty(self)

    def flush(self) -> None:
        """Write what is queued to the transport, if it can take it now."""
        self.dirty = False
        queue = self.queue
        if not queue:
            return
        if self.ws is not None:
            written = self.ws.send_packets(queue)
            queue.clear()  # reused: no new list per client per flush
            self.queued_bytes = 0
            if not written:
                self.close("transport error", notify=False)
        elif self.poller is not None:
            poller, self.poller = self.poller, None
            text = "\x1e".join([o.text for o in queue])
            queue.clear()
            self.queued_bytes = 0
            poller.deliver(text)

    def take_payload(self) -> str | None:
        """The queued packets as one polling payload, for a GET that finds them waiting."""
        if not self.queue:
            return None
        text = "\x1e".join([o.text for o in self.queue])
        self.queue.clear()
        self.queued_bytes = 0
        return text

    # -- inbound -------------------------------------------------------

    def receive(self, kind: int, data: str | bytes) -> None:
        """One Engine.IO packet from the client, already split by the transport."""
        if kind == MESSAGE:
            self.engine.on_message(self, data)
        elif kind == PONG:
            self.awaiting_pong = 0
        elif kind == CLOSE:
            self.close("client close", notify=False)
        elif kind == PING:
            # v4 clients do not ping; answer anyway, it costs nothing.
            self.send(Outgoing(["3" + data]) if data else Outgoing(["3"]))
        elif kind == NOOP:
            pass
        elif kind == UPGRADE:
            raise ProtocolError("upgrade packet outside an upgrade")
        else:
            raise ProtocolError("open packet from a client")

    def receive_payload(self, payload: str) -> None:
        """A long-polling payload relayed from another process; ProtocolError if it is bad."""
        for kind, data in decode_payload(payload):
            if self.closed:
                break
            self.receive(kind, data)

    # -- lifecycle -----------------------------------------------------

    def close(self, reason: str, notify: bool = True) -> None:
        """End the session; `notify` sends the client a close packet first."""
        if self.closed:
            return
        if notify:
            self.queue.append(CLOSE_PACKET)
            self.flush()
        self.closed = True
        self.queue = []
        self.queued_bytes = 0
        poller, self.poller = self.poller, None
        if poller is not None:
            poller.deliver("6")
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.close_transport(1000, reason)
        self.engine.discard(self, reason)
