"""Fixtures for the in-process tests: a hub, the board on it, and real clients.

The hub is made inside the `app` fixture, so each test has its own on its
own loop. Clients are the official python-socketio `AsyncClient` (the judge
of the wire) and raw WebSocket / HTTP requests for what a client library
would never send. The end-to-end fixtures (real processes, browsers, Node,
nginx, Redis) are in e2e/e2e_support.py, importable from any test.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from typing import Any

import pytest
import socketio
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from tornado.websocket import websocket_connect

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e"))  # e2e_support

from board import Posts, make_app  # noqa: E402
from handlers import Hub  # noqa: E402
from handlers.operations.logs import reset_log_throttle  # noqa: E402

# Small heartbeat so that reaping is seen within a test; tests may override.
HUB_OPTIONS = {"ping_interval": 300, "ping_timeout": 300}


@pytest.fixture(autouse=True)
def quiet_log():
    """Each test starts from a quiet log: the throttle of client-triggered lines forgets the last test's."""
    reset_log_throttle()


@pytest.fixture
def hub_options() -> dict:
    return dict(HUB_OPTIONS)


@pytest.fixture
def hub(hub_options: dict) -> Hub:
    return Hub(**hub_options)


@pytest.fixture
def posts() -> Posts:
    posts = Posts(":memory:")
    yield posts
    posts.close()


@pytest.fixture
def app(hub: Hub, posts: Posts):
    return make_app(hub, posts)


@pytest.fixture
def url(http_server, http_port) -> str:
    return f"http://127.0.0.1:{http_port}"


class Recorder:
    """An official AsyncClient that keeps what it receives, to be awaited in order."""

    def __init__(self, events: tuple[str, ...] = (), **kwargs: Any):
        self.client = socketio.AsyncClient(reconnection=False, **kwargs)
        self.queues: dict[str, asyncio.Queue] = {}
        for event in events:
            self.listen(event)
        self.disconnected = asyncio.Event()
        self.client.on("disconnect", self._on_disconnect)

    def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    def listen(self, event: str, namespace: str = "/") -> None:
        queue = self.queues.setdefault(f"{namespace}{event}", asyncio.Queue())
        self.client.on(event, lambda *args: queue.put_nowait(args[0] if len(args) == 1 else args),
                       namespace=namespace)

    async def next(self, event: str, namespace: str = "/", timeout: float = 5.0) -> Any:
        return await asyncio.wait_for(self.queues[f"{namespace}{event}"].get(), timeout)

    async def until(self, event: str, predicate, timeout: float = 5.0) -> Any:
        """The first `event` whose data satisfies `predicate`."""
        async def find():
            while True:
                data = await self.queues[f"/{event}"].get()
                if predicate(data):
                    return data
        return await asyncio.wait_for(find(), timeout)

    async def connect(self, url: str, **kwargs: Any) -> "Recorder":
        await self.client.connect(url, wait_timeout=5, **kwargs)
        return self

    async def close(self) -> None:
        if self.client.connected:
            await asyncio.wait_for(self.client.disconnect(), 5)


@pytest.fixture
def clients(io_loop):
    """Makes Recorders and disconnects them all at the end of the test."""
    made: list[Recorder] = []

    def make(*events: str, **kwargs: Any) -> Recorder:
        recorder = Recorder(events, **kwargs)
        made.append(recorder)
        return recorder

    yield make
    for recorder in made:
        if recorder.client.connected:
            io_loop.run_sync(recorder.close)


async def http(url: str, path: str = "/socket.io/?EIO=4&transport=polling", method: str = "GET",
               body: str | bytes | None = None, headers: dict | None = None,
               timeout: float = 5.0) -> HTTPResponse:
    """A raw HTTP request; error statuses are returned, not raised."""
    try:
        return await AsyncHTTPClient().fetch(url + path, method=method, body=body, headers=headers,
                                             raise_error=False, request_timeout=timeout,
                                             allow_nonstandard_methods=True)
    except HTTPClientError as exc:  # pragma: no cover - raise_error=False
        return exc.response


def error_of(response: HTTPResponse) -> dict:
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def polling_session(url: str) -> tuple[str, dict]:
    """Open a polling session by hand: (sid, open packet)."""
    response = await http(url)
    assert response.code == 200
    body = response.body.decode()
    assert body[0] == "0"
    info = json.loads(body[1:])
    return info["sid"], info


async def until(predicate, timeout: float = 3.0) -> None:
    """Wait for server-side state that has no event of its own (checked every loop turn, bounded)."""
    async def check():
        while not predicate():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(check(), timeout)


async def once_store_replays(store, retry_waits: bool) -> None:
    """What every store of `once` events does (handlers/socketio/once.py): one run per key, the ack
    replayed, a failed run run again, an ack that is not JSON not kept. A retry while the first try
    runs waits for its ack (`retry_waits`: one process) or gets no answer (Redis: BUSY)."""
    from handlers.socketio.once import BUSY, DONE, RUN

    assert await store.begin("k1") == (RUN, None)
    if retry_waits:
        retry = asyncio.ensure_future(store.begin("k1"))
        await store.finish("k1", [{"ok": True}])
        assert await retry == (DONE, [{"ok": True}])
    else:
        assert await store.begin("k1") == (BUSY, None)
        await store.finish("k1", [{"ok": True}])
    assert await store.begin("k1") == (DONE, [{"ok": True}])
    assert await store.begin("k2") == (RUN, None)
    await store.abandon("k2")  # the handler failed: a retry runs it again
    assert await store.begin("k2") == (RUN, None)
    await store.finish("k2", [b"binary"])  # not JSON: not kept
    assert await store.begin("k2") == (RUN, None)


async def connected(port: int) -> "IOStream":
    """A bare TCP connection to a local server, nothing sent yet."""
    from tornado.iostream import IOStream

    stream = IOStream(socket.socket())
    await stream.connect(("127.0.0.1", port))
    return stream


async def raw_websocket(url: str, query: str = "EIO=4&transport=websocket"):
    return await websocket_connect(url.replace("http", "ws", 1) + "/socket.io/?" + query)


def client_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None,
                 masked: bool = True, rsv: int = 0) -> bytes:
    """A frame as a browser sends it (masked)."""
    first = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((first, bit | n))
    elif n < 65536:
        header = bytes((first, bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((first, bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return header + payload
    mask = mask or os.urandom(4)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
