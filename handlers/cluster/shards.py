"""Room emits read only by the processes that have a member in the room: a stream per room group.

Without this every process reads every entry of the cluster's stream, and a
process with no member in a room pays for each emit to it all the same
(bench/RESULTS.md, "Room traffic on a cluster"). Here a room belongs to one
of `GROUPS` groups (a hash of namespace and room), and an emit to rooms is
appended to the stream of each group its rooms fall in (`PREFIX:g:<n>`),
not to the main stream; emits to everyone, and to a socket's own id, stay
on the main stream. A process reads, in one XREAD, the main stream and the
streams of the groups where it has a member: nothing else reaches it.

One order for everything: every entry's id comes from one sequence, the
main stream's (the script below gives a room emit the next id after the
main stream's last and makes it the main stream's last, XSETID), so the
entries of all streams merge into the order they were made, and a reader
that reads several streams from one position delivers them in that order.
An emit to rooms of two groups is in both streams under one id: read
twice, delivered once. A socket's offsets therefore only grow, recovery
reads the main stream and its rooms' groups after its offset and misses
nothing and repeats nothing, as with one stream.

Why streams and not Redis 7 sharded pub/sub beside the stream: a second
live path (pub/sub) would deliver room emits and everyone-emits to a socket
on two connections in two orders, and the offset a client keeps would then
skip or repeat entries on recovery; a stream read from a position leaves no
window on a join (the reader reads the new group from where it is: what was
emitted after the join is in the stream) nor on a lost connection (read on
from the position, as before); and a read returns batches (1.8 µs a message
for a stream reader against 5.2 for pub/sub, bench/redis_transport.py).

A group joined while a read is under way: that read is not delivered but
read again with the new group (`epoch`), from the same position; a blocked
read is woken (an entry on this process's own wake stream) so that the
first emit to the new group is not held up to the read's timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import zlib
from typing import Any

from .stream import parsed

log = logging.getLogger("board.redis")

GROUPS = 64      # room groups: a process reads the streams of the groups where it has a member
WAKE_TTL_MS = 60_000

# A socket's own id (secrets.token_urlsafe(15)): where the socket is is not known, so an emit to
# a name of this shape goes on the main stream, read by every process, and is never a group's.
SOCKET_ID = re.compile(r"[A-Za-z0-9_-]{20}\Z")

# KEYS: the main stream, the last id given to a room emit, then the streams of the emit's groups.
# ARGV: MAXLEN, then the entry's fields and values. The id: after the main stream's last entry,
# after the last room emit, not before the clock; then the main stream's own ids go on after it.
APPEND = """
local t = redis.call('TIME')
local ms, seq = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), 0
local function after(id)
  if not id then return end
  local m, q = string.match(id, '^(%d+)-(%d+)$')
  m, q = tonumber(m), tonumber(q)
  if m > ms or (m == ms and q >= seq) then ms, seq = m, q + 1 end
end
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then after(top[1][1]) end
after(redis.call('GET', KEYS[2]))
local id = string.format('%d-%d', ms, seq)
for i = 3, #KEYS do
  redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[1], id, unpack(ARGV, 2))
end
redis.call('SET', KEYS[2], id)
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[1], 'order', '$', 'MKSTREAM')
end
redis.call('XSETID', KEYS[1], id)
return id
"""


def group_of(namespace: str, room: str, groups: int = GROUPS) -> int:
    """The group of a room: the same on every process (crc32, not Python's salted hash)."""
    return zlib.crc32(f"{namespace}\0{room}".encode()) % groups


def _id(text: str | bytes) -> tuple[int, int]:
    if isinstance(text, bytes):
        text = text.decode()
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


async def supported(redis: Any) -> str | None:
    """None if this Redis can hold room groups (7.0 or later), else why not."""
    info = await redis.info("server")
    version = str(info.get("redis_version", "0"))
    major = int(version.split(".")[0] or 0)
    return None if major >= 7 else f"Redis {version} (7.0 or later wanted)"


class Shards:
    """Which room groups this process reads, and how its reader reads them.

    Told of every room that appears or empties here (`room_joined`, `room_left`,
    as an `Ops` room watcher); gives the reader its streams (`streams`), merges
    what a read returned (`merge`) and says when the groups grew (`epoch`).
    """

    def __init__(self, redis: Any, prefix: str, main: str, process: str, groups: int = GROUPS):
        self.redis = redis
        self.prefix = prefix
        self.main = main
        self.groups = groups
        self.seq_key = f"{prefix}:seq"
        self.wake_stream = f"{prefix}:wake:{process}"
        self.counts: dict[int, int] = {}  # group -> rooms of it with a member here
        self.epoch = 0                    # grows when a group is added: a read under way is read again
        self.read = 0                     # entries read from any stream (a bystander's should not grow)
        self._wake_at = "0-0"
        self._wake_key = self.wake_stream.encode()
        self._waking: asyncio.Future | None = None
        self.sha = hashlib.sha1(APPEND.encode()).hexdigest()

    @classmethod
    async def open(cls, redis: Any, prefix: str, main: str, process: str, want: bool | None) -> "Shards | None":
        """Room groups if asked (`want`), or by default (None) if this Redis can hold them; else None."""
        if want is False:
            return None
        why_not = await supported(redis)
        if why_not is not None:
            if want:
                raise RuntimeError(f"room groups asked for, but {why_not}")
            log.warning("%s: every process reads every emit to a room", why_not)
            return None
        shards = cls(redis, prefix, main, process)
        await shards.load()
        return shards

    async def load(self) -> None:
        """Give Redis the script (again after a restart: `unloaded`)."""
        await self.redis.script_load(APPEND)

    def append(self, pipe: Any, fields: dict, streams: list[str], maxlen: int) -> None:
        """Queue a room emit on `pipe`: by its script's sha, not redis-py's Script, whose every
        pipeline first asks Redis whether the script is there (one more round trip per write)."""
        pipe.evalsha(self.sha, 2 + len(streams), self.main, self.seq_key, *streams, maxlen,
                     *(x for kv in fields.items() for x in kv))

    @staticmethod
    def unloaded(results: list) -> list[int]:
        """The places of the commands a pipeline's Redis did not run for want of the script."""
        from redis.exceptions import NoScriptError
        return [k for k, r in enumerate(results) if isinstance(r, NoScriptError)]

    async def newest(self, last: str) -> str:
        """Where a reader starts: the main stream's last entry, or the last room emit if newer."""
        seq = await self.redis.get(self.seq_key)
        seq = seq.decode() if isinstance(seq, bytes) else seq
        return seq if seq and _id(seq) > _id(last) else last

    async def newest_id(self) -> tuple[int, int]:
        """The newest id given to any entry (the main stream's last, or the last room emit's)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrevrange(self.main, count=1)
        pipe.get(self.seq_key)
        top, seq = await pipe.execute()
        return max(_id(top[0][0]) if top else (0, 0), _id(seq) if seq else (0, 0))

    def stream(self, group: int) -> str:
        return f"{self.prefix}:g:{group}"

    # -- where an emit goes ------------------------------------------------

    def targets(self, namespace: str, include: set | frozenset) -> list[str] | None:
        """The group streams of an emit to `include`, or None for the main stream (everyone, or a
        socket's id among the rooms)."""
        if not include:
            return None
        found = set()
        for room in include:
            if SOCKET_ID.match(room):
                return None
            found.add(group_of(namespace, room, self.groups))
        return [self.stream(g) for g in sorted(found)]

    def log_streams(self, sockets: list[tuple[str, set]]) -> list[str]:
        """The streams that hold what sockets (namespace, rooms) may have missed."""
        streams = {self.main}
        for namespace, rooms in sockets:
            for room in rooms:
                if not SOCKET_ID.match(room):
                    streams.add(self.stream(group_of(namespace, room, self.groups)))
        return sorted(streams)

    # -- the groups this process reads -----------------------------------

    def room_joined(self, socket: Any, room: str) -> None:
        members = socket.namespace.rooms.get(room)
        if members is None or len(members) != 1 or SOCKET_ID.match(room):
            return  # not a new room here
        group = group_of(socket.namespace.name, room, self.groups)
        count = self.counts.get(group, 0)
        self.counts[group] = count + 1
        if count == 0:
            self.epoch += 1
            self.wake()

    def room_left(self, socket: Any, room: str) -> None:
        if room in socket.namespace.rooms or SOCKET_ID.match(room):
            return  # still has members here
        group = group_of(socket.namespace.name, room, self.groups)
        count = self.counts.get(group, 0) - 1
        if count > 0:
            self.counts[group] = count
        else:
            self.counts.pop(group, None)

    def wake(self) -> None:
        """End the reader's blocked read, which does not read the new group yet (one wake at a time)."""
        if self._waking is None or self._waking.done():
            self._waking = asyncio.ensure_future(self._send_wake())

    async def _send_wake(self) -> None:
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.xadd(self.wake_stream, {"w": 1}, maxlen=1)
            pipe.pexpire(self.wake_stream, WAKE_TTL_MS)
            await pipe.execute()
        except Exception as exc:  # the read returns at its timeout anyway
            log.debug("waking the reader failed: %s", exc)

    async def stop(self) -> None:
        if self._waking is not None:
            await asyncio.gather(self._waking, return_exceptions=True)
        try:
            await asyncio.wait_for(self.redis.delete(self.wake_stream), 2)
        except Exception:
            pass

    # -- the reader's side ----------------------------------------------------

    def streams(self, position: str, blocking: bool) -> dict[str, str]:
        """What one XREAD reads: every stream from `position` (the wake stream from its own)."""
        found = {self.main: position}
        for group in self.counts:
            found[self.stream(group)] = position
        if blocking:
            found[self.wake_stream] = self._wake_at
        return found

    async def nothing_after(self, position: str) -> bool:
        """Whether the streams this process reads hold nothing after `position` (then the reader has
        nothing to deliver up to any id that exists now, whether or not it is in these streams)."""
        return not await self.redis.xread(self.streams(position, False), count=1)

    def merge(self, found: Any, count: int) -> list[tuple[str, dict | None]]:
        """One read's entries of every stream in id order, each once; if a stream gave `count`
        entries (it may hold more), only those up to its last: the rest come with the next read."""
        entries: dict[bytes, Any] = {}
        cut: tuple[int, int] | None = None
        batches = [(n, b) for n, b in found or () if b and n != self.wake_stream and n != self._wake_key]
        if len(batches) == 1 and len(batches[0][1]) < count and len(found) == 1:
            self.read += len(batches[0][1])
            return parsed(batches)   # one stream's entries: already in order, each once
        for name, batch in found or ():
            if name == self.wake_stream or name == self._wake_key:
                if batch:
                    self._wake_at = batch[-1][0].decode()
                continue
            self.read += len(batch)
            if len(batch) >= count:
                last = _id(batch[-1][0])
                cut = last if cut is None else min(cut, last)
            for entry_id, raw in batch:
                entries.setdefault(entry_id, raw)
        order = sorted(entries, key=_id)
        if cut is not None:
            order = [i for i in order if _id(i) <= cut]
        return parsed([(None, [(i, entries[i]) for i in order])])


async def log_range(redis: Any, streams: list[str], low: str, high: str) -> list[tuple[bytes, dict]]:
    """The entries of `streams` after `low` up to `high`, in id order, each once."""
    if len(streams) == 1:
        return await redis.xrange(streams[0], "(" + low, high)
    entries: dict[bytes, dict] = {}
    for batch in await asyncio.gather(*(redis.xrange(s, "(" + low, high) for s in streams)):
        for entry_id, raw in batch:
            entries.setdefault(entry_id, raw)
    return [(i, entries[i]) for i in sorted(entries, key=_id)]


async def oldest_kept(redis: Any, streams: list[str]) -> tuple[int, int]:
    """The newest id any of `streams` has dropped (trimmed): offsets before it cannot be replayed."""
    newest = (0, 0)
    for stream in streams:
        try:
            info = await redis.xinfo_stream(stream)
        except Exception as exc:
            if "no such key" in str(exc).lower():
                continue  # a group nothing was ever emitted to (or gone with a Redis restart)
            raise
        deleted = info.get("max-deleted-entry-id", b"0-0")
        newest = max(newest, _id(deleted if isinstance(deleted, (bytes, str)) else str(deleted)))
    return newest
