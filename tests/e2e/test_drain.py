"""SIGTERM to a real `python board.py`: readyz 503 at once, no one new, everyone back by themselves.

The official python-socketio client is the judge: it stays away after a
Socket.IO DISCONNECT or an Engine.IO close packet, and reconnects after a
transport that just ends. Raw clients check the wire: close frame 1012 on
WebSocket, the waiting poll answered and the session then unknown.
"""

import asyncio
import json
import os
import signal
import sys
import time

import pytest
import socketio
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import Board  # noqa: E402

pytestmark = pytest.mark.timeout(90)

DRAIN = 2.0


class Official:
    """python-socketio's AsyncClient that reconnects by itself, counting its connections."""

    def __init__(self, transport: str):
        self.transport = transport
        self.client = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2,
                                           reconnection_delay_max=0.5, randomization_factor=0)
        self.connects = 0
        self.connected = asyncio.Event()
        self.dropped: list[tuple[float, str]] = []
        self.client.on("connect", self._connect)
        self.client.on("disconnect", self._disconnect)

    def _connect(self) -> None:
        self.connects += 1
        self.connected.set()

    def _disconnect(self, reason=None) -> None:
        self.connected.clear()
        self.dropped.append((time.monotonic(), str(reason)))

    async def start(self, url: str) -> "Official":
        await self.client.connect(url, transports=[self.transport], wait_timeout=5)
        return self


def run(coro) -> None:
    """Runs `coro` on a loop of its own, leaving the thread's event loop state as it was."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()


async def fetch(url: str, timeout: float = 5.0):
    return await AsyncHTTPClient().fetch(url, raise_error=False, request_timeout=timeout)


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_sigterm_drains_and_the_official_clients_come_back(tmp_path, request):
    board = Board(tmp_path / "board.db", name=request.node.name, args=[f"--drain_seconds={DRAIN}"])
    board.start()
    try:
        run(_drain_scenario(board))
    finally:
        board.stop()
    log = board.log()
    assert "draining" in log and "drained" in log


async def _drain_scenario(board: Board) -> None:
    base = board.url.rstrip("/")
    ws_client = await Official("websocket").start(base)
    poll_client = await Official("polling").start(base)

    # A raw WebSocket session, to see every frame and the close code.
    raw = await websocket_connect(base.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket")
    assert (await raw.read_message()).startswith("0")
    await raw.write_message("40")
    assert (await raw.read_message()).startswith("40")
    # A raw polling session with its GET waiting.
    opened = await fetch(base + "/socket.io/?EIO=4&transport=polling")
    sid = json.loads(opened.body[1:])["sid"]
    poll_url = f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}"
    await AsyncHTTPClient().fetch(poll_url, method="POST", body="40")
    first = (await fetch(poll_url)).body.decode()
    assert first.startswith("40")
    waiting = asyncio.ensure_future(fetch(poll_url, timeout=DRAIN + 10))
    assert (await fetch(base + "/readyz")).code == 200

    signalled = time.monotonic()
    board.proc.send_signal(signal.SIGTERM)

    async def not_ready():
        return (await fetch(base + "/readyz")).code == 503
    await until(not_ready, 1.0, "/readyz to answer 503")
    refused = await fetch(base + "/socket.io/?EIO=4&transport=polling")
    assert refused.code == 503
    assert refused.headers["Content-Type"].startswith("application/json")
    assert set(json.loads(refused.body)) == {"code", "message"}

    # The wire: no Engine.IO close packet, no Socket.IO DISCONNECT, a close frame 1012.
    frames = []
    while (message := await asyncio.wait_for(raw.read_message(), DRAIN + 5)) is not None:
        frames.append(message)
    assert not [f for f in frames if f == "1" or f.startswith("41")], frames
    assert raw.close_code == 1012
    # Polling: every answer until the session is gone is data or a noop, never a close;
    # then the session is unknown (400), which sends the client back to the handshake.
    answered = await waiting
    while answered.code == 200:
        packets = answered.body.decode().split("\x1e")
        assert not [p for p in packets if p == "1" or p.startswith("41")], packets
        answered = await fetch(poll_url, timeout=DRAIN + 5)
    assert answered.code == 400

    exit_code = await asyncio.to_thread(board.proc.wait, DRAIN + 5)
    assert exit_code == 0
    assert time.monotonic() - signalled < DRAIN + 5

    # Both official clients lost their transport, not their welcome: they are reconnecting.
    for client in (ws_client, poll_client):
        assert client.dropped, f"{client.transport} client saw no disconnect"
        assert client.dropped[0][1] != "io server disconnect", client.dropped
    spread = abs(ws_client.dropped[0][0] - poll_client.dropped[0][0])
    assert spread > 0.2, f"closes not spread over the drain window ({spread:.2f} s)"

    await asyncio.to_thread(board.start)  # the next process, same port
    for client in (ws_client, poll_client):
        await asyncio.wait_for(client.connected.wait(), 15)
        assert client.connects == 2
        assert client.client.transport() == client.transport
    for client in (ws_client, poll_client):
        await client.client.disconnect()


def test_a_second_signal_stops_at_once(tmp_path, request):
    board = Board(tmp_path / "board.db", name=request.node.name, args=["--drain_seconds=60"])
    board.start()
    try:
        async def scenario():
            client = await Official("websocket").start(board.url.rstrip("/"))
            client.client.reconnection = False
            board.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            started = time.monotonic()
            board.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(board.proc.wait, 5)
            assert time.monotonic() - started < 3
            await client.client.disconnect()
        run(scenario())
    finally:
        board.stop()
