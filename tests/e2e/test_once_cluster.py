"""The acks of `once` events in Redis (handlers/socketio/once.py), and a `once` event on a cluster: the retry of an emit whose ack was lost comes back, recovered, on another
process, and gets the first answer from Redis; the handler ran once. Spoken raw, so the test chooses the
ack ids: the board's `post` (registered with once=True), without a key of the page's own."""

import asyncio
import json
import os
import sys

import pytest
import redis
import redis.asyncio as aioredis
from tornado.websocket import websocket_connect

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import once_store_replays  # noqa: E402
from e2e_support import Board, RedisServer  # noqa: E402

from handlers.socketio.once import BUSY, DONE, RUN, RedisOnce  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]


class Raw:
    """One Engine.IO/Socket.IO connection over WebSocket, packet by packet; answers pings."""

    def __init__(self, ws):
        self.ws = ws
        self.offset = None  # of the last event received (recovery)

    @classmethod
    async def open(cls, port):
        ws = await websocket_connect(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
        raw = cls(ws)
        assert (await raw.read()).startswith("0{")
        return raw

    async def read(self):
        while True:
            message = await asyncio.wait_for(self.ws.read_message(), 10)
            assert message is not None, "the server closed the connection"
            if message == "2":
                self.ws.write_message("3")
                continue
            if message.startswith("42["):  # an event: with recovery on, its offset is last
                self.offset = json.loads(message[2:])[-1]
            return message

    async def until(self, prefix):
        while not (message := await self.read()).startswith(prefix):
            pass
        return message

    def send(self, text):
        self.ws.write_message(text)


async def lost_ack_then_retry_elsewhere(port_a, port_b):
    a = await Raw.open(port_a)
    a.send("40")
    hello = json.loads((await a.until("40"))[2:])
    await a.until('42["history"')
    post = '42["post",{"name":"raw","text":"once across processes"}]'
    a.send("427" + post[2:])
    first = json.loads((await a.until("437"))[3:])
    a.ws.close()  # as if the ack had been lost with the connection: the client tries again

    b = await Raw.open(port_b)
    b.send("40" + json.dumps({"pid": hello["pid"], "offset": a.offset}))
    again = json.loads((await b.until("40"))[2:])
    b.send("427" + post[2:])
    retried = json.loads((await b.until("437"))[3:])
    b.send("428" + post[2:])  # a new emit (another ack id): handled again
    new = json.loads((await b.until("438"))[3:])
    b.ws.close()
    return hello, first, again, retried, new


def test_a_retry_on_another_process_gets_the_first_answer(tmp_path):
    with RedisServer(tmp_path / "redis") as redis_server:
        args = [f"--redis={redis_server.url}", "--redis_prefix=once", "--post_limit=0", "--post_limit_per_address=0"]
        with Board(tmp_path / "a.db", name="once-a", args=args) as a, \
                Board(tmp_path / "b.db", name="once-b", args=args) as b:
            hello, first, again, retried, new = asyncio.run(lost_ack_then_retry_elsewhere(a.port, b.port))
            assert again["sid"] == hello["sid"]  # recovered on b: the same socket
            assert first[0]["ok"] is True
            assert retried == first  # the stored answer: the handler did not run again
            assert new[0]["id"] != first[0]["id"]
            store = redis.Redis.from_url(redis_server.url)
            assert store.zcard("once:posts") == 2  # the post once, and the new emit's
            assert store.exists(f"once:once:/ {hello['sid']} 7")


def test_redis_is_shared_by_processes(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        async def scenario():
            one, two = aioredis.Redis.from_url(server.url), aioredis.Redis.from_url(server.url)
            a, b = RedisOnce(one, "t", 60_000), RedisOnce(two, "t", 60_000)
            assert await a.begin("k") == (RUN, None)
            assert await b.begin("k") == (BUSY, None)  # running on a: no answer, the client tries again
            await a.finish("k", [{"id": 7}])
            assert await b.begin("k") == (DONE, [{"id": 7}])
            assert 0 < await two.pttl("t:once:k") <= 60_000
            await once_store_replays(RedisOnce(one, "u", 60_000), retry_waits=False)
            await one.aclose()
            await two.aclose()

        asyncio.run(scenario())
