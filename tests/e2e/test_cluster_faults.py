"""A cluster losing a process: real `board.py --redis` processes, a real redis-server, and signals.

Long-polling sessions cross processes (handlers/cluster/relay.py): a request for a
session may be relayed by a process that dies, or wait on an owner that dies.
Neither strands the client, and an answer that was in transit is not lost.
"""

import asyncio
import json
import os
import signal
import sys
import time

import pytest
import redis.asyncio as aioredis
import socketio
from tornado.httpclient import AsyncHTTPClient
from tornado.simple_httpclient import HTTPStreamClosedError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import Board, RedisServer  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]

PREFIX = "faults"


@pytest.fixture
def redis_server(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


def member(tmp_path, redis_server, name, ping=5000, args=()):
    return Board(tmp_path / f"{name}.db", name=name, ping_interval=ping, ping_timeout=ping,
                 args=[f"--redis={redis_server.url}", f"--redis_prefix={PREFIX}", "--post_limit=0", *args])


class Poller:
    """A long-polling client by hand, each request sent to the process the test names."""

    def __init__(self):
        self.sid = ""
        self.http = AsyncHTTPClient(force_instance=True)

    async def request(self, board, method="GET", body=None, timeout=10.0):
        path = "socket.io/?EIO=4&transport=polling" + (f"&sid={self.sid}" if self.sid else "")
        return await self.http.fetch(board.url + path, method=method, body=body, raise_error=False,
                                     request_timeout=timeout)

    async def connect(self, board):
        opened = await self.request(board)
        self.sid = json.loads(opened.body[1:])["sid"]
        assert (await self.request(board, "POST", "40")).code == 200
        got = ""
        while '"history"' not in got or '"news"' not in got:  # the welcome, the history, the news of it
            got += (await self.request(board)).body.decode()
        return self

    async def get_until(self, board, text):
        got = b""
        while text.encode() not in got:
            got += (await self.get(board)).body
        return got

    async def get(self, board, timeout=10.0):
        return await self.request(board, timeout=timeout)


async def seen(monitor, pattern: str, timeout: float = 10.0) -> None:
    """Wait until Redis's MONITOR shows a command containing `pattern`."""
    async def scan():
        while True:
            command = await monitor.next_command()
            if pattern in command["command"]:
                return
    await asyncio.wait_for(scan(), timeout)


def test_an_answer_in_transit_through_a_process_killed_mid_answer_reaches_the_next_get(tmp_path, redis_server):
    """b relays a GET of a's session; a answers it with a post while b is frozen, then b is killed:
    the post comes with the session's next GET (here at a), once, and the session lives on."""
    with member(tmp_path, redis_server, "transit-a") as a, member(tmp_path, redis_server, "transit-b") as b:
        async def scenario():
            client, watcher = await Poller().connect(a), await Poller().connect(a)
            poster = socketio.AsyncClient(reconnection=False)
            await poster.connect(a.url, transports=["websocket"], wait_timeout=5)
            redis = aioredis.Redis.from_url(redis_server.url)
            try:
                async with redis.monitor() as monitor:
                    relayed = asyncio.ensure_future(client.get(b, timeout=30))
                    await seen(monitor, f'"op": "get", "sid": "{client.sid}"')   # b asked a
                    b.proc.send_signal(signal.SIGSTOP)
                    ack = await poster.call("post", {"name": "P", "text": "in transit"}, timeout=5)
                    await watcher.get_until(a, f'"id":{ack["id"]}')  # a delivered it
                    await seen(monitor, '"keep": true')                            # ... and answered b
                b.proc.send_signal(signal.SIGKILL)
                b.proc.wait(5)
                began = time.monotonic()
                again = await client.get(a)
                assert again.code == 200 and again.body.count(b'"in transit"') == 1, again.body
                assert time.monotonic() - began < 2.0
                with pytest.raises(HTTPStreamClosedError):
                    await relayed  # b's client saw its connection end: no answer came from b
                await poster.call("post", {"name": "P", "text": "after"}, timeout=5)
                after = await client.get(a)
                assert b'"after"' in after.body and b'"in transit"' not in after.body  # not twice
            finally:
                await poster.disconnect()
                await redis.aclose()
        asyncio.run(scenario())


def test_requests_for_the_sessions_of_a_killed_process_fail_at_once(tmp_path, redis_server):
    """a is SIGKILLed with a GET of its session waiting through b: that GET, and the next ones
    through b, fail within a second (400, the session is unknown), and the client reconnects."""
    with member(tmp_path, redis_server, "dead-a") as a, member(tmp_path, redis_server, "dead-b") as b:
        async def scenario():
            client = await Poller().connect(a)
            redis = aioredis.Redis.from_url(redis_server.url)
            try:
                async with redis.monitor() as monitor:
                    waiting = asyncio.ensure_future(client.get(b, timeout=30))
                    await seen(monitor, f'"op": "get", "sid": "{client.sid}"')
            finally:
                await redis.aclose()
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(5)
            began = time.monotonic()
            answer = await waiting
            assert answer.code == 400 and json.loads(answer.body)["message"] == "Session ID unknown"
            assert time.monotonic() - began < 1.0
            for method, body in (("GET", None), ("POST", "3")):
                began = time.monotonic()
                answer = await client.request(b, method, body)
                assert answer.code == 400 and time.monotonic() - began < 1.0
        asyncio.run(scenario())
