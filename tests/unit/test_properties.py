"""Properties, with hypothesis: what the decoders and the hub do with any input at all.

The pure decoders (Engine.IO packets and payloads, Socket.IO packets, WebSocket frames, recovery
offsets) either decode or raise their module's own error (`ProtocolError`, `FrameError`), never
another exception: the transports catch those alone and close just the connection that sent them.
And one session of an in-process hub fed arbitrary packets, on either transport, lets no exception
escape, logs no error, and changes nothing of another session: its sockets, rooms and queue.
Example counts are modest, so the file runs in seconds; tests/test_hostile.py sends garbage over a
real network.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from tornado.httputil import HTTPHeaders

from handlers import Hub
from handlers.wire.frames import FrameError, FrameParser
from handlers.wire.protocol import (
    ACK, EVENT, Decoder, Outgoing, Packet, ProtocolError, decode_engine_packet,
    decode_payload, encode_packet, encode_payload,
)
from handlers.socketio.recovery import RecoveryLog

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
HUB = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))

# What the wire is made of, and characters that look like it: digits that are not ASCII digits
# ("²".isdigit() is true, int("²") raises), separators, brackets, quotes, surrogate escapes.
WIRE = "0123456789-/,[]{}\":\x1ebn \\u" + "²³¹٣١٢𝟗⁴" + "é\u2028\ufeff"
wire_text = st.text(alphabet=WIRE, max_size=40)
any_text = st.one_of(wire_text, st.text(max_size=40))

VALID = [
    "0", "1", "2", "3", "4", "5", "6", "2probe", "40", "41", '40{"token":1}', "40/admin,", "41/admin,",
    '42["post",{"name":"a","text":"b"}]', '421["echo",1]', '431["x"]', '451-["up",{"_placeholder":true,"num":0}]',
    '461-[{"_placeholder":true,"num":0}]', '40{"pid":"PID","offset":"1"}', '42/other,["echo",2]',
]


@st.composite
def mutated(draw, pool=VALID) -> str:
    """A valid packet, cut, spliced with wire-like text, or replaced by it."""
    text = draw(st.sampled_from(pool))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return text[: draw(st.integers(0, len(text)))]
    if kind == 1:
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(any_text) + text[at:]
    if kind == 2:
        return draw(any_text)
    return text


# A Socket.IO packet's parts, each drawn from wire-like text: type, attachment count and dash,
# namespace, ack id, data.
digitish = st.text(alphabet="0123456789²³¹٣𝟗-", max_size=4)
shaped = st.builds(lambda *parts: "".join(parts), st.sampled_from("0123456"), digitish,
                   st.sampled_from(["", "-"]), st.sampled_from(["", "/", "/admin,", "/x", "/²,"]), digitish,
                   st.one_of(st.sampled_from(["", "[]", '["x"]', "{}", '[{"_placeholder":true,"num":0}]']),
                             wire_text))
message = st.one_of(mutated(), shaped, st.binary(max_size=12))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


# --------------------------------------------------------------------------- the pure decoders


@FAST
@given(st.one_of(any_text, mutated(), st.binary(max_size=20)))
def test_an_engine_packet_decodes_or_raises_protocol_error(data):
    try:
        kind, rest = decode_engine_packet(data)
    except ProtocolError:
        return
    assert 0 <= kind <= 6


@FAST
@given(st.lists(st.one_of(mutated(), st.text(alphabet="b" + WIRE + "=+AZaz", max_size=16)), max_size=5))
def test_a_polling_payload_decodes_or_raises_protocol_error(parts):
    try:
        packets = decode_payload("\x1e".join(parts))
    except ProtocolError:
        return
    assert all(0 <= kind <= 6 for kind, _ in packets)


@FAST
@given(st.lists(st.one_of(st.text(max_size=20).filter(lambda t: "\x1e" not in t).map(lambda t: "4" + t),
                          st.binary(max_size=20)), min_size=1, max_size=5))
def test_a_polling_payload_round_trips(packets):
    assert decode_payload(encode_payload(packets)) == [(4, p[1:]) if isinstance(p, str) else (4, p)
                                                       for p in packets]


@FAST
@given(st.lists(message, min_size=1, max_size=6))
def test_socketio_packets_decode_or_raise_protocol_error(messages):
    decoder = Decoder(max_attachments=3)
    for m in messages:
        try:
            packet = decoder.feed(m[1:] if isinstance(m, str) and m[:1] == "4" else m)
        except ProtocolError:
            return  # the connection would be closed here
        assert packet is None or isinstance(packet, Packet)


@settings(FAST, max_examples=100)
@given(st.sampled_from([EVENT, ACK]), st.sampled_from(["/", "/admin", "/ünï"]),
       st.one_of(st.none(), st.integers(0, 2**53 - 1)),
       st.lists(json_value, max_size=3), st.lists(st.binary(max_size=8), max_size=3))
def test_what_the_server_encodes_its_clients_decode_back(kind, namespace, ack_id, args, buffers):
    assume(kind == EVENT or ack_id is not None)
    plain = ["ev", *args] if kind == EVENT else list(args)
    try:
        wire = encode_packet(Packet(kind, namespace, [*plain, *buffers], ack_id))
    except ValueError:
        return  # refused at the emit (e.g. a "_placeholder" key beside binary data)
    decoder, got = Decoder(max_attachments=10), None
    for part in wire:
        got = decoder.feed(part[1:] if isinstance(part, str) else part)
    assert got == Packet(kind + 3 if buffers else kind, namespace, [*json.loads(json.dumps(plain)), *buffers], ack_id)


def client_frame(payload: bytes, opcode: int, mask: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    size = bytes((0x80 | n,)) if n < 126 else bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(((0x80 if fin else 0) | opcode,)) + size + mask + masked


@FAST
@given(st.binary(max_size=64), st.lists(st.integers(1, 64), max_size=6))
def test_any_bytes_make_frames_or_a_frame_error(data, cuts):
    parser, pos = FrameParser(max_size=32), 0
    try:
        for cut in [*cuts, len(data)]:
            for _, payload in parser.feed(data[pos:pos + cut]):
                assert len(payload) <= 32
            pos += cut
    except FrameError as exc:
        assert 1000 <= exc.code < 5000


@FAST
@given(st.lists(st.tuples(st.sampled_from([0x1, 0x2, 0x9, 0xA]), st.binary(max_size=125 + 200)),
                min_size=1, max_size=5),
       st.binary(min_size=4, max_size=4), st.lists(st.integers(1, 300), max_size=8))
def test_frames_come_out_whole_however_the_bytes_are_cut(messages, mask, cuts):
    messages = [(op, p[:125] if op >= 0x8 else p) for op, p in messages]
    wire = b"".join(client_frame(p, op, mask) for op, p in messages)
    parser, got, pos = FrameParser(max_size=1000), [], 0
    for cut in [*cuts, len(wire)]:
        got += parser.feed(wire[pos:pos + cut])
        pos += cut
    assert got == messages


@FAST
@given(json_value)
def test_a_recovery_offset_parses_or_is_none(text):
    log = RecoveryLog(60_000)
    log.offset = 10**6
    value = log.parse(text)
    assert value is None or (type(value) is int and 0 <= value <= log.offset)


@FAST
@given(st.one_of(any_text, json_value), st.one_of(any_text, json_value))
def test_a_recovery_with_any_pid_and_offset_is_refused_or_granted_never_raises(pid, offset):
    log = RecoveryLog(60_000)
    log.offset = 5
    restored = log.restore("/", pid, offset)
    assert restored is None or isinstance(restored, tuple)


@FAST
@given(st.one_of(st.builds(lambda a, b: f"{a}-{b}", digitish, digitish), any_text))
def test_a_cluster_offset_the_check_lets_through_parses(text):
    """On Redis an offset is a stream entry id: what STREAM_ID accepts, `_id` must read."""
    from handlers.cluster.redis_adapter import STREAM_ID, _id
    if STREAM_ID.match(text):
        ms, seq = _id(text)
        assert ms >= 0 and seq >= 0


# --------------------------------------------------------------------------- the hub


class Wire:
    """A session's transport as the hub sees it (session.Writer): what would have been written."""

    def __init__(self) -> None:
        self.written: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None

    def send_packets(self, queue: list[Outgoing]) -> bool:
        self.written += [p for out in queue for p in out.packets]
        return True

    def close_transport(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


def environ(transport: str) -> dict:
    return {"headers": HTTPHeaders({"User-Agent": "Mozilla/5.0"}), "remote_ip": "127.0.0.1", "query": {},
            "transport": transport, "time": time.time(), "url": "/socket.io/", "secure": False}


async def settle(pause: bool = True) -> None:
    for _ in range(4):  # tasks (middleware, recovery) and the engine's flush, two turns after a send
        await asyncio.sleep(0)
    if pause:
        await asyncio.sleep(0.006)  # write_apart's pause


def make_hub() -> Hub:
    hub = Hub(ping_interval=60_000, ping_timeout=60_000)

    @hub.on("echo")
    def echo(socket, *args):
        return args

    @hub.on("join")
    def join(socket, room=None):
        if isinstance(room, str):
            socket.join(room)

    other = hub.of("/other")

    @other.use
    async def refuse_some(socket, auth):
        if not isinstance(auth, dict):
            from handlers import ConnectionRefused
            raise ConnectionRefused("no auth")

    return hub


def snapshot(hub: Hub, session) -> dict:
    """What another session must keep: its sockets (ids, rooms, connected), their place in the
    namespaces and rooms, its queue and what was written to it, whether it is open."""
    client = session.context
    return {
        "closed": session.closed,
        "sockets": {name: (s.id, sorted(s.rooms), s.connected, s.id in hub.namespaces[name].sockets,
                           sorted(r for r, members in hub.namespaces[name].rooms.items() if s.id in members))
                    for name, s in client.sockets.items()},
        "queue": [p for out in session.queue for p in out.packets],
        "written": list(session.ws.written) if session.ws is not None else None,
    }


class Errors(logging.Handler):
    """The ERROR records of the board's loggers during one example (their throttle made to forget
    the earlier examples' lines first, so each example sees its own)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        try:
            from handlers.operations.logs import reset_log_throttle
        except ImportError:  # a hub without a log throttle
            return
        reset_log_throttle()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def feed_one_session(transport: str, messages: list) -> None:
    hub = make_hub()
    engine = hub.engine
    errors = Errors()
    logging.getLogger("board").addHandler(errors)
    loop_errors: list = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: loop_errors.append(context))
    try:
        # A socket that was lost (its pid can come back), a bystander, and the session under attack.
        lost, lost_wire = engine.open_session(environ("websocket")), Wire()
        lost.ws = lost_wire
        lost.receive_frame(lost_wire, "40", False)
        await settle()
        pid = json.loads(lost_wire.written[-1][2:])["pid"]
        lost.websocket_closed(lost_wire, False)

        bystander, wire = engine.open_session(environ("websocket")), Wire()
        bystander.ws = wire
        bystander.receive_frame(wire, "40", False)
        bystander.receive_frame(wire, '42["join","lobby"]', False)
        bystander.receive_frame(wire, "40/other,{}", False)
        await settle()
        before = snapshot(hub, bystander)
        assert before["sockets"].keys() == {"/", "/other"}

        attacker = engine.open_session(environ(transport))
        messages = [m.replace("PID", pid) if isinstance(m, str) else m for m in messages]
        if transport == "websocket":
            attacker.ws = Wire()
            for m in messages:
                if attacker.closed:
                    break
                attacker.receive_frame(attacker.ws, m, False)
                await settle(pause=False)
            await settle()
        else:
            parts = [m if isinstance(m, str) else "b" + base64.b64encode(m).decode() for m in messages]
            attacker.receive_payload("\x1e".join(parts))
            await settle()
        assert snapshot(hub, bystander) == before
        attacker.close("client close", notify=False)
        await settle()
        assert snapshot(hub, bystander) == before
        assert not errors.records, [r.getMessage() for r in errors.records]
        assert not loop_errors, loop_errors
    finally:
        logging.getLogger("board").removeHandler(errors)
        hub.close()


hub_messages = st.lists(st.one_of(mutated(), shaped, st.binary(max_size=8),
                                  json_value.map(lambda auth: "40" + json.dumps(auth)),
                                  st.tuples(json_value, json_value).map(
                                      lambda po: "40" + json.dumps({"pid": po[0], "offset": po[1]})),
                                  st.sampled_from(["40", "41", '40{"pid":"PID","offset":"²"}'])),
                        min_size=1, max_size=6)


board_events = st.sampled_from(["post", "sync", "private", "news", "message", "history", "disconnect"])
board_messages = st.lists(st.one_of(
    mutated(['42["post",{"name":"a","text":"b"}]', '421["sync",{"after":1}]', '42["private",{"msg":"x"}]',
             '40{"after":3}', "41", "40"]),
    st.builds(lambda event, ack, args: f"42{ack}" + json.dumps([event, *args]), board_events,
              st.sampled_from(["", "7"]), st.lists(json_value, max_size=2)),
    json_value.map(lambda auth: "40" + json.dumps(auth))), min_size=1, max_size=6)


async def feed_the_board(messages: list, posts) -> None:
    """The board's own handlers (post, sync, private, its welcome and history) on the hub; what the
    bystander may get from the attacker's doings is the board's broadcasts (news, message) alone."""
    from board import make_app

    hub = Hub(ping_interval=60_000, ping_timeout=60_000)
    make_app(hub, posts)
    errors = Errors()
    logging.getLogger("board").addHandler(errors)
    loop_errors: list = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: loop_errors.append(context))
    try:
        bystander, wire = hub.engine.open_session(environ("websocket")), Wire()
        bystander.ws = wire
        bystander.receive_frame(wire, "40", False)
        await settle()
        before = snapshot(hub, bystander)
        seen = len(wire.written)
        attacker = hub.engine.open_session(environ("websocket"))
        attacker.ws = Wire()
        for m in messages:
            if attacker.closed:
                break
            attacker.receive_frame(attacker.ws, m, False)
            await settle(pause=False)
        await loop.run_in_executor(posts._writer, lambda: None)  # the posts being written are written
        await settle()
        attacker.close("client close", notify=False)
        await settle()
        after = snapshot(hub, bystander)
        assert {k: after[k] for k in ("closed", "sockets")} == {k: before[k] for k in ("closed", "sockets")}
        for packet in wire.written[seen:]:
            assert isinstance(packet, str) and packet.startswith("42[") and \
                json.loads(packet[2:])[0] in ("news", "message"), packet
        assert not errors.records, [r.getMessage() for r in errors.records]
        assert not loop_errors, loop_errors
    finally:
        logging.getLogger("board").removeHandler(errors)
        hub.close()


@pytest.fixture(scope="module")
def board_posts():
    from posts import Posts

    made = Posts(":memory:")
    yield made
    made.close()


@settings(HUB, max_examples=40)
@given(board_messages)
def test_any_packets_to_the_board_leave_its_other_clients_alone(board_posts, messages):
    asyncio.run(feed_the_board(messages, board_posts))


@HUB
@given(hub_messages)
def test_any_packets_on_a_websocket_session_leave_other_sessions_alone(messages):
    asyncio.run(feed_one_session("websocket", messages))


@HUB
@given(hub_messages)
def test_any_packets_in_a_polling_post_leave_other_sessions_alone(messages):
    asyncio.run(feed_one_session("polling", messages))
