"""Two hubs, one Redis: group emits, rooms, counts and recovery across processes.

Each hub has its own HTTP server and its own RedisAdapter, as two processes of
a cluster would; they share only a real redis-server started for the test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

import pytest
import tornado.web
from conftest import Recorder, http, raw_websocket, until
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import Node, cluster, redis_server  # noqa: E402,F401 (fixtures)

from handlers import Broadcast, Hub  # noqa: E402

pytestmark = pytest.mark.gen_test(timeout=30)


async def connected(url: str, *events: str) -> Recorder:
    return await Recorder(events).connect(url, transports=["websocket"])


async def test_a_broadcast_reaches_every_client_of_every_process_once_in_order(cluster):
    a, b = cluster
    on_a, on_b = await connected(a.url, "shout"), await connected(b.url, "shout")
    try:
        for n in range(20):
            await on_a.client.emit("shout", n)   # each handled on process a, emitted to the cluster
        got_a = [await on_a.next("shout") for _ in range(20)]
        got_b = [await on_b.next("shout") for _ in range(20)]
        assert got_a == got_b == list(range(20))
        assert on_b.queues["/shout"].empty()
    finally:
        await on_a.close()
        await on_b.close()


async def test_rooms_and_counts_are_the_clusters(cluster):
    a, b = cluster
    blue, other = await connected(b.url, "news"), await connected(a.url, "news")
    try:
        await blue.client.emit("join", "blue")
        await until(lambda: any("blue" in s.rooms for s in b.hub.sockets.values()))
        a.hub.to("blue").emit("news", "for blue")
        a.hub.emit("news", "for all")
        assert await blue.next("news") == "for blue"
        assert await blue.next("news") == "for all"
        assert await other.next("news") == "for all"
        assert await a.hub.fetch_count() == await b.hub.fetch_count() == 2
    finally:
        await blue.close()
        await other.close()
    await until(lambda: not a.hub.sockets and not b.hub.sockets)
    assert await a.hub.fetch_count() == 0


class RawClient:
    """socket.io-client's recovery, by hand: keeps pid and offset, comes back with both."""

    def __init__(self):
        self.pid = self.offset = self.sid = None
        self.ws = None

    async def connect(self, url: str) -> dict:
        self.ws = await raw_websocket(url)
        assert (await self.ws.read_message()).startswith("0{")
        auth = {"pid": self.pid, "offset": self.offset} if self.pid else None
        await self.ws.write_message("40" + (json.dumps(auth) if auth else ""))
        ack = json.loads((await self.packet())[2:])
        self.sid, self.pid = ack["sid"], ack["pid"]
        return ack

    async def packet(self) -> str:
        while (message := await self.ws.read_message()) == "2":
            await self.ws.write_message("3")
        assert message is not None
        return message

    async def event(self) -> list:
        args = json.loads((await self.packet())[2:])
        self.offset = args.pop()
        return args


async def test_a_client_of_a_process_that_dies_recovers_on_another(cluster):
    a, b = cluster
    client = RawClient()
    first = await client.connect(a.url)
    await client.ws.write_message('42["join","blue"]')
    await until(lambda: "blue" in a.hub.sockets[client.sid].rooms)
    b.hub.emit("news", 1)
    assert await client.event() == ["news", 1]
    # Process a "dies": its socket never says goodbye, so nothing is written at close.
    # What b needs must already be in Redis.
    await a.hub.adapter.flush()
    a.server.stop()
    b.hub.emit("news", 2)
    b.hub.to("blue").emit("blue", "only for blue")
    b.hub.to("red").emit("red", "not for it")
    await b.hub.adapter.flush()
    again = await client.connect(b.url)
    assert again == first
    assert [await client.event() for _ in range(2)] == [["news", 2], ["blue", "only for blue"]]
    restored = b.hub.sockets[client.sid]
    assert restored.recovered and restored.rooms == {client.sid, "blue"}
    b.hub.emit("news", 3)
    assert await client.event() == ["news", 3]
    # The old connection on a closes at last (a comes back to its senses): its stale state must not
    # overwrite the state of the connection that recovered on b.
    restored.join("green")
    a.hub.close()
    await a.hub.adapter.flush()
    await b.hub.adapter.flush()
    state = json.loads(await b.hub.adapter.redis.get(f"test:socket:{client.pid}"))
    assert state["sid"] == client.sid and state["rooms"] == ["blue", "green"]


async def test_a_recovery_its_client_gave_up_on_leaves_the_state_for_its_next_attempt(cluster):
    """python-socketio waits 1 s for a reconnection's CONNECT answer, then closes and tries again: the
    state a recovery read for a client that had already gone must still be there for the next try."""
    a, b = cluster
    client = RawClient()
    first = await client.connect(a.url)
    a.hub.emit("news", 1)
    assert await client.event() == ["news", 1]
    await a.hub.adapter.flush()
    a.server.stop()                                   # a "dies" (its socket says nothing)
    ended = asyncio.Event()
    restore = b.hub.adapter.restore

    async def watched(*args):
        try:
            return await restore(*args)
        finally:
            ended.set()
    b.hub.adapter.restore = watched
    opened = await http(b.url)
    sid = json.loads(opened.body[1:])["sid"]
    auth = json.dumps({"pid": client.pid, "offset": client.offset})
    # The CONNECT and the client's close in one payload: the session is gone before the recovery ends.
    gave_up = await http(b.url, f"/socket.io/?EIO=4&transport=polling&sid={sid}", method="POST",
                         body=f"40{auth}\x1e1")
    assert gave_up.code == 200
    await asyncio.wait_for(ended.wait(), 5)           # the recovery started for it has ended
    assert sid not in b.hub.engine.sessions and not b.hub.sockets
    b.hub.emit("news", 2)
    again = await client.connect(b.url)               # the next attempt
    assert again == first and b.hub.sockets[client.sid].recovered
    assert await client.event() == ["news", 2]


async def test_redis_down_serves_local_clients_and_the_cluster_catches_up(cluster, redis_server, caplog):
    a, b = cluster
    on_a, on_b = await connected(a.url, "news"), await connected(b.url, "news")
    try:
        with caplog.at_level(logging.WARNING, logger="board.redis"):
            redis_server.stop()
            raw = RawClient()
            await raw.connect(a.url)
            a.hub.emit("news", "while Redis is down")
            assert await on_a.next("news") == "while Redis is down"  # local clients keep being served
            # A client that expects offsets gets one it can rely on, not its argument taken for one.
            assert await raw.event() == ["news", "while Redis is down"] and raw.offset == a.hub.adapter.last_id
            assert "Redis unreachable" in caplog.text
            assert a.hub.ops.not_ready() == "Redis unreachable"  # /readyz says 503
            redis_server.start()
            await until(lambda: a.hub.adapter.reachable and b.hub.adapter.reachable, timeout=10)
            assert a.hub.ops.not_ready() is None
            a.hub.emit("news", "after Redis came back")
            assert await on_b.next("news") == "after Redis came back"  # the cluster is one again
    finally:
        await on_a.close()
        await on_b.close()


async def test_a_stream_entry_that_does_not_parse_is_dropped_and_delivery_goes_on(cluster, caplog):
    a, b = cluster
    on_b = await connected(b.url, "news")
    try:
        with caplog.at_level(logging.ERROR, logger="board.redis"):
            await a.hub.adapter.redis.xadd(a.hub.adapter.stream, {"garbage": "1"})
            a.hub.emit("news", "after the garbage")
            assert await on_b.next("news") == "after the garbage"
        assert "does not parse" in caplog.text
    finally:
        await on_b.close()


async def test_every_key_is_under_the_prefix(cluster):
    a, _ = cluster
    await a.hub.adapter.redis.set("another-app:key", "untouched")
    client = await connected(a.url, "news")
    a.hub.emit("news", 1)
    await client.next("news")
    await client.close()
    await a.hub.adapter.flush()
    keys = sorted(k.decode() for k in await a.hub.adapter.redis.keys("*"))
    assert [k for k in keys if not k.startswith("test:")] == ["another-app:key"]
    assert await a.hub.adapter.redis.get("another-app:key") == b"untouched"


async def test_an_unreachable_redis_is_a_clear_error_at_start():
    node = Node("redis://127.0.0.1:1/0")
    with pytest.raises(RuntimeError, match="cannot reach Redis"):
        await node.hub.start()


async def test_the_sockets_of_a_room_join_leave_disconnect_and_acks_across_processes(cluster):
    a, b = cluster
    on_a, on_b = await connected(a.url, "news"), await connected(b.url, "news")
    on_b.client.on("question", lambda q: f"b answers {q}")
    on_a.client.on("question", lambda q: f"a answers {q}")
    try:
        await on_b.client.emit("join", "blue")
        await until(lambda: any("blue" in s.rooms for s in b.hub.sockets.values()))
        found = await a.hub.to("blue").fetch_sockets()
        assert [s["id"] for s in found] == [on_b.client.get_sid()] and "blue" in found[0]["rooms"]
        assert len(await Broadcast(a.hub.main).fetch_sockets()) == 2  # everyone, on both processes
        # a makes everyone in blue (on b) join green; then an emit to green from a reaches it.
        a.hub.to("blue").sockets_join("green")
        await until(lambda: any("green" in s.rooms for s in b.hub.sockets.values()))
        a.hub.to("green").emit("news", "green")
        assert await on_b.next("news") == "green"
        # Acks from every process.
        replies = await a.hub.call("question", 7, timeout=5)
        assert sorted(replies) == ["a answers 7", "b answers 7"]
        # a disconnects blue's sockets (on b).
        a.hub.to("blue").disconnect()
        await asyncio.wait_for(on_b.disconnected.wait(), 5)
        assert not on_a.disconnected.is_set()
    finally:
        await on_a.close()
        await on_b.close()


async def test_server_to_server_events(cluster):
    a, b = cluster
    got = asyncio.get_running_loop().create_future()
    b.hub.cluster.on("reload", lambda *args: got.set_result(args))
    await a.hub.cluster.emit("reload", {"what": "config"}, 2)
    assert await asyncio.wait_for(got, 5) == ({"what": "config"}, 2)


async def test_an_upgrade_that_reaches_another_process_moves_the_session_there(cluster):
    """No sticky sessions for the upgrade either: the session polls on a, its WebSocket opens on b,
    and it moves to b with its id, rooms and pending acks; the client misses nothing, the app
    sees no disconnect."""
    a, b = cluster
    gone = []
    for node in cluster:
        node.hub.on("disconnect", lambda socket, reason: gone.append(reason))
    http = AsyncHTTPClient()

    async def poll(body: str | None = None) -> str:
        url = f"{a.url}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")
        response = await http.fetch(url, method="POST" if body else "GET", body=body)
        return response.body.decode()

    sid = None
    sid = json.loads((await poll())[1:])["sid"]
    await poll("40")
    connect = json.loads((await poll())[2:])
    await poll('42["join","blue"]')
    await until(lambda: any("blue" in s.rooms for s in a.hub.sockets.values()))
    waiting = asyncio.ensure_future(poll())   # a GET held open on a, as clients keep one

    ws = await raw_websocket(b.url, f"EIO=4&transport=websocket&sid={sid}")
    await ws.write_message("2probe")
    assert await ws.read_message() == "3probe"
    assert await asyncio.wait_for(waiting, 5) == "6"   # polling pauses, as for a local probe
    socket_a = a.hub.sockets[connect["sid"]]
    question = asyncio.ensure_future(socket_a.call("question", timeout=5))  # sent while paused
    a.hub.to("blue").emit("news", "while paused")
    await a.hub.adapter.flush()
    await until(lambda: a.hub.adapter.last_id != "0-0")   # a has delivered it to its queue
    await ws.write_message("5")

    received = [await ws.read_message(), await ws.read_message()]
    asked = next(m for m in received if m.startswith("42") and "question" in m)
    assert any('"while paused"' in m for m in received)
    ack_id = asked[2:asked.index("[")]
    await ws.write_message(f"43{ack_id}[\"yes\"]")   # answered at b, for a request made at a
    assert await asyncio.wait_for(question, 5) == "yes"

    assert sid in b.hub.engine.sessions and sid not in a.hub.engine.sessions
    moved = b.hub.sockets[connect["sid"]]
    assert moved.pid == connect["pid"] and "blue" in moved.rooms and moved.transport == "websocket"
    await b.hub.adapter.flush()   # b's count, written when the socket arrived there
    assert not a.hub.sockets and await a.hub.fetch_count() == 1
    a.hub.to("blue").emit("news", "after")   # from the old owner, to the room: once, on the WebSocket
    message = await ws.read_message()
    while message == "2":
        await ws.write_message("3")
        message = await ws.read_message()
    assert json.loads(message[2:])[:2] == ["news", "after"]
    await ws.write_message('42["shout",1]')   # handled at b now
    message = await ws.read_message()
    while message == "2":
        await ws.write_message("3")
        message = await ws.read_message()
    assert json.loads(message[2:])[:2] == ["shout", 1]
    assert gone == []
    ws.close()
    await until(lambda: gone == ["transport close"])


async def test_a_probe_from_elsewhere_that_cannot_move_leaves_the_session_polling(cluster):
    """Out-of-order packets on the probe, a draining process, an owner that is gone: the WebSocket is
    refused or closed with a reason, and the session carries on polling where it is."""
    a, b = cluster
    http = AsyncHTTPClient()
    base = f"{a.url}/socket.io/?EIO=4&transport=polling"
    sid = json.loads((await http.fetch(base)).body[1:])["sid"]
    await http.fetch(f"{base}&sid={sid}", method="POST", body="40")
    assert (await http.fetch(f"{base}&sid={sid}")).body.startswith(b"40")

    ws = await raw_websocket(b.url, f"EIO=4&transport=websocket&sid={sid}")
    await ws.write_message("5")                         # an upgrade before any probe
    assert await ws.read_message() is None and ws.close_code == 1002

    b.hub.ops.admission.draining = True                 # a process going away takes no session
    with pytest.raises(Exception) as refused:
        await raw_websocket(b.url, f"EIO=4&transport=websocket&sid={sid}")
    assert getattr(refused.value, "code", None) == 400
    b.hub.ops.admission.draining = False

    gone = a.hub.engine.sid_prefix[:-1] + ("0" if a.hub.engine.sid_prefix[-1] != "0" else "1") + sid[8:]
    ws = await raw_websocket(b.url, f"EIO=4&transport=websocket&sid={gone}")   # no process owns it
    await ws.write_message("2probe")
    assert await ws.read_message() is None and ws.close_code == 1008

    # The session is still a's, on polling, and works.
    assert sid in a.hub.engine.sessions and not a.hub.engine.sessions[sid].probed
    await http.fetch(f"{base}&sid={sid}", method="POST", body='42["shout",5]')
    body = (await http.fetch(f"{base}&sid={sid}")).body.decode()
    assert '"shout",5' in body
