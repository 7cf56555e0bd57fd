"""Mounting the engine: one URL, two transports, picked by the `transport` query.

Tornado routes on paths; Engine.IO chooses the transport with a query
argument. A small matcher sends `transport=websocket` to the WebSocket
handler and `transport=polling` to the long-poll handler, and anything else
on the path to an answer of HTTP 400 with Socket.IO's JSON error body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tornado.httputil import HTTPServerRequest
from tornado.routing import AnyMatches, Matcher, PathMatches, Rule

from .polling_connection import ConnectionPolls
from .websocket_connection import ConnectionUpgrades
from .polling_handler import PollingTransport
from .entry import BadTransport
from .websocket_handler import WebSocketTransport

if TYPE_CHECKING:
    from ..engineio.engine import Engine


class TransportMatches(Matcher):
    """Matches the engine's path with a given `transport` query argument."""

    def __init__(self, path: str, transport: str | None):
        self.path = PathMatches(path)
        self.transport = transport.encode() if transport else None

    def match(self, request: HTTPServerRequest) -> dict | None:
        if self.path.match(request) is None:
            return None
        if self.transport is not None and request.query_arguments.get("transport") != [self.transport]:
            return None
        return {}


def engine_routes(engine: "Engine", path: str = "/engine.io/") -> list[Rule]:
    """The Tornado rules serving `engine` at `path`: both transports on one URL.

    An Engine.IO server on its own mounts these (`Hub.routes()` adds them for the hub).
    """
    path = path.rstrip("/") + "/"
    kwargs = {"engine": engine}
    return [
        # A new session's WebSocket skips RequestHandler too (handlers/transports/websocket_connection.py).
        Rule(TransportMatches(path, "websocket"), [
            Rule(AnyMatches(), ConnectionUpgrades(engine)),
            Rule(AnyMatches(), WebSocketTransport, kwargs),
        ]),
        # Polls of an open local session that can only succeed at the door skip RequestHandler;
        # the connection-level router answers None for every other polling request.
        Rule(TransportMatches(path, "polling"), [
            Rule(AnyMatches(), ConnectionPolls(engine)),
            Rule(AnyMatches(), PollingTransport, kwargs),
        ]),
        Rule(TransportMatches(path, None), BadTransport, kwargs),
    ]

