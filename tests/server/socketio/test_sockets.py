"""One socket: emits with callbacks, calls, pending acks, rooms and what moves with it."""

import asyncio

import pytest

from conftest import raw_websocket, until
from handlers import Disconnected
from handlers.socketio.sockets import PendingAck

pytestmark = pytest.mark.gen_test(timeout=30)


async def one_socket(url, hub, clients):
    client = await clients("note").connect(url, transports=["websocket"])
    await until(lambda: hub.count == 1)
    return client, next(iter(hub.sockets.values()))


def test_a_pending_ack_gives_up_only_when_it_can():
    failed = []
    PendingAck(lambda data: None).give_up()  # an emit's callback: dropped quietly
    PendingAck(lambda data: None, lambda: failed.append(1)).give_up()
    assert failed == [1]


async def test_emit_callback_and_call(url, hub, clients):
    client, socket = await one_socket(url, hub, clients)
    client.client.on("q", lambda n: n * 2)
    got = asyncio.get_running_loop().create_future()
    socket.emit("q", 4, callback=got.set_result)
    assert await asyncio.wait_for(got, 3) == 8
    assert await socket.call("q", 5, timeout=3) == 10
    assert socket.pending_acks() == []


async def test_a_call_fails_with_disconnected_when_the_socket_leaves(url, hub):
    ws = await raw_websocket(url)
    await ws.read_message()
    await ws.write_message("40")
    assert (await ws.read_message()).startswith("40")
    await until(lambda: hub.count == 1)
    socket = next(iter(hub.sockets.values()))
    call = asyncio.ensure_future(socket.call("never", timeout=10))
    await until(lambda: socket.pending_acks() != [])
    socket.disconnect()
    with pytest.raises(Disconnected):
        await asyncio.wait_for(call, 3)
    ws.close()


async def test_pending_acks_are_bounded(url, hub_options, clients):
    from handlers import Hub
    assert Hub(max_pending_acks=2).max_pending_acks == 2


async def test_rooms_and_the_state_that_moves_with_a_socket(url, hub, clients):
    client, socket = await one_socket(url, hub, clients)
    socket.join("a", ["b", "c"])
    socket.leave("c")
    socket.data["name"] = "Ann"
    assert socket.rooms == {socket.id, "a", "b"}
    state = socket.state()
    assert state["ns"] == "/" and state["id"] == socket.id and state["rooms"] == ["a", "b"]
    assert state["data"] == {"name": "Ann"} and state["acks"] == []
    socket.to("a").emit("note", "to the others in a")  # none: the socket itself is left out
    hub.to("a").emit("note", "to a")
    assert await client.next("note") == "to a"


async def test_acknowledged_settles_an_ack_from_elsewhere(url, hub, clients):
    _, socket = await one_socket(url, hub, clients)
    seen = []
    ack_id = socket.expect_ack(seen.append)
    assert socket.pending_acks() == [ack_id]
    socket.acknowledged(ack_id, ["forwarded"])
    assert seen == [["forwarded"]] and socket.pending_acks() == []
    socket.forget_ack(socket.expect_ack(seen.append))
    assert socket.pending_acks() == []
