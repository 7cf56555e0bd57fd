"""The WebSocket transport: frames in, frames out, nothing else.

A session opened here runs on WebSocket from its first packet; a socket
opened with the `sid` of a polling session is an upgrade probe, which takes
the session over once the client confirms with an UPGRADE packet. In a
cluster, a probe for another process's session moves the session here at
that confirmation (handlers/cluster/handoff.py). Outbound
data arrives as ready frames (encoded once for every receiver) and goes
straight to the stream, whose buffer is bounded: a client that cannot keep
up is closed rather than allowed to grow the server's memory.

Reading frames in batches and writing ready frames use private parts of
Tornado's `WebSocketProtocol13`, kept in tornado_frames.py with the checks
against the installed Tornado; if it lacks them, connections fall back to
Tornado's own frame reading and `write_message`, slower but correct, and a
warning says so. Where this handler serves at all: see routing.py (the connection-level
path, websocket_connection.py, takes every plain handshake it can).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tornado.iostream import StreamBufferFullError, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol, WebSocketProtocol13

from ..wire.errors import BAD_REQUEST
from ..wire.protocol import PING, UPGRADE, Outgoing, ProtocolError, decode_engine_packet
from .entry import EngineRequest
from .tornado_frames import FAST_FRAMES, BatchedFrames, _has_state, frame_parser
from ..engineio.session import PROBE_REPLY, Session

log = logging.getLogger("board.engine")

class WebSocketTransport(EngineRequest, WebSocketHandler):
    """Carries one Engine.IO session over one WebSocket."""

    session: Session | None = None
    probing = False
    address: str | None = None  # counted in the engine's open connections (handlers/operations/connections.py) while open
    fast = False  # batched reads and shared frames written straight to the stream
    _remote: "RemoteProbe | None" = None

    @property
    def max_message_size(self) -> int:  # type: ignore[override]
        return self.engine.max_payload

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        if FAST_FRAMES and type(protocol) is WebSocketProtocol13 and _has_state(protocol):
            protocol.__class__ = BatchedFrames  # same state, faster reads
            protocol.frames = frame_parser(self.engine.max_payload)
            self.fast = True
        return protocol

    def get_compression_options(self) -> None:
        return None  # frames are pre-built once per broadcast; compression would redo them per client

    def check_origin(self, origin: str) -> bool:
        return True  # checked by check_request, before the handshake, with a JSON answer

    async def get(self, *args: Any, **kwargs: Any) -> None:
        ok, session = self.check_request()
        if not ok:
            return
        if self.relayed is not None and (self.engine.handoff is None or (self.engine.admission is not None and self.engine.admission.draining)):
            # No session moves to a process that is going away: the client stays on polling, probes later.
            self.fail(BAD_REQUEST, 400, "Session lives on another process")
            return
        # A session already on (or moving to) another WebSocket: the handshake
        # completes and open() closes this one, as the protocol asks.
        self.session = session
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        # The handshake is answered: what a handler keeps for rendering pages
        # and writing responses is dead weight from here on, per connection.
        self.ui = None  # as Tornado's own _break_cycles does at close
        request = self.request
        request.connection = request.server_connection = None  # the detached HTTP/1 connection
        request.arguments = request.body_arguments = request.files = {}  # query_arguments stays
        if self.fast:
            self.ws_connection.stream.max_write_buffer_size = self.engine.max_queue_bytes  # type: ignore[union-attr]
        self.set_nodelay(True)
        connections = self.engine.connections
        if connections is not None:  # off the HTTP server's connection now: counted here until it closes
            try:
                peer = self.ws_connection.stream.socket.getpeername()  # type: ignore[union-attr]
                self.address = connections.hold(peer)
            except (AttributeError, OSError):  # already gone
                pass
        if self.relayed is not None:  # another process's session: it moves here if the client upgrades
            self.probing = True
            self._remote = RemoteProbe(self)
            return
        session = self.session
        if session is not None:
            if not session.begin_probe():
                self.session = None  # nothing it sends reaches the session
                self.close(1008, "session already on a WebSocket")
                return
            self.probing = True
            return
        session = self.session = self.engine.open_session(self.environ("websocket"))
        session.ws = self
        self.send_packets([Outgoing([self.engine.open_packet(session, upgrades=[])])])

    def on_message(self, message: str | bytes) -> None:
        session = self.session
        if session is None or session.closed:
            if self._remote is not None and session is None:
                self._remote.on_message(message)
            return
        self.probing = session.receive_frame(self, message, self.probing)

    def on_close(self) -> None:
        if self.address is not None:
            self.engine.connections.release(self.address)
            self.address = None
        session = self.session
        if session is None:
            if self._remote is not None:
                self._remote.closed()
            return
        session.websocket_closed(self, self.probing)

    # -- what the session calls ----------------------------------------

    def send_packets(self, queue: list[Outgoing]) -> bool:
        """Write queued packets as their ready frames; False if the connection is gone or too far behind."""
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return False
        if not self.fast:
            return self._write_each(queue)
        stream = conn.stream
        try:
            if stream.writing():
                # Backlogged: queue each shared frame as it is. The stream keeps
                # a reference to frames over 2 KiB rather than a copy, so a
                # broadcast waiting for many slow readers is held once.
                for out in queue:
                    stream.write(out.frames)
                return True
            # Nothing of ours is waiting in the stream: hand the bytes to the
            # kernel at once, and give the stream only what it did not take.
            # Same order, and no future nor buffer copy per frame.
            data = queue[0].frames if len(queue) == 1 else b"".join([o.frames for o in queue])
            try:
                sent = stream.socket.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                return False
            if sent < len(data):
                stream.write(memoryview(data)[sent:])
        except StreamClosedError:
            return False
        except StreamBufferFullError:
            self.engine.stats.slow_clients_dropped += 1
            return False
        return True

    def _write_each(self, queue: list[Outgoing]) -> bool:
        """The fallback: each packet through Tornado's public write_message."""
        try:
            for out in queue:
                for packet in out.packets:
                    self.write_message(packet, binary=not isinstance(packet, str))
        except WebSocketClosedError:
            return False
        return True

    def close_transport(self, code: int, reason: str) -> None:
        self.close(code, reason[:120])


class RemoteProbe:
    """An upgrade probe for a session another process owns: the session moves here on UPGRADE.

    The owner is told of the probe (it pauses the session's polling) and, at the
    client's confirmation, hands the session over; what the client sends
    meanwhile waits here, in order, bounded. A probe not confirmed within a
    heartbeat is closed, as the owner would close a silent session.
    """

    MAX_HELD = 256

    def __init__(self, ws: WebSocketTransport):
        self.ws = ws
        self.sid: str = ws.relayed  # type: ignore[assignment]
        self.state = "new"          # new, probing, probed, moving, moved, gone
        self.held: list[str | bytes] = []
        engine = ws.engine
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later((engine.ping_interval + engine.ping_timeout) / 1000, self._expire)

    def on_message(self, message: str | bytes) -> None:
        if self.state == "moving":
            if len(self.held) >= self.MAX_HELD:
                self._fail(1008, "too many messages during the upgrade")
            else:
                self.held.append(message)
            return
        try:
            kind, data = decode_engine_packet(message)
        except ProtocolError:
            self._fail(1002, "parse error")
            return
        if kind == PING and data == "probe" and self.state == "new":
            self.state = "probing"
            asyncio.ensure_future(self._probe())
        elif kind == UPGRADE and self.state == "probed":
            self.state = "moving"
            asyncio.ensure_future(self._move())
        else:
            self._fail(1002, "expected a probe or an upgrade")

    async def _probe(self) -> None:
        if not await self.ws.engine.relay.probe(self.sid):
            self._fail(1008, "session unknown")
        elif self.state == "probing":
            self.state = "probed"
            self.ws.send_packets([PROBE_REPLY])

    async def _move(self) -> None:
        ws = self.ws
        try:
            session = await ws.engine.relay.move_here(self.sid, ws)
        except Exception:
            log.exception("session %s…: moving it here failed", self.sid[:8])
            session = None
        self.timer.cancel()
        if session is None:
            self._fail(1011, "the session could not move here")
            return
        self.state = "moved"
        ws.session, ws.probing, ws._remote = session, False, None
        if ws.ws_connection is None or ws.ws_connection.is_closing():  # gone meanwhile
            session.ws = None
            session.close("transport close", notify=False)
            return
        held, self.held = self.held, []
        for message in held:
            ws.on_message(message)

    def _expire(self) -> None:
        if self.state not in ("moving", "moved"):
            self._fail(1008, "upgrade not confirmed")

    def _fail(self, code: int, reason: str) -> None:
        self.closed()
        self.ws.close(code, reason)

    def closed(self) -> None:
        """The WebSocket closed (or is closed) before the session moved here."""
        if self.state in ("probing", "probed"):
            self.ws.engine.relay.unprobe(self.sid)
        if self.state != "moving":
            self.state = "gone"
            self.timer.cancel()
