"""The handoff: what moves with a session when its upgrade lands on another process.

Two hubs share a real Redis. The move itself (a client's upgrade reaching the
other process) is in test_redis_adapter.py; here, what the old owner exports
and what it does with the acks it still waits for.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from conftest import Recorder, until
from handlers import Disconnected
from e2e_support import cluster, redis_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gen_test(timeout=30)


@pytest.fixture
def on_a(cluster, io_loop):
    """A polling client of process a; its socket there. Closed after the test."""
    a = cluster[0]

    async def connect():
        client = await Recorder(()).connect(a.url, transports=["polling"])
        await until(lambda: a.hub.count == 1)
        return client, next(iter(a.hub.sockets.values()))
    client, socket = io_loop.run_sync(connect)
    yield a, socket
    io_loop.run_sync(client.close)


async def test_export_takes_the_sockets_state_out_of_this_process(on_a, caplog):
    a, socket = on_a
    socket.join("red")
    socket.data["name"] = "Ann"
    socket.data["not json"] = object()
    with caplog.at_level(logging.WARNING):
        context = a.hub.engine.handoff.export(socket.client.session)
    (moved,) = context["sockets"]
    assert moved["id"] == socket.id and moved["rooms"] == ["red"] and moved["ns"] == "/"
    assert moved["data"] is None and "does not move with its socket" in caplog.text
    assert socket.id not in a.hub.sockets            # out of its namespace
    assert list(a.hub.to("red").sockets()) == []     # and out of its rooms
    assert context["environ"]["transport"] == "polling"


async def test_acks_still_awaited_when_forwarding_ends_give_up(on_a):
    a, socket = on_a
    call = asyncio.ensure_future(socket.call("never-answered", timeout=10))
    await until(lambda: socket.pending_acks() != [])
    a.hub.engine.handoff.release(socket.client.session)
    with pytest.raises(Disconnected):
        await asyncio.wait_for(call, 3)
    assert socket.pending_acks() == []


async def test_an_ack_for_a_request_made_before_the_move_reaches_its_caller(on_a):
    a, socket = on_a
    got = []
    ack_id = socket.expect_ack(got.append)
    a.hub.engine.handoff.ack(socket.client.session, "/", ack_id, ["late answer"])
    assert got == [["late answer"]]
