#!/usr/bin/env python3
"""What connection state recovery costs in memory, per broadcast kept and per client.

    python bench/recovery_memory.py

Measured with tracemalloc on the hub's own objects (no network): the log entry a
broadcast leaves (its packet is held by the log as long as the entry lives), and what
a connected client adds with recovery on (a pid, the live index, a ring of its own
emits after its first one), and what a lost client leaves for the window.
"""
import os
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from handlers.wire.protocol import EVENT, Outgoing, Packet  # noqa: E402
from handlers.socketio.recovery import Recent, RecoveryLog, Saved  # noqa: E402

N = 10_000


def measure(fn) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = fn()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return (after - before) / N


def broadcasts(size: int):
    def run():
        log = RecoveryLog(120_000, max_packets=N, max_bytes=2**40)
        body = {"msg": "x" * size}
        for _ in range(N):
            offset = log.next_offset()
            out = Outgoing.of(Packet(EVENT, "/", ["news", body, log.format(offset)]))
            out.frames  # written to WebSocket clients: the frame is built and kept with it
            log.append(offset, "/", frozenset(), frozenset(), out)
        return log
    return run


def clients():
    log = RecoveryLog(120_000)
    live = {}
    rings = []
    for i in range(N):
        pid = log.new_pid()
        live[pid] = i
        ring = Recent()
        offset = log.next_offset()
        ring.add(offset, Outgoing.of(Packet(EVENT, "/", ["private", {"msg": "hi"}, log.format(offset)])), 64, 2**18)
        rings.append((pid, ring))
    return live, rings


def lost():
    log = RecoveryLog(120_000)
    for i in range(N):
        log.save(Saved(log.new_pid(), f"socket-id-{i:010d}", "/", ("room",), None, 0, None, time.monotonic() + 120))
    return log


if __name__ == "__main__":
    for size in (100, 1000):
        print(f"per broadcast kept in the log, {size} B payload: {measure(broadcasts(size)):,.0f} B "
              f"(the packet as text + its WebSocket frame + the entry)")
    print(f"per connected client (pid, live index, ring with one private emit): {measure(clients):,.0f} B")
    print(f"per lost client kept for the window (no own emits): {measure(lost):,.0f} B")
