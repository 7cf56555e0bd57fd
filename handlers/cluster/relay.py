"""Long-polling without sticky sessions: requests relayed to the process that owns the session.

Behind a plain round-robin balancer, the GETs and POSTs of one long-polling
session land on any process. A session's id starts with the tag of the
process that owns it, so any process knows where to send a request it cannot
serve itself: over Redis pub/sub, to the owner's channel, which answers on
the asker's (as Centrifugo's and Phoenix's long-polling do over their
brokers). The owner treats a relayed GET like its own: it waits for packets
(a heartbeat ping comes at least every ping interval), then publishes them.

Nothing waits on a process that is gone: PUBLISH says when no process
listens on the owner's channel, and while requests wait, the channels of
their owners are counted (PUBSUB NUMSUB) every quarter of a second, so a
request to an owner that dies meanwhile fails within a second, 400 as for
an unknown session, and the client reconnects at once.

Nothing is lost in transit either. The owner keeps each answer that carries
packets until the relaying process says it wrote it to its HTTP client, and
holds the session's next answer meanwhile. If the relaying process dies
first (its channel counts no listener), its HTTP client went away, or it
says nothing for `KEEP_SECONDS`, the packets go back to the head of the
session's queue: the client's next GET (the balancer's retry of the same
one, or any other), wherever it lands, gets them, in order (handlers/cluster/transit.py). A GET our client numbered
(`n`) is answered by the owner's one rule (handlers/transports/polling.py): the
same `n` again gets the same answer; an answer taken back is not counted, and one
answered again to a retry is forgotten here, so nothing goes twice.

Sessions that change process (an upgrade landing elsewhere, a drain handing
its polling sessions on) go over the same channels: handlers/cluster/moves.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any

from ..transports.polling import Refusal, answer_again, read_post
from .moves import Moves
from .subscriber import Subscriber
from .transit import KEEP_SECONDS, InTransit, Kept, RemotePoller

if TYPE_CHECKING:
    from ..engineio.engine import Engine

log = logging.getLogger("board.relay")

TAG_LENGTH = 8
GONE = (400, "Session ID unknown")  # what a request for a session of no live process gets


def gone() -> dict:
    """The answer of a process that is not there."""
    return {"status": GONE[0], "body": GONE[1], "gone": True}
WATCH_SECONDS = 0.25  # how often the owners that requests wait on are counted alive


class Relay(InTransit, Moves, Subscriber):
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
        self._waiting: dict[int, tuple[asyncio.Future, str]] = {}  # rid -> (its answer, the owner's tag)
        self._asked: dict[int, tuple[str, str]] = {}  # rid -> (op, sid) of what waits
        self._kept: dict[str, Kept] = {}          # sid -> an answer not yet known to be written
        self._probes: dict[str, tuple[Any, str]] = {}  # sid -> (session, the process its probe went to)
        self._settling: dict[str, list[asyncio.Future]] = {}  # sid -> who waits for its kept answer's word
        self._unwritten: dict[str, tuple[str, int]] = {}  # sid -> (owner, rid) of an answer being written here
        self._watching: asyncio.Task | None = None
        self._telling: set[asyncio.Future] = set()  # messages being published
        self.leaving = False  # a drain hands this process's sessions over: no answer goes into transit
        self._init_moves()

    async def stop(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
        if self._telling:  # "written" and the like: once this channel is gone, its word would be taken for "lost"
            await asyncio.wait(set(self._telling), timeout=2)
        await super().stop()

    def _channel(self, tag: str) -> str:
        return f"{self.prefix}:relay:{tag}"

    def owner(self, sid: str) -> str | None:
        """The tag of the process that owns `sid`, if another one does."""
        moved = self.moved_to.get(sid)
        if moved is not None:
            return moved if moved != self.tag else None
        tag = sid[:TAG_LENGTH]
        if len(sid) > TAG_LENGTH and tag != self.tag and all(c in "0123456789abcdef" for c in tag):
            return tag
        return None

    # -- asking --------------------------------------------------------

    async def request(self, sid: str, op: str, body: str | None, timeout: float,
                      n: str | None = None, uri: str | None = None) -> tuple[int, str]:
        """Send a GET (numbered `n` by our client) or POST (its request's `uri`) of session `sid` to
        its owner; (status, body) of its answer.

        A GET answered with packets must be followed by `written(sid, ok)` once its HTTP answer
        is written (or not): until then the owner keeps the packets.
        """
        return await self.request_to(self.owner(sid), sid, op, body, timeout, n, uri)

    async def request_to(self, owner: str, sid: str, op: str, body: str | None,
                         timeout: float, n: str | None = None, uri: str | None = None) -> tuple[int, str]:
        """`request`, to the process `owner`; followed once to where a drain moved the session."""
        if op != "adopt" and sid in self._handing:
            await self.handed_over(sid)
            moved = self.owner(sid)
            if moved is None:
                return GONE  # no process took it: the client reconnects
            owner = moved
        for _ in range(3):
            answer = await self._ask(owner, sid, op, body, timeout, n, uri)
            moved = answer.get("moved")
            if moved is None and answer.get("gone") and op != "adopt":
                moved = await self.moved_elsewhere(sid, owner)
            if moved is None or moved == owner:
                break
            self.remember_move(sid, moved)
            owner = moved
        if answer.get("keep"):
            self._unwritten[sid] = (answer.get("from", owner), answer["rid"])
        return answer["status"], answer["body"]

    async def _ask(self, owner: str, sid: str, op: str, body: str | None, timeout: float,
                   n: str | None = None, uri: str | None = None) -> dict:
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[rid] = (future, owner)
        self._asked[rid] = (op, sid)
        self._watch()
        message = {"op": op, "sid": sid, "rid": rid, "reply": self.channel, "from": self.tag, "body": body}
        if n is not None:
            message["n"] = n
        if op == "post":
            message["uri"] = uri  # its `t` tells a retry of the same POST from the next
        try:
            if not await self.redis.publish(self._channel(owner), json.dumps(message)):
                return gone()   # no process listens there: it is gone
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return {**gone(), "late": True}  # no answer in time: the owner may still act on it
        except asyncio.CancelledError:
            if op == "get":  # the HTTP client went away: stop the owner from answering into the void
                await self._publish(owner, {"op": "cancel", "sid": sid, "rid": rid, "reply": self.channel})
            raise
        except Exception as exc:
            log.warning("relaying a polling %s for %s… failed: %s", op, sid[:8], exc)
            return gone()
        finally:
            self._waiting.pop(rid, None)
            self._asked.pop(rid, None)

    async def wind_down(self, seconds: float) -> None:
        """This process is going. The relayed GETs waiting here end at once with a noop (their clients
        ask again, elsewhere; an answer already on its way to here is kept by its owner); relayed POSTs,
        short, get up to `seconds` to finish rather than be cut."""
        for rid, (op, sid) in list(self._asked.items()):
            waiting = self._waiting.get(rid)
            if op == "get" and waiting is not None and not waiting[0].done():
                waiting[0].set_result({"status": 200, "body": "6"})
                self.tell(waiting[1], {"op": "cancel", "sid": sid, "rid": rid, "reply": self.channel})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        await asyncio.sleep(0.05)  # the noops leave
        # POSTs finish; answers being written say so (else their owners would send them again).
        while (self._unwritten or any(op != "get" for op, _ in self._asked.values())) and loop.time() < deadline:
            await asyncio.sleep(0.02)

    def written(self, sid: str, ok: bool) -> None:
        """The answer `request` gave for a GET of `sid` was written to its HTTP client (or not, `ok`
        False): the owner forgets it, or sends it again with the session's next answer."""
        unwritten = self._unwritten.pop(sid, None)
        if unwritten is not None:
            owner, rid = unwritten
            self.tell(owner, {"op": "written", "sid": sid, "rid": rid, "ok": ok})

    def tell(self, tag: str, message: dict) -> None:
        """Send `message` to the process `tag`, expecting no answer."""
        telling = asyncio.ensure_future(self._publish(tag, message))
        self._telling.add(telling)
        telling.add_done_callback(self._telling.discard)

    async def _publish(self, tag: str, message: dict) -> None:
        try:
            await self.redis.publish(self._channel(tag), json.dumps(message))
        except Exception as exc:
            log.warning("relay: publishing to %s failed: %s", tag, exc)

    # -- answering -----------------------------------------------------

    def _on_message(self, message: dict) -> None:
        op = message["op"]
        if op == "answer":
            waiting = self._waiting.get(message["rid"])
            if waiting is not None and not waiting[0].done():
                waiting[0].set_result(message)
            elif message.get("keep"):  # its HTTP client went away: the owner sends it again
                self.tell(message["from"], {"op": "written", "sid": message["sid"],
                                            "rid": message["rid"], "ok": False})
            return
        sid = message["sid"]
        if op == "written":
            self._settle(sid, message["rid"], message["ok"])
            return
        session = self.engine.sessions.get(sid)
        if op in ("write", "ack", "unprobe"):
            self._moving(op, sid, session, message)
            return
        rid, reply = message["rid"], message["reply"]
        if op == "adopt":
            self._adopt(message)
            return
        if session is None and op != "cancel":
            if self._after_adoption(message):
                return  # answered once the session is here
            moved = self.moved_to.get(sid)
            if moved is not None and moved != self.tag:  # a drain handed it on: ask there
                asyncio.ensure_future(self._send_answer(reply, json.dumps(
                    {"op": "answer", "rid": rid, "status": GONE[0], "body": GONE[1], "moved": moved})))
                return
        if op == "cancel":
            if session is not None and isinstance(session.poller, RemotePoller) and session.poller.rid == rid:
                session.poller = None
            return
        if session is None or session.closed:
            last = self.engine.last_answer(sid) if op == "get" else None  # it closed as the GET came
            self._answer(reply, rid, *((200, last) if last is not None else GONE))
        elif session.ws is not None:
            self._answer(reply, rid, 400, "Session upgraded to WebSocket")
        elif op == "get":
            self._get(session, reply, rid, message.get("from", ""), message.get("n"))
        elif op == "post":
            refused = read_post(session, message["body"], message.get("uri"))
            if refused is None:
                self._answer(reply, rid, 200, "ok")
            else:
                self._answer(reply, rid, 400, refused.message or "Bad request")
        elif op == "probe":
            if not session.probed_elsewhere():  # polling pauses, as for a probe here
                self._answer(reply, rid, 400, "Upgrade already in progress")
                return
            self._answer(reply, rid, 200, "ok")
            # If the other process dies before the client confirms, polling must not stay paused: at
            # once when the watch finds it gone, at the latest once the client would have timed out.
            engine = self.engine
            asyncio.get_running_loop().call_later(
                (engine.ping_interval + engine.ping_timeout) / 1000 + 5, self._unpause, session)
            if message.get("from"):
                self._probes[session.sid] = (session, message["from"])
                self._watch()
        elif op == "move":
            self._move_out(session, message)

    def _get(self, session: Any, reply: str, rid: int, via: str, n: str | None) -> None:
        if n is not None:  # a numbered GET: the same rule as a GET served here
            again = answer_again(session, n)
            if isinstance(again, Refusal):
                self._answer(reply, rid, again.status, again.message)  # type: ignore[arg-type]
                return
            if again is not None:
                self._answer_get(session, reply, rid, via, again)
                return
        if session.poller is not None and not session.replace_poller(n is not None):
            self._answer(reply, rid, 400, "Overlapping GET requests")
            session.close("transport error", notify=False)
            return
        payload = session.poll()
        if payload is not None:
            self._answer_get(session, reply, rid, via, payload)
        else:
            session.poller = RemotePoller(self, session, reply, rid, via)

    def _watch(self) -> None:
        if self._watching is None or self._watching.done():
            self._watching = asyncio.ensure_future(self._watch_loop())

    async def _watch_loop(self) -> None:
        """While requests wait or answers are in transit: are the processes at the other end alive?"""
        loop = asyncio.get_running_loop()
        while self._waiting or self._kept or self._probes:
            await asyncio.sleep(WATCH_SECONDS)
            for sid, (session, _) in list(self._probes.items()):
                if not session.probed or session.ws is not None or session.closed \
                        or self.engine.sessions.get(sid) is not session:
                    del self._probes[sid]  # upgraded, moved with its WebSocket, or the probe ended
            tags = {owner for _, owner in self._waiting.values()} | {k.via for k in self._kept.values()} \
                | {via for _, via in self._probes.values()}
            if not tags:
                continue
            try:
                counts = await asyncio.wait_for(self.redis.pubsub_numsub(*[self._channel(t) for t in tags]), 2)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("relay: counting the listeners failed: %s", exc)
                continue
            dead = {(c.decode() if isinstance(c, bytes) else c) for c, n in counts if not n}
            for future, owner in list(self._waiting.values()):
                if self._channel(owner) in dead and not future.done():
                    log.info("relay: process %s is gone; its request fails", owner)
                    future.set_result(gone())
            now = loop.time()
            for sid, kept in list(self._kept.items()):
                if self._channel(kept.via) in dead or now - kept.since > KEEP_SECONDS:
                    self._release(sid, False)
            for sid, (session, via) in list(self._probes.items()):
                if self._channel(via) in dead:  # its WebSocket died with that process: polling goes on
                    del self._probes[sid]
                    log.info("session %s…: its upgrade probe's process %s is gone; polling goes on", sid[:8], via)
                    self._unpause(session)

    def _answer(self, reply: str, rid: int, status: int, body: str) -> None:
        message = json.dumps({"op": "answer", "rid": rid, "status": status, "body": body})
        asyncio.ensure_future(self._send_answer(reply, message))

    async def _send_answer(self, reply: str, message: str) -> None:
        try:
            await self.redis.publish(reply, message)
        except Exception as exc:
            log.warning("relay: answering failed: %s", exc)
