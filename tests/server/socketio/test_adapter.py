"""The in-process adapter: what the hub asks of every adapter, in memory.

The `Adapter` protocol is the whole seam (start, stop, count, the emit and
recovery path): both adapters implement every method of it.
"""

import asyncio
import inspect

import pytest

from handlers import Hub, RedisAdapter
from handlers.socketio.adapter import Adapter, MemoryAdapter, wants_offsets
from handlers.socketio.recovery import RecoveryLog

pytestmark = pytest.mark.gen_test(timeout=30)


def protocol_methods() -> set[str]:
    return {name for name, member in vars(Adapter).items()
            if not name.startswith("_") and inspect.isfunction(member)}


def test_both_adapters_implement_the_whole_protocol():
    names = protocol_methods()
    assert {"start", "stop", "count", "broadcast", "send_own", "restore", "tick"} <= names
    for adapter in (MemoryAdapter, RedisAdapter):
        missing = [name for name in names if not callable(getattr(adapter, name, None))]
        assert missing == [], adapter.__name__
        assert inspect.iscoroutinefunction(adapter.start) and inspect.iscoroutinefunction(adapter.stop)
        assert inspect.iscoroutinefunction(adapter.count)


async def test_a_hub_starts_stops_and_counts_through_its_memory_adapter(url, hub, clients):
    await hub.start()
    await clients().connect(url, transports=["websocket"])
    await clients().connect(url, transports=["polling"])
    assert await hub.fetch_count() == hub.count == 2
    await hub.stop()


async def test_group_emits_carry_offsets_only_to_clients_that_use_them(url, hub, clients):
    """An official JavaScript-like client gets the offset as the last argument; python-socketio does not."""
    assert hub.adapter.recovering
    python = await clients("note").connect(url, transports=["websocket"])
    hub.emit("note", {"n": 1})
    assert await python.next("note") == {"n": 1}  # no extra offset argument
    assert not wants_offsets({"headers": {"User-Agent": "Python/3.11 aiohttp/3.9"}})
    assert wants_offsets({"headers": {"User-Agent": "Mozilla/5.0"}})


async def test_without_recovery_there_is_no_log():
    adapter = MemoryAdapter(None)
    assert not adapter.recovering
    adapter.tick()  # nothing to expire
    assert await adapter.count(3) == 3


async def test_restore_hands_back_what_a_socket_missed():
    log = RecoveryLog(60_000, max_packets=10, max_bytes=10_000)
    adapter = MemoryAdapter(log)
    hub = Hub(adapter=adapter)
    assert await adapter.restore("/", "unknown-pid", adapter.start_offset()) is None
    await asyncio.sleep(0)
    hub.close()
