"""What both transports check of a request (a mixin for their handlers), and the answer to a
request for no transport: version, origin, session id, and Socket.IO's JSON errors."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import RequestHandler

from ..wire.errors import BAD_REQUEST, FORBIDDEN, UNKNOWN_SID, UNKNOWN_TRANSPORT, UNSUPPORTED_PROTOCOL_VERSION
from ..engineio.session import Session

if TYPE_CHECKING:
    from ..engineio.engine import Engine

log = logging.getLogger("board.engine")

EIO = "4"  # the Engine.IO version spoken here; every way in checks it with `right_version`


def right_version(args: dict[str, list[bytes]]) -> bool:
    """The query asks for Engine.IO 4 (once)."""
    return args.get("EIO") == [b"4"]


def body_too_large(headers: HTTPHeaders, max_payload: int) -> bool:
    """A Content-Length that is not a plain number, or announces more than `max_payload` bytes."""
    length = headers.get("Content-Length")
    return length is not None and (not (length.isascii() and length.isdigit()) or int(length) > max_payload)


def handshake_environ(engine: "Engine", request: HTTPServerRequest, transport: str) -> dict:
    """What the app may want of the handshake request: headers, address, query."""
    admission = engine.admission
    return {"headers": request.headers,
            "remote_ip": admission.address(request) if admission is not None else request.remote_ip,
            "query": request.query_arguments, "transport": transport,
            "time": time.time(), "url": request.uri, "secure": request.protocol == "https"}


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
        return handshake_environ(self.engine, self.request, transport)

    def check_request(self) -> tuple[bool, Session | None]:
        """(ok, session): validates the query; on failure the answer is already sent."""
        args = self.request.query_arguments
        if not right_version(args):
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
            refused = self.engine.admission.admit(self.request) if self.engine.admission is not None else None
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
        if not right_version(self.request.query_arguments):
            self.fail(UNSUPPORTED_PROTOCOL_VERSION)
        else:
            self.fail(UNKNOWN_TRANSPORT)
