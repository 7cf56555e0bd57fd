"""The Engine.IO layer on its own: its own path, callbacks, heartbeat, origins."""

import asyncio
import json

import pytest
import tornado.web
from tornado.websocket import websocket_connect

from conftest import http, until
from handlers import Engine, engine_routes
from handlers.wire.protocol import PONG, Outgoing

pytestmark = pytest.mark.gen_test(timeout=20)

events: list = []


@pytest.fixture
def app():
    events.clear()

    def on_message(session, data):
        events.append(("message", data))
        session.send(Outgoing(["4echo:" + data if isinstance(data, str) else data]))

    engine = Engine(ping_interval=250, ping_timeout=150, max_payload=5000,
                    allowed_origins=["http://allowed.example"],
                    on_open=lambda session, environ: events.append(("open", environ["transport"])),
                    on_message=on_message,
                    on_close=lambda session, reason: events.append(("close", reason)))
    return tornado.web.Application(engine_routes(engine, "/engine.io/"))


async def test_engine_alone_over_websocket(url):
    ws = await websocket_connect(url.replace("http", "ws") + "/engine.io/?EIO=4&transport=websocket")
    info = json.loads((await ws.read_message())[1:])
    assert (info["pingInterval"], info["pingTimeout"], info["maxPayload"]) == (250, 150, 5000)
    await ws.write_message("4hello")
    assert await ws.read_message() == "4echo:hello"
    await ws.write_message(b"\x00\x01", binary=True)
    assert await ws.read_message() == b"\x00\x01"
    assert await ws.read_message() == "2"  # the heartbeat, within pingInterval
    await ws.write_message("3")
    assert await ws.read_message() == "2"  # answered: still alive at the next tick
    ws.close()
    assert events[:3] == [("open", "websocket"), ("message", "hello"), ("message", b"\x00\x01")]


async def test_engine_alone_over_polling(url):
    response = await http(url, "/engine.io/?EIO=4&transport=polling")
    sid = json.loads(response.body[1:])["sid"]
    await http(url, f"/engine.io/?EIO=4&transport=polling&sid={sid}", "POST", "4a\x1e4b")
    body = (await http(url, f"/engine.io/?EIO=4&transport=polling&sid={sid}")).body
    assert body == b"4echo:a\x1e4echo:b"
    # no pong: the session is reaped after pingInterval + pingTimeout
    assert (await http(url, f"/engine.io/?EIO=4&transport=polling&sid={sid}")).body == b"2"

    await until(lambda: ("close", "ping timeout") in events, 2)
    assert (await http(url, f"/engine.io/?EIO=4&transport=polling&sid={sid}")).code == 400


async def test_allowed_origins(url):
    ok = await http(url, "/engine.io/?EIO=4&transport=polling", headers={"Origin": "http://allowed.example"})
    assert ok.code == 200 and ok.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
    same = await http(url, "/engine.io/?EIO=4&transport=polling", headers={"Origin": url})
    assert same.code == 403  # an explicit list replaces same-origin
    no_origin = await http(url, "/engine.io/?EIO=4&transport=polling")
    assert no_origin.code == 200  # non-browser clients send none


def test_bad_options():
    with pytest.raises(ValueError):
        Engine(ping_interval=0)
    with pytest.raises(ValueError):
        Engine(max_payload=-1)


async def test_a_stalled_loop_does_not_reap_clients_whose_pongs_wait_unread():
    engine = Engine(ping_interval=100, ping_timeout=100)
    loop = asyncio.get_running_loop()
    answering, silent = (engine.open_session({"transport": "websocket"}) for _ in range(2))
    answering.awaiting_pong = silent.awaiting_pong = 1
    engine._reap(loop.time() - 0.5, 1)  # ran half a second late: postponed
    assert not answering.closed and not silent.closed
    answering.receive(PONG, "")  # read once the loop runs again
    engine._reap(loop.time(), 1, postponed=True)
    assert not answering.closed and silent.closed
    engine.close()


async def test_the_first_ping_comes_a_ping_interval_after_the_handshake(url):
    """Not earlier, whatever the phase of the shared tick: as Node's engine.io, and as clients expect."""
    loop = asyncio.get_running_loop()
    for _ in range(3):
        start = loop.time()
        ws = await websocket_connect(url.replace("http", "ws") + "/engine.io/?EIO=4&transport=websocket")
        await ws.read_message()
        assert await ws.read_message() == "2"
        assert loop.time() - start >= 0.25
        await ws.write_message("3")
        ws.close()
        await asyncio.sleep(0.1)  # a different phase of the shared tick for the next one
