"""The front's own job: idle connections closed by its sweep, as Tornado's header timeout did.

That the front picks the lean paths is tested with them (test_polling.py, test_leanws.py).
"""

import asyncio

import pytest
from tornado.testing import bind_unused_port

from board import make_app
from conftest import connected, polling_session
from handlers.transports.server import engine_server
from handlers.wire.protocol import Outgoing

pytestmark = pytest.mark.gen_test(timeout=20)


@pytest.fixture
def served(io_loop, hub, posts):
    """The board's app through `engine_server` with a short idle timeout: (url, port, front)."""
    sock, port = bind_unused_port()
    server = engine_server(make_app(hub, posts), hub.engine, hub.path, idle_timeout=0.3)
    assert server.conn_params.header_timeout is None  # no timer per request
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{port}", port, server.request_callback
    server.stop()
    io_loop.run_sync(server.close_all_connections)


async def test_idle_connections_are_closed_by_the_sweep(served):
    url, port, front = served
    silent = await connected(port)  # never sends a byte
    keep_alive = await connected(port)  # one request, then idle
    await keep_alive.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (await keep_alive.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    for stream in (silent, keep_alive):  # both cut by the sweep, within a few of its rounds
        await asyncio.wait_for(stream.read_until_close(), 3)
    assert not front.waiting


@pytest.mark.parametrize("hub_options", [{"ping_interval": 5000, "ping_timeout": 5000}])
async def test_a_long_poll_in_flight_is_not_idle(served, hub):
    url, port, front = served
    sid, _ = await polling_session(url)
    stream = await connected(port)
    await stream.write(f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                       .encode())
    answer = asyncio.ensure_future(stream.read_until(b"\r\n\r\n"))
    silent = await connected(port)  # opened after the GET: its cut shows a sweep went past the GET's timeout
    await asyncio.wait_for(silent.read_until_close(), 3)
    assert not answer.done() and not stream.closed()  # the GET's headers are long since in: not idle
    hub.engine.sessions[sid].send(Outgoing(["4hello"]))
    assert (await asyncio.wait_for(answer, 3)).startswith(b"HTTP/1.1 200")
