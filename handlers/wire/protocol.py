"""The wire: Engine.IO v4 and Socket.IO v5 packets, pure.

Strings and bytes in, packets out, and back; no Tornado, no sockets, no
clock. Every transport and the hub share this one codec, and it is tested
without a network. Anything it cannot make sense of raises `ProtocolError`,
never another exception, so a caller can close just the offending
connection.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Iterable

from .frames import encode_frame

__all__ = [
    "ProtocolError", "OPEN", "CLOSE", "PING", "PONG", "MESSAGE", "UPGRADE", "NOOP",
    "CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK",
    "decode_engine_packet", "decode_payload", "encode_payload", "Packet", "encode_packet",
    "Decoder", "Outgoing",
]

SEPARATOR = "\x1e"

# Engine.IO packet types (one ASCII digit in front of the data).
OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = range(7)
MESSAGE_MARK = str(MESSAGE)  # how a text MESSAGE packet starts: "4"
# Socket.IO packet types (inside an Engine.IO MESSAGE).
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)

MAX_ACK_ID = 2**53 - 1          # what JavaScript clients can count to
MAX_NAMESPACE_LENGTH = 256
CLIENT_MAX_ATTACHMENTS = 10     # socket.io-client's parser drops the connection above this


class ProtocolError(ValueError):
    """Input that does not follow the Engine.IO / Socket.IO protocol."""


# Strict JSON both ways: what a browser's JSON.parse accepts, nothing more.
# Python's json reads and writes NaN and Infinity (and turns 1e400 into
# Infinity), which no other client parses: one client's input re-emitted to
# everyone would drop them all.

def _no_constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0:  # inf - inf is nan
        raise ProtocolError(f"number out of range: {text[:20]}")
    return value


_json_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_json_dumps_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
_json_loads = _decoder.decode


# The same, without what `json` does around its C code on every call (measured on an ack round trip:
# `encode` makes a new C encoder each time, `decode` matches whitespace twice with regular expressions).
# A cycle in the data is caught as RecursionError rather than by a table of ids (which `_dump` reports).

def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


if json.encoder.c_make_encoder is not None and json.decoder.c_scanstring is not None:  # CPython's _json
    _encode_c = json.encoder.c_make_encoder(None, _not_json, json.encoder.encode_basestring, None, ":", ",",
                                            False, False, False)
    _scan = _decoder.scan_once

    def _json_dumps(data: Any) -> str:  # noqa: F811
        return "".join(_encode_c(data, 0))

    def _json_loads(text: str) -> Any:  # noqa: F811
        try:
            value, end = _scan(text, 0)
        except StopIteration:
            return _decoder.decode(text)  # not a value where it starts: json's own error, or whitespace first
        return value if end == len(text) else _decoder.decode(text)  # whitespace or more after it: the same


def _utf8_ok(text: str) -> bool:
    """False if `text` holds a lone surrogate, which UTF-8 (and so a frame) cannot carry."""
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dump(data: Any) -> str:
    """`data` as JSON text that every client parses; a clear error for what is not JSON."""
    try:
        text = _json_dumps(data)
    except TypeError as exc:
        raise TypeError(f"cannot send {type(data).__name__} data: {exc}") from None
    except (ValueError, RecursionError) as exc:  # NaN, Infinity, circular or too deep
        reason = "NaN and Infinity are not JSON" if "float" in str(exc) else exc
        raise ValueError(f"cannot send this data: {reason}") from None
    if not _utf8_ok(text):
        # A lone surrogate (a string cut inside an emoji, say): written as a
        # \ud800 escape, as JSON.stringify does, it is valid JSON again.
        text = _json_dumps_ascii(data)
    return text


# --------------------------------------------------------------------------
# Engine.IO


def decode_engine_packet(data: str | bytes) -> tuple[int, str | bytes]:
    """One Engine.IO packet as it arrives over WebSocket: (type, data).

    A binary frame is a MESSAGE whose data is the bytes themselves.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        return MESSAGE, bytes(data)
    if not data:
        raise ProtocolError("empty packet")
    kind = ord(data[0]) - 48
    if not 0 <= kind <= 6:
        raise ProtocolError(f"unknown packet type {data[0]!r}")
    return kind, data[1:]


def decode_payload(payload: str) -> list[tuple[int, str | bytes]]:
    """The packets of a long-polling payload: `\\x1e`-separated, binary as `b` + base64."""
    packets: list[tuple[int, str | bytes]] = []
    for part in payload.split(SEPARATOR):
        if part[:1] == "b":
            try:
                packets.append((MESSAGE, base64.b64decode(part[1:], validate=True)))
            except (binascii.Error, ValueError):
                raise ProtocolError("invalid base64 in binary packet") from None
        else:
            packets.append(decode_engine_packet(part))
    return packets


def encode_payload(packets: Iterable[str | bytes]) -> str:
    """A long-polling payload from encoded Engine.IO packets (text, or bytes for binary)."""
    return SEPARATOR.join(
        p if isinstance(p, str) else "b" + base64.b64encode(p).decode("ascii") for p in packets
    )


# --------------------------------------------------------------------------
# Socket.IO


class Packet:
    """One Socket.IO packet: type, namespace, data, ack id."""

    __slots__ = ("type", "namespace", "data", "id")

    def __init__(self, type: int, namespace: str = "/", data: Any = None, id: int | None = None):
        self.type = type
        self.namespace = namespace
        self.data = data
        self.id = id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Packet) and (
            (self.type, self.namespace, self.data, self.id)
            == (other.type, other.namespace, other.data, other.id)
        )

    def __repr__(self) -> str:
        return f"Packet({self.type}, {self.namespace!r}, {self.data!r}, id={self.id})"


def _has_binary(obj: Any) -> bool:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has_binary(x) for x in obj)
    if isinstance(obj, dict):
        return any(_has_binary(x) for x in obj.values())
    return False


def _deconstruct(obj: Any, buffers: list[bytes]) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        buffers.append(bytes(obj))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(obj, (list, tuple)):
        return [_deconstruct(x, buffers) for x in obj]
    if isinstance(obj, dict):
        if "_placeholder" in obj:  # receivers would take it for an attachment
            raise ValueError("cannot send a '_placeholder' key in a packet with binary data")
        return {k: _deconstruct(v, buffers) for k, v in obj.items()}
    return obj


_HEADS = tuple(f"{MESSAGE_MARK}{kind}" for kind in range(7))  # an Engine.IO MESSAGE holding each Socket.IO type


def encode_packet(packet: Packet) -> list[str | bytes]:
    """Engine.IO MESSAGE packets for a Socket.IO packet: `4<text>` then any binary attachments.

    Raises TypeError or ValueError, at the emit, for data no client could
    read: not JSON, NaN or Infinity, more attachments than clients take.
    """
    kind, data, buffers = packet.type, packet.data, []
    text = None
    if data is not None:
        try:
            text = _dump(data)  # the usual case: no bytes inside, so no walk through the data first
        except TypeError:
            if kind not in (EVENT, ACK) or not _has_binary(data):
                raise
            kind += 3  # EVENT -> BINARY_EVENT, ACK -> BINARY_ACK
            data = _deconstruct(data, buffers)
            if len(buffers) > CLIENT_MAX_ATTACHMENTS:
                raise ValueError(f"cannot send {len(buffers)} binary attachments in one packet: "
                                 f"socket.io-client accepts {CLIENT_MAX_ATTACHMENTS}") from None
            text = _dump(data)
    head = f"{_HEADS[kind]}{len(buffers)}-" if buffers else _HEADS[kind]
    if packet.namespace != "/":
        if not _utf8_ok(packet.namespace):
            raise ValueError("cannot send a namespace name with a lone surrogate")
        head += packet.namespace + ","
    if packet.id is not None:
        head += str(packet.id)
    if text is not None:
        head += text
    return [head, *buffers] if buffers else [head]


def _check_data(kind: int, data: Any) -> None:
    if kind in (EVENT, BINARY_EVENT):
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise ProtocolError("an event needs a list whose first item is the event name")
    elif kind in (ACK, BINARY_ACK):
        if not isinstance(data, list):
            raise ProtocolError("an ack needs a list of arguments")
    elif kind == CONNECT:
        if data is not None and not isinstance(data, dict):
            raise ProtocolError("connect data must be an object")
    elif kind == CONNECT_ERROR:
        if not isinstance(data, (dict, str)):
            raise ProtocolError("connect error data must be an object")
    elif kind == DISCONNECT and data is not None:
        raise ProtocolError("disconnect carries no data")


class Decoder:
    """Turns the Engine.IO messages of one connection into Socket.IO packets.

    Stateful only for binary packets, whose attachments arrive as separate
    messages after the text. Feed each message to `feed`; it returns a
    complete `Packet`, or None while attachments are still due.
    """

    __slots__ = ("max_attachments", "_packet", "_buffers", "_expected")

    def __init__(self, max_attachments: int = 10):
        self.max_attachments = max_attachments
        self._packet: Packet | None = None
        self._buffers: list[bytes] | tuple = ()  # a list only while attachments are due
        self._expected = 0

    def feed(self, message: str | bytes) -> Packet | None:
        if isinstance(message, str):
            if self._packet is not None:
                raise ProtocolError("text packet while binary attachments are due")
            return self._decode_text(message)
        if self._packet is None:
            raise ProtocolError("unexpected binary attachment")
        self._buffers.append(message)
        if len(self._buffers) < self._expected:
            return None
        packet, buffers = self._packet, self._buffers
        self._packet, self._buffers, self._expected = None, (), 0
        packet.data = _reconstruct(packet.data, buffers)
        return packet

    def _decode_text(self, text: str) -> Packet | None:
        if not text:
            raise ProtocolError("empty Socket.IO packet")
        kind = ord(text[0]) - 48
        if not 0 <= kind <= 6:
            raise ProtocolError(f"unknown Socket.IO packet type {text[0]!r}")
        i, end = 1, len(text)
        attachments = 0
        if kind in (BINARY_EVENT, BINARY_ACK):
            dash = text.find("-", 1, 12)
            if dash < 0 or not (text[1:dash].isascii() and text[1:dash].isdigit()):
                raise ProtocolError("binary packet without attachment count")
            attachments = int(text[1:dash])
            if not 1 <= attachments <= self.max_attachments:
                raise ProtocolError(f"attachment count {attachments} out of range")
            i = dash + 1
        namespace = "/"
        if i < end and text[i] == "/":
            comma = text.find(",", i)
            stop = end if comma < 0 else comma
            namespace = text[i:stop]
            if len(namespace) > MAX_NAMESPACE_LENGTH:
                raise ProtocolError("namespace too long")
            i = stop + 1 if comma >= 0 else stop
        ack_id = None
        body = text[i:].lstrip("0123456789")  # what follows the ack id's digits, if any (in C, not a loop)
        j = end - len(body)
        if j > i:
            if j - i > 16:
                raise ProtocolError("ack id out of range")
            ack_id = int(text[i:j])
            if ack_id > MAX_ACK_ID:
                raise ProtocolError("ack id out of range")
            if kind not in (EVENT, ACK, BINARY_EVENT, BINARY_ACK):
                raise ProtocolError("ack id on a packet that takes none")
        elif kind in (ACK, BINARY_ACK):
            raise ProtocolError("ack without an id")
        data = None
        if body:
            try:
                data = _json_loads(body)
            except ProtocolError:
                raise
            except (ValueError, RecursionError):
                raise ProtocolError("invalid JSON in packet") from None
            if "\\u" in body:  # only an escape can make a lone surrogate: check those alone
                _check_escapes(data)
        _check_data(kind, data)
        packet = Packet(kind, namespace, data, ack_id)
        if attachments:
            self._packet, self._buffers, self._expected = packet, [], attachments
            return None
        return packet


def _check_escapes(data: Any) -> None:
    """Refuse strings with a lone surrogate (`"\\ud800"` is valid JSON text, not valid Unicode)."""
    try:
        ok = _utf8_ok(_json_dumps(data))
    except (ValueError, RecursionError):
        raise ProtocolError("invalid JSON in packet") from None
    if not ok:
        raise ProtocolError("lone surrogate in a string")


def _reconstruct(obj: Any, buffers: list[bytes]) -> Any:
    if isinstance(obj, list):
        return [_reconstruct(x, buffers) for x in obj]
    if isinstance(obj, dict):
        if "_placeholder" in obj:
            num = obj.get("num")
            if obj["_placeholder"] is not True or type(num) is not int or not 0 <= num < len(buffers):
                raise ProtocolError("placeholder refers to a missing attachment")
            return buffers[num]
        return {k: _reconstruct(v, buffers) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------
# Ready-to-write forms


class Outgoing:
    """Engine.IO packets encoded once, written as-is to any number of sessions.

    The WebSocket frames and the polling text are each built on first use and
    then shared by every receiver: a broadcast to ten thousand clients costs
    one encoding, not ten thousand.
    """

    __slots__ = ("packets", "size", "_frames", "_text")

    def __init__(self, packets: list[str | bytes], checked: bool = False):
        if not checked:  # made by hand: refuse here what would fail later, in every receiver's write
            for p in packets:
                if type(p) is str and not _utf8_ok(p):
                    raise ValueError("packet text with a lone surrogate cannot be sent")
        self.packets = packets
        self.size = len(packets[0]) if len(packets) == 1 else sum(len(p) for p in packets)
        self._frames: bytes | None = None
        self._text: str | None = None

    @classmethod
    def of(cls, packet: Packet) -> "Outgoing":
        return cls(encode_packet(packet), checked=True)

    @property
    def frames(self) -> bytes:
        if self._frames is None:
            packets = self.packets
            self._frames = (encode_frame(packets[0]) if len(packets) == 1
                            else b"".join([encode_frame(p) for p in packets]))
        return self._frames

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = encode_payload(self.packets)
        return self._text
