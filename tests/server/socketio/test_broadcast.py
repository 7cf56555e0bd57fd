"""A group of receivers: rooms in, rooms out, emits encoded once, calls with acks."""

import asyncio

import pytest

from conftest import until

pytestmark = pytest.mark.gen_test(timeout=30)


async def joined(url, hub, clients, *rooms_per_client):
    """One client per entry, each socket in the given rooms; (clients, sockets) in order."""
    made = []
    for rooms in rooms_per_client:
        made.append(await clients("note").connect(url, transports=["websocket"]))
        await until(lambda: len(hub.sockets) == len(made))
    sockets = list(hub.sockets.values())
    for socket, rooms in zip(sockets, rooms_per_client):
        socket.join(*rooms)
    return made, sockets


async def test_rooms_in_and_rooms_out(url, hub, clients):
    (a, b, c), _ = await joined(url, hub, clients, ["red"], ["red", "blue"], ["blue"])
    assert hub.to("red").except_("blue").emit("note", "red only") == 1
    assert await a.next("note") == "red only"
    assert hub.to("red", "blue").emit("note", "either") == 3  # each receiver once
    for client in (a, b, c):
        assert await client.next("note") == "either"
    assert hub.except_("red").emit("note", "not red") == 1
    assert await c.next("note") == "not red"
    assert sorted(len(s.rooms) for s in hub.to("blue").sockets()) == [2, 3]


async def test_call_collects_the_replies_that_come(url, hub, clients):
    (a, b), _ = await joined(url, hub, clients, ["room"], ["room"])
    a.client.on("q", lambda n: n + 1)
    b.client.on("q", lambda n: n + 2)
    assert sorted(await hub.to("room").call("q", 10, timeout=3)) == [11, 12]


async def test_call_ends_early_when_a_receiver_leaves_and_forgets_the_rest_on_timeout(url, hub, clients):
    (a, b), sockets = await joined(url, hub, clients, ["room"], ["room"])
    a.client.on("q", lambda: "a")
    answered = asyncio.Event()

    async def silent():  # b answers nothing; it leaves instead
        answered.set()
        await asyncio.sleep(10)
    b.client.on("q", silent)
    call = asyncio.ensure_future(hub.to("room").call("q", timeout=5))
    await asyncio.wait_for(answered.wait(), 3)
    sockets[1].disconnect()  # its pending ack gives up: the call need not wait 5 s
    assert await asyncio.wait_for(call, 3) == ["a"]
    assert all(s.pending_acks() == [] for s in sockets)
    # A receiver that never answers: after the timeout its ack is forgotten, not kept.
    (c,), more = await joined_more(url, hub, clients)
    c.client.on("q", silent)
    assert await hub.to("late").call("q", timeout=0.3) == []
    assert more[0].pending_acks() == []


async def joined_more(url, hub, clients):
    client = await clients().connect(url, transports=["websocket"])
    await until(lambda: any(s.rooms == {s.id} for s in hub.sockets.values()))
    socket = next(s for s in hub.sockets.values() if s.rooms == {s.id})
    socket.join("late")
    return (client,), [socket]


async def test_disconnect_and_join_through_a_group(url, hub, clients):
    (a, b), sockets = await joined(url, hub, clients, ["x"], [])
    hub.to("x").sockets_join_local("y")
    assert "y" in sockets[0].rooms and "y" not in sockets[1].rooms
    hub.to("y").disconnect_local()
    await asyncio.wait_for(a.disconnected.wait(), 3)
    assert list(hub.sockets.values()) == [sockets[1]]
