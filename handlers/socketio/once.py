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
import inspect
import json
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .sockets import Socket

log = logging.getLogger("board.hub")

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


async def handle_once(socket: "Socket", ack_id: int, event: str, handler: Callable[..., Any], args: list) -> None:
    """A `once` event from `socket`: the handler runs for the first try of an emit; a retry (the same
    ack id from this socket, which keeps its id when it recovers) gets the stored ack."""
    from .sockets import _ack_args

    hub = socket.namespace.hub
    store = hub.once
    key: str | None = f"{socket.namespace.name} {socket.id} {ack_id}"
    try:
        state, stored = await store.begin(key)
    except Exception as exc:  # the store (Redis) is away: handled as without `once`
        log.warning("%s: %r handled without keeping its ack (%s)", socket, event, exc)
        state, stored, key = RUN, None, None
    if state == DONE:
        hub.stats.once_replayed += 1
        socket._send_ack(ack_id, stored)
        return
    if state != RUN:
        return  # the first try is running on another process: the client tries again
    started = time.perf_counter()
    try:
        result = handler(*args)
        if inspect.isawaitable(result):
            result = await result
    except Exception:
        log.exception("error in handler of %r for %s", event, socket)
        if key is not None:
            await _quietly(store.abandon(key))
        return
    finally:
        hub.stats.handler_time(time.perf_counter() - started)
    data = _ack_args(result)
    if key is not None:
        await _quietly(store.finish(key, data))
    socket._send_ack(ack_id, data)


async def _quietly(step: Any) -> None:
    """A write to the store that may fail (Redis away): logged, the ack goes anyway."""
    try:
        await step
    except Exception as exc:
        log.warning("the ack of a once event could not be kept: %s", exc)
