"""Tornado's WebSocket protocol with batched frame reads: the one place Board swaps a private class.

`WebSocketTransport` (the WebSockets Tornado's handler keeps: relayed
probes, handoffs, and any handshake the connection-level path leaves) turns each
`WebSocketProtocol13` into a `BatchedFrames` once the handshake is done: the
same object, reading every frame the socket holds with one awaited read and
the pure `FrameParser`. Measured when it came in (bench/RESULTS.md: ack round trips
12k -> 24k/s on that path). It uses private parts of Tornado,
listed below and checked against the installed version at import and on
each protocol; if any is missing, connections keep Tornado's own reading and
`write_message`, slower but correct, and a warning says so.
"""

from __future__ import annotations

import logging

import tornado
from tornado.iostream import StreamBufferFullError
from tornado.websocket import WebSocketProtocol, WebSocketProtocol13

from ..wire.frames import TEXT, FrameError, FrameParser

try:  # Tornado's C unmasking, built with its wheels; the pure one otherwise
    from tornado.speedups import websocket_mask as _c_unmask
except ImportError:  # pragma: no cover - a Tornado built without its extension
    _c_unmask = None

log = logging.getLogger("board.engine")

READ_CHUNK = 65536


def frame_parser(max_size: int) -> FrameParser:
    """The pure `FrameParser`, unmasking in C where Tornado has it (a quarter of the time per message)."""
    return FrameParser(max_size, _c_unmask)

# What BatchedFrames and send_packets use of Tornado beyond its public API:
# methods of the class, and state its __init__ sets (checked on each new protocol).
TORNADO_METHODS = ("_receive_frame", "_receive_frame_loop", "_handle_message", "_abort", "close", "is_closing")
TORNADO_STATE = ("handler", "stream", "client_terminated", "_wire_bytes_in")


def missing_tornado_methods(protocol_class: type = WebSocketProtocol13) -> list[str]:
    """The private methods Board's fast path needs that `protocol_class` lacks."""
    return [name for name in TORNADO_METHODS if not callable(getattr(protocol_class, name, None))]


def _warn_fallback(missing: list[str]) -> None:
    log.warning("Tornado %s lacks WebSocketProtocol13.%s, which Board's fast WebSocket path uses; "
                "falling back to Tornado's own frame reading and writing (slower). "
                "Board is tested with the Tornado versions setup.cfg allows.",
                tornado.version, ", ".join(missing))


def check_tornado(protocol_class: type = WebSocketProtocol13) -> bool:
    """True if the fast path can be used with this Tornado; a warning if not."""
    missing = missing_tornado_methods(protocol_class)
    if missing:
        _warn_fallback(missing)
    return not missing


FAST_FRAMES = check_tornado()
_state_warned = False


def _has_state(protocol: WebSocketProtocol) -> bool:
    global _state_warned
    missing = [name for name in TORNADO_STATE if not hasattr(protocol, name)]
    if missing and not _state_warned:
        _state_warned = True
        _warn_fallback(missing)
    return not missing


class BatchedFrames(WebSocketProtocol13):
    """Tornado's RFC 6455 protocol, reading every frame the socket has in one go.

    Only the reading of frames changes (`_receive_frame`, which Tornado's
    receive loop calls until the connection ends): one awaited read per
    batch, split by the pure `FrameParser`. Text messages, nearly all of
    Engine.IO's traffic, go straight to `on_message`; binary messages,
    control frames and the close handshake go through Tornado's own
    `_handle_message`.
    """

    frames: FrameParser

    async def _receive_frame(self) -> None:
        data = await self.stream.read_bytes(READ_CHUNK, partial=True)
        self._wire_bytes_in += len(data)
        try:
            messages = self.frames.feed(data)
        except FrameError as exc:
            self.close(exc.code, exc.reason)
            self._abort()
            return
        handler = self.handler
        for opcode, payload in messages:
            if self.client_terminated:
                return
            if opcode == TEXT:  # the common case, without Tornado's general dispatch
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    self.close(1007, "invalid UTF-8")
                    self._abort()
                    return
                try:
                    handler.on_message(text)
                except Exception:
                    log.exception("error handling a message; closing the connection")
                    self._abort()
                    return
                continue
            try:
                handled = self._handle_message(opcode, payload)
            except StreamBufferFullError:
                # A pong past the write buffer's cap (Tornado before 6.5 answers every ping; later ones
                # keep one pong outstanding): a client that pings and never reads, cut as too slow.
                handler.engine.stats.slow_clients_dropped += 1
                self._abort()
                return
            if handled is not None:
                await handled
