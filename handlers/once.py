"""Events handled once per client emit: `@hub.on("post", once=True)`.

A client that retries an emit whose ack it lost (the connection dropped after
the server did the work, or the ack frame never arrived) would run the handler
again. For an event registered with `once=True`, the hub keeps the ack of each
emit, keyed by the namespace, the socket's id and the emit's ack id, for the
recovery window: a retry with the same ack id gets the stored ack again and
the handler does not run. The socket's id survives connection state recovery
and, on a cluster, the keys live in Redis, so the retry may come back on a new
connection to any process; the key is the server's own view of the socket, so
a client can only ever replay its own acks.

On the wire nothing is added: the emit's ack id is its id. Our client
(static/socket.io.js) sends every try of an emit with the same ack id;
socket.io-client up to 4.6.0 did too, and from 4.6.1 gives each try a new one,
so the handler runs once per try for it, as without `once` (its apps carry a
key of their own in the payload, as the board's posts do).

A retry that comes while the first try's handler still runs waits for it in
one process; across processes it gets no answer (the client tries again after
its ack timeout, by when the ack is stored). A handler that raises leaves no
trace (a retry runs it again); acks that are not JSON (binary) are not kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from typing import Any

RUN, DONE, BUSY = "run", "done", "busy"
RUNNING = ""  # the Redis value while the first try's handler runs


def _size(ack: list) -> int | None:
    """Bytes of the ack as JSON, or None when it is not JSON (binary): then it is not kept."""
    try:
        return len(json.dumps(ack, separators=(",", ":")))
    except (TypeError, ValueError):
        return None


class MemoryOnce:
    """The acks of one process, for `window_ms`: at most `max_entries` and `max_bytes` of acks
    (the oldest go first: a retry after that runs the handler again)."""

    def __init__(self, window_ms: int, max_entries: int = 10_000, max_bytes: int = 16 * 2**20):
        self.window = window_ms / 1000
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.replayed = 0  # retries answered with a stored ack
        # key -> [expires, ack list | Future while running, size]
        self._entries: OrderedDict[str, list] = OrderedDict()

    async def begin(self, key: str) -> tuple[str, Any]:
        """(RUN, None): run the handler; (DONE, ack): replay it; (BUSY, None): no answer."""
        now = time.monotonic()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = [now + self.window, asyncio.get_running_loop().create_future(), 0]
            self._bound()
            return RUN, None
        value = entry[1]
        if isinstance(value, asyncio.Future):
            try:
                value = await asyncio.shield(value)  # the first try's handler: its ack, or it failed
            except Exception:
                return BUSY, None
        self.replayed += 1
        return DONE, value

    async def finish(self, key: str, ack: list) -> None:
        entry = self._entries.get(key)
        size = _size(ack)
        if entry is None or not isinstance(entry[1], asyncio.Future):
            return
        waiting = entry[1]
        if size is None:
            del self._entries[key]
        else:
            entry[1], entry[2] = ack, size
            self.bytes += size
            self._bound()
        waiting.set_result(ack)

    async def abandon(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and isinstance(entry[1], asyncio.Future):
            entry[1].set_exception(RuntimeError("the handler failed"))
            entry[1].exception()  # retrieved: a retry that waited gets BUSY, nobody else asks

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, entry = next(iter(entries.items()))
            if entry[0] > now:
                break
            self._drop(key)

    def _bound(self) -> None:
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry[2]
        if isinstance(entry[1], asyncio.Future) and not entry[1].done():
            entry[1].set_exception(RuntimeError("forgotten"))
            entry[1].exception()

    def __len__(self) -> int:
        return len(self._entries)


class RedisOnce:
    """The acks of a cluster, in Redis under `<prefix>:once:`, each for `window_ms`: any process
    answers a retry. A key is claimed with SET NX (one process runs the handler)."""

    def __init__(self, redis: Any, prefix: str, window_ms: int, max_bytes: int = 1 * 2**20):
        self.redis = redis
        self.prefix = f"{prefix}:once:"
        self.window = window_ms
        self.max_bytes = max_bytes  # a larger ack is not kept
        self.replayed = 0

    async def begin(self, key: str) -> tuple[str, Any]:
        name = self.prefix + key
        if await self.redis.set(name, RUNNING, nx=True, px=self.window):
            return RUN, None
        raw = await self.redis.get(name)
        if raw is None:  # expired in between: as new
            return (RUN, None) if await self.redis.set(name, RUNNING, nx=True, px=self.window) else (BUSY, None)
        if raw in (b"", ""):
            return BUSY, None  # running on some process: the client tries again later
        self.replayed += 1
        return DONE, json.loads(raw)

    async def finish(self, key: str, ack: list) -> None:
        size = _size(ack)
        if size is None or size > self.max_bytes:
            await self.redis.delete(self.prefix + key)
            return
        await self.redis.set(self.prefix + key, json.dumps(ack, separators=(",", ":")), xx=True, px=self.window)

    async def abandon(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)
