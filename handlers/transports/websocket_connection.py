"""WebSocket at the connection level: the handshake answered below `RequestHandler`, then frames on an asyncio protocol.

Through Tornado a WebSocket costs a `RequestHandler`, a `WebSocketHandler`
and its protocol's chain of coroutines, held for the socket's whole life,
and each read is a future on an `IOStream`. A handshake that can only
succeed at the door (`EIO=4&transport=websocket`, a plain RFC 6455 upgrade,
an allowed origin; for a new session, admitted by the engine's admission; with a
sid, the probe of a local polling session that has no WebSocket) is answered
by `ConnectionUpgrade`, below `RequestHandler` (reached from `EngineDelegate`, or
from `ConnectionUpgrades` in the engine's rules): Tornado parsed the request, the
connection is then detached from its HTTP/1 machinery, and from the `101`
on the socket belongs to `WebSocketConnection`, a plain `asyncio.Protocol` (uvloop's
when the board runs on it). Bytes in go through `data_received` and the
pure `FrameParser`; ready frames go out with one `transport.write` per
flush. Backpressure is asyncio's: above `HIGH_WATER` bytes owed to a client
the transport calls `pause_writing` and nothing more is read from that
client until it has caught up (`resume_writing`), so what it sends (pings
above all, each answered by a pong) cannot make the server write without
bound; past `engine.max_queue_bytes` owed, as on every other queue, the
connection is cut and counted as a slow client. Anything else (another
process's session, an unknown sid, odd headers, other protocol versions)
goes to `WebSocketTransport`, which answers as it always did;
`engine.connection_websockets = False` sends every WebSocket there.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import socket as socketlib
from typing import TYPE_CHECKING, Any, Coroutine

from tornado.httputil import HTTPConnection, HTTPHeaders, HTTPMessageDelegate, HTTPServerRequest
from tornado.routing import Router

from ..wire.errors import BAD_REQUEST
from ..wire.frames import BINARY, CLOSE, PING, PONG, TEXT, FrameError, close_frame, control_frame
from .polling_connection import write_error
from ..wire.protocol import Outgoing
from .entry import handshake_environ, right_version
from .tornado_frames import frame_parser
from ..engineio.session import Session

if TYPE_CHECKING:
    from ..engineio.engine import Engine

log = logging.getLogger("board.engine")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
CLOSE_GRACE = 5.0  # seconds a closing socket may take to flush what it owes before it is cut
HIGH_WATER = 256 * 1024  # bytes owed to a client above which nothing more is read from it


def accept_key(key: str) -> bytes:
    """RFC 6455's answer to a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + GUID).digest())


def plain_upgrade(method: str, headers: HTTPHeaders, connection: HTTPConnection) -> bool:
    """A GET asking for RFC 6455 (version 13) with nothing unusual; the rest goes to Tornado's handler."""
    if method != "GET" or headers.get("Upgrade", "").lower() != "websocket":
        return False
    if "upgrade" not in [token.strip().lower() for token in headers.get("Connection", "").split(",")]:
        return False
    key = headers.get("Sec-WebSocket-Key", "")
    if headers.get("Sec-WebSocket-Version") != "13" or len(key) != 24 or "," in key:
        return False
    if "Content-Length" in headers or "Transfer-Encoding" in headers:
        return False
    # Nothing read past the headers (a client waits for the 101 before it sends frames): Tornado's
    # stream says so in a private attribute; without it, every WebSocket goes the usual way.
    buffered = getattr(getattr(connection, "stream", None), "_read_buffer_size", None)
    if buffered is None:
        _warn_no_buffer_size()
    return buffered == 0


_warned = False


def _warn_no_buffer_size() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("this Tornado's IOStream has no _read_buffer_size, which the connection-level WebSocket path checks; "
                    "every WebSocket goes through Tornado's handler (slower). Board is tested with the "
                    "Tornado versions setup.cfg allows.")


def connection_upgrade(engine: "Engine", request: HTTPServerRequest, sid: str | None) -> "ConnectionUpgrade | None":
    """A `ConnectionUpgrade` for a WebSocket handshake (its query already checked), or None.

    Without `sid`, a new session; with one, the upgrade probe of a local polling session that has
    no WebSocket yet (another process's session, an unknown or a busy one: Tornado's handler).
    """
    if not engine.connection_websockets or "websocket" not in engine.transports:
        return None
    session = None
    if sid is not None:
        session = engine.sessions.get(sid)
        if session is None or not session.can_probe:
            return None
    if not plain_upgrade(request.method, request.headers, request.connection):  # type: ignore[arg-type]
        return None
    if not engine.origin_allowed(request.headers.get("Origin"), request.host):
        return None
    return ConnectionUpgrade(engine, request, session)


class ConnectionUpgrades(Router):
    """In the engine's rules: the WebSockets `connection_upgrade` takes to `ConnectionUpgrade`; None for the rest."""

    def __init__(self, engine: "Engine"):
        self.engine = engine

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> HTTPMessageDelegate | None:
        args = request.query_arguments
        sid = args.get("sid")
        if not right_version(args) or (sid is not None and len(sid) != 1):
            return None
        return connection_upgrade(self.engine, request, sid[0].decode("latin-1") if sid else None)


class ConnectionUpgrade(HTTPMessageDelegate):
    """A WebSocket handshake: a new session refused at the door, or the handshake answered and the
    socket handed to `WebSocketConnection` (with `session`, the polling session it probes)."""

    __slots__ = ("engine", "request", "session", "refused")

    def __init__(self, engine: "Engine", request: HTTPServerRequest, session: Session | None = None):
        self.engine = engine
        self.request = request
        self.session = session
        self.refused: tuple[int, str] | None = None

    def headers_received(self, start_line: object, headers: HTTPHeaders) -> Coroutine[Any, Any, None] | None:
        engine, request, session = self.engine, self.request, self.session
        environ = None
        if session is None:  # a new session: the door decides
            admission = engine.admission
            self.refused = admission.admit(request) if admission is not None else None
            if self.refused is not None:
                return None  # answered in finish(), as a handler would
            environ = handshake_environ(engine, request, "websocket")
        accept = accept_key(request.headers["Sec-WebSocket-Key"])
        stream = request.connection.detach()  # type: ignore[union-attr]
        try:
            sock = stream.socket.dup()  # ours from here; the stream's own descriptor closes with it
        except (AttributeError, OSError):  # the client is already gone (the stream dropped its socket)
            sock = None
        stream.close()
        if sock is None:
            return None
        protocol = WebSocketConnection(engine, SWITCHING + accept + b"\r\n\r\n", environ, session)
        return _attach(sock, protocol)  # Tornado awaits it, then sees the connection detached

    def finish(self) -> None:
        if self.refused is not None:
            request = self.request
            status, message = self.refused
            write_error(self.engine, request.connection, request.method, request.uri,  # type: ignore[arg-type]
                        BAD_REQUEST, status, message)


async def _attach(sock: socketlib.socket, protocol: "WebSocketConnection") -> None:
    try:
        sock.setsockopt(socketlib.IPPROTO_TCP, socketlib.TCP_NODELAY, 1)
        await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, sock)
    except OSError as exc:  # the client left during the handshake
        log.debug("a WebSocket handshake lost its connection: %s", exc)
        sock.close()


class WebSocketConnection(asyncio.Protocol):
    """One Engine.IO session over one WebSocket, on the event loop's own transport (the session's writer)."""

    __slots__ = ("engine", "environ", "greeting", "transport", "session", "frames", "closing", "behind",
                 "probing", "address")

    def __init__(self, engine: "Engine", greeting: bytes, environ: dict | None, session: Session | None = None):
        self.engine = engine
        self.greeting = greeting  # the 101 answer, written with the open packet
        self.environ = environ    # a new session's handshake
        self.session = session    # ... or the polling session this socket probes
        self.transport: asyncio.Transport | None = None
        self.frames = frame_parser(engine.max_payload)
        self.closing = False
        self.behind = False
        self.probing = False
        self.address: str | None = None  # counted in the engine's open connections while this one is

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        high = min(HIGH_WATER, self.engine.max_queue_bytes)
        transport.set_write_buffer_limits(high=high)  # type: ignore[attr-defined]
        connections = self.engine.connections
        if connections is not None:  # off Tornado's HTTP connection now: counted here until it closes
            self.address = connections.hold(transport.get_extra_info("peername"))
        if self.session is not None:  # an upgrade probe
            transport.write(self.greeting)  # type: ignore[attr-defined]
            self.greeting = b""
            if self.session.begin_probe():
                self.probing = True
            else:  # it got a WebSocket (or closed) meanwhile
                self.session = None
                self.close_transport(1008, "session already on a WebSocket")
            return
        engine = self.engine
        session = self.session = engine.open_session(self.environ)  # type: ignore[arg-type]
        self.environ = None
        session.ws = self
        opening = Outgoing([engine.open_packet(session, upgrades=[])])
        transport.write(self.greeting + opening.frames)  # type: ignore[attr-defined]
        self.greeting = b""

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.frames.feed(data)
        except FrameError as exc:
            self.close_transport(exc.code, exc.reason)
            return
        for opcode, payload in messages:
            if self.closing:
                return
            if opcode == TEXT:  # nearly all of Engine.IO's traffic
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    self.close_transport(1007, "invalid UTF-8")
                    return
                self._message(text)
            elif opcode == BINARY:
                self._message(payload)
            elif opcode == PING:
                transport = self.transport
                transport.write(control_frame(PONG, payload))  # type: ignore[union-attr]
                if transport.get_write_buffer_size() > self.engine.max_queue_bytes:  # type: ignore[union-attr]
                    self._too_slow()
                    return
            elif opcode == CLOSE:  # the client's close: echo its code, then hang up
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
                self.close_transport(code if 1000 <= code < 5000 else 1002, "")
            # PONG: nothing asked for it

    def _message(self, message: str | bytes) -> None:
        session = self.session
        if session is None or session.closed:
            return
        try:
            self.probing = session.receive_frame(self, message, self.probing)
        except Exception:
            log.exception("error handling a message; closing the connection")
            self._cut()

    def pause_writing(self) -> None:
        """Above the high-water mark: read nothing more from this client until it has read what it owes."""
        if not self.closing:
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        if not self.closing:
            self.transport.resume_reading()  # type: ignore[union-attr]

    def _too_slow(self) -> None:
        """Owes more than any queue may hold: cut at once (nothing more is flushed) and count it."""
        self.behind = True
        self.engine.stats.slow_clients_dropped += 1
        log.debug("a WebSocket owes its client more than %d bytes; cutting it", self.engine.max_queue_bytes)
        session = self.session
        if session is not None and not self.probing and not session.closed:
            session.close("transport error", notify=False)  # which cuts this transport
        self._cut()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.closing = True
        if self.address is not None:
            self.engine.connections.release(self.address)
            self.address = None
        session, self.session = self.session, None
        if session is not None:
            session.websocket_closed(self, self.probing)

    # -- what the session calls ----------------------------------------

    def send_packets(self, queue: list[Outgoing]) -> bool:
        """Write queued packets as their ready frames; False if the connection is gone or too far behind."""
        transport = self.transport
        if transport is None or self.closing:
            return False
        if len(queue) == 1:
            transport.write(queue[0].frames)
        elif transport.get_write_buffer_size():
            # Backlogged: the shared frames themselves wait in the transport (uvloop keeps references),
            # so a broadcast owed to many slow readers is held once, not copied per reader.
            transport.writelines([o.frames for o in queue])
        else:
            transport.write(b"".join([o.frames for o in queue]))  # one system call for the lot
        if transport.get_write_buffer_size() > self.engine.max_queue_bytes:
            self.behind = True  # cut at close: what it owes is not worth flushing
            self.engine.stats.slow_clients_dropped += 1
            return False
        return True

    def close_transport(self, code: int, reason: str) -> None:
        """A close frame, then the TCP close once what is owed is written (within CLOSE_GRACE)."""
        transport = self.transport
        if transport is None or self.closing:
            return
        self.closing = True
        if self.behind:
            transport.abort()
            return
        transport.write(close_frame(code, reason))
        transport.close()
        if transport.get_write_buffer_size():
            asyncio.get_running_loop().call_later(CLOSE_GRACE, self._cut)

    def _cut(self) -> None:
        transport = self.transport
        if transport is not None:
            self.closing = True
            transport.abort()
