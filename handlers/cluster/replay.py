"""A cluster socket's recovery and a moved session's replay: what it missed, read back from the streams.

Part of the Redis adapter (handlers/cluster/redis_adapter.py), apart for size: a
returning socket's saved state and the entries after its offset (`restore`),
and what the sockets of a session moved here missed after the last entry their
old process delivered (`missed_after`, handlers/cluster/handoff.py). The stream
entry ids are the offsets; with room groups the entries are read from the main
stream and the groups of the sockets' rooms (handlers/cluster/shards.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from ..socketio.recovery import MAX_PID_LENGTH, Saved
from ..wire.protocol import Outgoing
from .shards import log_range, oldest_kept
from .stream import outgoing, text_fields

log = logging.getLogger("board.redis")

STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}\Z")


def _id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class Replay:
    """The RedisAdapter's reading back (a mixin: it uses the adapter's redis, stream, shards,
    last_id, live sockets and flush)."""

    async def restore(self, namespace: str, pid: Any, offset: Any) -> tuple[Saved, list[Outgoing]] | None:
        """A returning socket's saved state and what it missed since `offset`, or None."""
        if not isinstance(pid, str) or len(pid) > MAX_PID_LENGTH:
            log.info("recovery refused: malformed pid")
            return None
        if offset is not None and (not isinstance(offset, str) or not STREAM_ID.match(offset)):
            log.info("recovery refused for %r…: malformed offset %r", pid[:6], str(offset)[:24])
            return None
        old = self.live.get(pid)
        if old is not None:
            old.client.session.close("transport close", notify=False)  # back before its old connection died
        try:
            await self.flush()
            # Read, not taken: a client may give up on this CONNECT (python-socketio waits 1 s) and
            # try again; the state is there for that try. The recovered socket's own state, written
            # as it connects, replaces it (a newer connection wins, SET_IF_OWNER).
            raw = await self.redis.get(self._state_key(pid))
            if raw is None:
                log.info("recovery refused: unknown pid %r…", pid[:6])
                return None
            state = json.loads(raw)
            after = offset if offset is not None and _id(offset) > _id(state["start"]) else state["start"]
            if await oldest_kept(self.redis, self._log_streams([(state["ns"], set(state["rooms"]))])) > _id(after):
                log.info("recovery refused for %r…: the log no longer holds offset %s", pid[:6], after)
                return None
            if self.shards is not None and _id(self.last_id) < _id(after):  # in a group not read here?
                if _id(after) > await self.shards.newest_id():
                    log.info("recovery refused for %r…: offset %s was never given", pid[:6], after)
                    return None
                await self._reach(after, 5.0)
            missed = await self._missed(state, after)
        except Exception as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.warning("recovery of %r… failed: %s", pid[:6], exc)
            return None
        if state["ns"] != namespace:
            return None
        saved = Saved(pid, state["sid"], namespace, state["rooms"], state["data"], state["start"], None, 0)
        return saved, missed

    def _log_streams(self, sockets: list[tuple[str, set]]) -> list[str]:
        return [self.stream] if self.shards is None else self.shards.log_streams(sockets)

    async def _missed(self, state: dict, after: str) -> list[Outgoing]:
        return (await self._missed_by([(state["ns"], set(state["rooms"]) | {state["sid"]})], after, True))[0]

    async def _missed_by(self, sockets: list[tuple[str, set]], after: str, offsets: bool) -> list[list[Outgoing]]:
        """For each (namespace, rooms), the entries after `after` up to what this process has
        delivered: the rest comes live. With `offsets`, each packet carries its entry's id."""
        missed: list[list[Outgoing]] = [[] for _ in sockets]
        low = after
        while _id(low) < _id(self.last_id):
            high = self.last_id
            for entry_id, fields in await log_range(self.redis, self._log_streams(sockets), low, high):
                fields = text_fields(fields)
                include, exclude = set(json.loads(fields["i"])), set(json.loads(fields["x"]))
                for found, (namespace, rooms) in zip(missed, sockets):
                    if fields["n"] != namespace:
                        continue
                    if (include and include.isdisjoint(rooms)) or (exclude and not exclude.isdisjoint(rooms)):
                        continue
                    found.append(outgoing(entry_id.decode(), fields)[0 if offsets else 1])
            low = high
        return missed

    async def _reach(self, after: str, timeout: float) -> None:
        """Once this process has delivered every entry of its streams up to `after` (an id that exists)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while _id(self.last_id) < _id(after):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("this process's reading of the stream is behind")
            # `after` may be in a room group this process does not read (handlers/cluster/shards.py).
            if self.shards is not None and await self.shards.nothing_after(self.last_id):
                if _id(self.last_id) < _id(after):
                    self.last_id = after  # nothing of its streams up to `after` is left to deliver
                break
            await asyncio.wait_for(self._advanced.wait(), left)

    async def missed_after(self, sockets: list[dict], after: str, offsets: bool,
                           timeout: float = 5.0) -> list[list[Outgoing]]:
        """What each moved socket ({ns, id, rooms}) missed after `after`, the last entry its old
        owner delivered: once this process has read that far, the entries since."""
        if not STREAM_ID.match(after):
            raise ValueError(f"not a stream entry id: {after[:24]!r}")
        await self._reach(after, timeout)
        return await self._missed_by([(s["ns"], set(s["rooms"]) | {s["id"]}) for s in sockets], after, offsets)
