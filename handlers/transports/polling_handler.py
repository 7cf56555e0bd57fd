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
from .entry import EngineRequest, body_too_large
from ..engineio.session import Session
from .polling import METHODS, Refusal, answer_get, body_overflow, query_count, receive_post, refuse_request


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
        if session is None:
            if method not in METHODS:
                self.fail(BAD_HANDSHAKE_METHOD, 400, f"{method} is not a method of this endpoint")
            elif method != "GET":
                self.fail(BAD_HANDSHAKE_METHOD, 400, "A handshake is a GET; other requests need a session id")
            return
        refused = refuse_request(self.engine, session, method, self.request.headers)
        if refused is not None:
            self.refuse(refused)
            return
        if method == "POST":
            session.start_post()
            self.request.connection.set_max_body_size(self.engine.max_payload)
        self.session = session

    def refuse(self, refusal: Refusal) -> None:
        self.fail(*refusal)

    def _prepare_relayed(self, method: str) -> None:
        if method not in METHODS:
            self.fail(BAD_REQUEST, 400, f"{method} is not a method of this endpoint")
        elif method == "POST":
            if body_too_large(self.request.headers, self.engine.max_payload):
                self.fail(BAD_REQUEST, 413, "Payload too large")
                return
            self.request.connection.set_max_body_size(self.engine.max_payload)

    async def _relay(self, op: str, body: str | None = None) -> None:
        """Serve this request at the process that owns the session (handlers/cluster/relay.py)."""
        engine = self.engine
        timeout = (engine.ping_interval + engine.ping_timeout) / 1000 if op == "get" else 10.0
        n = query_count(self.request.query_arguments) if op == "get" else None
        self._waiter = asyncio.ensure_future(engine.relay.request(self.relayed, op, body, timeout, n,
                                                                  self.request.uri))
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
                return
            try:  # the owner keeps what it answered until it hears it was written
                await self.finish(text)
                written = True
            except Exception:
                written = False
            engine.relay.written(self.relayed, written)
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
        refused = body_overflow(self.engine, self.session, self._size)
        if refused is not None:
            self.session = None
            self.refuse(refused)
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
        payload = answer_get(self.engine, session, query_count(self.request.query_arguments))
        if isinstance(payload, Refusal):
            self.refuse(payload)
            return
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
        refused = receive_post(session, b"".join(self._chunks), self.request.uri)
        if refused is not None:
            self.refuse(refused)
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
                session.end_post()
        self.deliver(None)  # type: ignore[arg-type]

    def on_finish(self) -> None:
        session = self.session
        if session is not None and self.request.method == "POST":
            session.end_post()
