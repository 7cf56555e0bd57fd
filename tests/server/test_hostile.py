"""Hostile bytes against a live server, over both transports.

Hypothesis makes random and mutated packets; each example opens its own
connection and sends them. Whatever happens to that connection, the hub
must carry on: a witness client stays connected and keeps getting acks,
and the server logs no unexpected error.
"""

import asyncio
import logging
import threading
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from tornado.websocket import WebSocketClosedError, websocket_connect

from board import Posts, make_app
from handlers import Hub

VALID = [
    "40", "42[\"post\",{\"name\":\"a\",\"text\":\"b\"}]", "421[\"post\",{\"name\":\"a\",\"text\":\"b\"}]",
    "431[\"x\"]", "41", "451-[\"post\",{\"_placeholder\":true,\"num\":0}]", "40/admin,{\"t\":1}",
    "2", "3", "6", "1", "5", "2probe",
]


def mutate(text: str, data) -> str:
    """A valid packet, cut, spliced or garbled by hypothesis."""
    kind = data.draw(st.integers(0, 3))
    if kind == 0:
        return text[: data.draw(st.integers(0, len(text)))]
    if kind == 1:
        i = data.draw(st.integers(0, len(text)))
        return text[:i] + data.draw(st.text(max_size=8)) + text[i:]
    if kind == 2:
        return data.draw(st.text(max_size=40))
    return text


class LiveBoard:
    """The board in a thread of its own, so that sync hypothesis tests can drive it."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        sock, self.port = bind_unused_port()
        # The witness posts once per example: no rate limit here (tests/server/operations/test_limits.py has them).
        self.hub = Hub(ping_interval=2000, ping_timeout=2000, event_rate=1e6, event_burst=10**6)
        self.posts = Posts(":memory:")
        self.server = HTTPServer(make_app(self.hub, self.posts, post_limit=(0, 1), address_limit=(0, 1)))
        self.server.add_socket(sock)
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def run(self, coro, timeout: float = 10):
        """Runs `coro` on the board's loop. Everything made there (clients too) is used and closed there."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        async def close():
            self.server.stop()
            self.hub.close()
        self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        assert not self.thread.is_alive(), "the board's loop did not stop"


@pytest.fixture(scope="module")
def live():
    board = LiveBoard()
    yield board
    board.stop()


@pytest.fixture(scope="module")
def witness(live):
    """A well-behaved WebSocket client that must be served throughout."""
    async def connect():
        ws = await websocket_connect(f"ws://127.0.0.1:{live.port}/socket.io/?EIO=4&transport=websocket")
        await ws.read_message()
        await ws.write_message("40")
        assert (await ws.read_message()).startswith("40")
        return ws
    ws = live.run(connect())
    yield ws

    async def close():  # on the loop that owns it: closing from this thread races its writes
        ws.close()
    live.run(close())


def check_witness(live, ws, n: int) -> None:
    async def post():
        await ws.write_message(f"42{n}[\"post\",{{\"name\":\"w\",\"text\":\"still here\"}}]")
        while True:
            message = await asyncio.wait_for(ws.read_message(), 5)
            assert message is not None, "the witness was disconnected"
            if message == "2":
                await ws.write_message("3")
            elif message.startswith(f"43{n}["):
                return message
    assert "\"ok\":true" in live.run(post())


@pytest.fixture
def errors(caplog):
    caplog.set_level(logging.WARNING)
    yield caplog
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


counter = iter(range(10**6))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_websocket_garbage_hurts_no_one_else(live, witness, errors, data):
    messages = [mutate(data.draw(st.sampled_from(VALID)), data) for _ in range(data.draw(st.integers(1, 4)))]
    binary = data.draw(st.one_of(st.none(), st.binary(max_size=16)))

    async def attack():
        ws = await websocket_connect(f"ws://127.0.0.1:{live.port}/socket.io/?EIO=4&transport=websocket")
        await ws.read_message()
        try:
            for message in messages:
                await ws.write_message(message)
            if binary is not None:
                await ws.write_message(binary, binary=True)
        except WebSocketClosedError:
            pass  # the server closed this connection: its answer to garbage
        ws.close()
    live.run(attack())
    check_witness(live, witness, next(counter))


def http(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_polling_garbage_hurts_no_one_else(live, witness, errors, data):
    status, body = http(live.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200
    sid = body.decode()[9:29]
    packets = [mutate(data.draw(st.sampled_from(VALID)), data) for _ in range(data.draw(st.integers(1, 4)))]
    if data.draw(st.booleans()):
        packets.append("b" + data.draw(st.text(max_size=12)))
    payload = "\x1e".join(packets).encode("utf-8", "surrogatepass")
    status, body = http(live.port, "POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}", payload)
    assert status in (200, 400), (status, body)
    if status == 400:
        assert body.startswith(b"{\"code\":")
    http(live.port, "POST", f"/socket.io/?EIO=4&transport=polling&sid={sid}", b"1")
    check_witness(live, witness, next(counter))
