"""The Engine.IO v4 server: sessions, heartbeat, origins, and the write loop.

Usable on its own (give it `on_open`, `on_message`, `on_close` callables and
mount `routes(path)`), and the base the Socket.IO hub is built on. It owns
the two timers that drive every session, however many there are: one
heartbeat tick that pings everyone with a single pre-encoded frame, and one
flush for every session with something queued, a loop turn after the emits
(once the sockets have been read again, so their answers join). Only a
session's first ping has a timer of its own, so that it comes pingInterval
after the handshake, as clients (and the official test suites) expect.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol
from urllib.parse import urlsplit

from ..wire.errors import ERROR_MESSAGES, error_body
from ..wire.protocol import Outgoing
from .session import PING_PACKET, PollCount, Session
from .stats import Stats, Watcher

if TYPE_CHECKING:
    from tornado.httputil import HTTPServerRequest

log = logging.getLogger("board.engine")

STALL = 0.05  # seconds a timer may run late before the loop counts as stalled
FIRST_PING = -1  # Session.awaiting_pong while its first ping waits for a pong


def _noop(*args: Any) -> None:
    return None


class Admission(Protocol):
    """Decides on new handshakes (the operations layer's `Admission`), plugged in with `guard`."""

    draining: bool

    def admit(self, request: "HTTPServerRequest") -> tuple[int, str] | None:
        """None lets the handshake in; else (HTTP status, message)."""

    def address(self, request: "HTTPServerRequest") -> str:
        """The client's address, as the limits see it (through trusted proxies)."""


class OpenConnections(Protocol):
    """Open TCP connections per client address (operations' `Connections`), plugged in with
    `count_connections`: a WebSocket that leaves the HTTP server is counted until it closes."""

    def hold(self, peer: Any) -> str | None:
        """Count a connection from `peer` (as `getpeername` gives it); its address, to release."""

    def release(self, address: str | None) -> None:
        """That connection closed."""


class Relay(Protocol):
    """Carries requests for another process's sessions (the cluster's relay), plugged in with `join_cluster`."""

    leaving: bool  # set while a drain hands the sessions over: relayed GETs get no packets meanwhile

    def owner(self, sid: str) -> str | None:
        """The tag of the process that holds `sid`, if another one does."""

    async def request(self, sid: str, op: str, body: str | None, timeout: float,
                      n: str | None = None, uri: str | None = None) -> tuple[int, str]:
        """A polling GET (numbered `n` by its client, if it is) or POST (its request's `uri`) served
        by the owner of `sid`: (HTTP status, body)."""

    def written(self, sid: str, ok: bool) -> None:
        """The answer to the last relayed GET of `sid` was written to its HTTP client (or not)."""

    def settle(self, sid: str) -> None:
        """The answer of `sid` kept in transit went to its client again, by a retry of its GET: forget it."""

    async def probe(self, sid: str) -> bool:
        """A WebSocket of `sid`'s client probes here: the owner pauses its polling; False if it cannot."""

    def unprobe(self, sid: str) -> None:
        """That probe's WebSocket closed before the upgrade."""

    async def move_here(self, sid: str, ws: Any) -> "Session | None":
        """The client confirmed the upgrade here: the session moves to this process and `ws`."""

    async def draining(self, seconds: float) -> list[str]:
        """This process drains for `seconds`: the processes its polling sessions may go to."""

    def can_hand_over(self, session: Session) -> bool:
        """Whether `session` (long-polling) can move now, with nothing half-done."""

    async def hand_over(self, session: Session, peers: list[str]) -> bool:
        """Move the long-polling `session` to one of `peers`; False if it did not move there."""


class Handoff(Protocol):
    """Moves the layer above's state of a session between processes (the cluster's handoff)."""

    def export(self, session: Session) -> dict | None:
        """The state to move, taken out of this process; None if it cannot move now."""

    def environ(self, context: dict) -> dict:
        """The handshake's environ, rebuilt from a moved `context`."""

    async def adopt(self, session: Session, context: dict, environ: dict, forward_ack: Any) -> None:
        """Install the moved state on `session`, here."""

    def ack(self, session: Session, namespace: str, ack_id: int, data: list) -> None:
        """An ack for a request made here before `session` moved away."""

    def release(self, session: Session) -> None:
        """Forwarding for a moved session is over: what still waits for it gives up."""


class Engine:
    """Engine.IO sessions over WebSocket and long-polling.

    Times are in milliseconds, as on the wire. `allowed_origins` is None for
    same-origin only, a list of origins (``"https://example.com"``), or
    ``"*"`` for any.
    """

    def __init__(
        self,
        *,
        ping_interval: int = 25000,
        ping_timeout: int = 20000,
        max_payload: int = 1_000_000,
        allowed_origins: list[str] | str | None = None,
        max_queue_bytes: int = 2 * 1024 * 1024,
        websocket: bool = True,
        polling: bool = True,
        on_open: Callable[[Session, dict], None] = _noop,
        on_message: Callable[[Session, str | bytes], None] = _noop,
        on_close: Callable[[Session, str], None] = _noop,
        on_tick: Callable[[], None] = _noop,
    ):
        if ping_interval <= 0 or ping_timeout <= 0 or max_payload <= 0:
            raise ValueError("ping_interval, ping_timeout and max_payload must be positive")
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_payload = max_payload
        self.max_queue_bytes = max_queue_bytes
        self.allowed_origins = allowed_origins
        self.transports = {name for name, on in (("websocket", websocket), ("polling", polling)) if on}
        self.on_open = on_open
        self.on_message = on_message
        self.on_close = on_close
        self.on_tick = on_tick  # run at each heartbeat tick (the hub closes idle sessions there)
        self.sessions: dict[str, Session] = {}
        self.sid_prefix = ""   # a cluster's process tag: any process can tell where a session lives
        self.relay: Relay | None = None  # carries requests for another process's sessions (join_cluster)
        self.handoff: Handoff | None = None  # moves a session to the process that holds its WebSocket
        self.moved: dict[str, tuple[Session, int]] = {}  # sessions moved away, forwarding for a while
        self._last_answers: dict[str, tuple[str, int]] = {}  # closed polling sid -> (answer, tick)
        self._last_posts: dict[str, bytes] = {}  # open sid -> digest of its last POST's `t` and body
        self._dirty: list[Session] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._ticks = 0
        self.stats = Stats()
        self.watchers: list[Watcher] = [self.stats]  # told of each session's open, upgrade and close
        self.admission: Admission | None = None  # decides on new handshakes (see admit_with); None lets all in
        self.connections: OpenConnections | None = None  # per address, when served by engine_server
        # WebSockets below RequestHandler where they can be (handlers/transports/websocket_connection.py); False: Tornado's handler.
        self.connection_websockets = True
        self.extra_origins: set[str] = set()  # allowed whatever allowed_origins says (the Admin UI's)

    # -- what the layers above plug in, once ----------------------------

    def admit_with(self, admission: Admission) -> None:
        """Let `admission` decide on every new handshake from now on (and watch the sessions it lets in)."""
        self.admission = admission

    def count_connections(self, connections: OpenConnections) -> None:
        """Count open connections per address in `connections` (the server that accepts them does)."""
        self.connections = connections

    def join_cluster(self, sid_prefix: str, relay: Relay, handoff: Handoff) -> None:
        """Run as one process of a cluster: session ids start with `sid_prefix` (so any process can
        tell where a session lives), other processes' sessions are served through `relay`, and a
        session whose WebSocket lands elsewhere moves there through `handoff`."""
        self.sid_prefix = sid_prefix
        self.relay = relay
        self.handoff = handoff

    # -- sessions ------------------------------------------------------

    def open_session(self, environ: dict) -> Session:
        """A new session with an unguessable id; `environ` (headers, query, transport…) goes to `on_open`."""
        sid = self.sid_prefix + secrets.token_urlsafe(15)
        session = Session(self, sid, time.monotonic())
        self.sessions[sid] = session
        self._start()
        for watcher in self.watchers:
            watcher.opened(session, environ)
        session.timer = self._loop_or_current().call_later(self.ping_interval / 1000, self._first_ping, session)
        self.on_open(session, environ)
        return session

    def open_packet(self, session: Session, upgrades: list[str]) -> str:
        """The OPEN packet of `session`: its sid, the upgrades offered, the heartbeat and maxPayload."""
        return "0" + json.dumps({
            "sid": session.sid,
            "upgrades": upgrades,
            "pingInterval": self.ping_interval,
            "pingTimeout": self.ping_timeout,
            "maxPayload": self.max_payload,
        }, separators=(",", ":"))

    def discard(self, session: Session, reason: str) -> None:
        """Called by a session as it closes."""
        self._last_posts.pop(session.sid, None)
        if self.sessions.pop(session.sid, None) is not None:
            for watcher in self.watchers:
                watcher.closed(session, reason)
            try:
                self.on_close(session, reason)
            except Exception:
                log.exception("error in close handler of session %s", session.sid[:8])

    def move_out(self, session: Session, forwarder: Any, upgrade: bool = True) -> tuple[list[Outgoing], dict] | None:
        """Hand `session` to the process that holds its WebSocket (`upgrade`), or to one that stays
        when this one drains: what it has not sent yet and its layer's state; None if it cannot
        move now. What is still written here goes to `forwarder` for a few heartbeats."""
        if self.handoff is None or session.closed or (upgrade and not session.probed):
            return None
        context = self.handoff.export(session)
        if context is None:
            return None
        queue, session.queue, session.queued_bytes = session.queue, [], 0
        self.sessions.pop(session.sid, None)
        self._last_posts.pop(session.sid, None)
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        session.end_probe()
        session.end_poll("6")
        session.ws = forwarder
        self.moved[session.sid] = (session, self._ticks)
        for watcher in self.watchers:
            watcher.closed(session, "moved")
        return queue, context

    async def adopt(self, sid: str, ws: Any, queue: list[Outgoing], context: dict, forward_ack: Any,
                    polls: PollCount | None = None) -> Session:
        """Take over a session moved here from another process; its WebSocket `ws` is open, or
        None: it carries on long-polling (its process drained), with the `polls` its client numbered."""
        session = Session(self, sid, time.monotonic())
        session.ws = ws
        session.polls = polls
        self.sessions[sid] = session
        self._start()
        environ = self.handoff.environ(context)
        for watcher in self.watchers:
            watcher.opened(session, environ)
            if ws is not None:
                watcher.upgraded(session)
        for out in queue:  # what the old owner had not sent: first
            session.send(out)
        try:
            await self.handoff.adopt(session, context, environ, forward_ack)
        except BaseException:
            session.close("transport error", notify=False)
            raise
        return session

    def repeated_post(self, sid: str, stamp: str, body: bytes | str) -> bool:
        """Whether this POST of `sid` (its query's `t`, its body) is the last one again: a balancer
        retried it after the process it crossed died with the answer (nginx's `non_idempotent`).
        Remembered per open session; a client that sends no `t` is not told apart."""
        digest = hashlib.blake2b(body if isinstance(body, bytes) else body.encode(), digest_size=12,
                                 key=stamp.encode()[:64]).digest()
        if self._last_posts.get(sid) == digest:
            log.info("session %s…: the same POST again (a retry); not read twice", sid[:8])
            return True
        self._last_posts[sid] = digest
        return False

    def linger(self, sid: str, answer: str) -> None:
        """Keep the last answer of a polling session that closed with no GET waiting, for one GET."""
        self._last_answers[sid] = (answer, self._ticks)

    def last_answer(self, sid: str) -> str | None:
        """The answer kept for a GET that arrives just after its session closed (then it is gone)."""
        kept = self._last_answers.pop(sid, None)
        return kept[0] if kept is not None else None

    def close(self) -> None:
        """Close every session and stop the timers (the server is going away)."""
        for session in list(self.sessions.values()):
            session.close("server shutting down")
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None

    # -- origins -------------------------------------------------------

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Same-origin by default; requests without an Origin (non-browsers) pass."""
        if not origin:
            return True
        if origin in self.extra_origins:
            return True
        allowed = self.allowed_origins
        if allowed == "*":
            return True
        if allowed is not None:
            return origin in allowed
        return urlsplit(origin).netloc.lower() == (host or "").lower()

    # -- the write loop ------------------------------------------------

    def mark_dirty(self, session: Session) -> None:
        """Schedule `session` for the next flush: after the loop has looked at the sockets once more."""
        if not self._dirty:
            self._loop_or_current().call_soon(self._after_input)
        self._dirty.append(session)

    def _after_input(self) -> None:
        # One more turn before writing: what reached the sockets meanwhile is read and handled first,
        # so its packets leave in the same write per connection. A broadcast to 1,000 clients went from
        # about 3 to 6 deliveries per write (fewer, fuller writes for the server and the clients).
        self._loop.call_soon(self._flush)  # type: ignore[union-attr]

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for session in dirty:
            if not session.closed:
                try:
                    session.flush()
                except Exception:
                    # A bug, not input (the codec refuses what cannot be written):
                    # this session ends, loudly; the others of the batch still flush.
                    log.exception("session %s: its packets could not be written; closing it", session.sid[:8])
                    session.queue.clear()
                    session.close("transport error", notify=False)

    def _loop_or_current(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # -- heartbeat -----------------------------------------------------

    def _start(self) -> None:
        if self._tick is None:
            loop = self._loop_or_current()
            self._tick = loop.call_later(self.ping_interval / 1000, self._ping_all)

    def _ping_all(self) -> None:
        """Ping every session with one shared frame; reap the silent ones later."""
        loop = self._loop_or_current()
        self._tick = loop.call_later(self.ping_interval / 1000, self._ping_all)
        self._ticks += 1
        tick = self._ticks
        if self._last_answers:  # kept for one to two intervals: the next GET comes at once
            self._last_answers = {sid: kept for sid, kept in self._last_answers.items() if kept[1] >= tick - 1}
        if self.moved:  # forwarding for three heartbeats, then what still waits here gives up
            for sid, (session, since) in list(self.moved.items()):
                if since < tick - 3:
                    del self.moved[sid]
                    session.closed = True
                    self.handoff.release(session)
        for session in list(self.sessions.values()):
            if not session.upgrading and session.timer is None:  # not before its own first ping
                if not session.awaiting_pong:
                    session.awaiting_pong = tick
                session.send(PING_PACKET)
        self.on_tick()
        timeout = self.ping_timeout / 1000
        loop.call_later(timeout, self._reap, loop.time() + timeout, tick)

    def _first_ping(self, session: Session) -> None:
        session.timer = None
        if session.closed or session.upgrading:
            return  # the shared tick takes it from here
        session.awaiting_pong = FIRST_PING
        session.send(PING_PACKET)
        loop = self._loop_or_current()
        timeout = self.ping_timeout / 1000
        session.timer = loop.call_later(timeout, self._reap, loop.time() + timeout, 0, session)

    def _reap(self, due: float, tick: int, session: Session | None = None, postponed: bool = False) -> None:
        """Close the sessions that have not answered the ping of `tick` (or `session` its first).

        If this runs late, the loop was stalled (a busy machine, a long
        handler): pongs that arrived meanwhile may not be read yet, so look
        once more after as long again rather than blame the clients.
        """
        loop = self._loop_or_current()
        late = loop.time() - due
        if late > STALL and not postponed:
            handle = loop.call_later(late, self._reap, loop.time() + late, tick, session, True)
            if session is not None:
                session.timer = handle
            return
        if session is not None:
            session.timer = None
            silent = [session] if session.awaiting_pong == FIRST_PING and not session.closed else []
        else:
            silent = [s for s in self.sessions.values() if 0 < s.awaiting_pong <= tick]
        for session in silent:
            log.info("session %s: no pong within %d ms, closing", session.sid[:8], self.ping_timeout)
            session.close("ping timeout", notify=False)

    def error_body(self, code: int, message: str | None = None) -> str:
        """Socket.IO's JSON error body for Engine.IO error `code`."""
        return error_body(code, message)


__all__ = ["Engine", "ERROR_MESSAGES"]
