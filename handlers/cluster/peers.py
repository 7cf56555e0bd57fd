"""What one process asks of all the others: the sockets of a group, making them join, leave or
disconnect, emits with acks, and server-to-server events.

Requests go to one Redis pub/sub channel every process listens on; answers come back on the
asker's own channel. PUBLISH tells how many processes heard a request, so the asker knows how
many answers to wait for (and waits no longer than its timeout for a process that dies).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import TYPE_CHECKING, Any, Callable

from ..socketio.broadcast import Broadcast
from .subscriber import Subscriber

if TYPE_CHECKING:
    from ..socketio.hub import Hub

log = logging.getLogger("board.cluster")


class Cluster(Subscriber):
    """The cluster-wide operations of a hub on Redis (`hub.cluster`)."""

    log = log

    def __init__(self, redis: Any, prefix: str, tag: str, hub: "Hub"):
        super().__init__(redis)
        self.channel = f"{prefix}:cluster"
        self.own = f"{prefix}:cluster:{tag}"
        self.tag = tag
        self.hub = hub
        self.handlers: dict[str, Callable[..., Any]] = {}   # server-to-server events
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.Future, list, int]] = {}
        self.channels = (self.channel, self.own)

    # -- what the app asks ---------------------------------------------

    async def fetch_sockets(self, group: Broadcast, timeout: float = 5.0) -> list[dict]:
        """Every socket of `group` in the cluster: {id, rooms, data, process}."""
        answers = await self._ask("sockets", group, timeout=timeout)
        return _local_sockets(group, self.tag) + [s for answer in answers for s in answer]

    async def call(self, group: Broadcast, event: str, args: list, timeout: float) -> list:
        """Emit with acks to `group` on every process; the replies that came back within `timeout`."""
        local = asyncio.ensure_future(group.call_local(event, *args, timeout=timeout))
        answers = await self._ask("call", group, timeout=timeout + 1, event=event, args=args, ack_timeout=timeout)
        return (await local) + [reply for answer in answers for reply in answer]

    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """A handler of the server-to-server event `event` (from the other processes); usable as a decorator."""
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers[event] = fn
            return fn
        return register(handler) if handler is not None else register

    async def emit(self, event: str, *args: Any) -> None:
        """Send `event` to the other processes' `hub.cluster.on(event)` handlers."""
        await self.redis.publish(self.channel, json.dumps({"op": "server", "from": self.tag,
                                                           "event": event, "args": list(args)}))

    # -- the wire ------------------------------------------------------

    def _spec(self, group: Broadcast) -> dict:
        return {"ns": group.namespace.name, "in": sorted(group.include), "ex": sorted(group.exclude)}

    async def tell(self, op: str, group: Broadcast, **extra: Any) -> None:
        """Have every other process do `op` (join, leave, disconnect) to its sockets of `group`."""
        try:
            await self.redis.publish(self.channel, json.dumps({"op": op, "from": self.tag, **self._spec(group),
                                                               **extra}))
        except Exception as exc:
            log.warning("cluster %s not told to the other processes: %s", op, exc)

    async def _ask(self, op: str, group: Broadcast, timeout: float, **extra: Any) -> list:
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        answers: list = []
        message = {"op": op, "from": self.tag, "rid": rid, "reply": self.own, **self._spec(group), **extra}
        self._waiting[rid] = (future, answers, 0)
        try:
            heard = await self.redis.publish(self.channel, json.dumps(message)) - 1  # not ourselves
            if heard > 0:
                self._waiting[rid] = (future, answers, heard)
                if len(answers) >= heard:
                    return answers
                await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            log.warning("cluster %s: %d process(es) did not answer within %.1f s", op, heard - len(answers), timeout)
        finally:
            self._waiting.pop(rid, None)
        return answers

    def _on_message(self, m: dict) -> None:
        op = m["op"]
        if op == "answer":
            waiting = self._waiting.get(m["rid"])
            if waiting is not None:
                future, answers, heard = waiting
                answers.append(m["data"])
                if heard and len(answers) >= heard and not future.done():
                    future.set_result(None)
            return
        if m.get("from") == self.tag:
            return
        if op == "server":
            handler = self.handlers.get(m["event"])
            if handler is not None:
                result = handler(*m["args"])
                if asyncio.iscoroutine(result):
                    asyncio.ensure_future(result)
            return
        namespace = self.hub.namespaces.get(m["ns"])
        group = Broadcast(namespace, set(m["in"]), set(m["ex"])) if namespace is not None else None
        if op == "sockets":
            self._answer(m, _local_sockets(group, self.tag) if group is not None else [])
        elif op == "call":
            if group is None:
                self._answer(m, [])
            else:
                call = group.call_local(m["event"], *m["args"], timeout=m["ack_timeout"])
                asyncio.ensure_future(call).add_done_callback(
                    lambda done: self._answer(m, done.result() if not done.exception() else []))
        elif group is not None:
            if op == "join":
                group.sockets_join_local(m["rooms"])
            elif op == "leave":
                group.sockets_leave_local(m["rooms"])
            elif op == "disconnect":
                group.disconnect_local(m["close"])

    def _answer(self, m: dict, data: Any) -> None:
        message = json.dumps({"op": "answer", "rid": m["rid"], "data": data}, default=str)
        asyncio.ensure_future(self.redis.publish(m["reply"], message))


def _local_sockets(group: Broadcast, tag: str) -> list[dict]:
    out = []
    for socket in group.sockets():
        try:
            data = json.loads(json.dumps(socket._data))
        except (TypeError, ValueError):
            data = None
        out.append({"id": socket.id, "rooms": sorted(socket.rooms), "data": data, "process": tag})
    return out
