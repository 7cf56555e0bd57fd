"""Connection state recovery: what a socket missed while its connection was down.

Socket.IO v5's recovery wire, as socket.io 4.6+ speaks it: the CONNECT ack
carries a private session id (`pid`) besides `sid`; an EVENT without an
ack id carries its offset as an extra last argument; a client that comes
back puts `{pid, offset}` in its CONNECT auth and gets the same socket id,
rooms and `data`, then every packet after its offset, in order.

Every offset comes from one counter, so group emits (kept in one log shared
by all sockets) and a socket's own emits (kept in a small ring of its own)
merge back into the order they were sent in. A session is recoverable while
both still hold everything after the client's offset. Offsets are opaque
strings on the wire, so a store that lives elsewhere (Redis) can use its own.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from ..wire.protocol import Outgoing

log = logging.getLogger("board.recovery")

# Why a connection may come back with its state: it was lost, not ended on purpose.
RECOVERABLE = frozenset({
    "transport close", "transport error", "ping timeout", "server shutting down", "server restart",
})

MAX_OFFSET_LENGTH = 20
MAX_PID_LENGTH = 64


class Recent:
    """A socket's own recent emits (offset, packet), bounded by count and bytes."""

    __slots__ = ("entries", "size", "dropped")

    def __init__(self) -> None:
        self.entries: deque[tuple[int, Outgoing]] = deque()
        self.size = 0
        self.dropped = 0   # the highest offset no longer held

    def add(self, offset: int, out: "Outgoing", max_packets: int, max_bytes: int) -> None:
        entries = self.entries
        entries.append((offset, out))
        self.size += out.size
        while entries and (len(entries) > max_packets or self.size > max_bytes):
            old, dropped = entries.popleft()
            self.size -= dropped.size
            self.dropped = old


class Saved:
    """What a lost socket leaves behind for the window: enough to be itself again."""

    __slots__ = ("pid", "sid", "namespace", "rooms", "data", "start", "recent", "expires")

    def __init__(self, pid: str, sid: str, namespace: str, rooms: Iterable[str], data: Any,
                 start: int, recent: Recent | None, expires: float):
        self.pid = pid
        self.sid = sid
        self.namespace = namespace
        self.rooms = frozenset(rooms)
        self.data = data
        self.start = start      # the offset before its first packet: nothing earlier is its own
        self.recent = recent
        self.expires = expires


class RecoveryLog:
    """The in-memory recovery store: a bounded log of group emits and the saved sockets.

    `window` (ms) is how long a lost socket can come back; `max_packets` and
    `max_bytes` bound the group log; `max_own_packets`, `max_own_bytes`
    bound each socket's ring of its own emits.
    """

    def __init__(self, window: int, *, max_packets: int = 10_000, max_bytes: int = 32 * 2**20,
                 max_own_packets: int = 64, max_own_bytes: int = 256 * 1024):
        self.window = window
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self.max_own_packets = max_own_packets
        self.max_own_bytes = max_own_bytes
        self.offset = 0            # the last offset handed out
        self.dropped = 0           # the highest group offset no longer held
        self.entries: deque[tuple[int, str, frozenset, frozenset, Outgoing]] = deque()
        self.size = 0
        self.saved: dict[str, Saved] = {}
        self.live: dict[str, Any] = {}    # pid -> connected socket, for a client that comes back first

    # -- offsets -------------------------------------------------------

    def next_offset(self) -> int:
        self.offset += 1
        return self.offset

    @staticmethod
    def format(offset: int) -> str:
        return str(offset)

    def parse(self, text: Any) -> int | None:
        if not isinstance(text, str) or not 0 < len(text) <= MAX_OFFSET_LENGTH or not (text.isascii() and text.isdigit()):
            return None
        value = int(text)
        return value if value <= self.offset else None

    @staticmethod
    def new_pid() -> str:
        return secrets.token_urlsafe(18)

    # -- the group log -------------------------------------------------

    def append(self, offset: int, namespace: str, include: frozenset, exclude: frozenset,
               out: "Outgoing") -> None:
        entries = self.entries
        entries.append((offset, namespace, include, exclude, out))
        self.size += out.size
        while len(entries) > self.max_packets or self.size > self.max_bytes:
            old = entries.popleft()
            self.size -= old[4].size
            self.dropped = old[0]

    # -- saving and restoring -----------------------------------------

    def save(self, state: Saved) -> None:
        self.saved[state.pid] = state

    def restore(self, namespace: str, pid: Any, offset: Any) -> tuple[Saved, list["Outgoing"]] | None:
        """The saved socket and the packets it missed, in order; None if it cannot come back."""
        if not isinstance(pid, str) or len(pid) > MAX_PID_LENGTH:
            log.info("recovery refused: malformed pid")
            return None
        state = self.saved.get(pid)
        if state is None or state.namespace != namespace:
            log.info("recovery refused: unknown pid %r…", pid[:6])
            return None
        if offset is None:
            after = state.start        # it got no packet before the drop
        else:
            after = self.parse(offset)
            if after is None:
                log.info("recovery refused for %r…: malformed offset %r", pid[:6], str(offset)[:24])
                return None
            after = max(after, state.start)
        del self.saved[pid]
        if state.expires < time.monotonic():
            log.info("recovery refused for %r…: window passed", pid[:6])
            return None
        recent = state.recent
        if self.dropped > after or (recent is not None and recent.dropped > after):
            log.info("recovery refused for %r…: log no longer holds offset %d", pid[:6], after)
            return None
        missed = self._missed(state, after)
        return state, missed

    def _missed(self, state: Saved, after: int) -> list["Outgoing"]:
        rooms = state.rooms | {state.sid}
        found: list[tuple[int, Outgoing]] = []
        for offset, namespace, include, exclude, out in self.entries:
            if offset <= after or namespace != state.namespace:
                continue
            if include and include.isdisjoint(rooms):
                continue
            if exclude and not exclude.isdisjoint(rooms):
                continue
            found.append((offset, out))
        if state.recent is not None:
            found.extend(entry for entry in state.recent.entries if entry[0] > after)
            found.sort(key=lambda entry: entry[0])
        return [out for _, out in found]

    def expire(self) -> None:
        """Forget the saved sockets whose window has passed (called at each heartbeat tick)."""
        now = time.monotonic()
        gone = [pid for pid, state in self.saved.items() if state.expires < now]
        for pid in gone:
            del self.saved[pid]
