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

The upgrade to WebSocket goes over the same channels: a probe that reaches
another process is announced to the owner (which then pauses polling, as
for a local probe), and the client's confirmation moves the session to
the process that holds the WebSocket (handlers/cluster/handoff.py).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

from ..wire.protocol import Outgoing
from .subscriber import Subscriber

if TYPE_CHECKING:
    from ..engineio.engine import Engine

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

    def __init__(self, relay: "Relay", tag: str, sid: str):
        self.relay, self.tag, self.sid = relay, tag, sid

    def send_packets(self, queue: list[Outgoing]) -> bool:
        self.relay.tell(self.tag, {"op": "write", "sid": self.sid, "packets": pack(queue)})
        return True

    def close_transport(self, code: int, reason: str) -> None:
        pass  # the WebSocket is the new owner's


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
        message = {"op": op, "sid": sid, "rid": rid, "reply": self.channel, "from": self.tag, "body": body}
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

    def tell(self, tag: str, message: dict) -> None:
        """Send `message` to the process `tag`, expecting no answer."""
        asyncio.ensure_future(self._publish(tag, message))

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
        sid = message["sid"]
        session = self.engine.sessions.get(sid)
        if op in ("write", "ack", "unprobe"):
            self._moving(op, sid, session, message)
            return
        rid, reply = message["rid"], message["reply"]
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
        elif op == "probe":
            if not session.probed_elsewhere():  # polling pauses, as for a probe here
                self._answer(reply, rid, 400, "Upgrade already in progress")
                return
            self._answer(reply, rid, 200, "ok")
            # If the other process dies before the client confirms, polling must not stay paused.
            engine = self.engine
            asyncio.get_running_loop().call_later(
                (engine.ping_interval + engine.ping_timeout) / 1000 + 5, self._unpause, session)
        elif op == "move":
            moved = self.engine.move_out(session, Forwarder(self, message["from"], sid))
            if moved is None:
                self._answer(reply, rid, 400, "Session cannot move now")
            else:
                queue, context = moved
                self._answer(reply, rid, 200, json.dumps({"queue": pack(queue), "context": context}))

    def _moving(self, op: str, sid: str, session: Any, message: dict) -> None:
        """The messages of a session's move that need no answer."""
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

    # -- moving a session to the WebSocket that reached this process ----

    async def probe(self, sid: str) -> bool:
        """Tell the owner of `sid` that its client probes a WebSocket here; False if it cannot."""
        status, _ = await self.request(sid, "probe", None, 5.0)
        return status == 200

    def unprobe(self, sid: str) -> None:
        owner = self.owner(sid)
        if owner is not None:
            self.tell(owner, {"op": "unprobe", "sid": sid})

    async def move_here(self, sid: str, ws: Any) -> Any:
        """Move the session `sid` to this process, carried by `ws`; its Session, or None."""
        owner = self.owner(sid)
        status, text = await self.request(sid, "move", None, 5.0)
        if status != 200:
            log.info("session %s… could not move here: %s", sid[:8], text)
            return None
        moved = json.loads(text)

        def forward_ack(namespace: str, ack_id: int, data: list) -> None:
            self.tell(owner, {"op": "ack", "sid": sid, "ns": namespace, "id": ack_id, "data": data})

        session = await self.engine.adopt(sid, ws, unpack(moved["queue"]), moved["context"], forward_ack)
        log.info("session %s… moved here from %s with its WebSocket", sid[:8], owner)
        return session

    def _get(self, session: Any, reply: str, rid: int) -> None:
        if session.poller is not None:
            self._answer(reply, rid, 400, "Overlapping GET requests")
            session.close("transport error", notify=False)
            return
        payload = session.poll()
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
