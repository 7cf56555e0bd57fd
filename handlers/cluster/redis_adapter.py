"""Fan-out across processes on Redis: one stream that every process appends to and reads.

As socket.io's redis-streams-adapter: each group emit is appended (XADD) to
one stream under the prefix; every process, the emitting one included, reads
the stream and delivers each entry to its own sockets, so every process
delivers the same emits in the same order, each encoded once per process.
The stream's entry ids are the recovery offsets and the stream is the
recovery log, readable from any process. An emit to rooms goes instead to
the streams of the rooms' groups, read only by the processes with a member
in one, under ids of the same sequence (handlers/cluster/shards.py). Long-polling needs no sticky
sessions: a request for another process's session is relayed to it
(handlers/cluster/relay.py). A socket's state (id, rooms, data)
is written to Redis while it is connected, not only when it leaves, so a
process killed without warning leaves it behind for another to restore.

Writes go through one queue and one writer task (in order, pipelined:
handlers/cluster/writes.py); one reader task reads the stream (stream.py);
recovery and a moved session's replay read it back (replay.py).
Redis down: emits still reach this process's sockets (without offsets,
logged), and reading resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from ..socketio.broadcast import Broadcast
from .peers import Cluster
from .handoff import Handoff
from ..wire.protocol import EVENT, Packet, encode_packet
from ..socketio.recovery import RECOVERABLE
from .moves import MOVED_TTL_MS
from .relay import TAG_LENGTH, Relay
from .replay import STREAM_ID, Replay, _id  # noqa: F401 (STREAM_ID, _id: named here too)
from .shards import Shards
from .stream import StreamReader, deliver_entries, head
from .watchdog import Watchdog
from .writes import Writes

if TYPE_CHECKING:
    from ..socketio.hub import Hub
    from ..socketio.sockets import Socket

log = logging.getLogger("board.redis")

MAX_CONNECTIONS = 64  # Redis connections one process holds at most (the stream reader and listeners included)

class RedisAdapter(Replay):
    """Group emits and recovery state on Redis, shared by every process with the same `prefix`.

    `await adapter.start(hub)` connects (a clear error if Redis cannot be
    reached) and starts the reader and writer; `window` is the recovery
    window in ms (0: off); `max_packets` bounds the stream. A reader or listener
    that hears nothing for `stall_seconds` is restarted (handlers/cluster/watchdog.py).
    `shards`: emits to rooms are read only by the processes with a member in them
    (handlers/cluster/shards.py); None: on if the Redis server is 7.0 or later. The
    same on every process of a prefix.
    """

    def __init__(self, url: str, *, prefix: str = "board", window: int = 120_000,
                 max_packets: int = 10_000, max_queue: int = 100_000, stall_seconds: float = 5.0,
                 shards: bool | None = None):
        import redis.asyncio as redis  # only a cluster needs it
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries inside the client: an outage is handled here, without holding up local clients.
        # A blocking pool: past `max_connections` a request waits its turn (at most `stall_seconds`)
        # rather than failing at once, so a burst of reads (many clients arriving at once) is queued,
        # not refused, and this process never holds more than that many connections to Redis.
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=stall_seconds, socket_connect_timeout=2,
            socket_timeout=None, retry=Retry(NoBackoff(), 0))
        self.redis = redis.Redis.from_pool(pool)
        self.url = url
        self.prefix = prefix
        self.window = window
        self.max_packets = max_packets
        self.max_queue = max_queue
        self.stream = f"{prefix}:emits"
        self.online_key = f"{prefix}:online"
        self.process = secrets.token_hex(6)
        self.hub: Hub | None = None
        self.last_id = "0-0"               # the last stream entry this process has delivered
        self.live: dict[str, Socket] = {}  # pid -> local socket
        self._connected_at: dict[str, int] = {}
        self._count_running: asyncio.Future | None = None  # the count being read from Redis
        self._count_next: asyncio.Future | None = None     # the one that starts after it
        self._advanced = asyncio.Event()   # set (and replaced) each time the reader delivers entries
        self._tasks: list[asyncio.Task] = []
        self.reachable = False
        self.relay: Relay | None = None
        self.cluster: Cluster | None = None
        self.reader: StreamReader | None = None
        self.watchdog: Watchdog | None = None
        self.stall_seconds = stall_seconds
        self.want_shards = shards
        self.shards: Shards | None = None
        self.writes = Writes(self)
        self._push = self.writes.push
        self._push_state = self.writes.push_state

    @property
    def recovering(self) -> bool:
        """Whether group emits are kept for connection state recovery (a window above 0)."""
        return self.window > 0

    # -- life cycle ----------------------------------------------------

    async def start(self, hub: "Hub") -> None:
        """Connect to Redis (a clear RuntimeError if it cannot) and join the cluster: relay, handoff, peers."""
        self.hub = hub
        try:
            await self.redis.ping()
            last = await self.redis.xrevrange(self.stream, count=1)
        except Exception as exc:
            raise RuntimeError(f"cannot reach Redis at {self.url}: {exc}") from None
        self.last_id = last[0][0].decode() if last else "0-0"
        self.shards = await Shards.open(self.redis, self.prefix, self.stream, self.process, self.want_shards)
        if self.shards is not None:
            hub.ops.room_watchers.append(self.shards)
            self.last_id = await self.shards.newest(self.last_id)
        self.reachable = True
        # Long-polling without sticky sessions: session ids say which process owns them.
        tag = self.process[:TAG_LENGTH]
        self.relay = Relay(self.redis, self.prefix, tag, hub.engine)
        await self.relay.start()
        # An upgrade that lands here moves its session here.
        hub.engine.join_cluster(tag, self.relay, Handoff(hub, self))
        self.cluster = Cluster(self.redis, self.prefix, tag, hub)
        hub.join_cluster(self.cluster)
        await self.cluster.start()
        hub.ops.checks.append(lambda: None if self.reachable else "Redis unreachable")  # /readyz
        self._push(("alive",))
        self.reader = StreamReader(self.redis, self.stream, lambda: self.last_id, self._delivered,
                                   self._unreachable, self._read_succeeded, self.writes.settled,
                                   block_ms=int(min(2000, self.stall_seconds * 1000)), shards=self.shards,
                                   written_after=self.writes.written_after)
        self.reader.start()
        self.watchdog = Watchdog(self.reader, {"relay listener": self.relay, "cluster listener": self.cluster},
                                 limit=self.stall_seconds, every=min(1.0, self.stall_seconds / 2),
                                 reachable=lambda: self.reachable)
        hub.ops.checks.append(self.watchdog.check)  # /readyz
        self._tasks = [asyncio.ensure_future(self.writes.run()), asyncio.ensure_future(self.watchdog.run())]

    async def stop(self) -> None:
        """Let the requests relayed through here end, write what is queued (for up to 5 s), leave the
        cluster and close the connections."""
        if self.relay is not None:
            await self.relay.wind_down(2.0)
        try:
            await asyncio.wait_for(self.flush(), 5)
        except asyncio.TimeoutError:
            log.warning("stopping with %d Redis writes not done", len(self.writes.queue))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.reader is not None:
            await self.reader.stop()
        if self.shards is not None:
            self.hub.ops.room_watchers.remove(self.shards)
            await self.shards.stop()
        for part in (self.relay, self.cluster):
            if part is not None:
                await part.stop()
        try:
            await asyncio.wait_for(self.redis.hdel(self.online_key, self.process), 2)
        except Exception:
            pass
        await self.redis.aclose()

    # -- emits ---------------------------------------------------------

    def start_offset(self) -> str:
        """The stream id before the next emit: where a socket connecting now starts."""
        return self.last_id

    @staticmethod
    def new_pid() -> str:
        """A new private session id, for a socket that may come back."""
        return secrets.token_urlsafe(18)

    def broadcast(self, group: Broadcast, data: list) -> int:
        """Append the emit to the stream; every process delivers it when it reads it back."""
        namespace = group.namespace.name
        text, *buffers = encode_packet(Packet(EVENT, namespace, data))
        h = head(namespace, len(buffers))
        fields: dict[str, Any] = {"n": namespace, "h": h, "b": text[len(h):],
                                  "i": json.dumps(sorted(group.include)), "x": json.dumps(sorted(group.exclude))}
        for k, buffer in enumerate(buffers):
            fields[f"a{k}"] = buffer
        streams = None if self.shards is None else self.shards.targets(namespace, group.include)
        self._push(("xadd", fields) if streams is None else ("xadd", fields, streams))
        return 0  # delivered when the stream gives it back, on every process: none yet

    def send_own(self, socket: "Socket", data: list) -> None:
        """A socket's own emit travels as an emit to its room, so that it is in the log too."""
        self.broadcast(Broadcast(socket.namespace, {socket.id}), data)

    # -- recovery ------------------------------------------------------

    def _state_key(self, pid: str) -> str:
        return f"{self.prefix}:socket:{pid}"

    def _write_state(self, socket: "Socket", ttl_ms: int) -> None:
        data = socket._data
        try:
            json.dumps(data)
        except (TypeError, ValueError):
            log.warning("%r: socket.data is not JSON; it will not be recovered", socket)
            data = None
        state = json.dumps({"sid": socket.id, "ns": socket.namespace.name, "rooms": sorted(socket.joined or ()),
                            "data": data, "start": socket._start, "since": self._since(socket)})
        self._push_state(self._state_key(socket.pid), state, self._since(socket), ttl_ms)

    def _since(self, socket: "Socket") -> int:
        """When this connection of the socket began (µs): a later connection's state wins."""
        return self._connected_at.get(socket.pid, 0)

    def connected(self, socket: "Socket") -> None:
        """A socket connected (or came back): its state is written for recovery."""
        if socket.namespace.name == "/":
            self._push(("online",))
        if socket.pid is not None:
            self.live[socket.pid] = socket
            self._connected_at[socket.pid] = time.time_ns() // 1000
            self._write_state(socket, self._ttl())

    def rooms_changed(self, socket: "Socket") -> None:
        """A socket's rooms changed: its saved state follows."""
        self._write_state(socket, self._ttl())

    def lost(self, socket: "Socket", reason: str) -> None:
        """A socket left: its state is kept for the recovery window if it may come back."""
        if socket.namespace.name == "/":
            self._push(("online",))
        if socket.pid is None:
            return
        if self.live.get(socket.pid) is socket:
            del self.live[socket.pid]
        if reason in RECOVERABLE:
            self._write_state(socket, self.window)
        else:
            self._push_state(self._state_key(socket.pid), "", self._since(socket), 0)
        self._connected_at.pop(socket.pid, None)

    def _ttl(self) -> int:
        """How long a connected socket's state outlives its process: the window, plus a heartbeat to be seen dead."""
        return self.window + 2 * self.hub.engine.ping_interval

    # -- moving a session here (handlers/cluster/handoff.py; what it missed: replay.py) --------

    def moved_out(self, socket: "Socket") -> None:
        """A socket moved to another process with its session: its state is that one's to write now."""
        if socket.namespace.name == "/":
            self._push(("online",))
        if socket.pid is not None:
            if self.live.get(socket.pid) is socket:
                del self.live[socket.pid]
            self._connected_at.pop(socket.pid, None)

    # -- the cluster ---------------------------------------------------

    async def count(self, local: int = 0) -> int:
        """Sockets of the main namespace on every live process (`local`, this process's, is among them).

        Coalesced: one read in flight at a time; callers that come while it runs share the next
        one, which starts after it (so each sees at least what was written before it asked).
        However many ask at once, this process holds at most one Redis connection for it.
        """
        pending = self._count_next
        if pending is None:
            pending = self._count_next = asyncio.ensure_future(self._count_round(self._count_running))
        return await asyncio.shield(pending)

    async def _count_round(self, running: asyncio.Future | None) -> int:
        if running is not None:
            await asyncio.wait([running])
        self._count_running, self._count_next = self._count_next, None
        return await self._read_count()

    async def _read_count(self) -> int:
        await self.flush()
        counts = await self.redis.hgetall(self.online_key)
        if not counts:
            return 0
        alive = await self.redis.mget([f"{self.prefix}:alive:{p.decode()}" for p in counts])
        dead = [p for p, a in zip(counts, alive) if a is None and p.decode() != self.process]
        if dead:  # processes that stopped answering: their sockets are gone
            await self.redis.hdel(self.online_key, *dead)
        return sum(int(n) for p, n in counts.items() if p not in dead)

    def tick(self) -> None:
        """Each heartbeat: say this process is alive, and keep its sockets' state from expiring."""
        self._push(("alive",))
        for socket in self.live.values():
            self._push(("touch", self._state_key(socket.pid), self._ttl()))
        if self.relay is not None:  # where the sessions a drain moved here can be found
            for key in self.relay.moved_keys():
                self._push(("touch", key, MOVED_TTL_MS))

    # -- the writer (handlers/cluster/writes.py) and the reader -----------

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or given up on)."""
        await self.writes.flush()

    def _unreachable(self, exc: Exception) -> None:
        if self.reachable:
            log.error("Redis unreachable (%s): emits reach this process's clients only, without "
                      "recovery offsets, and sockets' state is not saved, until it is back", exc)
            self.reachable = False

    def _reachable_again(self) -> None:
        """Redis answers again: write what this process holds (its count, its sockets' state)."""
        log.warning("Redis reachable again")
        self.reachable = True
        self._push(("alive",))
        self._push(("online",))
        for socket in self.live.values():
            self._write_state(socket, self._ttl())

    def _deliver_locally(self, batch: list[tuple]) -> None:
        """Redis is away: this process's own emits still reach its own sockets (not recoverable).

        Clients that expect an offset get the last one they can rely on: what these emits would
        have had is unknown, and leaving it out would make them take an argument for it.
        """
        deliver_entries(self.hub, [(self.last_id, op[1]) for op in batch if op[0] == "xadd"])

    def _delivered(self, last_id: str, entries: list) -> None:
        """A batch read from the stream, to this process's sockets."""
        self.last_id = last_id
        deliver_entries(self.hub, entries)
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    def _read_succeeded(self) -> None:
        if not self.reachable:
            self._reachable_again()
