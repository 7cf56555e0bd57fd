"""Moving a session to the process that holds its WebSocket: upgrades without sticky sessions.

Behind a round-robin balancer, the WebSocket that upgrades a long-polling
session often reaches another process than the one that owns the session.
Relaying every frame through Redis would cost a publish per packet per
client for the life of the connection; instead the session moves once, at
the upgrade. Its owner hands over what the client has not received yet and
each socket's state (id, pid, rooms, data, auth, pending acks) with the
last stream entry it delivered; the new owner replays the entries after
that one, as recovery does, and carries on as if the sockets had always
been there. The app sees no disconnect and no new connection.

The old owner keeps the session for a while (`Engine.moved`) as a forwarder:
an ack that a handler still running there sends reaches the client, and the
client's acks of the old owner's requests reach their callbacks.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from tornado.httputil import HTTPHeaders

from ..socketio.hub import Client, Hub
from ..socketio.recovery import Saved
from ..socketio.sockets import Socket

if TYPE_CHECKING:
    from .redis_adapter import RedisAdapter
    from ..engineio.session import Session

log = logging.getLogger("board.handoff")


def _json(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        log.warning("%s is not JSON; it does not move with its socket", what)
        return None


class Handoff:
    """Exports a session's sockets at the old owner and installs them at the new one."""

    def __init__(self, hub: "Hub", adapter: "RedisAdapter"):
        self.hub = hub
        self.adapter = adapter

    # -- at the old owner ----------------------------------------------

    def export(self, session: "Session") -> dict | None:
        """Each socket's state, the sockets taken out of this process; None if it cannot move now."""
        client = session.context
        if client is None or client.pending:
            return None  # a namespace's middleware is still running here
        sockets = []
        for socket in client.sockets.values():
            state = socket.state()
            state["data"] = _json(state["data"], f"{socket!r}'s data")
            state["auth"] = _json(state["auth"], f"{socket!r}'s auth")
            sockets.append(state)
            self._detach(socket)
        environ = client.environ
        headers = environ.get("headers")
        return {
            "environ": {**{k: v for k, v in environ.items() if k not in ("headers", "query")},
                        "headers": list(headers.get_all()) if headers is not None else [],
                        "query": {k: [v.decode("latin-1") for v in vs]
                                  for k, vs in (environ.get("query") or {}).items()}},
            "offsets": client.offsets,
            "sockets": sockets,
            "last": self.adapter.last_id,
        }

    def _detach(self, socket: Socket) -> None:
        """Out of its namespace and rooms, silently; still answering acks through the forwarder."""
        socket.namespace.forget(socket)
        self.adapter.moved_out(socket)  # first: its state is the new owner's to write from now on
        if socket.joined:
            socket.leave(list(socket.joined))

    def ack(self, session: "Session", namespace: str, ack_id: int, data: list) -> None:
        """The client acknowledged, at the new owner, a request made here before the move."""
        socket = session.context.sockets.get(namespace) if session.context is not None else None
        if socket is not None:
            socket.acknowledged(ack_id, data)

    def release(self, session: "Session") -> None:
        """The forwarding time is over: what still waits for an ack here gives up."""
        client = session.context
        if client is None:
            return
        for socket in client.sockets.values():
            socket.connected = False
            socket.give_up_acks()
        client.sockets.clear()

    # -- at the new owner ----------------------------------------------

    def environ(self, context: dict) -> dict:
        environ = dict(context["environ"])
        environ["headers"] = HTTPHeaders()
        for name, value in context["environ"]["headers"]:
            environ["headers"].add(name, value)
        environ["query"] = {k: [v.encode("latin-1") for v in vs] for k, vs in context["environ"]["query"].items()}
        return environ

    async def adopt(self, session: "Session", context: dict, environ: dict, forward_ack: Any) -> None:
        """Install the moved sockets here, after replaying what the old owner had not delivered.

        `forward_ack(namespace, ack_id, data)` carries the client's ack of a request the old
        owner made back to it.
        """
        client = Client(self.hub, session, environ)
        client.offsets = bool(context["offsets"])
        session.context = client
        entries = context["sockets"]
        missed = await self.adapter.missed_after(entries, context["last"], client.offsets)
        # Nothing is awaited from here on: the stream's next entries reach these sockets live.
        if session.closed:
            return
        for entry, lost in zip(entries, missed):
            namespace = self.hub.of(entry["ns"])
            saved = Saved(entry["pid"], entry["id"], namespace.name, entry["rooms"], entry["data"],
                          entry["start"], None, 0)
            socket = Socket(namespace, client, entry["auth"], saved)
            socket.recovered = False  # moved, not lost
            for ack_id in entry["acks"]:
                socket.expect_ack(_forwarding(forward_ack, namespace.name, ack_id), ack_id)
            namespace.install(socket, saved.rooms)
            for out in lost:
                session.send(out)


def _forwarding(forward_ack: Any, namespace: str, ack_id: int) -> Any:
    def settle(data: list) -> None:
        forward_ack(namespace, ack_id, data)
    return settle


__all__ = ["Handoff"]
