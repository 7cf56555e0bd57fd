"""Long-polling at the connection level: a GET or POST of an open local session, below `RequestHandler`.

A long-poll round trip is two HTTP requests. As a `RequestHandler` each one
pays for a handler's set-up (default headers with a formatted date, UI
modules, a coroutine and a future while a GET waits, the access log) on top
of Tornado's HTTP/1 parsing. Once the headers are in, most polls can only
succeed at the door: an open polling session of this process, one sid, an
allowed origin, a GET, or a POST within `maxPayload` with none in flight.
Those are served by `ConnectionPoll`, a bare `HTTPMessageDelegate` that writes its
answer on the HTTP/1 connection, at once when the session delivers. Two ways
in: `ConnectionPolls`, a Tornado `Router` the engine's rules ask before
`PollingTransport`, and `EngineDelegate` (handlers/transports/server.py), in front of the
whole application, which also skips the `HTTPServerRequest` and the walk
through the rules.
Every other request (handshakes, OPTIONS, refusals at the door, relayed
sessions, the last answer of a closed session) goes to `PollingTransport`,
which decides as it always did. What can still go wrong after the door (a
body over `maxPayload`, bad UTF-8, a bad payload, a second GET, a session
closed while the body was read) is answered as `PollingTransport` answers it.
These answers write no access-log line (the board logs polls at DEBUG only).
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from tornado.httputil import (
    HTTPConnection, HTTPHeaders, HTTPMessageDelegate, HTTPServerRequest,
    RequestStartLine, ResponseStartLine, format_timestamp,
)
from tornado.routing import Router

from ..engineio.session import Session
from .entry import right_version
from .polling import Refusal, answer_get, body_overflow, query_count, receive_post, would_refuse

if TYPE_CHECKING:
    from ..engineio.engine import Engine

log = logging.getLogger("board.engine")

OK = ResponseStartLine("HTTP/1.1", 200, "OK")
STATUS = {400: ResponseStartLine("HTTP/1.1", 400, "Bad Request"),
          413: ResponseStartLine("HTTP/1.1", 413, "Payload Too Large"),
          429: ResponseStartLine("HTTP/1.1", 429, "Too Many Requests"),
          503: ResponseStartLine("HTTP/1.1", 503, "Service Unavailable")}
TEXT = "text/plain; charset=UTF-8"   # what PollingTransport answers a GET with
HTML = "text/html"                   # ... and a POST ("ok"), as the official servers do

_date: tuple[int, str] = (0, "")


def http_date() -> str:
    """The Date header, formatted once a second rather than once a request."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, format_timestamp(now))
    return _date[1]


def admit(engine: "Engine", method: str, sid: str, headers: HTTPHeaders,
          host: str | None) -> tuple[Session, str | None] | None:
    """(session, origin) if this poll can only succeed at the door; None sends it to PollingTransport.

    The query is already known to be `EIO=4&transport=polling` with one `sid`.
    """
    session = engine.sessions.get(sid)
    if session is None or "polling" not in engine.transports:
        return None
    origin = headers.get("Origin")
    if origin and not engine.origin_allowed(origin, host):
        return None
    if would_refuse(engine, session, method, headers):
        return None  # PollingTransport refuses it, with its effects
    return session, origin


class ConnectionPolls(Router):
    """Routes the polls that can only succeed at the door to `ConnectionPoll`; None for the rest."""

    def __init__(self, engine: "Engine"):
        self.engine = engine

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> HTTPMessageDelegate | None:
        args = request.query_arguments
        sid = args.get("sid")
        if sid is None or len(sid) != 1 or not right_version(args):
            return None
        admitted = admit(self.engine, request.method, sid[0].decode("latin-1"),  # type: ignore[arg-type]
                         request.headers, request.host)
        if admitted is None:
            return None
        return ConnectionPoll(self.engine, admitted[0], request.method, request.connection,  # type: ignore[arg-type]
                              request.uri, admitted[1], query_count(args))


class ConnectionPoll(HTTPMessageDelegate):
    """One GET or POST of a local polling session, answered straight on its connection."""

    __slots__ = ("engine", "session", "method", "connection", "uri", "origin", "n", "chunks", "size", "done")

    def __init__(self, engine: "Engine", session: Session, method: str, connection: HTTPConnection,
                 uri: str | None, origin: str | None, n: str | None = None):
        self.engine = engine
        self.session: Session | None = session
        self.method = method
        self.connection = connection
        self.uri = uri
        self.origin = origin
        self.n = n  # the GET's count of answers its client got (our client's), as sent
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False  # answered, or the client went away

    def headers_received(self, start_line: RequestStartLine | ResponseStartLine, headers: HTTPHeaders) -> None:
        if self.method == "POST":
            self.session.start_post()  # type: ignore[union-attr]
            self.connection.set_max_body_size(self.engine.max_payload)  # type: ignore[attr-defined]

    def data_received(self, chunk: bytes) -> None:
        session = self.session
        if self.done or session is None:
            return
        self.size += len(chunk)
        refused = body_overflow(self.engine, session, self.size)
        if refused is not None:
            self.session = None
            self.fail(*refused)
            return
        self.chunks.append(chunk)

    def finish(self) -> None:
        if self.done or self.session is None:
            return
        if self.method == "GET":
            self._get(self.session)
        else:
            self._post(self.session)

    def _get(self, session: Session) -> None:
        payload = answer_get(self.engine, session, self.n)
        if isinstance(payload, Refusal):
            self.fail(*payload)
            return
        if payload is None:
            session.poller = self
            self.connection.set_close_callback(self.on_connection_close)  # type: ignore[attr-defined]
            return
        self.answer(payload)

    def _post(self, session: Session) -> None:
        body, self.chunks = b"".join(self.chunks), []
        refused = receive_post(session, body, self.uri)
        if refused is not None:
            self.fail(*refused)
            return
        self.answer("ok", HTML)

    # -- what the session calls ----------------------------------------

    def deliver(self, payload: str | None) -> None:
        self.answer(payload or "")  # None: an empty answer, as PollingTransport's auto-finish gives

    def on_connection_close(self) -> None:
        self.done = True
        session = self.session
        if session is not None:
            if session.poller is self:
                session.poller = None
            if self.method == "POST":
                session.end_post()

    # -- answers -------------------------------------------------------

    def answer(self, text: str, content_type: str = TEXT) -> None:
        """200 with `text`, and the CORS headers PollingTransport would have set."""
        if self.done:
            return
        self.done = True
        headers = HTTPHeaders()
        headers["Content-Type"] = content_type
        headers["Cache-Control"] = "no-store"
        if self.origin:
            headers["Access-Control-Allow-Origin"] = self.origin
            headers["Access-Control-Allow-Credentials"] = "true"
        self._write(OK, headers, text.encode("utf-8"))

    def fail(self, code: int, status: int = 400, message: str | None = None) -> None:
        """Socket.IO's JSON error body, as EngineRequest.fail writes it (no CORS headers)."""
        if self.done:
            return
        self.done = True
        write_error(self.engine, self.connection, self.method, self.uri, code, status, message)
        self._forget()

    def _write(self, start: ResponseStartLine, headers: HTTPHeaders, body: bytes) -> None:
        write_answer(self.connection, start, headers, body)
        self._forget()

    def _forget(self) -> None:
        self.session = None  # nothing more to do for it; no cycle left behind
        self.chunks = []


def write_answer(connection: HTTPConnection, start: ResponseStartLine, headers: HTTPHeaders, body: bytes) -> None:
    """A whole response on a bare HTTP/1 connection, with the headers every answer carries."""
    headers["Date"] = http_date()
    headers["Content-Length"] = str(len(body))
    connection.write_headers(start, headers, body)
    connection.finish()


def write_error(engine: "Engine", connection: HTTPConnection, method: str, uri: str | None, code: int,
                status: int = 400, message: str | None = None) -> None:
    """Socket.IO's JSON error body on a bare connection, logged as EngineRequest.fail logs it."""
    body = engine.error_body(code, message)
    remote_ip = getattr(getattr(connection, "context", None), "remote_ip", None)
    log.info("%s %s from %s: %d %s", method, uri, remote_ip, status, body)
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/json"
    headers["Cache-Control"] = "no-store"
    write_answer(connection, STATUS[status], headers, body.encode("utf-8"))
