"""One Engine.IO session: its outbound queue, heartbeat state and transport.

A session outlives its transport: it may start on long-polling and move to
a WebSocket mid-way. Whatever the transport, the hub hands it `Outgoing`
packets (already encoded) and the session queues references to them; the
engine flushes every session that has something queued a loop turn later,
so a burst of emits becomes one write per connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from ..wire.protocol import (
    CLOSE, MESSAGE, MESSAGE_MARK, NOOP, PING, PONG, UPGRADE, Outgoing, ProtocolError, decode_engine_packet,
    decode_payload,
)

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("board.engine")

PING_PACKET = Outgoing(["2"])
PROBE_REPLY = Outgoing(["3probe"])
NOOP_PACKET = Outgoing(["6"])
CLOSE_PACKET = Outgoing(["1"])

# python-engineio's client drops its session on a poll answer of more than 16
# packets (`Payload.max_decode_packets`); the rest waits for the next GET.
MAX_POLL_PACKETS = 16
CLIENT_CLOSE = "client close"


class Writer(Protocol):
    """What a WebSocket transport offers the session."""

    def send_packets(self, queue: list[Outgoing]) -> bool: ...
    def close_transport(self, code: int, reason: str) -> None: ...


class Poller(Protocol):
    """What a pending long-poll GET offers the session."""

    def deliver(self, payload: str) -> None: ...


class PollCount:
    """The GET answers handed to a client that numbers its GETs (our client's `n`), and the last one,
    kept until a GET's `n` says it arrived: a browser's silent retry of a GET repeats its `n`."""

    __slots__ = ("count", "kept")

    def __init__(self, count: int = 0, kept: str | None = None):
        self.count = count
        self.kept = kept


class Session:
    """An Engine.IO session, whichever transport currently carries it."""

    __slots__ = (
        "engine", "sid", "ws", "poller", "queue", "queued_bytes", "dirty",
        "awaiting_pong", "upgrading", "probed", "closed", "posting", "created", "context",
        "held", "timer", "polls", "__weakref__",
    )

    def __init__(self, engine: "Engine", sid: str, created: float):
        self.engine = engine
        self.sid = sid
        self.ws: Writer | None = None        # set once the session runs on a WebSocket
        self.poller: Poller | None = None    # the GET waiting for packets, on polling
        self.queue: list[Outgoing] = []
        self.queued_bytes = 0
        self.dirty = False
        self.awaiting_pong = 0                # the heartbeat tick of the unanswered ping, or 0
        self.upgrading = False               # a WebSocket with our sid is open, not yet confirmed
        self.probed = False                  # ... and it has answered the probe: polling must pause
        self.closed = False
        self.posting = False
        self.created = created
        self.context: Any = None             # the layer above (the hub's client) keeps its state here
        self.held = False                    # see write_apart; on polling, an answer in transit (relay.py)
        self.timer: asyncio.TimerHandle | None = None  # its first ping, then that ping's deadline
        self.polls: PollCount | None = None  # once its client numbers its GETs (none for official clients)

    @property
    def transport(self) -> str:
        return "websocket" if self.ws is not None else "polling"

    # -- outbound ------------------------------------------------------

    def send(self, out: Outgoing) -> None:
        """Queue encoded packets; they leave at the engine's next flush, with whatever follows meanwhile."""
        if self.closed:
            return
        self.queue.append(out)
        self.queued_bytes += out.size
        if self.queued_bytes > self.engine.max_queue_bytes:
            log.warning("session %s: %d bytes waiting, client too slow; closing",
                        self.sid[:8], self.queued_bytes)
            self.engine.stats.slow_clients_dropped += 1
            self.close("transport error", notify=False)
            return
        if not self.dirty:
            self.dirty = True
            self.engine.mark_dirty(self)

    def write_apart(self, pause: float = 0.005) -> None:
        """Write what is queued now, and what follows only after `pause` seconds.

        For a packet the client must handle before the next ones reach it:
        clients that register a listener once the previous message is handled
        (the official test suites do) lose a message that arrives in the same
        read. On polling each answer is its own response already.
        """
        if self.ws is None or self.held:
            return
        self.flush()
        self.held = True
        asyncio.get_running_loop().call_later(pause, self._release)

    def _release(self) -> None:
        self.held = False
        if self.queue and not self.closed:
            self.flush()

    def flush(self) -> None:
        """Write what is queued to the transport, if it can take it now."""
        self.dirty = False
        queue = self.queue
        if not queue or self.held:
            return
        if self.ws is not None:
            written = self.ws.send_packets(queue)
            queue.clear()  # reused: no new list per client per flush
            self.queued_bytes = 0
            if not written:
                self.close("transport error", notify=False)
        elif self.poller is not None:
            self.end_poll(self.take_payload())  # type: ignore[arg-type]

    def poll(self) -> str | None:
        """What a GET gets at once, whichever process or path serves it; None: it waits."""
        if self.held:  # the last answer is still in transit through another process
            payload = "6" if self.probed else None
        else:
            payload = self.take_payload()
            if payload is None and self.probed:
                payload = "6"  # mid-upgrade: let the client pause polling and confirm on the WebSocket
        if payload is not None and self.polls is not None:
            self._handed(payload)
        return payload

    def end_poll(self, payload: str) -> None:
        """The GET waiting, if one is, ends with `payload` (counted as handed to the client)."""
        poller, self.poller = self.poller, None
        if poller is not None:
            if self.polls is not None:
                self._handed(payload)
            poller.deliver(payload)

    # -- numbered GETs: an answer lost on the way is answered again ----------------------

    def _handed(self, payload: str) -> None:
        self.polls.count += 1  # type: ignore[union-attr]
        self.polls.kept = payload  # type: ignore[union-attr]

    def answer_again(self, n: int) -> str | None:
        """A GET that says its client got `n` answers: the last one again if the client never got it
        (not counted twice), else None (served as usual). `n` is the count: the last answer is
        dropped. Any other `n` (a count lost on a move) is taken as the count from here on."""
        polls = self.polls
        if polls is None:  # its first numbered GET
            self.polls = PollCount(n)
            return None
        if n == polls.count:
            polls.kept = None
            return None
        if n == polls.count - 1 and polls.kept is not None:
            log.info("session %s: GET %d came again, its answer lost on the way; sent again", self.sid[:8], n)
            self.engine.stats.polls_answered_again += 1
            if self.held and self.engine.relay is not None:  # that answer, kept in transit: reached it now
                self.engine.relay.settle(self.sid)
            return polls.kept
        log.debug("session %s: GET numbered %d, %d answers handed; counting from it", self.sid[:8], n, polls.count)
        polls.count, polls.kept = n, None
        return None

    def taken_back(self, payload: str) -> None:
        """`payload`, the last answer handed, goes back to the queue (relay.py): no longer counted."""
        polls = self.polls
        if polls is not None and polls.kept is payload:
            polls.count -= 1
            polls.kept = None

    def replace_poller(self, numbered: bool = False) -> bool:
        """A GET arrived while another waits. One relayed through another process is gone (that
        process died and the balancer retried the GET elsewhere, or its client gave up), and so is
        any when the new GET is `numbered` (our client sends one at a time: this is its retry): it
        ends with a noop and the new GET takes its place. False for a local GET still waiting."""
        poller = self.poller
        if poller is None:
            return True
        if not (numbered or getattr(poller, "relayed", False)):  # only the cluster's RemotePoller says so
            return False
        self.poller = None
        poller.deliver("6")  # not counted: it has no client to reach (this GET is its retry)
        return True

    def take_payload(self, limit: int = MAX_POLL_PACKETS) -> str | None:
        """Up to `limit` queued packets as one polling payload; the rest stay for the next GET."""
        queue = self.queue
        if not queue:
            return None
        count = taken = 0
        for out in queue:
            count += len(out.packets)
            if count > limit:
                break
            taken += 1
        if taken == len(queue):  # the usual case: it all fits
            text = "\x1e".join([o.text for o in queue])
            queue.clear()
            self.queued_bytes = 0
            return text
        if taken == 0:  # one emit with more packets than a poll may carry: split it
            head = queue[0]
            first = Outgoing(head.packets[:limit], checked=True)
            queue[0] = Outgoing(head.packets[limit:], checked=True)
            self.queued_bytes -= first.size
            return first.text
        parts = queue[:taken]
        del queue[:taken]
        self.queued_bytes -= sum(o.size for o in parts)
        return "\x1e".join([o.text for o in parts])

    # -- inbound -------------------------------------------------------

    def receive(self, kind: int, data: str | bytes) -> None:
        """One Engine.IO packet from the client, already split by the transport."""
        if kind == MESSAGE:
            self.engine.on_message(self, data)
        elif kind == PONG:
            self.awaiting_pong = 0
            if self.timer is not None:  # the deadline of its first ping (or, unasked, the ping itself)
                self.timer.cancel()
                self.timer = None
        elif kind == CLOSE:
            self.close(CLIENT_CLOSE, notify=False)
        elif kind == PING:
            # v4 clients do not ping; answer anyway, it costs nothing.
            self.send(Outgoing(["3" + data]) if data else Outgoing(["3"]))
        elif kind == NOOP:
            pass
        elif kind == UPGRADE:
            raise ProtocolError("upgrade packet outside an upgrade")
        else:
            raise ProtocolError("open packet from a client")

    # -- long-polling: one POST at a time ------------------------------------------------------

    def start_post(self) -> None:
        """A POST of the client's packets is being read (a second one meanwhile is refused)."""
        self.posting = True

    def end_post(self) -> None:
        """That POST is read, refused or gone."""
        self.posting = False

    # -- the upgrade: a WebSocket with this session's sid probes, then takes over ----------------

    @property
    def can_probe(self) -> bool:
        """Open, on polling, and no WebSocket probing it yet."""
        return not (self.closed or self.ws is not None or self.upgrading)

    def begin_probe(self) -> bool:
        """A WebSocket with this sid opened; False if the session cannot take one (the caller closes it)."""
        if not self.can_probe:
            return False
        self.upgrading = True
        return True

    def probe_step(self, ws: Writer, kind: int, data: str | bytes) -> bool:
        """A packet on the probing WebSocket `ws`; True once the session runs on it (the client's UPGRADE)."""
        if kind == PING and data == "probe":
            ws.send_packets([PROBE_REPLY])
            self.probed = True
            upgraded = False
        elif kind == UPGRADE:
            self.upgrading = self.probed = False
            self.ws = ws
            for watcher in self.engine.watchers:
                watcher.upgraded(self)
            upgraded = True
        else:
            raise ProtocolError("expected a probe or an upgrade")
        self.end_poll("6")  # the GET in flight ends: polling pauses, or stops
        if upgraded:
            self.flush()
        return upgraded

    def receive_frame(self, ws: Writer, message: str | bytes, probing: bool) -> bool:
        """One WebSocket message from `ws`, which carries this session or (`probing`) probes it; True
        while `ws` still probes. Bad input ends a probe (1002; polling carries on) or the session."""
        try:
            if not probing and message[:1] == MESSAGE_MARK:  # nearly all traffic: a text message
                self.engine.on_message(self, message[1:])  # type: ignore[index]
                return False
            kind, data = decode_engine_packet(message)
            if probing:
                return not self.probe_step(ws, kind, data)
            self.receive(kind, data)
        except ProtocolError as exc:
            log.warning("session %s: %s; closing", self.sid[:8], exc)
            if probing:
                self.end_probe()
                ws.close_transport(1002, "parse error")
            else:
                self.close("parse error", notify=False)
        return probing

    def end_probe(self) -> None:
        """The probing WebSocket failed or closed before the upgrade (or the session moved away
        with it): polling carries on."""
        self.upgrading = self.probed = False

    def probed_elsewhere(self) -> bool:
        """A WebSocket of this client answered a probe at another process: polling pauses as for
        a probe here (the GET in flight ends); False if an upgrade is already under way."""
        if self.upgrading:
            return False
        self.upgrading = self.probed = True
        self.end_poll("6")
        return True

    def websocket_closed(self, ws: Writer, probing: bool) -> None:
        """`ws` closed: a probe that ends (polling carries on), or the transport of this session."""
        if probing:
            self.end_probe()
        elif self.ws is ws:
            self.ws = None
            self.close("transport close", notify=False)

    def receive_body(self, body: bytes) -> str | None:
        """A polling POST's raw body, as `receive_payload`; not UTF-8 is refused the same way."""
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("session %s: a payload that is not UTF-8; closing", self.sid[:8])
            self.close("parse error", notify=False)
            return "Bad payload: invalid UTF-8"
        return self.receive_payload(payload)

    def receive_payload(self, payload: str) -> str | None:
        """The packets of a polling POST, whichever process it reached; on bad input the
        session closes (parse error) and the reason for the client comes back."""
        try:
            for kind, data in decode_payload(payload):
                if self.closed:
                    break
                self.receive(kind, data)
        except ProtocolError as exc:
            log.warning("session %s: bad payload (%s); closing", self.sid[:8], exc)
            self.close("parse error", notify=False)
            return f"Bad payload: {exc}"
        return None

    # -- lifecycle -----------------------------------------------------

    def close(self, reason: str, notify: bool = True) -> None:
        """End the session; `notify` sends the client a close packet first.

        On polling, the last answer (what is queued and the close packet, or
        a noop when the client itself closed) goes to the pending GET, or is
        kept for the next GET if none is waiting: a close and a GET may cross.
        """
        if self.closed:
            return
        last = None
        if self.ws is None:
            if notify:
                rest = self.take_payload(MAX_POLL_PACKETS - 1)
                last = rest + "\x1e1" if rest else "1"
            else:
                last = "6"  # ends a pending GET cleanly
        elif notify:
            self.queue.append(CLOSE_PACKET)
            self.held = False
            self.flush()
        self.closed = True
        self.queue = []
        self.queued_bytes = 0
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.poller is not None:
            self.end_poll(last)  # type: ignore[arg-type]
            if self.polls is not None and last is not None:  # for its GET's retry, should it be lost
                self.engine.linger(self.sid, last)
        elif last is not None and (notify or reason == CLIENT_CLOSE):
            self.engine.linger(self.sid, last)
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.close_transport(1000, reason)
        self.engine.discard(self, reason)
