"""The long-polling transport: GET waits for packets, POST delivers them.

One GET at a time per session is held open until the session has something
to send (or a heartbeat ping does); one POST at a time carries the client's
packets, `\\x1e`-separated, bounded by `maxPayload` before a byte of the body
is buffered.
"""

from __future__ import annotations

import asyncio

from tornado.web import RequestHandler, stream_request_body

from ..wire.errors import BAD_HANDSHAKE_METHOD, BAD_REQUEST, UNKNOWN_SID
from .entry import EngineRequest
from ..engineio.session import Session


@stream_request_body
class PollingTransport(EngineRequest, RequestHandler):
    """One HTTP request of a long-polling session."""

    session: Session | None = None
    _waiter: asyncio.Future | None = None

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")

    def compute_etag(self) -> None:
        return None  # every poll answer is new: no hash of each body, no 304s

    def prepare(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        origin = self.request.headers.get("Origin")
        if origin and self.engine.origin_allowed(origin, self.request.host):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Allow-Credentials", "true")
        if self.request.method == "OPTIONS":
            return
        ok, session = self.check_request()
        if not ok:
            return
        method = self.request.method
        if self.relayed is not None:
            self._prepare_relayed(method)
            return
        if method not in ("GET", "POST"):
            self.fail(BAD_HANDSHAKE_METHOD if session is None else BAD_REQUEST, 400,
                      f"{method} is not a method of this endpoint")
            return
        if session is None:
            if method != "GET":
                self.fail(BAD_HANDSHAKE_METHOD, 400, "A handshake is a GET; other requests need a session id")
            return
        if session.ws is not None:
            self.fail(BAD_REQUEST, 400, "Session upgraded to WebSocket")
            return
        if method == "POST":
            if session.posting:
                self.fail(BAD_REQUEST, 400, "Overlapping POST requests")
                session.close("transport error", notify=False)
                return
            length = self.request.headers.get("Content-Length")
            if length is not None and (not (length.isascii() and length.isdigit()) or int(length) > self.engine.max_payload):
                self.fail(BAD_REQUEST, 413, "Payload too large")
                session.close("transport error", notify=False)
                return
            session.posting = True
            self.request.connection.set_max_body_size(self.engine.max_payload)
        self.session = session

    def _prepare_relayed(self, method: str) -> None:
        if method not in ("GET", "POST"):
            self.fail(BAD_REQUEST, 400, f"{method} is not a method of this endpoint")
        elif method == "POST":
            length = self.request.headers.get("Content-Length")
            if length is not None and (not (length.isascii() and length.isdigit()) or int(length) > self.engine.max_payload):
                self.fail(BAD_REQUEST, 413, "Payload too large")
                return
            self.request.connection.set_max_body_size(self.engine.max_payload)

    async def _relay(self, op: str, body: str | None = None) -> None:
        """Serve this request at the process that owns the session (handlers/cluster/relay.py)."""
        engine = self.engine
        timeout = (engine.ping_interval + engine.ping_timeout) / 1000 if op == "get" else 10.0
        self._waiter = asyncio.ensure_future(engine.relay.request(self.relayed, op, body, timeout))
        try:
            status, text = await self._waiter
        except asyncio.CancelledError:
            return  # the client went away while we waited
        finally:
            self._waiter = None
        if status == 200:
            if op == "post":
                self.set_header("Content-Type", "text/html")
            self.finish(text)
        else:
            self.fail(UNKNOWN_SID if text == "Session ID unknown" else BAD_REQUEST, status, text)

    def unknown_session(self, sid: str) -> None:
        last = self.engine.last_answer(sid) if self.request.method == "GET" else None
        if last is not None:
            self.finish(last)  # the session closed as this GET was on its way: its last answer
        else:
            super().unknown_session(sid)

    def data_received(self, chunk: bytes) -> None:
        if self.relayed is not None and not self._finished:
            self._size += len(chunk)
            if self._size > self.engine.max_payload:
                self.fail(BAD_REQUEST, 413, "Payload too large")
                return
            self._chunks.append(chunk)
            return
        if self._finished or self.session is None:
            return
        self._size += len(chunk)
        if self._size > self.engine.max_payload:
            self.session.posting = False
            self.session.close("transport error", notify=False)
            self.session = None
            self.fail(BAD_REQUEST, 413, "Payload too large")
            return
        self._chunks.append(chunk)

    def options(self) -> None:
        self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Content-Type")
        self.set_status(204)

    async def get(self) -> None:
        if self.relayed is not None:
            await self._relay("get")
            return
        session = self.session
        if session is None:
            session = self.engine.open_session(self.environ("polling"))
            upgrades = ["websocket"] if "websocket" in self.engine.transports else []
            self.finish(self.engine.open_packet(session, upgrades))
            return
        if session.closed:  # closed while this request was read (a POST with a close packet, say)
            self.unknown_session(session.sid)
            return
        if session.poller is not None:
            self.fail(BAD_REQUEST, 400, "Overlapping GET requests")
            session.close("transport error")  # the first GET gets the close packet
            return
        payload = session.poll()
        if payload is None:
            self._waiter = asyncio.get_running_loop().create_future()
            session.poller = self
            payload = await self._waiter
            self._waiter = None
            if payload is None:
                return  # the client went away while we waited
        self.finish(payload)

    async def post(self) -> None:
        if self.relayed is not None:
            try:
                body = b"".join(self._chunks).decode("utf-8")
            except UnicodeDecodeError:
                self.fail(BAD_REQUEST, 400, "Bad payload: invalid UTF-8")
                return
            await self._relay("post", body)
            return
        session = self.session
        if session is None:
            return
        session.posting = False
        refused = session.receive_body(b"".join(self._chunks))
        if refused:
            self.fail(BAD_REQUEST, 400, refused)
            return
        self.set_header("Content-Type", "text/html")
        self.finish("ok")

    # -- what the session calls ----------------------------------------

    def deliver(self, payload: str) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(payload)

    def on_connection_close(self) -> None:
        if self.relayed is not None:
            if self._waiter is not None:
                self._waiter.cancel()  # the relay tells the owner to stop waiting for this GET
            return
        session = self.session
        if session is not None:
            if session.poller is self:
                session.poller = None
            if self.request.method == "POST":
                session.posting = False
        self.deliver(None)  # type: ignore[arg-type]

    def on_finish(self) -> None:
        session = self.session
        if session is not None and self.request.method == "POST":
            session.posting = False
