"""The official protocol test suites, mirrored: every check of the `test-suite/` of
socketio/engine.io-protocol (24) and socketio/socket.io-protocol (32), against Board
set up as they expect (tests/server/conformance_server.py), with raw HTTP and WebSocket
clients as the suites use.

The suites themselves (Node, mocha) are run by hand against
`python tests/server/conformance_server.py engine.io|socket.io`; `make test` has no network
to fetch them, so their checks live here. The Engine.IO checks run on both paths,
as the Socket.IO suite repeats them on /socket.io/.
"""

import asyncio
import json

import pytest
import tornado.web
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection, websocket_connect

from conformance_server import engine_routes, socketio_rules
from conftest import http, until

pytestmark = pytest.mark.gen_test(timeout=20)

EIO, SIO = "/engine.io/", "/socket.io/"
BOTH = pytest.mark.parametrize("path", [EIO, SIO])
POLL = "?EIO=4&transport=polling"


# The suites' timing (pingInterval 300, pingTimeout 200) where timing is what is checked:
# the handshake, the heartbeat, the connect timeout. Elsewhere a heartbeat that cannot fire
# within a test, so that a busy machine cannot slip a ping or a reaping into checks of other things.
CALM = {"ping_interval": 20000, "ping_timeout": 20000}
SUITE_TIMING = pytest.mark.parametrize("timing", [{}], ids=["suite-timing"])


@pytest.fixture
def timing() -> dict:
    return CALM


@pytest.fixture
def servers(timing):
    return engine_routes(**timing), socketio_rules(**timing)


@pytest.fixture
def app(servers):
    (engine_routes, _), (hub_routes, _) = servers
    return tornado.web.Application(engine_routes + hub_routes)


def engine_of(servers, path: str):
    (_, engine), (_, hub) = servers
    return engine if path == EIO else hub.engine


async def open_polling(url: str, path: str) -> str:
    response = await http(url, path + POLL)
    assert response.code == 200
    return json.loads(response.body[1:])["sid"]


async def ws_connect(url: str, path: str, sid: str | None = None, query: str = "EIO=4&transport=websocket"):
    if sid:
        query += f"&sid={sid}"
    return await websocket_connect(url.replace("http", "ws", 1) + path + "?" + query)


async def next_message(ws: WebSocketClientConnection, timeout: float = 2.0):
    """The next message that is not a ping (pings are answered), or None once closed."""
    while True:
        message = await asyncio.wait_for(ws.read_message(), timeout)
        if message != "2":
            return message
        await ws.write_message("3")


async def closed(ws: WebSocketClientConnection, timeout: float = 3.0) -> bool:
    """True once the server has closed `ws` (whatever it sent before)."""
    async def drain():
        while await ws.read_message() is not None:
            pass
    await asyncio.wait_for(drain(), timeout)
    return True


async def sio_connection(url: str) -> WebSocketClientConnection:
    """The Socket.IO suite's initSocketIOConnection: handshake, CONNECT, the auth event."""
    ws = await ws_connect(url, SIO)
    assert (await ws.read_message())[0] == "0"
    await ws.write_message("40")
    assert (await next_message(ws)).startswith("40{")
    assert await next_message(ws) == "42[\"auth\",{}]"
    return ws


async def assert_alive(ws: WebSocketClientConnection, path: str) -> None:
    if path == EIO:
        await ws.write_message("4hello")
        assert await next_message(ws) == "4hello"
    else:
        await ws.write_message("40")
        assert (await next_message(ws)).startswith("40{")


# -- handshake ----------------------------------------------------------------------------

@BOTH
@SUITE_TIMING
async def test_polling_handshake(url, path, timing):
    response = await http(url, path + POLL)
    assert response.code == 200
    body = response.body.decode()
    assert body[0] == "0"
    info = json.loads(body[1:])
    assert set(info) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert isinstance(info["sid"], str)
    assert (info["upgrades"], info["pingInterval"], info["pingTimeout"], info["maxPayload"]) == \
        (["websocket"], 300, 200, 1_000_000)


@BOTH
@pytest.mark.parametrize("query, method", [
    ("?transport=polling", "GET"), ("?EIO=abc&transport=polling", "GET"),   # invalid EIO
    ("?EIO=4", "GET"), ("?EIO=4&transport=abc", "GET"),                      # invalid transport
    (POLL, "POST"), (POLL, "PUT"),                                           # invalid method
])
async def test_polling_handshake_refused(url, path, query, method):
    assert (await http(url, path + query, method, body="" if method != "GET" else None)).code == 400


@BOTH
@SUITE_TIMING
async def test_websocket_handshake(url, path, timing):
    ws = await ws_connect(url, path)
    message = await ws.read_message()
    assert message[0] == "0"
    info = json.loads(message[1:])
    assert set(info) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert (info["upgrades"], info["pingInterval"], info["pingTimeout"], info["maxPayload"]) == \
        ([], 300, 200, 1_000_000)
    ws.close()


@BOTH
@pytest.mark.parametrize("query", ["transport=websocket", "EIO=abc&transport=websocket", "EIO=4",
                                   "EIO=4&transport=abc"])
async def test_websocket_handshake_refused(url, path, query):
    with pytest.raises(HTTPClientError) as refused:
        await ws_connect(url, path, query=query)
    assert refused.value.code == 400


# -- messages (the Engine.IO suite's echo server) -----------------------------------------

@pytest.mark.parametrize("payload", ["4hello", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA=="])
async def test_polling_echo(url, payload):
    sid = await open_polling(url, EIO)
    push = await http(url, f"{EIO}{POLL}&sid={sid}", "POST", payload)
    assert (push.code, push.body) == (200, b"ok")
    poll = await http(url, f"{EIO}{POLL}&sid={sid}")
    assert (poll.code, poll.body.decode()) == (200, payload)


@BOTH
async def test_polling_invalid_packet_closes_the_session(url, path):
    sid = await open_polling(url, path)
    assert (await http(url, f"{path}{POLL}&sid={sid}", "POST", "abc")).code == 400
    assert (await http(url, f"{path}{POLL}&sid={sid}")).code == 400


@BOTH
async def test_duplicate_polls_close_the_session(url, path, servers):
    engine = engine_of(servers, path)
    sid = await open_polling(url, path)
    first = asyncio.ensure_future(http(url, f"{path}{POLL}&sid={sid}"))
    await until(lambda: engine.sessions[sid].poller is not None)
    second = await http(url, f"{path}{POLL}&sid={sid}&t=burst")
    assert second.code == 400
    first = await first
    assert (first.code, first.body) == (200, b"1")  # the close packet
    assert (await http(url, f"{path}{POLL}&sid={sid}")).code == 400


async def test_websocket_echo_text_and_binary(url):
    ws = await ws_connect(url, EIO)
    await ws.read_message()
    await ws.write_message("4hello")
    assert await next_message(ws) == "4hello"
    await ws.write_message(bytes([1, 2, 3, 4]), binary=True)
    assert await next_message(ws) == bytes([1, 2, 3, 4])
    ws.close()


@BOTH
async def test_websocket_invalid_packet_closes(url, path):
    ws = await ws_connect(url, path)
    await ws.read_message()
    await ws.write_message("abc")
    assert await closed(ws)


# -- heartbeat ----------------------------------------------------------------------------

@BOTH
@SUITE_TIMING
async def test_polling_ping_pong(url, path, timing):
    sid = await open_polling(url, path)
    for _ in range(3):
        poll = await http(url, f"{path}{POLL}&sid={sid}")
        assert poll.code == 200 and set(poll.body.split(b"\x1e")) == {b"2"}  # two if we were slow
        assert (await http(url, f"{path}{POLL}&sid={sid}", "POST", "3")).code == 200


@BOTH
@SUITE_TIMING
async def test_polling_ping_timeout_closes_the_session(url, path, servers, timing):
    engine = engine_of(servers, path)
    sid = await open_polling(url, path)
    await until(lambda: sid not in engine.sessions, 2)  # no pong: gone after interval + timeout
    assert (await http(url, f"{path}{POLL}&sid={sid}")).code == 400


@BOTH
@SUITE_TIMING
async def test_websocket_ping_pong(url, path, timing):
    ws = await ws_connect(url, path)
    await ws.read_message()
    for _ in range(3):
        assert await asyncio.wait_for(ws.read_message(), 2) == "2"
        await ws.write_message("3")
    ws.close()


@BOTH
@SUITE_TIMING
async def test_websocket_ping_timeout_closes(url, path, timing):
    ws = await ws_connect(url, path)
    await ws.read_message()
    assert await closed(ws)


# -- close --------------------------------------------------------------------------------

@BOTH
async def test_polling_close_ends_a_waiting_get_with_noop(url, path, servers):
    engine = engine_of(servers, path)
    sid = await open_polling(url, path)
    poll = asyncio.ensure_future(http(url, f"{path}{POLL}&sid={sid}"))
    await until(lambda: engine.sessions[sid].poller is not None)
    assert (await http(url, f"{path}{POLL}&sid={sid}", "POST", "1")).code == 200
    poll = await poll
    assert (poll.code, poll.body) == (200, b"6")
    assert (await http(url, f"{path}{POLL}&sid={sid}")).code == 400


@BOTH
async def test_polling_close_read_before_the_get(url, path):
    sid = await open_polling(url, path)
    assert (await http(url, f"{path}{POLL}&sid={sid}", "POST", "1")).code == 200
    poll = await http(url, f"{path}{POLL}&sid={sid}")
    assert (poll.code, poll.body) == (200, b"6")
    assert (await http(url, f"{path}{POLL}&sid={sid}")).code == 400


async def test_polling_close_and_get_sent_together(url):
    """As the suites send them: whichever the server reads first, the GET gets a noop."""
    for _ in range(20):
        sid = await open_polling(url, SIO)
        poll, push = await asyncio.gather(http(url, f"{SIO}{POLL}&sid={sid}"),
                                          http(url, f"{SIO}{POLL}&sid={sid}", "POST", "1"))
        assert (poll.code, poll.body, push.code) == (200, b"6", 200)
        assert (await http(url, f"{SIO}{POLL}&sid={sid}")).code == 400


@BOTH
async def test_websocket_close_packet(url, path):
    ws = await ws_connect(url, path)
    await ws.read_message()
    await ws.write_message("1")
    assert await closed(ws)


# -- upgrade ------------------------------------------------------------------------------

@BOTH
async def test_upgrade(url, path):
    sid = await open_polling(url, path)
    ws = await ws_connect(url, path, sid)
    await ws.write_message("2probe")
    assert await ws.read_message() == "3probe"
    poll = await http(url, f"{path}{POLL}&sid={sid}")
    assert (poll.code, poll.body) == (200, b"6")
    await ws.write_message("5")
    await assert_alive(ws, path)
    ws.close()


async def upgraded(url: str, path: str) -> tuple[str, WebSocketClientConnection]:
    sid = await open_polling(url, path)
    ws = await ws_connect(url, path, sid)
    await ws.write_message("2probe")
    await ws.write_message("5")
    assert await ws.read_message() == "3probe"
    return sid, ws


@BOTH
async def test_http_after_upgrade_is_refused(url, path):
    sid, ws = await upgraded(url, path)
    assert (await http(url, f"{path}{POLL}&sid={sid}")).code == 400
    await assert_alive(ws, path)
    ws.close()


@BOTH
async def test_second_websocket_after_upgrade_is_opened_then_closed(url, path):
    sid, ws = await upgraded(url, path)
    second = await ws_connect(url, path, sid)  # the handshake completes: no HTTP error
    assert await closed(second)
    await assert_alive(ws, path)
    ws.close()


async def test_second_websocket_during_an_upgrade_is_closed(url, servers):
    engine = engine_of(servers, EIO)
    sid = await open_polling(url, EIO)
    ws = await ws_connect(url, EIO, sid)
    await ws.write_message("2probe")
    assert await ws.read_message() == "3probe"
    second = await ws_connect(url, EIO, sid)
    assert await closed(second)
    assert engine.sessions[sid].upgrading  # the first probe still holds the upgrade
    await ws.write_message("5")
    await assert_alive(ws, EIO)
    ws.close()


# -- Socket.IO: connect -------------------------------------------------------------------

@pytest.mark.parametrize("sent, prefix, auth", [
    ("40", "40", "42[\"auth\",{}]"),
    ("40{\"token\":\"123\"}", "40", "42[\"auth\",{\"token\":\"123\"}]"),
    ("40/custom,", "40/custom,", "42/custom,[\"auth\",{}]"),
    ("40/custom,{\"token\":\"abc\"}", "40/custom,", "42/custom,[\"auth\",{\"token\":\"abc\"}]"),
])
async def test_connect(url, sent, prefix, auth):
    ws = await ws_connect(url, SIO)
    await ws.read_message()
    await ws.write_message(sent)
    answer = await next_message(ws)
    assert answer.startswith(prefix)
    handshake = json.loads(answer[len(prefix):])
    assert set(handshake) == {"sid"} and isinstance(handshake["sid"], str)
    assert await next_message(ws) == auth
    ws.close()


async def test_connect_to_an_unknown_namespace(url):
    ws = await ws_connect(url, SIO)
    await ws.read_message()
    await ws.write_message("40/random")
    assert await next_message(ws) == "44/random,{\"message\":\"Invalid namespace\"}"
    ws.close()


async def test_invalid_handshake_closes(url):
    ws = await ws_connect(url, SIO)
    await ws.read_message()
    await ws.write_message("4abc")
    assert await closed(ws)


@SUITE_TIMING
async def test_no_handshake_closes(url, timing):
    ws = await ws_connect(url, SIO)
    await ws.read_message()
    assert await closed(ws, timeout=3)  # connect timeout: 1 s


# -- Socket.IO: disconnect, messages ------------------------------------------------------

@SUITE_TIMING
async def test_disconnect_from_the_main_namespace(url, timing):
    ws = await sio_connection(url)
    await ws.write_message("41")
    assert await asyncio.wait_for(ws.read_message(), 2) == "2"  # nothing but the heartbeat follows
    ws.close()


async def test_connect_then_disconnect_a_custom_namespace(url):
    ws = await sio_connection(url)
    await ws.write_message("40/custom")
    assert (await next_message(ws)).startswith("40/custom,")
    assert await next_message(ws) == "42/custom,[\"auth\",{}]"
    await ws.write_message("41/custom")
    await ws.write_message("42[\"message\",\"message to main namespace\"]")
    assert await next_message(ws) == "42[\"message-back\",\"message to main namespace\"]"
    ws.close()


@pytest.mark.parametrize("sent, expected", [
    ("42[\"message\",1,\"2\",{\"3\":[true]}]", "42[\"message-back\",1,\"2\",{\"3\":[true]}]"),
    ("42456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]", "43456[1,\"2\",{\"3\":[false]}]"),
])
async def test_plain_text_event_and_ack(url, sent, expected):
    ws = await sio_connection(url)
    await ws.write_message(sent)
    assert await next_message(ws) == expected
    ws.close()


@pytest.mark.parametrize("sent, expected", [
    ("452-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
     "452-[\"message-back\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]"),
    ("452-789[\"message-with-ack\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
     "462-789[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]"),
])
async def test_binary_event_and_ack(url, sent, expected):
    ws = await sio_connection(url)
    await ws.write_message(sent)
    await ws.write_message(bytes([1, 2, 3]), binary=True)
    await ws.write_message(bytes([4, 5, 6]), binary=True)
    assert [await next_message(ws) for _ in range(3)] == [expected, bytes([1, 2, 3]), bytes([4, 5, 6])]
    ws.close()


@pytest.mark.parametrize("bad", ["4abc", "42{}", "42abc[\"message-with-ack\",1,\"2\",{\"3\":[false]}]"])
async def test_invalid_format_closes(url, bad):
    ws = await sio_connection(url)
    await ws.write_message(bad)
    assert await closed(ws)
