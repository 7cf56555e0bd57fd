"""Sessions that change process: an upgrade that lands elsewhere, and a drain that hands its
long-polling sessions to the processes that stay.

The upgrade: a probe that reaches another process than the session's is
announced to the owner (which then pauses polling, as for a local probe), and
the client's confirmation moves the session to the process that holds the
WebSocket (handlers/cluster/handoff.py).

The drain: a process going away hands each long-polling session to a live
process ("adopt"), with what it had not sent and its sockets' state; the new
owner replays the stream entries after the old one's last, so nothing is
missed. The session keeps its id, whose tag still names the old process, so
the move is written down twice: the old process answers requests for it
with "moved" while it lives, and Redis keeps `<prefix>:moved:<sid>` (the
new owner's tag, refreshed each heartbeat while the session lives) for
after it is gone. Any process asked for the session follows either, once.
The client sees nothing: its next GET, wherever it lands, carries on.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..engineio.session import PollCount
from ..wire.protocol import Outgoing

if TYPE_CHECKING:
    from ..engineio.engine import Engine

log = logging.getLogger("board.relay")

MOVED_TTL_MS = 3_600_000  # how long a moved session's address outlives its last heartbeat
MAX_MOVED = 100_000       # addresses of moved sessions remembered by each process
MOVE_SETTLE_SECONDS = 2.0  # how long a move waits for word of an answer in transit (the asker waits 5)


def pack(queue: list[Outgoing]) -> list:
    """Encoded packets as JSON can carry them: text as is, binary attachments in base64."""
    return [[p if isinstance(p, str) else {"b": base64.b64encode(p).decode()} for p in out.packets]
            for out in queue]


def unpack(items: Any) -> list[Outgoing]:
    return [Outgoing([p if isinstance(p, str) else base64.b64decode(p["b"]) for p in packets])
            for packets in items]


class Forwarder:
    """The old owner's end of a session that moved: what is still written there goes to the new owner."""

    __slots__ = ("relay", "tag", "sid")

    def __init__(self, relay: Any, tag: str, sid: str):
        self.relay, self.tag, self.sid = relay, tag, sid

    def send_packets(self, queue: list[Outgoing]) -> bool:
        self.relay.tell(self.tag, {"op": "write", "sid": self.sid, "packets": pack(queue)})
        return True

    def close_transport(self, code: int, reason: str) -> None:
        pass  # the transport is the new owner's


class Moves:
    """The relay's part for sessions that move (a mixin of `Relay`)."""

    engine: "Engine"
    redis: Any
    prefix: str
    tag: str

    def _init_moves(self) -> None:
        self.moved_to: OrderedDict[str, str] = OrderedDict()  # sid -> tag of the process it moved to
        self._adopting: dict[str, asyncio.Future] = {}         # sid -> its adoption here, under way
        self._handing: dict[str, asyncio.Future] = {}          # sid -> its hand-over from here, under way
        self.adopted: set[str] = set()                         # sessions moved here by a drain
        self._peer = 0

    def _moved_key(self, sid: str) -> str:
        return f"{self.prefix}:moved:{sid}"

    def remember_move(self, sid: str, tag: str) -> None:
        self.moved_to[sid] = tag
        self.moved_to.move_to_end(sid)
        if len(self.moved_to) > MAX_MOVED:
            self.moved_to.popitem(last=False)

    async def moved_elsewhere(self, sid: str, gone: str) -> str | None:
        """Where the session `sid` went, if the process `gone` handed it on before it went away."""
        try:
            tag = await self.redis.get(self._moved_key(sid))
        except Exception as exc:
            log.debug("relay: where %s… went is unknown: %s", sid[:8], exc)
            return None
        tag = tag.decode() if isinstance(tag, bytes) else tag
        if tag and tag != gone:
            self.remember_move(sid, tag)
            return tag
        return None

    def moved_keys(self) -> list[str]:
        """The Redis keys of the sessions a drain moved here that still live (refreshed each heartbeat)."""
        self.adopted &= set(self.engine.sessions)
        return [self._moved_key(sid) for sid in self.adopted]

    # -- the upgrade: the session moves to the WebSocket that reached this process ----

    async def probe(self, sid: str) -> bool:
        """Tell the owner of `sid` that its client probes a WebSocket here; False if it cannot."""
        status, _ = await self.request(sid, "probe", None, 5.0)  # type: ignore[attr-defined]
        return status == 200

    def unprobe(self, sid: str) -> None:
        owner = self.owner(sid)  # type: ignore[attr-defined]
        if owner is not None:
            self.tell(owner, {"op": "unprobe", "sid": sid})  # type: ignore[attr-defined]

    async def move_here(self, sid: str, ws: Any) -> Any:
        """Move the session `sid` to this process, carried by `ws`; its Session, or None."""
        status, text = await self.request(sid, "move", None, 5.0)  # type: ignore[attr-defined]
        if status != 200:
            log.info("session %s… could not move here: %s", sid[:8], text)
            return None
        moved = json.loads(text)
        owner = moved.get("from") or self.owner(sid)  # type: ignore[attr-defined]
        session = await self.engine.adopt(sid, ws, unpack(moved["queue"]), moved["context"],
                                          self._forward_ack(owner, sid))
        log.info("session %s… moved here from %s with its WebSocket", sid[:8], owner)
        return session

    def _forward_ack(self, owner: str, sid: str) -> Any:
        def forward_ack(namespace: str, ack_id: int, data: list) -> None:
            self.tell(owner, {"op": "ack", "sid": sid, "ns": namespace, "id": ack_id,  # type: ignore[attr-defined]
                              "data": data})
        return forward_ack

    def _move_out(self, session: Any, message: dict) -> None:
        if session.sid in self._kept:  # type: ignore[attr-defined]
            asyncio.ensure_future(self._move_out_settled(session, message))
        else:
            self._move_out_now(session, message)

    async def _move_out_settled(self, session: Any, message: dict) -> None:
        """An answer is in transit through another process: where it went is not known yet. A client
        sends its upgrade only once its last poll is answered, so the relaying process's word that it
        wrote it is most likely on its way: wait for it (a refused move would close the WebSocket the
        client has already switched to), then move with whatever came back."""
        if await self.settled(session.sid, MOVE_SETTLE_SECONDS):  # type: ignore[attr-defined]
            self._move_out_now(session, message)
        else:
            self._answer(message["reply"], message["rid"], 400, "Session cannot move now")  # type: ignore[attr-defined]

    def _move_out_now(self, session: Any, message: dict) -> None:
        reply, rid, sid = message["reply"], message["rid"], session.sid
        if session.closed or self.engine.sessions.get(sid) is not session:
            self._answer(reply, rid, 400, "Session ID unknown")  # type: ignore[attr-defined]
            return
        moved = self.engine.move_out(session, Forwarder(self, message["from"], sid))
        if moved is None:
            self._answer(reply, rid, 400, "Session cannot move now")  # type: ignore[attr-defined]
        else:
            queue, context = moved
            self._answer(reply, rid, 200, json.dumps(  # type: ignore[attr-defined]
                {"queue": pack(queue), "context": context, "from": self.tag}))

    # -- the drain: long-polling sessions handed to a process that stays -------------

    async def live_peers(self) -> list[str]:
        """The tags of the other processes whose relay listens and that are not draining too."""
        channels = await self.redis.pubsub_channels(f"{self.prefix}:relay:*")
        tags = sorted({(c.decode() if isinstance(c, bytes) else c).rsplit(":", 1)[1] for c in channels} - {self.tag})
        if not tags:
            return []
        draining = await self.redis.mget([f"{self.prefix}:draining:{t}" for t in tags])
        return [t for t, d in zip(tags, draining) if d is None]

    async def draining(self, seconds: float) -> list[str]:
        """This process drains: the others stop handing it sessions; the processes to hand ours to."""
        await self.redis.set(f"{self.prefix}:draining:{self.tag}", 1, px=int(seconds * 1000) + 60_000)
        return await self.live_peers()

    def can_hand_over(self, session: Any) -> bool:
        """Nothing half-done: no POST being read, no answer in transit, no middleware running."""
        context = session.context
        return not (session.posting or session.held or session.sid in self._kept  # type: ignore[attr-defined]
                    or session.ws is not None or session.closed or session.upgrading
                    or (context is not None and context.pending))

    async def hand_over(self, session: Any, peers: list[str]) -> bool:
        """Move a long-polling `session` to one of `peers` (taken in turn); False if it could not move
        (then it is still here) or if no process took it (then it is gone).

        A peer that says no (it drains too, or could not install the session) or is gone holds
        nothing of it: the next one is asked. One that did not answer in time may still take it,
        so it is not asked again elsewhere (one owner at most)."""
        sid = session.sid
        moved = self.engine.move_out(session, Forwarder(self, peers[self._peer % len(peers)], sid), upgrade=False)
        if moved is None:
            return False
        queue, context = moved
        polls = session.polls  # counted up to the noop its GET waiting here just got
        body = json.dumps({"queue": pack(queue), "context": context,
                           "polls": None if polls is None else [polls.count, polls.kept]})
        # From now on, requests for it here wait for the hand-over, then go where it went.
        handing = self._handing[sid] = asyncio.get_running_loop().create_future()
        try:
            for _ in range(len(peers)):
                target = peers[self._peer % len(peers)]
                self._peer += 1
                session.ws = Forwarder(self, target, sid)
                self.remember_move(sid, target)
                answer = await self._ask(target, sid, "adopt", body, 5.0)  # type: ignore[attr-defined]
                if answer["status"] == 200:
                    await self._say_moved(sid, target)
                    return True
                if answer.get("late"):  # it may yet take it: requests go there, and fail there if not
                    log.warning("session %s… handed to %s, which did not say it took it", sid[:8], target)
                    await self._say_moved(sid, target)
                    return True
                log.warning("session %s… not taken by %s: %s", sid[:8], target, answer["body"])
            log.warning("session %s… taken by no process: its client reconnects", sid[:8])
            self.moved_to.pop(sid, None)
            return False
        finally:
            del self._handing[sid]
            handing.set_result(None)

    async def _say_moved(self, sid: str, target: str) -> None:
        """Write down in Redis where `sid` went, for the processes that ask after this one is gone."""
        try:
            await self.redis.set(self._moved_key(sid), target, px=MOVED_TTL_MS)
        except Exception as exc:
            log.warning("session %s… moved to %s, but Redis could not say so: %s", sid[:8], target, exc)

    def _adopt(self, message: dict) -> None:
        """A draining process hands us a long-polling session."""
        sid, reply, rid = message["sid"], message["reply"], message["rid"]
        gate = self.engine.admission
        if (gate is not None and gate.draining) or sid in self.engine.sessions or sid in self._adopting:
            self._answer(reply, rid, 400, "Not taking sessions")  # type: ignore[attr-defined]
            return
        moved = json.loads(message["body"])
        polls = moved.get("polls")
        adoption = asyncio.ensure_future(self.engine.adopt(
            sid, None, unpack(moved["queue"]), moved["context"], self._forward_ack(message["from"], sid),
            None if polls is None else PollCount(*polls)))
        self._adopting[sid] = adoption

        def done(task: asyncio.Future) -> None:
            self._adopting.pop(sid, None)
            if task.cancelled() or task.exception() is not None:
                log.warning("session %s… from %s could not be adopted: %s", sid[:8], message["from"],
                            "cancelled" if task.cancelled() else task.exception())
                self._answer(reply, rid, 400, "Session could not be adopted")  # type: ignore[attr-defined]
                return
            self.adopted.add(sid)
            log.info("session %s… taken over from %s, on long-polling", sid[:8], message["from"])
            self._answer(reply, rid, 200, "ok")  # type: ignore[attr-defined]
        adoption.add_done_callback(done)

    def _after_adoption(self, message: dict) -> bool:
        """A request for a session being handed over, from here or to here, waits for the hand-over
        to end; True if it was put off."""
        sid = message["sid"]
        move = self._adopting.get(sid) or self._handing.get(sid)
        if move is None:
            return False
        move.add_done_callback(lambda _: self._on_message(message))  # type: ignore[attr-defined]
        return True

    async def handed_over(self, sid: str) -> None:
        """Returns once a hand-over of `sid` from here, if one is under way, has ended."""
        handing = self._handing.get(sid)
        if handing is not None:
            await asyncio.shield(handing)

    # -- what needs no answer ------------------------------------------------

    def _moving(self, op: str, sid: str, session: Any, message: dict) -> None:
        if op == "write":  # from the old owner of a session that moved here
            if session is not None:
                for out in unpack(message["packets"]):
                    session.send(out)
        elif op == "ack":  # to the old owner: the client's ack of a request made before the move
            moved = self.engine.moved.get(sid)
            if moved is not None:
                self.engine.handoff.ack(moved[0], message["ns"], message["id"], message["data"])
        elif op == "unprobe" and session is not None:  # the probe's WebSocket closed before the upgrade
            self._unpause(session)

    @staticmethod
    def _unpause(session: Any) -> None:
        if session.probed and session.ws is None and not session.closed \
                and session.engine.sessions.get(session.sid) is session:
            session.end_probe()
