"""Answers in transit: a relayed GET's packets kept by the owner until the relaying process wrote them.

A mixin of `Relay` (handlers/cluster/relay.py), which holds the state (`_kept`, `_settling`) and
watches the relaying processes: one that dies, or says nothing for `KEEP_SECONDS`, has its answer
put back at the head of the session's queue. A move waits here for an answer's word (`settled`):
the client sends its upgrade only once its last poll is answered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any, Awaitable, Callable

from ..wire.protocol import Outgoing

log = logging.getLogger("board.relay")

KEEP_SECONDS = 5.0    # how long an answer waits for word that it was written before it is sent again


class RemotePoller:
    """A GET waiting at another process: what the session delivers goes back over Redis. A new GET
    of the session replaces it (`Session.replace_poller`): the one it relayed is gone."""

    __slots__ = ("relay", "session", "reply", "rid", "via")
    relayed = True

    def __init__(self, relay: "InTransit", session: Any, reply: str, rid: int, via: str):
        self.relay = relay
        self.session = session
        self.reply = reply
        self.rid = rid
        self.via = via

    def deliver(self, payload: str | None) -> None:
        self.relay._answer_get(self.session, self.reply, self.rid, self.via, payload)


class Kept:
    """An answer handed to a relaying process, kept until it says it wrote it."""

    __slots__ = ("session", "payload", "via", "rid", "since")

    def __init__(self, session: Any, payload: str, via: str, rid: int, since: float):
        self.session, self.payload, self.via, self.rid, self.since = session, payload, via, rid, since


def payload_packets(payload: str) -> Outgoing:
    """A polling payload back into the packets it was made of (binary ones from base64)."""
    return Outgoing([base64.b64decode(p[1:]) if p[:1] == "b" else p for p in payload.split("\x1e")],
                    checked=True)


class InTransit:
    """The owner's side of relayed answers: keep, settle, release."""

    _kept: dict[str, Kept]
    _settling: dict[str, list[asyncio.Future]]
    engine: Any
    tag: str
    leaving: bool
    _watch: Callable[[], None]                          # the relay's watch of the relaying processes
    _send_answer: Callable[[str, str], Awaitable[None]]

    def _answer_get(self, session: Any, reply: str, rid: int, via: str, payload: str | None) -> None:
        """A relayed GET's answer; one with packets is kept (and the session held) until written."""
        if payload is None:
            payload = "6"
        keep = payload != "6" and not session.closed and via != ""
        if keep and self.leaving:
            # This process hands its sessions over: what is queued goes with the session rather than
            # to a GET whose answer would hold it here until written (under load, a session answered
            # again and again would never be free to move). The GET waits on; the move ends it (a
            # noop), and the next one gets the packets from the new owner.
            session.taken_back(payload)  # not handed after all: counted when it is
            out = payload_packets(payload)
            session.queue.insert(0, out)
            session.queued_bytes += out.size
            session.poller = RemotePoller(self, session, reply, rid, via)
            return
        if keep:
            self._kept[session.sid] = Kept(session, payload, via, rid, asyncio.get_running_loop().time())
            session.held = True  # the next answer waits: it must not overtake this one
            self._watch()
        message = {"op": "answer", "rid": rid, "status": 200, "body": payload}
        if keep:
            message.update(keep=True, sid=session.sid, **{"from": self.tag})
        asyncio.ensure_future(self._send_answer(reply, json.dumps(message)))

    def _settle(self, sid: str, rid: int, written: bool) -> None:
        kept = self._kept.get(sid)
        if kept is not None and kept.rid == rid:
            self._release(sid, written)

    def settle(self, sid: str) -> None:
        """The answer kept for `sid` went to its client again, by a retry of the GET numbered
        (handlers/transports/polling.py): it is not sent a third time."""
        if sid in self._kept:
            self._release(sid, True)

    async def settled(self, sid: str, timeout: float) -> bool:
        """Wait until no answer of `sid` is in transit (written, or back in its queue); False if one
        still is after `timeout` seconds."""
        if sid not in self._kept:
            return True
        future = asyncio.get_running_loop().create_future()
        self._settling.setdefault(sid, []).append(future)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            waiting = self._settling.get(sid)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._settling[sid]
        return sid not in self._kept

    def _release(self, sid: str, written: bool) -> None:
        """The kept answer of `sid` was written, or is sent again ahead of what came since."""
        kept = self._kept.pop(sid)
        for future in self._settling.pop(sid, ()):
            if not future.done():
                future.set_result(None)
        session = kept.session
        session.held = False
        if session.closed or self.engine.sessions.get(sid) is not session:
            return
        if not written:
            log.info("session %s…: its answer through %s was not written; sent again", sid[:8], kept.via)
            session.taken_back(kept.payload)  # the next GET gets it from the queue, counted then
            out = payload_packets(kept.payload)
            session.queue.insert(0, out)
            session.queued_bytes += out.size
        if session.queue:
            session.flush()
