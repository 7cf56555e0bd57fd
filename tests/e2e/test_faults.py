"""Nothing lost under real network faults: connections reset mid-stream, clients come back.

The official socket.io-client (tests/node/recovery.js) runs many sockets through
a TCP proxy of ours (tests/e2e/faultproxy.py) that resets live connections with an
RST while the hub broadcasts numbered ticks. Every client must end with every
tick exactly once, in order, over each transport mode.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import NODE_DIR, require  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402

pytestmark = [pytest.mark.node, pytest.mark.gen_test(timeout=90)]

CLIENTS, TICKS, EVERY_S = 20, 80, 0.02
CUT_EVERY, CUT_FRACTION = 10, 0.2   # every 10 ticks, reset 20% of the live connections


async def read_json_line(proc: asyncio.subprocess.Process, timeout: float) -> dict:
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        raise AssertionError(f"node exited early: {(await proc.stderr.read()).decode()[-2000:]}")
    return json.loads(line)


@pytest.mark.parametrize("mode", ["websocket", "polling", "default"])
async def test_every_broadcast_once_in_order_under_resets(http_server, http_port, hub, mode):
    node = require("node", "node_modules")["node"]
    proxy = await FaultProxy(http_port).start()
    proc = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "recovery.js"), f"http://127.0.0.1:{proxy.port}", mode,
        str(CLIENTS), str(TICKS), "60000",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert await read_json_line(proc, 20) == {"ready": True}
        if mode == "default":  # let the clients upgrade, so that cuts hit WebSockets too
            await asyncio.wait_for(_until_upgraded(hub), 10)
        for tick in range(1, TICKS + 1):
            hub.emit("tick", tick)
            if tick % CUT_EVERY == 0 and tick < TICKS:
                proxy.reset(CUT_FRACTION)
            await asyncio.sleep(EVERY_S)  # the pace of the broadcasts, not a synchronisation
        summary = await read_json_line(proc, 40)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await proxy.stop()
    clients = summary["clients"]
    assert summary["done"] == "all", summary
    assert proxy.resets >= TICKS // CUT_EVERY - 1
    for c in clients:
        assert c["received"] == TICKS and c["missing"] == 0, (c, summary)
        assert c["received"] == TICKS and c["missing"] == 0, c
        assert c["duplicates"] == 0 and c["outOfOrder"] == 0, c
    comebacks = sum(c["connects"] - 1 for c in clients)
    assert comebacks > 0, summary  # the cuts did drop clients ...
    assert sum(c["recovered"] for c in clients) == comebacks, summary  # ... and each came back whole


async def _until_upgraded(hub) -> None:
    while any(s.transport != "websocket" for s in hub.engine.sessions.values()):
        await asyncio.sleep(0.01)
