"""The lean WebSocket at the front: which handshakes take it, and what it does that Tornado's handler did.

What both paths share (events, acks, binary, bad packets, oversize and
invalid UTF-8 frames, slow readers) runs both ways in test_websocket.py.
"""

import asyncio
import json
import socket

import pytest
from tornado.iostream import IOStream

from board import make_app
from conftest import http, polling_session, raw_websocket, until
from handlers.transports.server import EngineDelegate
from handlers.transports.websocket_connection import WebSocketConnection, accept_key
from handlers.wire.protocol import Outgoing
from handlers.transports.websocket_handler import WebSocketTransport
from conftest import client_frame

pytestmark = [pytest.mark.gen_test(timeout=20), pytest.mark.usefixtures("served_by")]

HANDSHAKE = ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: {version}\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


@pytest.fixture(params=["rules", "front"])
def served_by(request) -> str:
    """Each test twice: the application alone (the engine's rules pick the lean path), and behind
    `EngineDelegate`, as the board serves."""
    return request.param


@pytest.fixture
def app(served_by, hub, posts):
    app = make_app(hub, posts)
    return EngineDelegate(app, hub.engine, hub.path) if served_by == "front" else app


async def raw(url: str, version: int = 13) -> tuple[IOStream, bytes]:
    """A hand-made client: the handshake's answer head, and the stream for frames."""
    stream = IOStream(socket.socket())
    await stream.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    await stream.write(HANDSHAKE.format(version=version).encode())
    return stream, await stream.read_until(b"\r\n\r\n")


async def read_frame(stream: IOStream) -> tuple[int, bytes]:
    first, length = await stream.read_bytes(2)
    assert length < 126
    return first, await stream.read_bytes(length)


def transports(hub) -> list:
    return [type(s.ws) for s in hub.engine.sessions.values()]


def test_the_accept_key_is_rfc_6455s():
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455, 1.3


async def test_a_new_sessions_websocket_takes_the_lean_path(url, hub):
    stream, head = await raw(url)
    assert head.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    first, payload = await read_frame(stream)
    assert first == 0x81 and payload.startswith(b"0{")
    assert json.loads(payload[1:])["upgrades"] == []
    assert transports(hub) == [WebSocketConnection]
    stream.close()


async def test_ping_frames_are_answered_and_a_client_close_is_echoed(url, hub):
    stream, _ = await raw(url)
    await read_frame(stream)  # the open packet
    await stream.write(client_frame(0x9, b"are you there"))
    assert await read_frame(stream) == (0x8A, b"are you there")
    await stream.write(client_frame(0x8, (4001).to_bytes(2, "big") + b"bye"))
    assert await read_frame(stream) == (0x88, (4001).to_bytes(2, "big"))
    assert await asyncio.wait_for(stream.read_until_close(), 3) == b""
    assert not hub.engine.sessions


async def test_an_unmasked_frame_closes_that_connection_only(url, hub, clients):
    other = await clients("news").connect(url, transports=["websocket"])
    await other.next("news")
    stream, _ = await raw(url)
    await read_frame(stream)
    await stream.write(b"\x81\x0240")  # a client frame without a mask
    first, payload = await read_frame(stream)
    assert first == 0x88 and payload[:2] == (1002).to_bytes(2, "big") and b"masked" in payload
    await asyncio.wait_for(stream.read_until_close(), 3)
    assert len(hub.engine.sessions) == 1
    hub.emit("news", {"still": "here"})
    assert await other.until("news", lambda d: d.get("still")) == {"still": "here"}


async def test_the_server_closing_a_session_sends_a_close_frame(url, hub):
    ws = await raw_websocket(url)
    await ws.read_message()
    (session,) = hub.engine.sessions.values()
    session.close("server close")  # notify: Engine.IO's close packet, then the WebSocket's close
    assert await ws.read_message() == "1"
    assert await ws.read_message() is None
    assert ws.close_code == 1000


async def test_refused_at_the_door_with_the_gates_answer(url, hub):
    hub.ops.admission.draining = True
    response = await http(url, "/socket.io/?EIO=4&transport=websocket",
                          headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert response.code == 503 and json.loads(response.body)["code"] == 3
    assert not hub.engine.sessions


async def test_turned_off_every_websocket_goes_to_tornados_handler(url, hub):
    hub.engine.connection_websockets = False
    ws = await raw_websocket(url)
    assert (await ws.read_message()).startswith("0{")
    assert transports(hub) == [WebSocketTransport]
    ws.close()


async def test_an_upgrade_probe_of_a_local_polling_session_takes_the_lean_path(url, hub):
    sid, _ = await polling_session(url)
    probe = await raw_websocket(url, f"EIO=4&transport=websocket&sid={sid}")
    await probe.write_message("2probe")
    assert await probe.read_message() == "3probe"
    await probe.write_message("5")
    session = hub.engine.sessions[sid]
    await until(lambda: session.ws is not None)  # the upgrade has no event of its own
    assert type(session.ws) is WebSocketConnection and not session.upgrading
    session.send(Outgoing(["4hello"]))
    assert await probe.read_message() == "4hello"
    probe.close()


async def test_a_second_probe_of_the_same_session_is_closed(url, hub):
    sid, _ = await polling_session(url)
    first = await raw_websocket(url, f"EIO=4&transport=websocket&sid={sid}")
    await until(lambda: hub.engine.sessions[sid].upgrading)
    second = await raw_websocket(url, f"EIO=4&transport=websocket&sid={sid}")  # Tornado's handler: busy
    assert await second.read_message() is None and second.close_code == 1008
    await first.write_message("2probe")
    assert await first.read_message() == "3probe"  # the first one still probes
    first.close()


async def test_what_the_lean_path_does_not_take_goes_to_tornados_handler(url, hub):
    stream, head = await raw(url, version=8)  # an older draft: Tornado's handler answers (6.4 speaks it, 6.6 says 426)
    assert b"Server: TornadoServer/" in head and head.split(b" ")[1] in (b"101", b"426")
    response = await http(url, "/socket.io/?EIO=4&transport=websocket&sid=nobody",
                          headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert response.code == 400 and json.loads(response.body)["code"] == 1  # unknown sid, as always
    stream.close()
