"""Room groups on a cluster (handlers/cluster/shards.py): an emit to a room is read only by the
processes with a member in it, each member gets it once and in order, and nothing is lost on a
join, a leave, a process killed without warning or a Redis restart.

Hubs in this process (as test_redis_adapter.py) and one real process for the SIGKILL, on a real
redis-server 7. A process's `shards.read` counts the entries its reader got from Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Recorder, until
from test_redis_adapter import RawClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import Node, free_port, redis_server, stop_process, wait_until  # noqa: E402,F401 (fixtures)

from handlers.cluster.shards import SOCKET_ID, group_of  # noqa: E402

pytestmark = pytest.mark.gen_test(timeout=30)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def three(io_loop, redis_server):
    nodes = [Node(redis_server.url) for _ in range(3)]
    for node in nodes:
        io_loop.run_sync(node.start)
    yield nodes
    for node in nodes:
        io_loop.run_sync(node.stop)


def rooms_in_distinct_groups(count: int, prefix: str = "room") -> list[str]:
    """Room names whose groups differ from each other (so each join is a new group)."""
    rooms, groups, n = [], set(), 0
    while len(rooms) < count:
        name, n = f"{prefix}-{n}", n + 1
        if group_of("/", name) not in groups:
            groups.add(group_of("/", name))
            rooms.append(name)
    return rooms


async def member(url: str, room: str, *events: str) -> Recorder:
    client = await Recorder(events or ("news",)).connect(url, transports=["websocket"])
    await client.client.call("join", room, timeout=5)   # the ack: the server has joined it
    return client


def read(node: Node) -> int:
    return node.hub.adapter.shards.read


async def test_a_room_emit_reaches_its_members_elsewhere_once_in_order_and_no_bystander(three):
    a, b, c = three
    blue, red = rooms_in_distinct_groups(2)
    on_b, on_c = await member(b.url, blue), await member(c.url, red)
    try:
        read_a, read_c = read(a), read(c)
        for n in range(50):
            a.hub.to(blue).emit("news", n)
        a.hub.emit("news", "end")     # to everyone: after the 50 in the one order, so all are in by then
        got = [await on_b.next("news") for _ in range(51)]
        assert got == [*range(50), "end"]
        assert await on_c.next("news") == "end"
        await a.hub.adapter.flush()
        assert on_b.queues["/news"].empty() and on_c.queues["/news"].empty()   # once each
        # The bystanders (c, and a, which emitted but has no member) read the everyone-emit only.
        assert read(c) - read_c == 1 and read(a) - read_a == 1
        assert set(c.hub.adapter.shards.counts) == {group_of("/", red)}
    finally:
        await on_b.close()
        await on_c.close()


async def test_room_and_everyone_emits_keep_the_order_they_were_made_in(three):
    """One id sequence for every stream: a member gets room and everyone-emits interleaved as made."""
    a, b, _ = three
    blue, green = rooms_in_distinct_groups(2)
    on_b = await member(b.url, blue)
    await on_b.client.call("join", green, timeout=5)
    try:
        for n in range(60):
            target = a.hub if n % 3 == 0 else a.hub.to(blue) if n % 3 == 1 else a.hub.to(blue, green)
            target.emit("news", n)
        assert [await on_b.next("news") for _ in range(60)] == list(range(60))
        a.hub.emit("news", "end")
        assert await on_b.next("news") == "end"   # the emits to blue and green came once, not twice
    finally:
        await on_b.close()


async def test_a_join_then_at_once_an_emit_from_another_process_is_not_missed(three):
    """Each join is a new group for b: the emit made right after the join's ack is in its stream,
    read from where b's reader stood at the join."""
    a, b, _ = three
    client = await Recorder(("news",)).connect(b.url, transports=["websocket"])
    try:
        for n, room in enumerate(rooms_in_distinct_groups(12, "join")):
            await client.client.call("join", room, timeout=5)
            a.hub.to(room).emit("news", n)
            assert await client.next("news") == n
        assert len(b.hub.adapter.shards.counts) == 12
    finally:
        await client.close()


async def test_the_last_member_leaving_stops_the_reading_of_its_group(three):
    a, b, _ = three
    blue, = rooms_in_distinct_groups(1)
    first, second = await member(b.url, blue), await member(b.url, blue)
    try:
        group = group_of("/", blue)
        shards = b.hub.adapter.shards
        assert shards.counts[group] == 1      # one room of the group here, two members in it
        await first.close()
        await until(lambda: len(b.hub.sockets) == 1)
        a.hub.to(blue).emit("news", "still read")
        assert await second.next("news") == "still read"
        await second.close()
        await until(lambda: not b.hub.sockets)
        assert group not in shards.counts
        # The read under way still has the group (it was begun before the leave): let one return.
        before = shards.read
        a.hub.emit("news", "sync")
        await until(lambda: shards.read > before)
        before = shards.read
        for n in range(20):
            a.hub.to(blue).emit("news", n)
        a.hub.emit("news", "end")
        await a.hub.adapter.flush()
        await until(lambda: shards.read > before)
        assert shards.read - before == 1       # the everyone-emit; none of the 20
    finally:
        await first.close()
        await second.close()


async def test_a_redis_restart_loses_nothing_emitted_after_it_for_connected_members(three, redis_server):
    a, b, _ = three
    blue, = rooms_in_distinct_groups(1)
    on_b = await member(b.url, blue)
    try:
        a.hub.to(blue).emit("news", "before")
        assert await on_b.next("news") == "before"
        redis_server.restart()   # an empty Redis: b's reader reads on from where it was
        # Until a has seen the restart (stale connections), its emits reach its own clients only.
        for _ in range(20):
            a.hub.to(blue).emit("news", "after the restart")
            try:
                assert await on_b.next("news", timeout=0.5) == "after the restart"
                break
            except asyncio.TimeoutError:
                continue
        else:
            pytest.fail("the cluster is not one again after the restart")
        await a.hub.adapter.flush()
        while not on_b.queues["/news"].empty():   # a probe sent twice meanwhile
            assert on_b.queues["/news"].get_nowait() == "after the restart"
        await until(lambda: a.hub.adapter.reachable and b.hub.adapter.reachable, timeout=10)
        # A lost connection is a gap: b's reader is off while a emits, then reads from its position.
        await b.hub.adapter.reader.stop()
        for n in range(10):
            a.hub.to(blue).emit("news", n)
        await a.hub.adapter.flush()
        b.hub.adapter.reader.start()
        assert [await on_b.next("news") for _ in range(10)] == list(range(10))
        a.hub.emit("news", "end")
        assert await on_b.next("news") == "end"
    finally:
        await on_b.close()


APP = """
import asyncio, sys
import tornado.web
from tornado.httpserver import HTTPServer
from handlers import Hub, RedisAdapter

async def main():
    hub = Hub(adapter=RedisAdapter(sys.argv[2], prefix="test"))
    hub.on("join", lambda socket, room: socket.join(room))
    await hub.start()
    HTTPServer(tornado.web.Application(hub.routes())).listen(int(sys.argv[1]), "127.0.0.1")
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_client_of_a_process_killed_with_sigkill_gets_its_room_emits_on_another(three, redis_server):
    _, b, c = three
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", APP, str(port), redis_server.url], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        await asyncio.to_thread(wait_until, lambda: _answers(port), 20, "the killed process's app")
        blue, red = rooms_in_distinct_groups(2)
        client = RawClient()
        first = await client.connect(f"http://127.0.0.1:{port}")
        await client.ws.write_message(f'42["join","{blue}"]')
        on_c = await member(c.url, blue)   # a member elsewhere: b's emit is sent once the join is seen
        b.hub.to(blue).emit("news", 1)
        assert await client.event() == ["news", 1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        for n in (2, 3):
            b.hub.to(blue).emit("news", n)
        b.hub.to(red).emit("news", "not for it")
        await b.hub.adapter.flush()
        assert [await on_c.next("news") for _ in range(3)] == [1, 2, 3]   # c has read what b made
        again = await client.connect(b.url)
        assert again == first
        assert [await client.event() for _ in range(2)] == [["news", 2], ["news", 3]]
        b.hub.to(blue).emit("news", 4)   # live now, on b, once
        assert await client.event() == ["news", 4]
        await on_c.close()
    finally:
        stop_process(proc)


def _answers(port: int) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling", timeout=1):
            return True
    except Exception:
        return False


async def test_emits_to_a_socket_id_stay_on_the_stream_every_process_reads(three):
    """Where a socket is is not known: an emit to its id goes on the main stream, as before."""
    a, b, _ = three
    client = await Recorder(("news",)).connect(b.url, transports=["websocket"])
    try:
        await until(lambda: b.hub.sockets)
        sid = next(iter(b.hub.sockets))
        assert SOCKET_ID.match(sid)
        assert a.hub.adapter.shards.targets("/", {sid}) is None
        a.hub.to(sid).emit("news", "to you")
        assert await client.next("news") == "to you"
    finally:
        await client.close()


async def test_room_groups_can_be_turned_off(io_loop, redis_server):
    nodes = [Node(redis_server.url, shards=False), Node(redis_server.url, shards=False)]
    for node in nodes:
        await node.start()
    a, b = nodes
    try:
        assert a.hub.adapter.shards is None
        on_b = await member(b.url, "blue")
        a.hub.to("blue").emit("news", "by the one stream")
        assert await on_b.next("news") == "by the one stream"
        await on_b.close()
    finally:
        for node in nodes:
            await node.stop()
