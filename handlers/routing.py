"""Mounting the engine: one URL, two transports, picked by the `transport` query.

Tornado routes on paths; Engine.IO chooses the transport with a query
argument. A small matcher sends `transport=websocket` to the WebSocket
handler and `transport=polling` to the long-poll handler, and anything else
on the path to an answer of HTTP 400 with Socket.IO's JSON error body.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from tornado.httputil import HTTPServerRequest
from tornado.routing import AnyMatches, Matcher, PathMatches, Rule
from tornado.web import RequestHandler

from .engine import BAD_REQUEST, FORBIDDEN, UNKNOWN_SID, UNKNOWN_TRANSPORT, UNSUPPORTED_PROTOCOL_VERSION
from .session import Session

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("board.engine")


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


class EngineRequest:
    """Checks shared by both transports (a mixin for request handlers): version, origin, sid."""

    engine: "Engine"
    request: HTTPServerRequest
    relayed: str | None = None   # the sid of another process's session this request is for

    def initialize(self, engine: "Engine") -> None:
        self.engine = engine

    def fail(self, code: int, status: int = 400, message: str | None = None) -> None:
        """Answer with Socket.IO's JSON error body, and log the reason."""
        body = self.engine.error_body(code, message)
        log.info("%s %s from %s: %d %s", self.request.method, self.request.uri,
                 self.request.remote_ip, status, body)
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    def environ(self, transport: str) -> dict:
        """What the app may want of the handshake request: headers, address, query."""
        request = self.request
        gate = self.engine.gate
        return {"headers": request.headers,
                "remote_ip": gate.address(request) if gate is not None else request.remote_ip,
                "query": request.query_arguments, "transport": transport,
                "time": time.time(), "url": request.uri, "secure": request.protocol == "https"}

    def check_request(self) -> tuple[bool, Session | None]:
        """(ok, session): validates the query; on failure the answer is already sent."""
        args = self.request.query_arguments
        if args.get("EIO") != [b"4"]:
            self.fail(UNSUPPORTED_PROTOCOL_VERSION)
            return False, None
        if not self.engine.origin_allowed(self.request.headers.get("Origin"), self.request.host):
            self.fail(FORBIDDEN, 403)
            return False, None
        transport = args.get("transport", [b""])[-1].decode("latin-1")
        if transport not in self.engine.transports:
            self.fail(UNKNOWN_TRANSPORT)
            return False, None
        sid = args.get("sid")
        if sid is None:
            refused = self.engine.gate.admit(self.request) if self.engine.gate is not None else None
            if refused is not None:
                self.fail(BAD_REQUEST, refused[0], refused[1])
                return False, None
            return True, None
        sid_text = sid[0].decode("latin-1")
        session = self.engine.sessions.get(sid_text)
        if session is None and len(sid) == 1 and self.engine.relay is not None \
                and self.engine.relay.owner(sid_text) is not None:
            self.relayed = sid_text  # another process's session: the transport relays the request
            return True, None
        if session is None or len(sid) != 1:
            self.unknown_session(sid[0].decode("latin-1"))
            return False, None
        return True, session

    def unknown_session(self, sid: str) -> None:
        """Answers a request whose sid names no open session."""
        self.fail(UNKNOWN_SID)


class BadTransport(EngineRequest, RequestHandler):
    """Whatever reaches the engine's path without a known transport."""

    def prepare(self) -> None:
        if self.request.query_arguments.get("EIO") != [b"4"]:
            self.fail(UNSUPPORTED_PROTOCOL_VERSION)
        else:
            self.fail(UNKNOWN_TRANSPORT)


def engine_rules(engine: "Engine", path: str) -> list[Rule]:
    """The Tornado rules for `engine` at `path`."""
    from .lean import LeanPolling
    from .polling import PollingTransport
    from .websocket import WebSocketTransport

    path = path.rstrip("/") + "/"
    kwargs = {"engine": engine}
    return [
        Rule(TransportMatches(path, "websocket"), WebSocketTransport, kwargs),
        # Polls of an open local session that can only succeed at the door skip RequestHandler;
        # the lean router answers None for every other polling request.
        Rule(TransportMatches(path, "polling"), [
            Rule(AnyMatches(), LeanPolling(engine)),
            Rule(AnyMatches(), PollingTransport, kwargs),
        ]),
        Rule(TransportMatches(path, None), BadTransport, kwargs),
    ]

