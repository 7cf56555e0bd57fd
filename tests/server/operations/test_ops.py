"""The hub's operations: the limits plugged into the engine, health, readiness, the drain."""

import asyncio

import pytest

from conftest import http, until
from handlers import Hub
from handlers.operations.ops import RATE_LIMITED

pytestmark = pytest.mark.gen_test(timeout=30)


def test_the_engine_is_guarded_by_the_admission():
    hub = Hub()
    assert hub.engine.admission is hub.ops.admission
    assert hub.ops.admission in hub.engine.watchers


async def test_health_and_readiness(url, hub):
    assert (await http(url, "/healthz")).body == b"ok\n"
    assert (await http(url, "/readyz")).code == 200
    hub.ops.checks.append(lambda: "database down")
    ready = await http(url, "/readyz")
    assert ready.code == 503 and ready.body == b"database down\n"
    hub.ops.checks.clear()
    await hub.drain(0)
    assert hub.ops.draining
    ready = await http(url, "/readyz")
    assert ready.code == 503 and ready.body == b"draining\n"
    refused = await http(url)  # and no new session
    assert refused.code == 503


@pytest.fixture
def hub_options():
    return {"ping_interval": 300, "ping_timeout": 300, "event_rate": 0.001, "event_burst": 1}


async def test_an_event_over_the_rate_is_answered_with_the_rate_limited_ack(url, hub, clients):
    @hub.on("go")
    def go(socket):
        return "went"

    client = await clients().connect(url, transports=["websocket"])
    assert await client.client.call("go", timeout=3) == "went"
    assert await client.client.call("go", timeout=3) == RATE_LIMITED


async def test_the_admin_ui_hook_sees_events(url, hub, clients):
    seen = asyncio.Queue()

    class Monitor:
        def event_received(self, socket, data):
            seen.put_nowait(data[0])

        def room_joined(self, socket, room):
            seen.put_nowait(("joined", room))

        def room_left(self, socket, room):
            pass

    hub.ops.watch_with(Monitor())
    client = await clients().connect(url, transports=["websocket"])
    await client.client.emit("hello")
    assert await asyncio.wait_for(seen.get(), 3) == "hello"
    await until(lambda: hub.count == 1)
    next(iter(hub.sockets.values())).join("r")
    assert await asyncio.wait_for(seen.get(), 3) == ("joined", "r")
