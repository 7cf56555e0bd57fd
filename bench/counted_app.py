#!/usr/bin/env python3
"""bench/board_app.py with counters of how the fan-out is batched (bench/cluster.py --counts).

    python bench/counted_app.py OUT.json BENCH_DIR PORT [board_app options]

BENCH_DIR: the bench/ folder whose board_app.py (and whose checkout's handlers) to run.

Counts, in this process: writes to WebSockets and the packets each carried; on Redis, the entries of
each delivered stream read and the emits of each pipeline. Written to OUT.json at SIGTERM. The wrappers
cost a little CPU: measure throughput without them.
"""
import collections
import json
import os
import runpy
import signal
import sys

OUT = sys.argv.pop(1)
APPS = os.path.abspath(sys.argv.pop(1))
sys.path.insert(0, os.path.dirname(APPS))

from handlers.cluster import redis_adapter  # noqa: E402
from handlers.transports import websocket_connection  # noqa: E402

counts = {"packets per write": collections.Counter(), "entries per read": collections.Counter(),
          "emits per pipeline": collections.Counter()}


def counted(cls, name, key, size):
    """Wrap `cls.name` so that each call counts `size(args)` under `key`."""
    original = getattr(cls, name)
    if name == "_send":
        async def wrapper(self, *args):
            counts[key][size(*args)] += 1
            return await original(self, *args)
    else:
        def wrapper(self, *args):
            counts[key][size(*args)] += 1
            return original(self, *args)
    setattr(cls, name, wrapper)


counted(websocket_connection.WebSocketConnection, "send_packets", "packets per write", len)
counted(redis_adapter.RedisAdapter, "_delivered", "entries per read", lambda last, entries: len(entries))
try:
    from handlers.cluster.writes import Writes as Writer  # noqa: E402
except ImportError:  # a tree from before the write queue had a module of its own
    Writer = redis_adapter.RedisAdapter
counted(Writer, "_send", "emits per pipeline", lambda batch: sum(op[0] == "xadd" for op in batch))


def dump(*_):
    with open(OUT, "w") as f:
        json.dump({k: sorted(c.items()) for k, c in counts.items()}, f)
    os._exit(0)


signal.signal(signal.SIGTERM, dump)
sys.argv[0] = os.path.join(APPS, "board_app.py")
runpy.run_path(sys.argv[0], run_name="__main__")
