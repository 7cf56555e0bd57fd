"""The long-polling transport, by hand and with the official client."""

import asyncio
import json

import pytest
import tornado
import tornado.httpserver

from board import make_app
from conftest import error_of, http, polling_session, raw_websocket, until
from handlers.transports.server import EngineDelegate, engine_server

pytestmark = [pytest.mark.gen_test(timeout=20), pytest.mark.usefixtures("served_by")]


@pytest.fixture(params=["app", "front", "server"])
def served_by(request) -> str:
    """Every test here three times: the application alone (polls routed to the connection-level path by a
    rule), behind `EngineDelegate` (polls picked before the application sees them), and through
    `engine_server`, as the board serves (keep-alive connections of polls handed to `PollingConnection`)."""
    return request.param


@pytest.fixture
def app(served_by, hub, posts):
    app = make_app(hub, posts)
    return app if served_by == "app" else EngineDelegate(app, hub.engine, hub.path)


@pytest.fixture
def http_server(io_loop, _unused_port, served_by, app, hub):
    """pytest-tornado's server, or `engine_server` for "server"."""
    if served_by == "server":
        server = engine_server(app.app, hub.engine, hub.path)
    else:
        server = tornado.httpserver.HTTPServer(app)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    io_loop.run_sync(server.close_all_connections)

P = "/socket.io/?EIO=4&transport=polling"


async def test_handshake_open_packet(url):
    sid, info = await polling_session(url)
    assert set(info) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert info["upgrades"] == ["websocket"]
    assert (info["pingInterval"], info["pingTimeout"], info["maxPayload"]) == (300, 300, 1_000_000)
    assert len(sid) >= 20


async def test_session_ids_are_unguessable(url):
    sids = {(await polling_session(url))[0] for _ in range(20)}
    assert len(sids) == 20
    assert len({s[:4] for s in sids}) > 10  # not sequential


@pytest.mark.parametrize("path, code, status", [
    ("/socket.io/?EIO=3&transport=polling", 5, 400),
    ("/socket.io/?transport=polling", 5, 400),
    ("/socket.io/?EIO=4", 0, 400),
    ("/socket.io/?EIO=4&transport=carrier-pigeon", 0, 400),
    ("/socket.io/?EIO=4&transport=polling&sid=nope", 1, 400),
])
async def test_bad_queries_get_400_with_json(url, path, code, status):
    response = await http(url, path)
    assert response.code == status
    assert error_of(response)["code"] == code


async def test_post_without_sid_is_refused(url):
    response = await http(url, P, "POST", "40")
    assert response.code == 400 and error_of(response)["code"] == 2


async def test_other_methods_are_refused(url):
    response = await http(url, P, "PUT", "40")
    assert response.code == 400 and error_of(response)["code"] == 2
    sid, _ = await polling_session(url)
    response = await http(url, f"{P}&sid={sid}", "DELETE")
    assert response.code == 400 and error_of(response)["code"] == 3


async def test_connect_event_and_ack_by_hand(url, hub):
    @hub.on("echo")
    def echo(socket, data):
        return data

    sid, _ = await polling_session(url)
    assert (await http(url, f"{P}&sid={sid}", "POST", "40")).body == b"ok"
    packets = (await http(url, f"{P}&sid={sid}")).body.decode().split("\x1e")
    assert packets[0].startswith("40{\"sid\":")
    await http(url, f"{P}&sid={sid}", "POST", "421[\"echo\",{\"a\":\"é\"}]\x1e421[\"echo\",2]")
    body = (await http(url, f"{P}&sid={sid}")).body.decode()
    assert "431[{\"a\":\"é\"}]" in body and "431[2]" in body


async def test_second_concurrent_get_is_refused_and_ends_the_session(url, hub):
    sid, _ = await polling_session(url)
    first = asyncio.ensure_future(http(url, f"{P}&sid={sid}"))
    await until(lambda: hub.engine.sessions[sid].poller is not None)  # the first GET waits there
    second = await http(url, f"{P}&sid={sid}")
    assert second.code == 400 and error_of(second)["code"] == 3
    first = await first
    assert (first.code, first.body) == (200, b"1")  # the close packet
    assert (await http(url, f"{P}&sid={sid}")).code == 400


async def test_close_packet_ends_a_pending_get_with_noop(url, hub):
    sid, _ = await polling_session(url)
    await http(url, f"{P}&sid={sid}", "POST", "40")
    await http(url, f"{P}&sid={sid}")  # the CONNECT answer
    pending = asyncio.ensure_future(http(url, f"{P}&sid={sid}"))
    await until(lambda: hub.engine.sessions[sid].poller is not None)
    await http(url, f"{P}&sid={sid}", "POST", "1")
    response = await asyncio.wait_for(pending, 2)
    assert response.body == b"6"
    assert (await http(url, f"{P}&sid={sid}")).code == 400


async def test_oversize_payload_closes_only_that_session(url, hub, clients):
    other = await clients("news").connect(url, transports=["polling"])
    sid, _ = await polling_session(url)
    response = await http(url, f"{P}&sid={sid}", "POST", "4" + "x" * 1_000_001)
    assert response.code == 413
    assert (await http(url, f"{P}&sid={sid}")).code == 400
    assert other.client.connected and hub.count == 1
    assert await other.client.call("post", {"name": "a", "text": "still here"}, timeout=2) == {"ok": True, "id": 1}


async def test_malformed_payload_closes_only_that_session(url, hub, clients):
    other = await clients("news").connect(url, transports=["polling"])
    await other.next("news")
    for bad in ("", "4[", "9", "b%%%", "42[\"a\"", "5"):
        sid, _ = await polling_session(url)
        await http(url, f"{P}&sid={sid}", "POST", "40")
        response = await http(url, f"{P}&sid={sid}", "POST", "4" + bad if bad[:1] != "b" else bad)
        assert response.code == 400, bad
        assert (await http(url, f"{P}&sid={sid}")).code == 400, bad
    assert other.client.connected and hub.count == 1


async def test_binary_over_polling_is_base64(url, hub):
    @hub.on("bytes")
    def back(socket, data):
        return data + b"!"

    sid, _ = await polling_session(url)
    await http(url, f"{P}&sid={sid}", "POST", "40")
    await http(url, f"{P}&sid={sid}")
    await http(url, f"{P}&sid={sid}", "POST", "451-5[\"bytes\",{\"_placeholder\":true,\"num\":0}]\x1ebAAE=")
    body = (await http(url, f"{P}&sid={sid}")).body.decode()
    assert body == "461-5[{\"_placeholder\":true,\"num\":0}]\x1ebAAEh"


async def test_upgrade_to_websocket_by_hand(url, hub):
    sid, _ = await polling_session(url)
    await http(url, f"{P}&sid={sid}", "POST", "40")
    await http(url, f"{P}&sid={sid}")
    pending = asyncio.ensure_future(http(url, f"{P}&sid={sid}"))
    await until(lambda: hub.engine.sessions[sid].poller is not None)
    ws = await raw_websocket(url, f"EIO=4&transport=websocket&sid={sid}")
    await ws.write_message("2probe")
    assert await ws.read_message() == "3probe"
    assert (await asyncio.wait_for(pending, 2)).body == b"6"
    # a GET that arrives once the probe is answered is not held either
    assert (await http(url, f"{P}&sid={sid}", timeout=2)).body == b"6"
    await ws.write_message("5")
    await ws.write_message("42[\"hello\"]")
    # polling is over for this session; a second WebSocket is opened, then closed by the server
    late = await http(url, f"{P}&sid={sid}")
    assert late.code == 400 and "upgraded" in error_of(late)["message"]
    second = await raw_websocket(url, f"EIO=4&transport=websocket&sid={sid}")
    assert await asyncio.wait_for(second.read_message(), 2) is None
    assert second.close_code == 1008
    assert await asyncio.wait_for(ws.read_message(), 2) == "2"  # the heartbeat now runs on the WebSocket
    ws.close()


async def test_official_client_upgrades_from_polling(url, hub, clients):
    client = await clients("news").connect(url)  # default transports: polling, then websocket
    await client.next("news")

    await until(lambda: client.client.transport() == "websocket", 5)
    socket = next(iter(hub.sockets.values()))
    assert socket.transport == "websocket"


async def test_cors_only_for_allowed_origins(url):
    own = await http(url, P, headers={"Origin": url})
    assert own.code == 200 and own.headers["Access-Control-Allow-Origin"] == url
    foreign = await http(url, P, headers={"Origin": "http://evil.example"})
    assert foreign.code == 403 and error_of(foreign)["code"] == 4
    assert "Access-Control-Allow-Origin" not in foreign.headers


async def test_a_tab_that_dies_mid_poll_leaves_the_session_usable(url, hub):
    from tornado.iostream import IOStream
    import socket as so
    sid, _ = await polling_session(url)
    await http(url, f"{P}&sid={sid}", "POST", "40")
    await http(url, f"{P}&sid={sid}")
    port = int(url.rsplit(":", 1)[1])
    stream = IOStream(so.socket())
    await stream.connect(("127.0.0.1", port))
    await stream.write(f"GET {P}&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    session = hub.engine.sessions[sid]
    await until(lambda: session.poller is not None)
    stream.close()  # the tab dies while its GET waits
    await until(lambda: session.poller is None)
    hub.emit("news", "after")  # queued for the next GET, not lost
    response = await http(url, f"{P}&sid={sid}")
    assert response.code == 200 and response.body.startswith(b"42")
    event, data, offset = json.loads(response.body[2:])  # recovery is on: the offset comes last
    assert (event, data) == ("news", "after") and offset.isdigit()


async def test_a_poll_answer_carries_at_most_16_packets(url, hub):
    @hub.on("burst")
    def burst(socket, n):
        for i in range(n):
            socket.emit("item", i)

    sid, _ = await polling_session(url)
    await http(url, f"{P}&sid={sid}", "POST", "40")
    await http(url, f"{P}&sid={sid}")
    await http(url, f"{P}&sid={sid}", "POST", "42[\"burst\",40]")
    await until(lambda: len(hub.engine.sessions[sid].queue) >= 40)
    sizes, items = [], []
    while len(items) < 40:
        packets = (await http(url, f"{P}&sid={sid}")).body.decode().split("\x1e")
        sizes.append(len(packets))
        items += [p for p in packets if p.startswith("42[\"item\"")]
    assert sizes == [16, 16, 8]
    # [event, i, offset]: recovery is on, so each carries its offset last
    assert [json.loads(p[2:])[:2] for p in items] == [["item", i] for i in range(40)]


@pytest.mark.parametrize("broadcast", [False, True])
async def test_a_burst_reaches_the_official_polling_client_whole(url, hub, clients, broadcast):
    """python-engineio's client drops its session on a poll answer of more than 16 packets."""
    @hub.on("burst")
    def burst(socket, n):
        for i in range(n):
            (hub.emit if broadcast else socket.emit)("item", i)
        return n

    client = await clients("item").connect(url, transports=["polling"])
    assert await client.client.call("burst", 35, timeout=5) == 35
    assert [await client.next("item") for _ in range(35)] == list(range(35))
    assert client.client.connected
    assert await client.client.call("burst", 1, timeout=5) == 1  # and it carries on


# -- the lean path (handlers/transports/polling_connection.py): polls of an open session below RequestHandler ---------------

async def raw_connection(url: str):
    """A raw keep-alive HTTP/1.1 connection to the server."""
    import socket as so
    from tornado.iostream import IOStream
    stream = IOStream(so.socket())
    await stream.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
    return stream


async def raw_response(stream) -> tuple[int, dict, bytes]:
    """(status, headers with lower-case names, body) of one response with a Content-Length."""
    head = (await asyncio.wait_for(stream.read_until(b"\r\n\r\n"), 5)).decode("latin-1")
    lines = head.split("\r\n")
    headers = dict((k.lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:] if line))
    body = await asyncio.wait_for(stream.read_bytes(int(headers["content-length"])), 5)
    return int(lines[0].split()[1]), headers, body


async def test_polls_of_an_open_session_take_the_lean_path(url, hub):
    from handlers.transports.polling_connection import ConnectionPoll
    sid, _ = await polling_session(url)
    headers = {"Origin": url}
    posted = await http(url, f"{P}&sid={sid}", "POST", "40", headers=headers)
    assert (posted.code, posted.body) == (200, b"ok")
    assert posted.headers["Content-Type"] == "text/html"
    assert posted.headers["Access-Control-Allow-Origin"] == url
    assert posted.headers["Access-Control-Allow-Credentials"] == "true"
    assert posted.headers["Cache-Control"] == "no-store" and "Date" in posted.headers
    got = await http(url, f"{P}&sid={sid}", headers=headers)
    assert got.code == 200 and got.body.startswith(b"40{\"sid\":")
    assert got.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert got.headers["Access-Control-Allow-Origin"] == url
    pending = asyncio.ensure_future(http(url, f"{P}&sid={sid}"))
    await until(lambda: hub.engine.sessions[sid].poller is not None)
    assert isinstance(hub.engine.sessions[sid].poller, ConnectionPoll)
    hub.emit("news", "hello")
    answer = await asyncio.wait_for(pending, 2)
    assert answer.code == 200 and answer.body.startswith(b"42[\"news\",\"hello\"")
    assert "Access-Control-Allow-Origin" not in answer.headers  # no Origin, no CORS


async def test_lean_polls_keep_the_connection_alive(url, hub):
    sid, _ = await polling_session(url)
    stream = await raw_connection(url)
    try:
        stream.write(f"POST {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n40".encode())
        status, headers, body = await raw_response(stream)
        assert (status, body) == (200, b"ok") and "connection" not in headers
        stream.write(f"GET {P}&sid={sid} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        status, headers, body = await raw_response(stream)
        assert status == 200 and body.startswith(b"40{")
        stream.write(f"GET {P}&sid={sid} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        await until(lambda: hub.engine.sessions[sid].poller is not None)
        hub.emit("news", "on the same connection")
        status, headers, body = await raw_response(stream)
        assert status == 200 and body.startswith(b"42[\"news\",\"on the same connection\"")
    finally:
        stream.close()


async def test_lean_poll_over_http_1_0_closes_unless_kept_alive(url, hub):
    from handlers.engineio.session import PING_PACKET
    sid, _ = await polling_session(url)
    hub.engine.sessions[sid].send(PING_PACKET)  # something for the GET to take at once
    stream = await raw_connection(url)
    stream.write(f"GET {P}&sid={sid} HTTP/1.0\r\n\r\n".encode())
    status, headers, body = await raw_response(stream)
    assert (status, body) == (200, b"2")
    assert await asyncio.wait_for(stream.read_until_close(), 5) == b""  # HTTP/1.0: closed after the answer


async def test_a_chunked_post_over_max_payload_is_refused_and_the_session_can_post_again(url, hub):
    sid, _ = await polling_session(url)
    stream = await raw_connection(url)
    chunk = b"4" + b"x" * 600_000
    stream.write(f"POST {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    for part in (chunk, chunk):
        stream.write(b"%x\r\n%s\r\n" % (len(part), part))
    stream.write(b"0\r\n\r\n")
    # Tornado refuses the body beyond the bound set at the door (maxPayload) and drops the connection.
    assert (await asyncio.wait_for(stream.read_until_close(), 5)).startswith(b"HTTP/1.1 400")
    assert not hub.engine.sessions[sid].posting
    assert (await http(url, f"{P}&sid={sid}", "POST", "40")).body == b"ok"


async def test_the_lean_post_bounds_what_it_buffers_whatever_the_connection_lets_through():
    """A body that reaches the delegate bigger than maxPayload (say, decompressed) ends the session."""
    from types import SimpleNamespace
    from handlers import Engine
    from handlers.transports.polling_connection import ConnectionPoll

    written = []
    connection = SimpleNamespace(set_max_body_size=lambda n: None, finish=lambda: written.append("end"),
                                 write_headers=lambda start, headers, body: written.append((start.code, body)))
    engine = Engine(max_payload=10)
    session = engine.open_session({})
    poll = ConnectionPoll(engine, session, "POST", connection, "/", None)
    poll.headers_received(None, None)
    assert session.posting
    poll.data_received(b"4" + b"x" * 9)
    assert written == [] and not session.closed
    poll.data_received(b"x")
    assert written[0][0] == 413 and written[1] == "end" and b"Payload too large" in written[0][1]
    assert session.closed and not session.posting
    poll.data_received(b"more")  # ignored once answered
    poll.finish()
    assert len(written) == 2
    engine.close()


async def test_lean_post_of_invalid_utf8_closes_the_session(url, hub):
    sid, _ = await polling_session(url)
    response = await http(url, f"{P}&sid={sid}", "POST", b"4\xff\xfe")
    assert response.code == 400 and error_of(response) == {"code": 3, "message": "Bad payload: invalid UTF-8"}
    assert sid not in hub.engine.sessions
    assert (await http(url, f"{P}&sid={sid}")).code == 400


async def test_overlapping_posts_are_refused_and_end_the_session(url, hub):
    sid, _ = await polling_session(url)
    stream = await raw_connection(url)
    try:  # the first POST's body is still on its way when the second one comes
        stream.write(f"POST {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n40".encode())
        await until(lambda: hub.engine.sessions[sid].posting)
        second = await http(url, f"{P}&sid={sid}", "POST", "40")
        assert second.code == 400 and error_of(second)["message"] == "Overlapping POST requests"
        assert sid not in hub.engine.sessions
    finally:
        stream.close()


async def test_a_lean_get_whose_session_closes_while_it_is_read_gets_its_last_answer(url, hub):
    """A GET with a (pointless) body still arriving when a POST's close packet ends the session."""
    sid, _ = await polling_session(url)
    stream = await raw_connection(url)
    try:
        stream.write(f"GET {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab".encode())
        await asyncio.sleep(0.05)
        assert (await http(url, f"{P}&sid={sid}", "POST", "1")).code == 200  # the client's close packet
        assert sid not in hub.engine.sessions
        stream.write(b"cd")
        status, _, body = await raw_response(stream)
        assert (status, body) == (200, b"6")  # the lingering answer to a client that closed
    finally:
        stream.close()


async def test_the_front_takes_polls_before_the_application_and_leaves_it_the_rest(url, hub, served_by,
                                                                                    monkeypatch):
    from handlers.transports.polling_connection import ConnectionPolls
    routed = []
    find_handler = ConnectionPolls.find_handler
    monkeypatch.setattr(ConnectionPolls, "find_handler",
                        lambda self, request, **kw: routed.append(request.uri) or find_handler(self, request, **kw))
    sid, _ = await polling_session(url)  # a handshake: the application's, either way
    assert (await http(url, f"{P}&sid={sid}", "POST", "40")).body == b"ok"
    assert (await http(url, f"{P}&sid={sid}")).body.startswith(b"40{")
    assert len(routed) == (3 if served_by == "app" else 1)
    # what the front is not sure of goes to the application, which still serves it the lean way
    escaped = await http(url, f"{P}&sid={sid}&t=a%20b", "POST", "42[\"x\"]")
    assert (escaped.code, escaped.body) == (200, b"ok") and routed[-1].endswith("&t=a%20b")
    assert (await http(url, "/")).code == 200  # the page
    odd = await http(url, f"{P}&sid={sid}&odd=host", headers={"Host": "a,b"})
    if tornado.version_info >= (6, 5):
        assert odd.code == 400  # Tornado's own check of the Host
    else:  # 6.4 checks no Host: the application serves it, through its rules
        assert odd.code == 200 and routed[-1].endswith("&odd=host")


async def test_a_numbered_get_sent_again_gets_the_answer_it_never_got(url, hub):
    """Our client numbers its GETs (`n`: the answers of the session it got). A browser re-sends a GET by
    itself, same URL, on a new connection, when a reused one drops before any byte of the answer: that
    GET gets the lost answer again, and the next one what came since."""
    sid, _ = await polling_session(url)
    stream = await raw_connection(url)

    async def get(n):
        stream.write(f"GET {P}&sid={sid}&t=x&n={n} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        return await raw_response(stream)

    try:
        stream.write(f"POST {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n40".encode())
        assert (await raw_response(stream))[2] == b"ok"
        assert (await get(0))[2].startswith(b"40{")
        waiting = asyncio.ensure_future(get(1))
        await until(lambda: hub.engine.sessions[sid].poller is not None)
        hub.emit("news", "lost on the way")
        status, _, lost = await asyncio.wait_for(waiting, 5)
        assert status == 200 and lost.startswith(b"42[\"news\",\"lost on the way\"")
        hub.emit("news", "came since")
        await until(lambda: hub.engine.sessions[sid].queue)
        retried = await http(url, f"{P}&sid={sid}&t=x&n=1")  # the browser's retry, on a new connection
        assert (retried.code, retried.body) == (200, lost)
        status, _, body = await get(2)
        assert status == 200 and body.startswith(b"42[\"news\",\"came since\"") and b"lost" not in body
        status, _, body = await get("2x")
        assert status == 400 and b"Bad poll count" in body
        assert hub.engine.stats.polls_answered_again == 1
    finally:
        stream.close()


async def test_gets_without_a_count_are_served_as_before(url, hub):
    sid, _ = await polling_session(url)
    await http(url, f"{P}&sid={sid}", "POST", "40")
    assert (await http(url, f"{P}&sid={sid}")).body.startswith(b"40{")
    hub.emit("news", "one")
    await until(lambda: hub.engine.sessions[sid].queue)
    assert (await http(url, f"{P}&sid={sid}")).body.startswith(b"42[\"news\",\"one\"")
    hub.emit("news", "two")
    await until(lambda: hub.engine.sessions[sid].queue)
    assert (await http(url, f"{P}&sid={sid}")).body.startswith(b"42[\"news\",\"two\"")  # nothing sent again
    assert hub.engine.sessions[sid].polls is None


async def test_a_numbered_get_sent_again_while_the_first_still_waits_takes_its_place(url, hub):
    """The connection of a waiting GET dropped and the browser sent it again before the server saw the
    drop: for our client (one GET at a time) that is its retry, not an overlapping GET."""
    sid, _ = await polling_session(url)
    await http(url, f"{P}&sid={sid}", "POST", "40")
    assert (await http(url, f"{P}&sid={sid}&n=0")).body.startswith(b"40{")
    first = asyncio.ensure_future(http(url, f"{P}&sid={sid}&n=1"))
    await until(lambda: hub.engine.sessions[sid].poller is not None)
    retried = asyncio.ensure_future(http(url, f"{P}&sid={sid}&n=1"))
    assert (await asyncio.wait_for(first, 5)).body == b"6"  # the one it replaces ends, not counted
    hub.emit("news", "to the retry")
    answer = await asyncio.wait_for(retried, 5)
    assert answer.code == 200 and answer.body.startswith(b"42[\"news\",\"to the retry\"")
    assert not hub.engine.sessions[sid].closed and hub.engine.sessions[sid].polls.count == 2


async def test_the_close_of_a_numbered_session_goes_to_the_retry_of_its_get(url, hub):
    sid, _ = await polling_session(url)
    await http(url, f"{P}&sid={sid}", "POST", "40")
    assert (await http(url, f"{P}&sid={sid}&n=0")).body.startswith(b"40{")
    waiting = asyncio.ensure_future(http(url, f"{P}&sid={sid}&n=1"))
    await until(lambda: hub.engine.sessions[sid].poller is not None)
    hub.engine.sessions[sid].close("server shutting down")
    assert (await asyncio.wait_for(waiting, 5)).body == b"1"
    retried = await http(url, f"{P}&sid={sid}&n=1")  # that answer lost: the browser's retry
    assert (retried.code, retried.body) == (200, b"1")
