"""A namespace: its sockets, handlers and middleware, apart from the main one."""

import asyncio

import pytest
import socketio

from conftest import until
from handlers import ConnectionRefused

pytestmark = pytest.mark.gen_test(timeout=30)


async def test_a_namespace_has_its_own_sockets_and_handlers(url, hub, clients):
    admin = hub.of("admin")
    assert hub.of("/admin") is admin and admin.name == "/admin"
    seen = asyncio.Queue()

    @admin.on("connection")
    def connected(socket):
        seen.put_nowait(socket.namespace.name)

    @admin.on("ping")
    def ping(socket, n):
        return n + 1

    client = clients()
    await client.connect(url, namespaces=["/admin"], transports=["websocket"])
    assert await asyncio.wait_for(seen.get(), 3) == "/admin"
    assert admin.count == 1 and hub.count == 0
    assert await client.client.call("ping", 1, namespace="/admin", timeout=3) == 2


async def test_middleware_refuses_with_a_message_and_data(url, hub, clients):
    guarded = hub.of("/guarded")

    @guarded.use
    def check(socket, auth):
        if not auth or auth.get("token") != "yes":
            raise ConnectionRefused("no entry", {"code": 7})

    client = clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, namespaces=["/guarded"], auth={"token": "no"}, transports=["websocket"])
    assert guarded.count == 0
    ok = clients()
    await ok.connect(url, namespaces=["/guarded"], auth={"token": "yes"}, transports=["websocket"])
    await until(lambda: guarded.count == 1)


async def test_disconnect_sockets_of_one_namespace(url, hub, clients):
    room = hub.of("/room")
    a = await clients().connect(url, namespaces=["/room"], transports=["websocket"])
    await until(lambda: room.count == 1)
    room.disconnect_sockets()
    assert room.count == 0
    await until(lambda: "/room" not in a.client.namespaces)
