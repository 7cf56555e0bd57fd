"""A process whose Redis connections go quiet without failing (a NAT that forgot them): its stream
reader and listeners are seen to have stalled, /readyz says so, and they are started again.

The process reaches the real redis-server through the tests' proxy, which blackholes the
connections open at that moment (nothing forwarded, nothing closed) and lets new ones through.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import pytest
from conftest import http, until

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultproxy import FaultProxy  # noqa: E402
from e2e_support import Node, redis_server  # noqa: E402,F401 (fixture)
from test_redis_adapter import connected  # noqa: E402

pytestmark = pytest.mark.gen_test(timeout=40)


async def readyz(node: Node) -> tuple[int, str]:
    answer = await http(node.url, "/readyz")
    return answer.code, answer.body.decode()


async def readyz_until(node: Node, predicate, timeout: float = 10.0) -> tuple[int, str]:
    """/readyz, asked every 0.1 s (it has no event to wait for) until `predicate(code, body)`."""
    async def ask():
        while not predicate(*(answer := await readyz(node))):
            await asyncio.sleep(0.1)
        return answer
    return await asyncio.wait_for(ask(), timeout)


async def test_a_reader_and_listeners_gone_quiet_fail_readyz_are_logged_and_restarted(redis_server, caplog):
    proxy = await FaultProxy(redis_server.port).start()
    deaf = await Node(f"redis://127.0.0.1:{proxy.port}/0", stall_seconds=1.0).start()
    other = await Node(redis_server.url).start()
    try:
        listener = await connected(deaf.url, "shout")
        other.hub.emit("shout", "before")
        assert await listener.next("shout") == "before"
        assert (await readyz(deaf))[0] == 200
        caplog.set_level(logging.INFO, logger="board.redis")
        assert proxy.blackhole() >= 3  # the reader's, the listeners' (and the writer's): quiet from now on

        code, body = await readyz_until(deaf, lambda code, body: code == 503)
        assert "stalled" in body and "relay listener" in body and "cluster listener" in body, body
        assert any("has stalled" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)

        # Each restarted on a new connection: ready again, and the cluster's traffic reaches it again.
        def logged(text):
            return any(text in r.getMessage() for r in caplog.records)
        parts = ("stream reader", "relay listener", "cluster listener")
        await until(lambda: all(logged(f"Redis {part} works again") for part in parts), 10)
        assert all(logged(f"Redis {part} has stalled") for part in parts)
        assert (await readyz(deaf))[0] == 200
        other.hub.emit("shout", "after")
        assert await listener.next("shout") == "after"
        await listener.close()
    finally:
        await deaf.stop()
        await other.stop()
        await proxy.stop()
