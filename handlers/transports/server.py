"""In front of the application: the requests the engine can answer before Tornado builds a request.

Routing a request through an `Application` builds an `HTTPServerRequest`
(query parsed and deep-copied, Host validated), walks the rules and makes a
`RequestHandler`. `EngineDelegate`, the HTTP server's delegate (made by
``engine_server(app, hub.engine, hub.path)``, as board.py serves),
recognises from the request line and headers alone a poll of an open local
session (`ConnectionPoll`, handlers/transports/polling_connection.py) and a WebSocket handshake the connection-level
path takes (`ConnectionUpgrade`, handlers/transports/websocket_connection.py); everything else reaches
`app` untouched. Under `engine_server`, a poll that comes on a keep-alive HTTP/1.1 connection hands the
connection itself to `PollingConnection` (handlers/transports/polling_protocol.py), which serves the polls
that follow on it and gives back to Tornado whatever else comes.

`engine_server` makes the `HTTPServer` with the front (a `ConnectionServer`,
handlers/operations/connections.py: connections per address capped, accepting paused
when descriptors run out), and replaces the header timeout Tornado arms for
every request (a timer, a future and their callbacks: a twelfth of a poll's
cost) by one sweep that closes connections that have waited for a request's
headers longer than `header_timeout` (a hub option, 10 s by default; idle
keep-alives included, as Node closes them after 5 s) or `idle_timeout`.
"""
from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import TYPE_CHECKING, Any, Awaitable, Coroutine

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.httputil import (
    HTTPConnection, HTTPHeaders, HTTPMessageDelegate, HTTPServerConnectionDelegate, HTTPServerRequest,
    RequestStartLine, ResponseStartLine,
)

from ..operations.connections import Connections, ConnectionServer
from ..operations.limits import Limits, Throttled
from .entry import EIO
from .polling_connection import ConnectionPoll, admit
from .polling_protocol import PollingConnection
from .websocket_connection import connection_upgrade

if TYPE_CHECKING:
    from ..engineio.engine import Engine

log = logging.getLogger("board.engine")

# A Host that Tornado would accept too (a subset of RFC 3986's); anything else goes the usual way.
SIMPLE_HOST = re.compile(r"(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
MAX_QUERY_FIELDS = 16  # a poll's query has three or four; more goes the usual way


class EngineDelegate(HTTPServerConnectionDelegate):
    """The HTTP server's delegate: `app` for everything, less the polls `ConnectionPoll` can serve and the
    WebSockets `ConnectionUpgrade` can open.

    Routing a request through an `Application` first builds an
    `HTTPServerRequest` (query parsed and deep-copied, Host validated) and
    walks the rules: a fifth of a poll's cost. In front of the application,
    a poll of an open local session or a WebSocket handshake is
    recognised from its request line and headers alone; any request this
    front is not sure about (percent-escapes in the query, an unusual Host,
    an unknown sid...) goes to `app` untouched.
    """

    def __init__(self, app: HTTPServerConnectionDelegate, engine: "Engine", path: str = "/socket.io/",
                 idle_timeout: float = 3600.0, header_timeout: float | None = None):
        self.app = app
        self.engine = engine
        self.prefix = path.rstrip("/") + "/?"
        # How long a connection may wait for a request's headers (the first, or the next on a keep-alive).
        self.idle_timeout = idle_timeout if header_timeout is None else min(idle_timeout, header_timeout)
        self.waiting: dict[Any, float] = {}  # server connection -> since when it waits for a request's headers
        self.served: dict[Any, bool] = {}    # Tornado's connection -> whether a request of it came before
        self._sweep: asyncio.TimerHandle | None = None
        self.server: HTTPServer | None = None  # set by engine_server: keep-alive connections are handed over only then
        self.handover = True  # False: polls stay on Tornado's HTTP/1 connection (ConnectionPoll)
        self.handed: set[PollingConnection] = set()  # connections on PollingConnection now

    def start_request(self, server_conn: object, request_conn: HTTPConnection) -> HTTPMessageDelegate:
        self.waiting[server_conn] = time.monotonic()
        self.served[server_conn] = server_conn in self.served  # its next request: a keep-alive
        if self._sweep is None:
            self._schedule()
        return FrontDelegate(self, server_conn, request_conn)

    def on_close(self, server_conn: object) -> None:
        self.waiting.pop(server_conn, None)
        self.served.pop(server_conn, None)
        self.app.on_close(server_conn)

    def _schedule(self) -> None:
        every = min(60.0, max(0.05, self.idle_timeout / 10))
        self._sweep = asyncio.get_running_loop().call_later(every, self.sweep)

    def sweep(self) -> None:
        """Close the connections that have waited longer than `idle_timeout` for a request's headers
        (idle keep-alives, headers that never end, half-open connections): what Tornado's header
        timeout did."""
        due = time.monotonic() - self.idle_timeout
        late = [conn for conn, since in self.waiting.items() if since < due]
        for conn in late:
            del self.waiting[conn]
            if isinstance(conn, PollingConnection):
                conn.close_idle()
                continue
            stream = getattr(conn, "stream", None)
            if stream is not None:
                stream.close()
        if late:  # routine (idle keep-alives), and at most a line a sweep
            log.debug("closed %d HTTP connections idle for %.0f s", len(late), self.idle_timeout)
        if self.waiting:
            self._schedule()
        else:
            self._sweep = None  # the next request schedules it again

    def shed(self) -> int:
        """Close half of the connections waiting for a request's headers (at least one): descriptors
        ran out, and these are the ones served nothing now. Those that never sent a whole request go
        first, oldest first (a flood of half-open connections); keep-alives of clients served before
        only after them (a client library that does not retry on a closed keep-alive, as python-socketio's
        does not, would drop its session). The number closed."""
        waiting, served = self.waiting, self.served
        if not waiting:
            return 0
        order = sorted(waiting, key=lambda conn: (isinstance(conn, PollingConnection) or served.get(conn, False),
                                                  waiting[conn]))
        closed = 0
        for conn in order[: max(1, len(waiting) // 2)]:
            del waiting[conn]
            if isinstance(conn, PollingConnection):
                closed += conn.close_idle()
                continue
            stream = getattr(conn, "stream", None)
            if stream is not None and not stream.closed():
                stream.close()
                closed += 1
        return closed

    def engine_query(self, uri: str) -> tuple[str | None, str | None, str | None] | None:
        """(transport, sid, n) of a request for the engine's path with `EIO=4` and a plain query, else
        None; `n`, our client's count of the poll answers it got, is None from other clients."""
        if not uri.startswith(self.prefix):
            return None
        query = uri[len(self.prefix):]
        if "%" in query or "+" in query or query.count("&") >= MAX_QUERY_FIELDS:
            return None  # decoding or limits to apply: Tornado's own parser decides
        eio = transport = sid = n = None
        for field in query.split("&"):
            key, _, value = field.partition("=")
            if key == "sid":
                if sid is not None:
                    return None
                sid = value
            elif key == "EIO":
                if eio is not None:
                    return None
                eio = value
            elif key == "transport":
                if transport is not None:
                    return None
                transport = value
            elif key == "n":
                if n is not None:
                    return None
                n = value
        return (transport, sid, n) if eio == EIO else None

    @staticmethod
    def simple_host(host: str) -> bool:
        """A Host that Tornado would accept too (and one only)."""
        return "," not in host and SIMPLE_HOST.fullmatch(host) is not None

    def pick(self, start_line: RequestStartLine, headers: HTTPHeaders,
             connection: HTTPConnection) -> HTTPMessageDelegate | None:
        """A `ConnectionPoll`, `PollHandover` or `ConnectionUpgrade` for this request, or None to let the
        application have it."""
        uri = start_line.path
        target = self.engine_query(uri)
        if target is None:
            return None
        transport, sid, n = target
        host = headers.get("Host")
        if host is None or not self.simple_host(host):
            return None
        if transport == "websocket":
            request = HTTPServerRequest(connection=connection, start_line=start_line, headers=headers)
            return connection_upgrade(self.engine, request, sid)
        if transport != "polling" or sid is None:
            return None
        admitted = admit(self.engine, start_line.method, sid, headers, host)
        if admitted is None:
            return None
        if self.server is not None and self.handover and can_hand_over(start_line, headers, connection):
            return PollHandover(self, start_line, headers, connection)
        return ConnectionPoll(self.engine, admitted[0], start_line.method, connection, uri, admitted[1], n)

    # -- the connections handed to PollingConnection -------------------------

    def idle(self, conn: Any) -> None:
        """`conn` waits for a request's head from now on (closed by the sweep past `idle_timeout`)."""
        self.waiting[conn] = time.monotonic()
        if self._sweep is None:
            self._schedule()

    def resume_in_tornado(self, sock: socket.socket, buffered: bytes, peer: Any) -> None:
        """A connection back from `PollingConnection`: Tornado's HTTP server reads on, `buffered` first."""
        stream = IOStream(sock)
        stream._read_buffer += buffered  # what was read of the next request, in Tornado's own buffer
        stream._read_buffer_size += len(buffered)
        self.server.handle_stream(stream, peer)  # type: ignore[union-attr]

    def close_handed(self) -> None:
        """Close every connection on `PollingConnection` (the server stops)."""
        for conn in list(self.handed):
            conn.abort()


class FrontDelegate(HTTPMessageDelegate):
    """One request through the front: a `ConnectionPoll` or `ConnectionUpgrade`, or the application's own delegate."""

    __slots__ = ("front", "server_conn", "request_conn", "delegate")

    def __init__(self, front: EngineDelegate, server_conn: object, request_conn: HTTPConnection):
        self.front = front
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.delegate: HTTPMessageDelegate | None = None

    def headers_received(self, start_line: RequestStartLine | ResponseStartLine,
                         headers: HTTPHeaders) -> Awaitable[None] | None:
        front = self.front
        front.waiting.pop(self.server_conn, None)
        delegate = front.pick(start_line, headers, self.request_conn)  # type: ignore[arg-type]
        if delegate is None:
            delegate = front.app.start_request(self.server_conn, self.request_conn)
        self.delegate = delegate
        return delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)  # type: ignore[union-attr]

    def finish(self) -> None:
        self.delegate.finish()  # type: ignore[union-attr]

    def on_connection_close(self) -> None:
        if self.delegate is not None:
            self.delegate.on_connection_close()


class PollHandover(HTTPMessageDelegate):
    """A poll whose keep-alive connection leaves Tornado for `PollingConnection`, which serves it and the
    next ones (what Tornado read past the head goes with it)."""

    __slots__ = ("front", "start_line", "headers", "connection")

    def __init__(self, front: EngineDelegate, start_line: RequestStartLine, headers: HTTPHeaders,
                 connection: HTTPConnection):
        self.front = front
        self.start_line = start_line
        self.headers = headers
        self.connection = connection

    def headers_received(self, start_line: object, headers: HTTPHeaders) -> Coroutine[Any, Any, None] | None:
        connection = self.connection
        peer = connection.context.address  # type: ignore[attr-defined]
        stream = connection.detach()  # type: ignore[attr-defined]
        buffered = bytes(stream._read_buffer)
        try:
            sock = stream.socket.dup()  # ours from here; the stream's own descriptor closes with it
        except (AttributeError, OSError):  # the client is already gone
            sock = None
        stream.close()
        if sock is None:
            return None
        first = (self.start_line.method, self.start_line.path, self.headers)
        return attach(sock, PollingConnection(self.front, first, buffered, peer))


def can_hand_over(start_line: RequestStartLine, headers: HTTPHeaders, connection: HTTPConnection) -> bool:
    """A keep-alive HTTP/1.1 poll with a plain body, on a plain TCP stream whose read buffer Tornado
    keeps as this version does (else it stays with Tornado)."""
    if start_line.version != "HTTP/1.1":
        return False
    if any(name in headers for name in ("Transfer-Encoding", "Expect", "Upgrade", "Content-Encoding")):
        return False
    if "close" in headers.get("Connection", "").lower():
        return False
    stream = getattr(connection, "stream", None)
    return (type(stream) is IOStream and isinstance(getattr(stream, "_read_buffer", None), bytearray)
            and getattr(stream, "_read_buffer_size", None) == len(stream._read_buffer)
            and not getattr(stream, "_user_read_buffer", True))


async def attach(sock: socket.socket, protocol: asyncio.Protocol) -> None:
    """Put `sock` on the event loop's own transport, served by `protocol`."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, sock)
    except OSError as exc:  # the client left meanwhile
        log.debug("a connection handed over was lost: %s", exc)
        sock.close()


class EngineServer(ConnectionServer):
    """The server `engine_server` makes: closing all connections closes those handed over too."""

    async def close_all_connections(self) -> None:
        self.request_callback.close_handed()  # type: ignore[attr-defined]
        await super().close_all_connections()


def engine_server(app: HTTPServerConnectionDelegate, engine: "Engine", path: str = "/socket.io/",
                  idle_timeout: float = 3600.0, **kwargs: Any) -> HTTPServer:
    """An `HTTPServer` serving `app` behind `EngineDelegate`; `idle_timeout` as Tornado's
    `idle_connection_timeout` (its default), kept by the front's sweep rather than a timer per request,
    with the hub's `header_timeout` and `max_connections_per_address` (the limits at the engine's door).
    Keep-alive connections of polls are handed to `PollingConnection` (`server.request_callback.handover =
    False` keeps them on Tornado)."""
    admission = engine.admission
    limits = getattr(admission, "limits", None) or Limits()
    if engine.connections is None:
        throttled = getattr(admission, "throttled", None) or Throttled(engine.stats)
        engine.count_connections(Connections(limits.max_connections_per_address, throttled, limits.trusted_proxies))
    front = EngineDelegate(app, engine, path, idle_timeout, limits.header_timeout)
    server = EngineServer(front, **kwargs)
    server.connections = engine.connections
    server.conn_params.header_timeout = None
    front.server = server
    return server
