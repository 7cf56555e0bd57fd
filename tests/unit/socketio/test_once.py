"""The store of `once` events in one process (handlers/socketio/once.py): one run per key, the ack replayed,
bounded in entries, bytes and time. (The Redis store: tests/e2e/test_once_cluster.py.)"""

import asyncio

import pytest

from handlers.socketio.once import BUSY, DONE, RUN, MemoryOnce

pytestmark = pytest.mark.timeout(30)


async def _replays(store) -> None:
    assert await store.begin("k1") == (RUN, None)
    assert await store.begin("k1") in ((BUSY, None), (DONE, [{"ok": True}]))  # redis: busy; memory: waits
    await store.finish("k1", [{"ok": True}])
    assert await store.begin("k1") == (DONE, [{"ok": True}])
    assert await store.begin("k2") == (RUN, None)
    await store.abandon("k2")  # the handler failed: a retry runs it again
    assert await store.begin("k2") == (RUN, None)
    await store.finish("k2", [b"binary"])  # not JSON: not kept
    assert await store.begin("k2") == (RUN, None)


def test_memory_runs_once_and_a_retry_waits_for_the_first_try():
    async def scenario():
        store = MemoryOnce(60_000)
        assert await store.begin("k0") == (RUN, None)
        waiting = asyncio.ensure_future(store.begin("k0"))  # a retry while the handler runs
        await asyncio.sleep(0)
        assert not waiting.done()
        await store.finish("k0", ["answer"])
        assert await waiting == (DONE, ["answer"])
        store2 = MemoryOnce(60_000)
        task = asyncio.ensure_future(_replays(store2))
        await asyncio.sleep(0.01)
        if not task.done():  # the memory store's retry waits for finish: give it
            await store2.finish("k1", [{"ok": True}])
        await task

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
