"""Long-polling without sticky sessions: requests relayed to the process that owns the session.

Behind a plain round-robin balancer, the GETs and POSTs of one long-polling
session land on any process. A session's id starts with the tag of the
process that owns it, so any process knows where to send a request it cannot
serve itself: over Redis pub/sub, to the owner's channel, which answers on
the asker's (as Centrifugo's and Phoenix's long-polling do over their
brokers). The owner treats a relayed GET like its own: it waits for packets
(a heartbeat ping comes at least every ping interval), then publishes them.

A relayed GET whose HTTP client went away is cancelled at the owner; if its
answer was already on its way, the client's recovery offset brings back
what it held (the client sees its GET fail and reconnects).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

from .subscriber import Subscriber

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("board.relay")

TAG_LENGTH = 8


class RemotePoller:
    """A GET waiting at another process: what the session delivers goes back over Redis."""

    __slots__ = ("relay", "reply", "rid")

    def __init__(self, relay: "Relay", reply: str, rid: int):
        self.relay = relay
        self.reply = reply
        self.rid = rid

    def deliver(self, payload: str | None) -> None:
        self.relay._answer(self.reply, self.rid, 200, payload if payload is not None else "6")


class Relay(Subscriber):
    """Carries polling requests between processes; `tag` prefixes the ids of this process's sessions."""

    log = log

    def __init__(self, redis: Any, prefix: str, tag: str, engine: "Engine"):
        super().__init__(redis)
        self.prefix = prefix
        self.tag = tag
        self.engine = engine
        self.channel = self._channel(tag)
        self.channels = (self.channel,)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}

    def _channel(self, tag: str) -> str:
        return f"{self.prefix}:relay:{tag}"

    def owner(self, sid: str) -> str | None:
        """The tag of the process that owns `sid`, if another one does."""
        tag = sid[:TAG_LENGTH]
        if len(sid) > TAG_LENGTH and tag != self.tag and all(c in "0123456789abcdef" for c in tag):
            return tag
        return None

    # -- asking --------------------------------------------------------

    async def request(self, sid: str, op: str, body: str | None, timeout: float) -> tuple[int, str]:
        """Send a GET or POST of session `sid` to its owner; (status, body) of its answer."""
        owner = self.owner(sid)
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        message = {"op": op, "sid": sid, "rid": rid, "reply": self.channel, "body": body}
        try:
            if not await self.redis.publish(self._channel(owner), json.dumps(message)):
                return 400, "Session ID unknown"   # no process listens there: it is gone
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return 400, "Session ID unknown"
        except asyncio.CancelledError:
            if op == "get":  # the HTTP client went away: stop the owner from answering into the void
                await self._publish(owner, {"op": "cancel", "sid": sid, "rid": rid, "reply": self.channel})
            raise
        except Exception as exc:
            log.warning("relaying a polling %s for %s… failed: %s", op, sid[:8], exc)
            return 400, "Session ID unknown"
        finally:
            self._waiting.pop(rid, None)

    async def _publish(self, tag: str, message: dict) -> None:
        try:
            await self.redis.publish(self._channel(tag), json.dumps(message))
        except Exception as exc:
            log.warning("relay: publishing to %s failed: %s", tag, exc)

    # -- answering -----------------------------------------------------

    def _on_message(self, message: dict) -> None:
        op = message["op"]
        if op == "answer":
            future = self._waiting.get(message["rid"])
            if future is not None and not future.done():
                future.set_result((message["status"], message["body"]))
            return
        sid, rid, reply = message["sid"], message["rid"], message["reply"]
        session = self.engine.sessions.get(sid)
        if op == "cancel":
            if session is not None and isinstance(session.poller, RemotePoller) and session.poller.rid == rid:
                session.poller = None
            return
        if session is None or session.closed:
            self._answer(reply, rid, 400, "Session ID unknown")
        elif session.ws is not None:
            self._answer(reply, rid, 400, "Session upgraded to WebSocket")
        elif op == "get":
            self._get(session, reply, rid)
        elif op == "post":
            refused = session.receive_payload(message["body"])
            self._answer(reply, rid, 400 if refused else 200, refused or "ok")

    def _get(self, session: Any, reply: str, rid: int) -> None:
        if session.poller is not None:
            self._answer(reply, rid, 400, "Overlapping GET requests")
            session.close("transport error", notify=False)
            return
        payload = session.take_payload()
        if payload is None and session.probed:
            payload = "6"
        if payload is not None:
            self._answer(reply, rid, 200, payload)
        else:
            session.poller = RemotePoller(self, reply, rid)

    def _answer(self, reply: str, rid: int, status: int, body: str) -> None:
        message = json.dumps({"op": "answer", "rid": rid, "status": status, "body": body})
        asyncio.ensure_future(self._send_answer(reply, message))

    async def _send_answer(self, reply: str, message: str) -> None:
        try:
            await self.redis.publish(reply, message)
        except Exception as exc:
            log.warning("relay: answering failed: %s", exc)
