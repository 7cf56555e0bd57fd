"""A cluster keeps the batching of one process: emits that leave in two pipelines come back in one read.

A process's emits of one loop turn go to Redis in one pipeline; those made while it is in flight go
in the next. The stream reader waits, before it reads on, until this process's emits queued so far
are in the stream, so both pipelines reach each client together (one write), as a local broadcast
of the same emits would. A real redis-server of the test's own.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from conftest import until

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import Node, cluster, redis_server  # noqa: E402,F401 (fixtures)
from test_redis_adapter import RawClient  # noqa: E402

from handlers.cluster.stream import StreamReader  # noqa: E402

pytestmark = pytest.mark.gen_test(timeout=30)


async def blocked_readers(redis, count: int, timeout: float = 10.0) -> None:
    """Until Redis has `count` clients blocked (the readers' XREADs: nothing else here blocks);
    Redis says so only when asked."""
    async def check():
        while (await redis.info("clients"))["blocked_clients"] != count:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(check(), timeout)


async def test_a_read_waits_for_the_emits_in_flight_and_delivers_them_together(redis_server):
    import redis.asyncio as redis

    r = redis.Redis.from_url(redis_server.url)
    waiting, release = asyncio.Event(), asyncio.Event()
    batches: list[list[str]] = []

    async def settled() -> None:  # this process's emits in flight: held until the test says
        waiting.set()
        await release.wait()

    reader = StreamReader(r, "s", lambda: batches[-1][-1] if batches else "0-0",
                          lambda last, entries: batches.append([offset for offset, _ in entries]),
                          lambda exc: None, lambda: None, settled, block_ms=1000, settle_s=20)
    reader.start()
    try:
        first = (await r.xadd("s", {"n": "/"})).decode()
        await asyncio.wait_for(waiting.wait(), 10)  # the read came back with `first`, and waits
        second = (await r.xadd("s", {"n": "/"})).decode()  # a pipeline in flight lands meanwhile
        release.set()
        await until(lambda: batches)
        assert batches == [[first, second]]
        assert (reader.batches, reader.entries) == (1, 2)
    finally:
        await reader.stop()
        await r.aclose()


async def test_settled_follows_every_pipeline_queued_before_it_is_done(redis_server):
    node = await Node(redis_server.url).start()
    try:
        adapter = node.hub.adapter
        node.hub.emit("shout", 1)
        await asyncio.sleep(0)  # the writer takes it: its pipeline is in flight
        node.hub.emit("shout", 2)  # queued behind it, for the next pipeline
        assert adapter.writes.emits_settled < adapter.writes.emits_queued == 2
        await adapter.writes.settled()
        assert adapter.writes.emits_settled == 2
        assert await adapter.redis.xlen(adapter.stream) == 2
    finally:
        await node.stop()


async def test_the_emits_of_one_turn_come_back_in_one_read_with_no_read_after_it(cluster):
    a, _ = cluster
    client = RawClient()
    await client.connect(a.url)
    try:
        reader = a.hub.adapter.reader
        before = (reader.batches, reader.entries, reader.follow_ups)
        for n in range(5):
            a.hub.emit("shout", n)  # one pipeline, one MULTI/EXEC: Redis wakes the reader once, with all five
        assert [await client.event() for _ in range(5)] == [["shout", n] for n in range(5)]
        assert (reader.batches - before[0], reader.entries - before[1], reader.follow_ups - before[2]) == (1, 5, 0)
    finally:
        client.ws.close()


async def test_a_burst_over_two_pipelines_reaches_a_client_in_one_delivery_in_order(cluster):
    a, _ = cluster
    client = RawClient()
    await client.connect(a.url)
    try:
        reader = a.hub.adapter.reader
        before = (reader.batches, reader.entries)
        for n in range(3):
            a.hub.emit("shout", 2 * n)
            await asyncio.sleep(0)  # the next emit leaves in another pipeline
            a.hub.emit("shout", 2 * n + 1)
        assert [await client.event() for _ in range(6)] == [["shout", n] for n in range(6)]
        assert (reader.batches - before[0], reader.entries - before[1]) == (1, 6)
    finally:
        client.ws.close()


async def test_a_turn_of_emits_to_everyone_and_to_a_room_group_reaches_blocked_readers_whole(cluster):
    """Emits to room groups are not put in one MULTI/EXEC with emits to everyone: a reader blocked on
    several streams is woken with one stream's entries, and would read on past the others'."""
    from test_shards import member, rooms_in_distinct_groups

    a, b = cluster
    assert a.hub.adapter.shards is not None  # room groups on: a real redis-server 7
    blue = rooms_in_distinct_groups(1)[0]
    on_a, on_b = await member(a.url, blue), await member(b.url, blue)
    try:
        await blocked_readers(a.hub.adapter.redis, 2)  # both in XREAD on the main stream and blue's group
        for n in range(12):
            (a.hub if n % 2 == 0 else a.hub.to(blue)).emit("news", n)  # one turn: one pipeline
        assert [await on_a.next("news") for _ in range(12)] == list(range(12))
        assert [await on_b.next("news") for _ in range(12)] == list(range(12))
    finally:
        await on_a.close()
        await on_b.close()
