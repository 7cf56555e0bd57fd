"""Keep-alive connections of polls on their own HTTP/1.1 path (`PollingConnection`), by raw requests.

Each test serves the board as board.py does (`engine_server`) and speaks
HTTP/1.1 on one raw connection: what a client sees on it, in order, and
where the connection is served (handed over, or back on Tornado).
"""

import asyncio
import json

import pytest
from tornado.testing import bind_unused_port

from board import make_app
from conftest import polling_session, until
from handlers.transports.polling_protocol import PollingConnection
from handlers.transports.server import engine_server
from handlers.wire.protocol import Outgoing

pytestmark = pytest.mark.gen_test(timeout=20)

P = "/socket.io/?EIO=4&transport=polling"


@pytest.fixture
def hub_options() -> dict:
    return {"ping_interval": 10000, "ping_timeout": 5000}  # no ping comes between a test's requests


@pytest.fixture
def idle_timeout() -> float:
    return 3600.0


@pytest.fixture
def served(io_loop, hub, posts, idle_timeout):
    """The board through `engine_server`: (url, port, front)."""
    sock, port = bind_unused_port()
    server = engine_server(make_app(hub, posts), hub.engine, hub.path, idle_timeout=idle_timeout)
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}", port, server.request_callback
    server.stop()
    io_loop.run_sync(server.close_all_connections)
    assert not server.request_callback.handed  # closed with the server


class Raw:
    """One raw HTTP/1.1 connection: requests written by hand, answers read one at a time."""

    def __init__(self, reader, writer, port: int):
        self.reader, self.writer, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> "Raw":
        return cls(*await asyncio.open_connection("127.0.0.1", port), port)

    def send(self, data: str | bytes) -> None:
        self.writer.write(data.encode("latin-1") if isinstance(data, str) else data)

    def poll(self, method: str, sid: str, body: str = "", extra: str = "") -> None:
        length = f"Content-Length: {len(body.encode())}\r\n" if method == "POST" else ""
        self.send(f"{method} {P}&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{extra}{length}\r\n{body}")

    async def answer(self, timeout: float = 5) -> tuple[int, dict, bytes]:
        head = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)).decode("latin-1")
        lines = head.split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers.get("content-length", 0))), timeout)
        return int(lines[0].split()[1]), headers, body

    async def closed(self, timeout: float = 5) -> bytes:
        return await asyncio.wait_for(self.reader.read(), timeout)

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def raw(served):
    """Opens raw connections to the server, closed at the end of the test."""
    made = []

    async def open_() -> Raw:
        made.append(await Raw.open(served[1]))
        return made[-1]

    yield open_
    for conn in made:
        conn.close()


def handed(front) -> list[PollingConnection]:
    return list(front.handed)


async def test_a_keep_alive_connection_of_polls_is_handed_over_and_serves_them_in_one_write(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    conn = await raw()
    conn.poll("POST", sid, "40", extra=f"Origin: {url}\r\n")
    status, headers, body = await conn.answer()
    assert (status, body) == (200, b"ok") and headers["content-type"] == "text/html"
    assert headers["access-control-allow-origin"] == url and headers["access-control-allow-credentials"] == "true"
    assert headers["cache-control"] == "no-store" and "date" in headers and "connection" not in headers
    assert len(handed(front)) == 1  # from the first poll on
    conn.poll("GET", sid)
    status, headers, body = await conn.answer()
    assert status == 200 and body.startswith(b'40{"sid":') and headers["content-type"] == "text/plain; charset=UTF-8"
    assert "access-control-allow-origin" not in headers  # no Origin, no CORS
    conn.poll("GET", sid)  # waits: the connection is the session's poller, no future per request
    await until(lambda: hub.engine.sessions[sid].poller is not None)
    assert hub.engine.sessions[sid].poller is handed(front)[0]
    hub.emit("news", "on its own path")
    status, _, body = await conn.answer()
    assert status == 200 and body.startswith(b'42["news","on its own path"')


async def test_what_the_polling_connection_does_not_serve_goes_back_to_tornado_on_the_same_connection(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    conn = await raw()
    conn.poll("POST", sid, "40")
    assert (await conn.answer())[2] == b"ok"
    before = handed(front)
    assert len(before) == 1
    conn.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # the page: Tornado's
    status, headers, body = await conn.answer()
    assert status == 200 and b"<html" in body.lower() and headers["server"].startswith("TornadoServer")
    await until(lambda: not front.handed)
    conn.send(f"GET {P} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # a handshake: Tornado's too
    status, _, body = await conn.answer()
    other = json.loads(body[1:])["sid"]
    conn.poll("GET", sid)  # a poll again: handed over again
    status, _, body = await conn.answer()
    assert status == 200 and body.startswith(b"40{")
    assert len(handed(front)) == 1 and handed(front)[0] is not before[0]
    conn.poll("POST", other, "40")
    assert (await conn.answer())[2] == b"ok"
    conn.poll("GET", "no-such-session")  # an unknown sid: Tornado's answer
    status, headers, body = await conn.answer()
    assert status == 400 and json.loads(body) == {"code": 1, "message": "Session ID unknown"}


async def test_pipelined_requests_are_answered_in_order(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    conn = await raw()
    conn.poll("POST", sid, "40")
    assert (await conn.answer())[2] == b"ok"
    # A GET that waits, then a POST and the page behind it, in one write: answered in the order asked.
    conn.send(f"GET {P}&sid={sid} HTTP/1.1\r\nHost: h\r\n\r\n"
              f"POST {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nContent-Length: 15\r\n\r\n42[\"x\"]\x1e42[\"y\"]"
              "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    first = await conn.answer()
    assert first[0] == 200 and first[2].startswith(b"40{")  # the GET had the CONNECT's answer waiting
    assert (await conn.answer())[2] == b"ok"
    assert b"<html" in (await conn.answer())[2].lower()


async def test_a_client_gone_while_its_get_waits_leaves_the_session_usable(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    conn = await raw()
    conn.poll("GET", sid)
    await until(lambda: hub.engine.sessions[sid].poller is not None)
    conn.close()
    await until(lambda: hub.engine.sessions[sid].poller is None and not front.handed)
    again = await raw()
    again.poll("POST", sid, "40")
    assert (await again.answer())[2] == b"ok"
    again.poll("GET", sid)
    assert (await again.answer())[2].startswith(b"40{")


async def test_a_post_cut_halfway_ends_its_post(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    conn = await raw()
    conn.poll("GET", sid)
    hub.engine.sessions[sid].send(Outgoing(["4x"]))
    assert (await conn.answer())[2] == b"4x"
    conn.send(f"POST {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n40")
    await until(lambda: hub.engine.sessions[sid].posting)
    conn.close()
    await until(lambda: not hub.engine.sessions[sid].posting)
    again = await raw()
    again.poll("POST", sid, "40")
    assert (await again.answer())[2] == b"ok"


@pytest.mark.parametrize("idle_timeout", [0.3])
async def test_a_handed_over_connection_waiting_for_a_head_is_closed_by_the_sweep(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    idle, slow, waiting = await raw(), await raw(), await raw()
    for conn in (idle, slow, waiting):
        conn.poll("GET", sid) if conn is waiting else conn.poll("POST", sid, "42[\"a\"]")
        if conn is not waiting:
            assert (await conn.answer())[2] == b"ok"
    slow.send(f"GET {P}&sid={sid} HTTP/1.1\r\nHost: h\r\n")  # a head that never ends
    body = await raw()  # a POST whose body never ends
    body.send(f"POST {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n42")
    await until(lambda: hub.engine.sessions[sid].posting)
    for conn in (idle, slow, body):  # all cut by the sweep
        assert await conn.closed(3) == b""
    await until(lambda: not hub.engine.sessions[sid].posting)  # the session may POST again
    assert not waiting.reader.at_eof()  # a GET in flight is not idle
    hub.engine.sessions[sid].send(Outgoing(["4y"]))
    assert (await waiting.answer())[2] == b"4y"


async def test_malformed_and_oversized_heads_get_tornados_answer(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    bad, big = await raw(), await raw()
    for conn in (bad, big):
        conn.poll("POST", sid, "42[\"a\"]")
        assert (await conn.answer())[2] == b"ok"
    bad.send(f"GET {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n")
    assert (await bad.closed()).startswith(b"HTTP/1.1 400")  # Tornado's: a malformed request
    big.send(f"GET {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nX-Pad: " + "a" * 70_000)
    assert await big.closed() == b""  # past Tornado's max_header_size: closed
    hub.engine.sessions[sid].send(Outgoing(["4z"]))  # the session is untouched
    fine = await raw()
    fine.poll("GET", sid)
    assert (await fine.answer())[0] == 200


async def test_a_chunked_post_and_connection_close_on_a_handed_over_connection(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    conn = await raw()
    conn.poll("POST", sid, "40")
    assert (await conn.answer())[2] == b"ok"
    conn.send(f"POST {P}&sid={sid} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n42[\"c\"]\r\n0\r\n\r\n")
    assert (await conn.answer())[2] == b"ok"  # Tornado reads chunks
    conn.poll("GET", sid, extra="Connection: close\r\n")
    status, headers, body = await conn.answer()
    assert status == 200 and body.startswith(b"40{") and headers["connection"] == "close"
    assert await conn.closed() == b""


async def test_a_websocket_upgrade_on_a_handed_over_connection(served, raw, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    conn = await raw()
    conn.poll("POST", sid, "40")
    assert (await conn.answer())[2] == b"ok"
    conn.send(f"GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101") and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head


async def test_a_handed_over_connection_is_counted_once_for_its_address(served, raw, hub):
    """The cap on connections per address sees one connection, whichever path serves it."""
    url, port, front = served
    sid, _ = await polling_session(url)
    await until(lambda: not hub.engine.connections.open)  # the handshake's connection is gone
    conn = await raw()
    conn.poll("POST", sid, "40")
    assert (await conn.answer())[2] == b"ok"
    assert len(handed(front)) == 1 and hub.engine.connections.open == {"127.0.0.1": 1}
    conn.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # back to Tornado
    assert (await conn.answer())[0] == 200
    assert not front.handed and hub.engine.connections.open == {"127.0.0.1": 1}
    conn.close()
    await until(lambda: not hub.engine.connections.open)
