"""Reading the cluster's stream: every process delivers every entry to its own sockets, in batches.

One reader task per process reads the stream (XREAD, blocking up to
`BLOCK_MS`). The emits to everyone a process sends in one pipeline go in one
MULTI/EXEC (handlers/cluster/writes.py), which Redis hands to a blocked reader
whole (emits to rooms go to their groups' streams, each on its own). A
read that returns entries waits until this process's own emits queued so far
are in the stream (`settled`: the pipeline in flight, and the one queued
behind it), then, if this process wrote entries after the last one read,
reads on without blocking: a burst of emits split over two pipelines (the
second queued while the first was in flight) is delivered together, and the
sockets get all of it before the engine's next flush, one write per client
per read, as a local broadcast of the same emits would. Without the wait, a
burst split once stays split: each client gets two writes, its answers come
back apart, and the next burst is split again. The price: a delivery waits
for this process's pipelines in flight (a Redis round trip each, tens of µs
on one host; at most SETTLE_S) and, when there are, one more read.
A process does not know of other processes' pipelines in flight: their
bursts split over two pipelines reach its sockets in two writes.

The entries of a batch are grouped by their receivers: consecutive entries
for the same group (the usual case: everyone) compute their sockets once.

The reader says when it last finished a read (`read_at`): one stuck in a
read that never returns (a connection gone quiet) is seen by the cluster's
watchdog and started again on a new connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from ..socketio.adapter import deliver
from ..socketio.broadcast import Broadcast
from ..wire.protocol import Outgoing

if TYPE_CHECKING:
    from ..socketio.hub import Hub

log = logging.getLogger("board.redis")

BLOCK_MS = 2000   # a blocking read returns at least this often, entries or not
COUNT = 1000      # entries per read at most
SETTLE_S = 0.1    # the longest a read waits for this process's own emits in flight
FOLLOW_UPS = 2    # non-blocking reads after a blocking one, while this process wrote more


def head(namespace: str, attachments: int) -> str:
    """The Socket.IO packet text before its JSON: type, attachments, namespace."""
    h = f"45{attachments}-" if attachments else "42"
    return h + (namespace + "," if namespace != "/" else "")


def text_fields(raw: dict) -> dict:
    """A stream entry as read (bytes) in the form it was written: text fields, binary attachments."""
    return {k.decode(): (v if k.startswith(b"a") else v.decode()) for k, v in raw.items()}


def outgoing(offset: str, fields: dict) -> tuple[Outgoing, Outgoing]:
    """The entry's packet with `offset` appended, and without it."""
    h, body = fields["h"], fields["b"]
    buffers = [fields[f"a{k}"] for k in range(len(fields) - 5)]
    with_offset = Outgoing([f'{h}{body[:-1]},"{offset}"]', *buffers], checked=True)
    return with_offset, Outgoing([h + body, *buffers], checked=True)


def parsed(found: Any) -> list[tuple[str, dict | None]]:
    """What XREAD returned as (offset, text fields); None for an entry that does not decode."""
    entries: list[tuple[str, dict | None]] = []
    for _, batch in found or ():
        for entry_id, raw in batch:
            try:
                entries.append((entry_id.decode(), text_fields(raw)))
            except Exception:
                log.warning("a stream entry that does not decode was dropped: %r", entry_id)
                entries.append((entry_id.decode(), None))
    return entries


def deliver_entries(hub: "Hub", entries: list[tuple[str, dict]]) -> None:
    """Entries (offset, text fields) to this process's sockets, in order; runs of entries for the
    same receivers compute them once. An entry that does not parse is logged and skipped."""
    key: tuple | None = None
    targets: list = []
    for offset, fields in entries:
        if fields is None:
            continue
        try:
            spec = (fields["n"], fields["i"], fields["x"])
            if spec != key:
                key = spec
                namespace = hub.namespaces.get(fields["n"])
                targets = [] if namespace is None else Broadcast(
                    namespace, set(json.loads(fields["i"])), set(json.loads(fields["x"]))).sockets()
            if targets:
                hub.stats.broadcast(len(targets))
                out, plain = outgoing(offset, fields)
                deliver(targets, out, lambda: plain)
        except Exception:
            key = None
            log.exception("a stream entry that does not parse was dropped: %s", offset)


class StreamReader:
    """Reads `stream` after `position()` and hands each batch to `delivered(last_id, entries)`;
    `failed(exc)` and `succeeded()` tell the adapter whether Redis answers."""

    def __init__(self, redis: Any, stream: str, position: Callable[[], str],
                 delivered: Callable[[str, list], None], failed: Callable[[Exception], None],
                 succeeded: Callable[[], None], settled: Callable[[], Awaitable[None]] | None = None,
                 block_ms: int = BLOCK_MS, settle_s: float = SETTLE_S,
                 written_after: Callable[[str], bool] | None = None, shards: Any = None):
        self.settled = settled  # until this process's emits queued so far are in the stream
        self.written_after = written_after  # whether this process wrote entries after an id
        self.settle_s = settle_s
        self.shards = shards  # room groups read too (handlers/cluster/shards.py), or None
        self.redis = redis
        self.block_ms = block_ms
        self.stream = stream
        self.position = position
        self.delivered = delivered
        self.failed = failed
        self.succeeded = succeeded
        self.read_at = 0.0   # loop time when a read last returned (or failed), or the reader started
        self.reads = 0       # reads that returned
        self.batches = 0     # ... of which delivered entries
        self.entries = 0     # entries delivered
        self.follow_ups = 0  # non-blocking reads made after a blocking one
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self.read_at = asyncio.get_running_loop().time()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def restart(self) -> None:
        """Read again on a new connection: the stuck read is cancelled (and its connection dropped)."""
        await self.stop()
        self.start()

    def stuck_for(self, now: float) -> float:
        """Seconds past when a read should have returned."""
        return max(0.0, now - self.read_at - self.block_ms / 1000)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.1
        while True:
            try:
                epoch = self.shards.epoch if self.shards is not None else 0
                entries = await self._read(self.position(), self.block_ms)
                follow = FOLLOW_UPS
                if entries and self.settled is not None:
                    try:
                        async with asyncio.timeout(self.settle_s):
                            await self.settled()
                    except TimeoutError:
                        pass  # deliver what there is: the rest comes with the next read
                while entries and follow and len(entries) < COUNT and (
                        self.written_after is None or self.written_after(entries[-1][0])):
                    follow -= 1
                    self.follow_ups += 1
                    more = await self._read(entries[-1][0], None)
                    if not more:
                        break
                    entries += more
                delay = 0.1
                self.read_at = loop.time()
                self.reads += 1
                self.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.read_at = loop.time()
                self.failed(exc)
                log.debug("reading the Redis stream failed (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if entries and self.shards is not None and self.shards.epoch != epoch:
                continue  # a room group was added meanwhile: read again with it, from the same position
            if entries:
                self.batches += 1
                self.entries += len(entries)
                self.delivered(entries[-1][0], entries)

    async def _read(self, position: str, block: int | None) -> list[tuple[str, dict | None]]:
        if self.shards is None:
            return parsed(await self.redis.xread({self.stream: position}, count=COUNT, block=block))
        streams = self.shards.streams(position, block is not None)
        return self.shards.merge(await self.redis.xread(streams, count=COUNT, block=block), COUNT)
