"""The cluster adapter's writes to Redis: one bounded queue, one writer task, pipelines.

Every write a process makes (its emits, its sockets' state, its count, its
heartbeat) is queued here and sent in order by one task, as many as are
queued at once in one pipeline: the emits of one loop turn reach the stream
together, in one MULTI/EXEC when there are several, all to everyone (Redis
then wakes a blocked reader once, with all of them). A socket's state and the count are
coalesced (one queued at a time, the newest wins).

The queue also says when the emits queued so far are in the stream
(`settled`), and whether it wrote any after a given entry (`written_after`):
the stream reader waits for the first before it reads on, and reads on only
if the second says so, so that emits that went out in two pipelines (the
second queued while the first was in flight) come back in one delivery and
reach each client in one write.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .redis_adapter import RedisAdapter

log = logging.getLogger("board.redis")

BATCH = 512       # writes per pipeline at most
SETTLE_ROUNDS = 3  # pipelines `settled` waits for at most (new emits may keep coming)

# Write a socket's state only if no newer connection of its pid has written it (one that recovered it
# elsewhere): each connection writes with the time it connected, and an older one never overwrites.
SET_IF_OWNER = """
local cur = redis.call('GET', KEYS[1])
if cur and tonumber(cjson.decode(cur)['since']) > tonumber(ARGV[2]) then return 0 end
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3]) end
return 1
"""


class Writes:
    """The queue of `adapter`'s writes and the task that sends them (`run`)."""

    def __init__(self, adapter: "RedisAdapter"):
        from redis.exceptions import ConnectionError as RedisConnectionError

        self.adapter = adapter
        self.queue: deque[tuple] = deque()
        self._redis_errors = RedisConnectionError
        self._online_queued = False
        self._states: dict[str, tuple] = {}  # key -> (state, since, ttl) not yet written
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.emits_queued = 0    # emits (XADDs) queued since the start
        self.emits_settled = 0   # ... of which written (or given up on)
        self.last_written = (0, 0)  # the stream id of this process's last emit Redis took
        self._wrote = asyncio.Event()  # set (and replaced) each time a pipeline is done
        self._set_if_owner = adapter.redis.register_script(SET_IF_OWNER)

    def push(self, op: tuple) -> bool:
        """Queue a write; False if the queue is full (logged)."""
        kind = op[0]
        if kind == "online" and self._online_queued:
            return True  # the one queued writes the count as it is when it is sent
        if len(self.queue) >= self.adapter.max_queue:
            log.error("Redis write queue full (%d): dropping %s", self.adapter.max_queue, kind)
            return False
        if kind == "online":
            self._online_queued = True
        elif kind == "xadd":
            self.emits_queued += 1
        self.queue.append(op)
        self._idle.clear()
        self._wake.set()
        return True

    def push_state(self, key: str, state: str, since: int, ttl_ms: int) -> None:
        """A socket's state to write; one queued per socket, the newest wins (a client that joins
        and leaves rooms in a loop costs one write per batch, not one per change)."""
        queued = key in self._states
        self._states[key] = (state, since, ttl_ms)
        if not queued and not self.push(("state", key)):
            del self._states[key]

    def _take(self, op: tuple) -> tuple:
        """A queued write as it is sent: a socket's newest state, the count as it is now."""
        kind = op[0]
        if kind == "state":
            return ("state", op[1], *self._states.pop(op[1]))
        if kind == "online":
            self._online_queued = False
        return op

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or given up on)."""
        await self._idle.wait()

    async def settled(self) -> None:
        """Until the emits queued so far are in the stream (or given up on), following the ones
        queued meanwhile for at most SETTLE_ROUNDS pipelines: a steady flow of emits cannot hold
        the reader back for longer."""
        for _ in range(SETTLE_ROUNDS):
            if self.emits_settled >= self.emits_queued:
                return
            await self._wrote.wait()

    async def run(self) -> None:
        """The writer task: what is queued, in order, in pipelines of up to BATCH writes."""
        adapter = self.adapter
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue:
                batch = [self._take(self.queue.popleft()) for _ in range(min(len(self.queue), BATCH))]
                try:
                    if not adapter.reachable:  # the reader tells when it is back
                        adapter._deliver_locally(batch)
                        continue
                    try:
                        await self._send_retrying(batch)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        adapter._unreachable(exc)
                        adapter._deliver_locally(batch)
                except Exception:
                    log.exception("writing to Redis failed; %d operations dropped", len(batch))
                finally:
                    self.emits_settled += sum(1 for op in batch if op[0] == "xadd")
                    wrote, self._wrote = self._wrote, asyncio.Event()
                    wrote.set()
            self._idle.set()

    async def _send_retrying(self, batch: list[tuple]) -> None:
        """Once more on a fresh connection if the first fails: after a Redis restart the pool
        still holds connections the old server closed; a connection gone quiet holds a write
        forever, so a write gets `stall_seconds` (then its connection is dropped)."""
        stall = self.adapter.stall_seconds
        try:
            await asyncio.wait_for(self._send(batch), stall)
        except (ConnectionError, OSError, asyncio.TimeoutError, self._redis_errors) as exc:
            log.debug("Redis write failed (%s); once more", exc or "timed out")
            # The pool's other idle connections are as stale as that one (a restart closed them all).
            await self.adapter.redis.connection_pool.disconnect(inuse_connections=False)
            await asyncio.wait_for(self._send(batch), stall)

    def written_after(self, entry_id: str) -> bool:
        """Whether Redis holds an emit of this process later than `entry_id`."""
        ms, _, seq = entry_id.partition("-")
        return self.last_written > (int(ms), int(seq or 0))

    async def _send(self, batch: list[tuple]) -> None:
        """One pipeline. Several emits all to the main stream go in one MULTI/EXEC: Redis then wakes
        a blocked reader once, with all of them, and it needs no read after. Not with emits to room
        groups (handlers/cluster/shards.py): a reader blocked on several streams is woken with the
        entries of one of them, and its position would pass the others' entries of the same EXEC."""
        a = self.adapter
        emits = [op for op in batch if op[0] == "xadd"]
        pipe = a.redis.pipeline(transaction=len(emits) > 1 and all(len(op) == 2 for op in emits))
        for op in batch:
            kind = op[0]
            if kind == "xadd" and len(op) > 2:  # to rooms: their groups' streams (handlers/cluster/shards.py)
                a.shards.append(pipe, op[1], op[2], a.max_packets)
            elif kind == "xadd":
                pipe.xadd(a.stream, op[1], maxlen=a.max_packets, approximate=True)
            elif kind == "state":
                await self._set_if_owner(keys=[op[1]], args=[op[2], op[3], op[4]], client=pipe)
            elif kind == "touch":
                pipe.pexpire(op[1], op[2])
            elif kind == "online":  # the count as it is now: right again after an outage
                pipe.hset(a.online_key, a.process, a.hub.count)
            elif kind == "alive":
                pipe.set(f"{a.prefix}:alive:{a.process}", 1, px=3 * a.hub.engine.ping_interval)
        results = await pipe.execute(raise_on_error=False)
        again = a.shards.unloaded(results) if a.shards is not None else []
        if again:  # a Redis that restarted has forgotten the room emits' script
            await a.shards.load()
            await self._send([batch[k] for k in again])
        for k, (op, result) in enumerate(zip(batch, results)):
            if isinstance(result, Exception):
                if k not in again:
                    raise result
            elif op[0] == "xadd":  # its entry's id: the emits this process wrote (`written_after`)
                ms, _, seq = (result.decode() if isinstance(result, bytes) else str(result)).partition("-")
                self.last_written = max(self.last_written, (int(ms), int(seq or 0)))
