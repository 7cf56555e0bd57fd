"""The WebSocket transport, by hand: open, packets, bad input, limits; through Tornado's handler and
through the lean path at the front (handlers/transports/websocket_connection.py), as the board serves."""

import asyncio
import json

import pytest
from tornado.websocket import WebSocketClientConnection

from board import make_app
from conftest import http, raw_websocket
from handlers.transports.server import EngineDelegate

pytestmark = [pytest.mark.gen_test(timeout=20), pytest.mark.usefixtures("served_by")]


@pytest.fixture(params=["tornado", "rules", "front"])
def served_by(request, hub) -> str:
    """Every test here three times: through Tornado's `WebSocketHandler` (the lean path off); on the
    lean path reached through the engine's rules (the application alone); and behind `EngineDelegate`,
    as the board serves."""
    hub.engine.connection_websockets = request.param != "tornado"
    return request.param


@pytest.fixture
def app(served_by, hub, posts):
    app = make_app(hub, posts)
    return EngineDelegate(app, hub.engine, hub.path) if served_by == "front" else app


async def open_ws(url: str) -> tuple[WebSocketClientConnection, dict]:
    ws = await raw_websocket(url)
    first = await ws.read_message()
    assert first[0] == "0"
    return ws, json.loads(first[1:])


async def connect(url: str) -> WebSocketClientConnection:
    ws, _ = await open_ws(url)
    await ws.write_message("40")
    answer = await ws.read_message()
    assert answer.startswith("40{\"sid\":")
    return ws


async def read_until(ws: WebSocketClientConnection, predicate, timeout: float = 3.0):
    async def find():
        while True:
            message = await ws.read_message()
            if message is None or predicate(message):
                return message
    return await asyncio.wait_for(find(), timeout)


async def test_open_packet_without_upgrades(url):
    ws, info = await open_ws(url)
    assert info["upgrades"] == []
    assert set(info) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    ws.close()


async def test_bad_version_is_refused_before_the_handshake(url):
    response = await http(url, "/socket.io/?EIO=3&transport=websocket",
                          headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert response.code == 400 and json.loads(response.body)["code"] == 5


async def test_event_ack_and_binary(url, hub):
    @hub.on("sum")
    def total(socket, a, b):
        return a + b

    @hub.on("bytes")
    def flip(socket, data):
        return data[::-1]

    ws = await connect(url)
    await ws.write_message("423[\"sum\",2,3]")
    assert await read_until(ws, lambda m: m.startswith("43")) == "433[5]"
    await ws.write_message("451-4[\"bytes\",{\"_placeholder\":true,\"num\":0}]")
    await ws.write_message(b"\x01\x02", binary=True)
    assert await read_until(ws, lambda m: isinstance(m, str) and m.startswith("46")) == \
        "461-4[{\"_placeholder\":true,\"num\":0}]"
    assert await ws.read_message() == b"\x02\x01"
    ws.close()


@pytest.mark.parametrize("bad", ["", "9", "4", "4[", "49", "42{}", "42[1]", "0", "5", b"\x00stray"])
async def test_malformed_packet_closes_only_that_connection(url, hub, clients, bad):
    other = await clients("news").connect(url, transports=["websocket"])
    await other.next("news")
    ws = await connect(url)
    await other.next("news")
    await ws.write_message(bad, binary=isinstance(bad, bytes))
    assert await read_until(ws, lambda m: False) is None  # the server closed it
    assert ws.close_code in (1000, 1002)
    gone = await other.next("news")
    assert gone == {"msg": "Someone went home", "count": 1}
    assert await other.client.call("post", {"name": "a", "text": "b"}, timeout=2) == {"ok": True, "id": 1}


async def test_oversize_message_closes_the_connection(url, hub_options):
    ws = await connect(url)
    await ws.write_message("42[\"x\",\"" + "y" * 1_000_001 + "\"]")
    assert await read_until(ws, lambda m: False) is None
    assert ws.close_code == 1009


async def test_silent_client_is_reaped_and_others_hear(url, clients):
    watcher = await clients("news").connect(url, transports=["websocket"])
    await watcher.next("news")
    ws = await connect(url)  # never answers the pings
    assert (await watcher.next("news"))["count"] == 2
    assert await read_until(ws, lambda m: False, timeout=3) is None
    assert await watcher.next("news", timeout=3) == {"msg": "Someone went home", "count": 1}
    assert watcher.client.connected  # it answers its pings and stays


async def test_client_close_packet(url, clients, hub):
    watcher = await clients("news").connect(url, transports=["websocket"])
    await watcher.next("news")
    ws = await connect(url)
    await watcher.next("news")
    await ws.write_message("1")
    assert await read_until(ws, lambda m: False) is None
    assert (await watcher.next("news"))["msg"] == "Someone went home"


async def test_cross_origin_websocket_refused(url):
    response = await http(url, "/socket.io/?EIO=4&transport=websocket",
                          headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                   "Origin": "http://evil.example", "Sec-WebSocket-Key": "x" * 22 + "==",
                                   "Sec-WebSocket-Version": "13"})
    assert response.code == 403 and json.loads(response.body)["code"] == 4


async def test_a_client_that_does_not_read_is_dropped_not_buffered(url, hub, clients):
    hub.engine.max_queue_bytes = 256 * 1024
    reader = await clients("news", "big").connect(url, transports=["websocket"])
    await reader.next("news")
    ws = await connect(url)  # connected, then never reads again
    assert (await reader.next("news"))["count"] == 2
    stuck = next(s for s in hub.sockets.values() if s.id != reader.client.get_sid())
    chunk = "x" * 100_000
    for n in range(400):  # 40 MB: far beyond the kernel's socket buffers
        if not stuck.connected:
            break
        stuck.emit("big", chunk)
        await asyncio.sleep(0)  # one loop turn: the write loop flushes
    assert not stuck.connected, "the server kept buffering for a client that does not read"
    assert await reader.next("news") == {"msg": "Someone went home", "count": 1}
    hub.emit("big", "small")
    assert await reader.next("big") == "small"
    ws.close()


async def test_invalid_utf8_text_frame_is_refused(url, hub):
    import socket as so
    from tornado.iostream import IOStream
    from conftest import client_frame
    stream = IOStream(so.socket())
    await stream.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    await stream.write(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    assert (await stream.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    await stream.write(client_frame(0x1, b"42[\"\xff\xfe\"]"))
    rest = await asyncio.wait_for(stream.read_until_close(), 3)
    close_frame = rest[rest.index(b"\x88"):]
    assert close_frame[2:4] == (1007).to_bytes(2, "big")
    assert not hub.engine.sessions


# -- Tornado's private hooks ---------------------------------------------------

def test_the_tornado_installed_has_every_hook_of_the_fast_path():
    from handlers.transports import tornado_frames as websocket
    assert websocket.missing_tornado_methods() == []
    assert websocket.FAST_FRAMES


def test_a_tornado_without_the_hooks_is_named_in_a_warning(caplog):
    from handlers.transports import tornado_frames as websocket

    class OldProtocol:  # has some of them only
        def _handle_message(self): ...
        def close(self): ...

    assert not websocket.check_tornado(OldProtocol)
    assert "_receive_frame" in caplog.text and "falling back" in caplog.text
    assert websocket.missing_tornado_methods(OldProtocol) == [
        "_receive_frame", "_receive_frame_loop", "_abort", "is_closing"]


def test_a_protocol_without_the_state_falls_back(caplog, monkeypatch):
    from handlers.transports import tornado_frames as websocket
    monkeypatch.setattr(websocket, "_state_warned", False)

    class Bare:
        handler = stream = None

    assert not websocket._has_state(Bare())
    assert "client_terminated, _wire_bytes_in" in caplog.text


@pytest.mark.parametrize("served_by", ["tornado"])
@pytest.mark.parametrize("fast", [True, False])
async def test_both_paths_carry_events_acks_binary_and_heartbeat(url, hub, clients, monkeypatch, fast):
    from handlers.transports import websocket_handler as websocket
    monkeypatch.setattr(websocket, "FAST_FRAMES", fast)
    hub.engine.connection_websockets = False  # (served_by given here replaces its fixture, which would set it)

    @hub.on("flip")
    def flip(socket, data):
        return data[::-1]

    client = await clients("news").connect(url, transports=["websocket"])
    await client.next("news")
    transport = next(iter(hub.sockets.values())).client.session.ws
    assert transport.fast is fast
    assert await client.client.call("flip", b"\x01\x02\x03", timeout=3) == b"\x03\x02\x01"
    assert await client.client.call("flip", "abc", timeout=3) == "cba"
    ws = await connect(url)  # a raw client sees the same frames
    assert await read_until(ws, lambda m: m == "2") == "2"
    ws.close()
    hub.emit("news", {"n": 1})
    assert await client.until("news", lambda d: d.get("n") == 1) == {"n": 1}
