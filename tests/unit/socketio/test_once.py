"""The store of `once` events in one process (handlers/socketio/once.py): one run per key, the ack replayed,
bounded in entries, bytes and time. (The Redis store: tests/e2e/test_once_cluster.py.)"""

import asyncio

import pytest

from conftest import once_store_replays
from handlers.socketio.once import DONE, RUN, MemoryOnce

pytestmark = pytest.mark.timeout(30)


def test_memory_runs_once_and_a_retry_waits_for_the_first_try():
    async def scenario():
        store = MemoryOnce(60_000)
        assert await store.begin("k0") == (RUN, None)
        waiting = asyncio.ensure_future(store.begin("k0"))  # a retry while the handler runs
        await asyncio.sleep(0)
        assert not waiting.done()
        await store.finish("k0", ["answer"])
        assert await waiting == (DONE, ["answer"])
        await once_store_replays(MemoryOnce(60_000), retry_waits=True)

    asyncio.run(scenario())


def test_memory_is_bounded_in_entries_bytes_and_time():
    async def scenario():
        store = MemoryOnce(60_000, max_entries=100, max_bytes=10_000)
        for n in range(1000):
            await store.begin(f"k{n}")
            await store.finish(f"k{n}", [n])
        assert len(store) == 100
        assert await store.begin("k0") == (RUN, None)  # forgotten: it runs again
        await store.finish("k0", ["x" * 5000])
        await store.begin("big")
        await store.finish("big", ["y" * 6000])
        assert store.bytes <= 10_000
        short = MemoryOnce(50)
        await short.begin("k")
        await short.finish("k", [1])
        await asyncio.sleep(0.1)
        assert await short.begin("k") == (RUN, None)  # past the window

    asyncio.run(scenario())
