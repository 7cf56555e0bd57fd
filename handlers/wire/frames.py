"""RFC 6455 frames, pure: the server's frames out, the client's frames in.

Tornado reads a WebSocket one frame at a time, with three awaited reads per
frame (header, mask, payload). `FrameParser` takes whatever the socket had
(often several frames at once) and returns every complete message in it, so
the transport awaits one read per batch instead of three per frame.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["encode_frame", "control_frame", "close_frame", "FrameParser", "FrameError",
           "TEXT", "BINARY", "CLOSE", "PING", "PONG"]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DATA = (TEXT, BINARY)
_CONTROL = (CLOSE, PING, PONG)


class FrameError(ValueError):
    """A frame that breaks RFC 6455 or a limit; `code` is the close code to answer with."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def encode_frame(data: str | bytes) -> bytes:
    """One unmasked, unfragmented server frame (text for str, binary for bytes)."""
    if isinstance(data, str):
        payload, first = data.encode("utf-8"), 0x81
    else:
        payload, first = data, 0x82
    n = len(payload)
    if n < 126:
        header = bytes((first, n))
    elif n < 65536:
        header = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, 127)) + n.to_bytes(8, "big")
    return header + payload


def control_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unmasked server control frame (a pong, a close); RFC 6455 caps its payload at 125 bytes."""
    payload = payload[:125]
    return bytes((0x80 | opcode, len(payload))) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with `code` and as much of `reason` as fits (UTF-8, cut at a character)."""
    text = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return control_frame(CLOSE, code.to_bytes(2, "big") + text)


def unmask(mask: bytes, data: bytes) -> bytes:
    """XOR `data` with the repeated 4-byte `mask`, as one big-integer operation."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class FrameParser:
    """Turns the bytes a client sends into complete messages: [(opcode, payload)].

    Fragments are joined; control frames come out as they arrive, between
    fragments if need be. Client frames must be masked. A message larger
    than `max_size` is refused from its header, before its payload is held.
    The bytes read are parsed where they are: only a frame cut across reads
    is copied, to be completed by the next. `unmasker` may be a faster twin of
    this module's `unmask` (a C one: the transport layer knows which it has).
    """

    __slots__ = ("max_size", "_buffer", "_need", "_fragments", "_opcode", "_unmask")

    def __init__(self, max_size: int, unmasker: "Callable[[bytes, bytes], bytes] | None" = None):
        self.max_size = max_size
        self._buffer = bytearray()  # the start of a frame cut across reads
        self._need = 0              # ... and how many bytes its end needs (0: not known yet)
        self._fragments: bytearray | None = None
        self._opcode = 0
        self._unmask = unmasker or unmask

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        # Nearly every read is one whole masked text frame of under 126 bytes (its second byte is
        # 0x80 + its length, its size 6 + its length), with nothing held from before: taken at once.
        if not self._buffer and self._fragments is None and len(data) > 6 and data[0] == 0x81 \
                and 0x80 < data[1] < 0xFE and len(data) == data[1] - 0x7A and data[1] - 0x80 <= self.max_size:
            return [(TEXT, self._unmask(data[2:6], data[6:]))]
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._need:
                return []  # a large frame still arriving: held, not parsed again
            buffer = bytes(self._buffer)
        else:
            buffer = data
        messages: list[tuple[int, bytes]] = []
        pos, end, need = 0, len(buffer), 0
        while end - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            fin, opcode, length = first & 0x80, first & 0x0F, second & 0x7F
            if first & 0x70:
                raise FrameError(1002, "reserved bits set")
            if not second & 0x80:
                raise FrameError(1002, "client frames must be masked")
            head = pos + 2
            if opcode in _CONTROL:
                if length >= 126 or not fin:
                    raise FrameError(1002, "bad control frame")
            elif opcode == CONTINUATION:
                if self._fragments is None:
                    raise FrameError(1002, "continuation of nothing")
            elif opcode in _DATA:
                if self._fragments is not None:
                    raise FrameError(1002, "new message inside a fragmented one")
            else:
                raise FrameError(1002, f"unknown opcode {opcode}")
            if length == 126:
                if end - head < 2:
                    break
                length = int.from_bytes(buffer[head:head + 2], "big")
                head += 2
            elif length == 127:
                if end - head < 8:
                    break
                length = int.from_bytes(buffer[head:head + 8], "big")
                head += 8
            held = len(self._fragments) if self._fragments is not None and opcode == CONTINUATION else 0
            if length + held > self.max_size:
                raise FrameError(1009, "message too big")
            if end - head < 4 + length:
                need = head + 4 + length - pos
                break
            pos = head + 4 + length
            payload = self._unmask(buffer[head:head + 4], buffer[head + 4:pos])
            if opcode in _CONTROL:
                messages.append((opcode, payload))
            elif opcode == CONTINUATION:
                self._fragments += payload  # type: ignore[operator]
                if fin:
                    messages.append((self._opcode, bytes(self._fragments)))  # type: ignore[arg-type]
                    self._fragments = None
            elif fin:
                messages.append((opcode, payload))
            else:
                self._opcode, self._fragments = opcode, bytearray(payload)
        if pos < end:  # a frame cut across reads waits for the rest
            self._buffer, self._need = bytearray(buffer[pos:]), need
        elif self._buffer:
            self._buffer, self._need = bytearray(), 0
        return messages
