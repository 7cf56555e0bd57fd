"""Long-polling on an HTTP/1.1 path of its own: a keep-alive connection on an asyncio protocol.

A poll through Tornado, even below `RequestHandler` (`ConnectionPoll`), pays
for its HTTP/1 machinery on every request: the headers parsed in Python, the
read loop's futures and its `sleep(0)`, epoll interest updates, two
`setsockopt` per answer. `EngineDelegate` (handlers/transports/server.py)
hands a keep-alive HTTP/1.1 connection whose poll `ConnectionPoll` would
serve to `PollingConnection`, a plain `asyncio.Protocol` on the loop's own
transport (uvloop's when the board runs on it), as a WebSocket leaves
Tornado at its handshake (`WebSocketConnection`). From there each request's head is parsed
by llhttp (`httptools`, as uvicorn parses), the same door (`admit`) and the
same rules (handlers/transports/polling.py) decide, and each answer is
written in one call; the connection itself is the session's poller while a
GET waits, so no future or task is made per request.

Anything else that comes on the connection (the page, a handshake, a
WebSocket, another process's session, a poll refused at the door, a chunked
body, a head llhttp refuses...) is handed back to Tornado with the bytes read
so far, and Tornado serves it as it always did; the front may hand the
connection over again at its next poll. Requests are answered in order: the
next one is not read while one is in flight, and a client that sends more
than a head's worth meanwhile is not read until it has its answer.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket as socketlib
import time
from typing import TYPE_CHECKING, Any

import httptools
from tornado.iostream import IOStream

from ..engineio.session import Session
from .polling import Refusal, answer_get, receive_post
from .polling_connection import admit

if TYPE_CHECKING:
    from ..engineio.engine import Engine
    from .server import EngineDelegate

log = logging.getLogger("board.engine")

MAX_HEAD = 65536  # bytes of a request's head, as Tornado's max_header_size by default; longer goes to Tornado
ANSWERED = frozenset((b"GET", b"POST"))
# The headers this path reads; a request with any of the last four (or one of them twice) goes to Tornado.
SEEN = {b"host": "Host", b"origin": "Origin", b"content-length": "Content-Length",
        b"transfer-encoding": "Transfer-Encoding", b"expect": "Expect", b"upgrade": "Upgrade",
        b"content-encoding": "Content-Encoding"}
TORNADO_ONLY = frozenset(("Transfer-Encoding", "Expect", "Upgrade", "Content-Encoding"))
OK_TEXT = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nCache-Control: no-store\r\n"
OK_HTML = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nCache-Control: no-store\r\n"
STATUS = {400: b"400 Bad Request", 413: b"413 Payload Too Large", 429: b"429 Too Many Requests",
          503: b"503 Service Unavailable"}

_date: tuple[int, bytes] = (0, b"")


def date_line() -> bytes:
    """The Date header line, formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, b"Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode() + b"\r\n")
    return _date[1]


class PollingConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying polls, until a request it does not serve comes.

    `first` is the request Tornado parsed when the front handed the connection
    over (method, uri, headers), `buffered` what Tornado had read past its head.
    """

    __slots__ = ("front", "engine", "parser", "transport", "buf", "first", "url", "headers", "odd",
                 "method", "session", "origin", "need", "ours", "busy", "keep", "paused", "address",
                 "peer", "gone", "uri", "unread", "n")

    def __init__(self, front: "EngineDelegate", first: tuple[str, str, dict[str, str]] | None, buffered: bytes,
                 peer: Any):
        self.front = front
        self.engine: "Engine" = front.engine
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.buf = buffered
        self.first = first
        self.peer = peer          # the client's address, for Tornado when the connection goes back to it
        self.url = b""            # the head being parsed: its target...
        self.headers: dict[str, str] = {}  # ... the headers this path reads, canonical names
        self.odd = False          # ... a header it reads came twice
        self.method = ""          # the request in flight
        self.session: Session | None = None
        self.origin: str | None = None
        self.need = -1            # body bytes it still needs; -1: a head comes next
        self.ours = False         # its head went through the parser (so does its body)
        self.busy = False         # a request in flight: its body on its way, or a GET waiting
        self.keep = True          # the connection stays open after the answer
        self.paused = False       # the transport's write buffer is not empty
        self.address: str | None = None  # counted in the engine's connections per address
        self.gone = False         # closed, or handed back to Tornado
        self.uri = ""             # of the request in flight, for the log
        self.unread = False       # reading paused: a client sending ahead of its answers
        self.n: str | None = None  # the GET's count of answers its client got (our client's), as sent

    # -- asyncio ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=0)  # type: ignore[attr-defined]  # told at once when a write lags
        connections = self.engine.connections
        if connections is not None:  # off Tornado's HTTP connection now: counted here until it closes
            self.address = connections.hold(self.peer)
        self.front.handed.add(self)
        first, self.first = self.first, None
        if first is not None and not self._route(*first, 1):
            self._hand_back(first)
            return
        self._advance()

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        if not self.paused and (not self.busy or self.need >= 0):
            self._advance()
        elif len(self.buf) > MAX_HEAD and not self.unread:  # sent ahead past a head's worth: not read
            self.unread = True                                # until it has its answers
            self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        return False  # the client is done: close (a GET waiting is let go, as Tornado does)

    def pause_writing(self) -> None:
        self.paused = True  # nothing more is read or answered until the client has read what it has

    def resume_writing(self) -> None:
        self.paused = False
        self._advance()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.gone = True
        self.front.handed.discard(self)
        self.front.waiting.pop(self, None)
        if self.address is not None:
            self.engine.connections.release(self.address)  # type: ignore[union-attr]
            self.address = None
        session, self.session = self.session, None
        if session is not None and self.busy:
            if session.poller is self:
                session.poller = None
            if self.method == "POST":
                session.end_post()

    # -- llhttp's callbacks (one head at a time) ------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        canonical = SEEN.get(name.lower())
        if canonical is not None:
            if canonical in self.headers or canonical in TORNADO_ONLY:
                self.odd = True  # Tornado decides
            self.headers[canonical] = value.decode("latin-1")

    # -- requests ---------------------------------------------------------------

    def _advance(self) -> None:
        """Serve what the buffer holds, one request at a time, while nothing is in flight."""
        while not self.paused and not self.gone:
            buf = self.buf
            if self.need < 0:
                if self.busy:
                    return  # a GET waits for the session
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD or b"\n\n" in buf:
                        self._hand_back()  # Tornado refuses it, or reads a head of bare LFs
                    elif self.unread:
                        self.unread = False
                        self.transport.resume_reading()  # type: ignore[union-attr]
                    return
                if not self._head(buf[:end + 4]):
                    self._hand_back()
                    return
                buf = self.buf = buf[end + 4:]
            need = self.need
            if len(buf) < need:
                if self not in self.front.waiting:  # the body is on its way: within the header timeout too
                    self.front.idle(self)
                return
            body, self.buf = buf[:need], buf[need:]
            self.front.waiting.pop(self, None)
            self.need = -1
            if self.ours and need:
                self._feed(body)  # the parser sees the whole message, ready for the next head
            self._serve(body)

    def _head(self, head: bytes) -> bool:
        """Parse a head and, if this path serves it, start the request; False hands it to Tornado."""
        self.url, self.headers, self.odd = b"", {}, False
        parser = self.parser
        if not self._feed(head):
            return False
        method = parser.get_method()
        if self.odd or method not in ANSWERED or parser.get_http_version() != "1.1":
            return False
        if not self._route(method.decode(), self.url.decode("latin-1"), self.headers, parser.should_keep_alive()):
            return False
        self.ours = True
        return True

    def _feed(self, data: bytes) -> bool:
        try:
            self.parser.feed_data(data)
            return True
        except (httptools.HttpParserError, httptools.HttpParserUpgrade):
            return False

    def _route(self, method: str, uri: str, headers: Any, keep: Any) -> bool:
        """Start the request if the door admits it (as `EngineDelegate.pick` would); False otherwise."""
        front = self.front
        target = front.engine_query(uri)
        if target is None or target[0] != "polling" or target[1] is None:
            return False
        host = headers.get("Host")
        if host is None or not front.simple_host(host):
            return False
        admitted = admit(self.engine, method, target[1], headers, host)
        if admitted is None:
            return False
        self.front.waiting.pop(self, None)
        session, self.origin = admitted
        length = headers.get("Content-Length")
        self.need = int(length) if length else 0  # admitted: plain digits, within maxPayload
        self.method, self.session, self.busy, self.keep, self.ours = method, session, True, bool(keep), False
        self.uri, self.n = uri, target[2]
        if method == "POST":
            session.start_post()
        return True

    def _serve(self, body: bytes) -> None:
        session = self.session
        if session is None:
            return
        if self.method == "GET":
            payload = answer_get(self.engine, session, self.n)
            if isinstance(payload, Refusal):
                self.fail(*payload)
            elif payload is None:
                session.poller = self  # busy until the session delivers
            else:
                self.answer(payload.encode(), OK_TEXT)
        else:
            refused = receive_post(session, body, self.uri)
            if refused is not None:
                self.fail(*refused)
            else:
                self.answer(b"ok", OK_HTML)

    # -- what the session calls ----------------------------------------------

    def deliver(self, payload: str | None) -> None:
        """The GET in flight gets `payload` (None: an empty answer, as PollingTransport's auto-finish)."""
        if self.session is None:
            return
        self.answer((payload or "").encode(), OK_TEXT)
        if self.buf and not self.gone:  # a request came meanwhile: served on the next loop turn, not
            asyncio.get_running_loop().call_soon(self.resume_writing)  # inside the session's flush

    # -- answers ----------------------------------------------------------------

    def answer(self, body: bytes, head: bytes) -> None:
        """200 with `body`, in one write, with the CORS headers PollingTransport would have set."""
        origin = self.origin
        if origin:
            head += b"Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\n" % (
                origin.encode("latin-1"))
        self._write(head, body)

    def fail(self, code: int, status: int = 400, message: str | None = None) -> None:
        """Socket.IO's JSON error body, as EngineRequest.fail writes it (no CORS headers), logged as it logs."""
        text = self.engine.error_body(code, message)
        address = self.peer[0] if isinstance(self.peer, tuple) else None
        log.info("%s %s from %s: %d %s", self.method, self.uri, address, status, text)
        head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n" % STATUS[status]
        self._write(head, text.encode())

    def _write(self, head: bytes, body: bytes) -> None:
        self.session = None
        self.busy = False
        transport = self.transport
        if transport is None or self.gone:
            return
        close = b"" if self.keep else b"Connection: close\r\n"
        transport.write(b"%s%sContent-Length: %d\r\n%s\r\n%s" % (head, date_line(), len(body), close, body))
        if self.keep:
            self.front.idle(self)  # waiting for the next head (the sweep's header timeout)
        else:
            self.gone = True
            transport.close()

    def close_idle(self) -> int:
        """The front's sweep (no request's head, or its body, came in time) or its shedding: 1 if it
        closed. A GET waiting for the session is not idle."""
        if self.transport is None or self.gone or (self.busy and self.need < 0):
            return 0
        self.gone = True
        self.transport.close()
        return 1

    def abort(self) -> None:
        """Close at once, whatever is in flight (the server stops)."""
        if self.transport is not None:
            self.gone = True
            self.transport.abort()

    # -- back to Tornado ---------------------------------------------------------

    def _hand_back(self, first: tuple[str, str, dict[str, str]] | None = None) -> None:
        """Give the connection, and what was read of the request at hand, to Tornado's HTTP server."""
        transport = self.transport
        if transport is None or self.gone:
            return
        self.gone = True
        buffered = self.buf
        if first is not None:  # the request the front handed over, with its head written again
            method, uri, headers = first
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.get_all())  # type: ignore[attr-defined]
            buffered = f"{method} {uri} HTTP/1.1\r\n{head}\r\n".encode("latin-1") + buffered
        self.buf = b""
        try:
            sock = socketlib.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
        except OSError:  # the client is already gone
            transport.abort()
            return
        transport.abort()  # the duplicate keeps the TCP connection open
        self.front.resume_in_tornado(sock, buffered, self.peer)
