"""The relay: long-polling without sticky sessions, between two hubs that share a real Redis.

A session's id names its process; a request for it that reaches another
process is served there through the relay, and an upgrade probe from
elsewhere pauses its polling as one here would.
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import contextmanager

import pytest

from conftest import http, raw_websocket, until
from e2e_support import Node, cluster, redis_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gen_test(timeout=30)


async def polling_session_on(node: Node) -> str:
    opened = await http(node.url)
    assert opened.code == 200 and opened.body.startswith(b"0{")
    return json.loads(opened.body[1:])["sid"]


async def connected_on(owner: Node, via: Node | None = None, numbered: bool = False) -> tuple[str, str]:
    """A polling session of `owner` connected to the main namespace, its requests sent through `via`
    (the owner itself by default; `numbered`: its GET carries `n` as our client's do): (sid, path)."""
    sid = await polling_session_on(owner)
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    through = (via or owner).url
    assert (await http(through, path, method="POST", body="40")).code == 200
    assert (await http(through, path + ("&n=0" if numbered else ""))).body.startswith(b'40{"sid":')
    return sid, path


async def test_a_session_is_served_by_whichever_process_a_request_reaches(cluster):
    a, b = cluster
    sid = await polling_session_on(a)
    assert b.hub.engine.relay.owner(sid) is not None and a.hub.engine.relay.owner(sid) is None
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    posted = await http(b.url, path, method="POST", body="40")  # through b, to a
    assert posted.code == 200 and posted.body == b"ok"
    joined = await http(b.url, path)
    assert joined.code == 200 and joined.body.startswith(b'40{"sid":')
    await until(lambda: a.hub.count == 1)
    assert b.hub.count == 0


async def test_a_session_gone_from_its_process_is_unknown_everywhere(cluster):
    a, b = cluster
    sid = await polling_session_on(a)
    a.hub.engine.sessions[sid].close("test")
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    refused = await http(b.url, path, method="POST", body="40")
    assert refused.code == 400 and json.loads(refused.body)["message"] == "Session ID unknown"


async def test_a_probe_from_another_process_pauses_polling_once(cluster):
    a, b = cluster
    sid = await polling_session_on(a)
    session = a.hub.engine.sessions[sid]
    assert await b.hub.engine.relay.probe(sid)
    assert session.probed and session.upgrading
    assert not await b.hub.engine.relay.probe(sid)  # one upgrade at a time
    b.hub.engine.relay.unprobe(sid)                  # its WebSocket closed before the upgrade
    await until(lambda: not session.probed and not session.upgrading)


async def test_a_probe_whose_process_dies_lets_polling_go_on_within_a_second(cluster, io_loop):
    """The WebSocket of an upgrade died with the process it reached: the owner does not wait for the
    client's ping timeout to let the session poll (and be handed over by a drain) again."""
    a, b = cluster
    sid, path = await connected_on(a)
    session = a.hub.engine.sessions[sid]
    assert await b.hub.engine.relay.probe(sid)
    assert session.probed
    paused = await http(a.url, path)
    assert paused.body == b"6"  # mid-upgrade: the client pauses polling
    await gone(b)
    began = io_loop.time()
    await until(lambda: not session.probed and not session.upgrading, timeout=3)
    assert io_loop.time() - began < 1.5
    a.hub.emit("news", "after the probe")
    resumed = await http(a.url, path)  # the GET waits for it again, as polling does
    assert resumed.code == 200 and resumed.body.startswith(b'42["news","after the probe"')


async def test_an_upgrade_asked_while_an_answer_is_in_transit_waits_for_its_word_and_moves(cluster):
    """The client polls through b and upgrades on b: its "5" can reach b before b's word that it
    wrote the last poll's answer reaches a. The move waits for that word instead of being refused
    (which would close the WebSocket the client has already switched to)."""
    a, b = cluster
    sid, path = await connected_on(a)
    a.hub.emit("news", "in transit")
    status, body = await b.hub.engine.relay.request(sid, "get", None, 5.0)  # b has not said it wrote it yet
    assert status == 200 and '"in transit"' in body and sid in a.hub.engine.relay._kept
    ws = await raw_websocket(b.url, f"EIO=4&transport=websocket&sid={sid}")
    await ws.write_message("2probe")
    assert await ws.read_message() == "3probe"
    await ws.write_message("5")
    await until(lambda: a.hub.engine.sessions[sid].upgrading)
    b.hub.engine.relay.written(sid, True)  # the word arrives, late
    await until(lambda: sid in b.hub.engine.sessions)
    b.hub.emit("news", "after the move")
    message = await ws.read_message()
    assert message is not None and message.startswith('42["news","after the move"'), message
    assert sid not in a.hub.engine.sessions
    ws.close()


async def gone(node: Node) -> None:
    """The process `node` is gone as far as Redis can tell: nothing listens on its relay channel."""
    await node.hub.engine.relay.stop()


@contextmanager
def running(io_loop, url: str, count: int, **options):
    """`count` processes on one Redis, stopped at the end (those a test has not stopped itself)."""
    nodes = [Node(url, **options) for _ in range(count)]
    for node in nodes:
        io_loop.run_sync(node.start)
    yield nodes
    for node in nodes:
        if node.server is not None:
            io_loop.run_sync(node.stop)


@pytest.fixture
def quiet_pair(io_loop, redis_server):
    """Two processes whose heartbeat says nothing for 10 s: a GET waits until something is sent."""
    with running(io_loop, redis_server.url, 2, ping=10_000) as nodes:
        yield nodes


async def test_a_request_waiting_on_an_owner_that_dies_fails_within_a_second(quiet_pair, io_loop):
    a, b = quiet_pair
    sid = await polling_session_on(a)
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    waiting = asyncio.ensure_future(http(b.url, path))   # through b, held at a: a has nothing to send
    await until(lambda: a.hub.engine.sessions[sid].poller is not None)
    await gone(a)
    began = io_loop.time()
    answer = await asyncio.wait_for(waiting, 5)
    assert answer.code == 400 and json.loads(answer.body)["message"] == "Session ID unknown"
    assert io_loop.time() - began < 1.0
    # ... and so do a probe and a handoff aimed at it, at once.
    began = io_loop.time()
    assert not await b.hub.engine.relay.probe(sid)
    assert await b.hub.engine.relay.move_here(sid, None) is None
    assert io_loop.time() - began < 1.0


async def test_an_answer_whose_relaying_process_dies_in_transit_goes_to_the_next_get(quiet_pair):
    a, b = quiet_pair
    sid, path = await connected_on(a, via=b)
    session = a.hub.engine.sessions[sid]
    waiting = asyncio.ensure_future(http(b.url, path))   # through b, held at a
    await until(lambda: session.poller is not None)
    await gone(b)                    # b dies with the GET it relays: its answer never reaches the client
    a.hub.emit("news", "in transit")
    await until(lambda: sid in a.hub.engine.relay._kept or session.queue)  # a kept it, or already gave it back
    again = await http(a.url, path)  # the client's next GET, here at the owner
    assert again.code == 200 and again.body.startswith(b'42["news","in transit",')  # once, with its offset
    waiting.cancel()


async def test_an_answer_written_by_the_relaying_process_is_not_sent_twice(quiet_pair):
    a, b = quiet_pair
    sid, path = await connected_on(a, via=b)
    session = a.hub.engine.sessions[sid]
    waiting = asyncio.ensure_future(http(b.url, path))
    await until(lambda: session.poller is not None)
    a.hub.emit("news", 1)
    assert (await waiting).body.startswith(b'42["news",1,')
    await until(lambda: not a.hub.engine.relay._kept and not session.held)  # b said it wrote it
    a.hub.emit("news", 2)
    assert (await http(a.url, path)).body.startswith(b'42["news",2,')


@pytest.fixture
def trio(io_loop, redis_server):
    with running(io_loop, redis_server.url, 3) as nodes:
        yield nodes


async def test_a_drain_hands_its_polling_sessions_to_a_process_that_stays(trio):
    a, b, c = trio
    sid = await polling_session_on(a)
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert (await http(a.url, path, method="POST", body="40")).code == 200
    connected = await http(a.url, path)
    assert connected.body.startswith(b'40{"sid":')
    socket_id = json.loads(connected.body[2:].split(b"\x1e")[0])["sid"]
    await http(a.url, path, method="POST", body='42["join","blue"]')
    await until(lambda: a.hub.sockets and "blue" in a.hub.sockets[socket_id].rooms)
    waiting = asyncio.ensure_future(http(a.url, path))  # its GET, waiting at a as the drain begins
    await until(lambda: a.hub.engine.sessions[sid].poller is not None)
    c.hub.to("blue").emit("news", "before")
    first = (await waiting).body
    drained = asyncio.ensure_future(a.hub.drain(0.2))
    c.hub.to("blue").emit("news", "during")
    await drained
    assert not a.hub.engine.sessions
    owner = next(n for n in (b, c) if sid in n.hub.engine.sessions)
    other = c if owner is b else b
    assert owner.hub.sockets[socket_id].rooms == {socket_id, "blue"}  # same socket, same rooms
    got = first
    while b'"during"' not in got:  # the next GETs, through a (still draining), then elsewhere
        answer = await http(a.url, path)
        assert answer.code == 200, answer.body
        got += b"\x1e" + answer.body
    assert got.count(b'"before"') == 1 and got.count(b'"during"') == 1
    await a.stop()                      # a is gone: its moved sessions are found through Redis
    a.server = None
    other.hub.to("blue").emit("news", "after")
    answer = await http(other.url, path)
    while answer.body.startswith(b"2") or answer.body == b"6":  # a ping or a noop first, perhaps
        await http(other.url, path, method="POST", body="3")
        answer = await http(other.url, path)
    assert answer.code == 200 and b'"after"' in answer.body, answer.body
    assert (await http(other.url, path, method="POST", body='42["join","green"]')).code == 200
    await until(lambda: "green" in owner.hub.sockets[socket_id].rooms)


async def test_a_get_retried_elsewhere_replaces_the_relayed_one_it_retries(quiet_pair):
    """The balancer retries a GET whose relaying process died: the retry, here at the owner while the
    relayed one still waits there, takes its place (no 'Overlapping GET', the session lives on)."""
    a, b = quiet_pair
    sid, path = await connected_on(a, via=b)
    session = a.hub.engine.sessions[sid]
    relayed = asyncio.ensure_future(http(b.url, path))
    await until(lambda: session.poller is not None)
    retried = asyncio.ensure_future(http(a.url, path))   # the same GET, again, at the owner
    assert (await relayed).body == b"6"                  # the old one ends with a noop
    a.hub.emit("news", "after")
    answer = await retried
    assert answer.code == 200 and answer.body.startswith(b'42["news","after",'), answer.body
    assert not session.closed


# -- numbered GETs (our client's `n`): the same rule wherever the GET lands ----------------------------

async def test_a_numbered_get_sent_again_through_another_process_gets_the_answer_it_never_got(quiet_pair):
    a, b = quiet_pair
    sid, path = await connected_on(a, via=b, numbered=True)
    session = a.hub.engine.sessions[sid]
    waiting = asyncio.ensure_future(http(b.url, path + "&n=1"))  # through b, held at a
    await until(lambda: session.poller is not None)
    a.hub.emit("news", "lost on the way")
    lost = (await waiting).body  # written by b; say the browser never got it
    assert lost.startswith(b'42["news","lost on the way",')
    a.hub.emit("news", "came since")
    again = await http(b.url, path + "&n=1")  # the browser's retry, through b again
    assert (again.code, again.body) == (200, lost)
    again = await http(a.url, path + "&n=1")  # ... or at the owner
    assert (again.code, again.body) == (200, lost)
    following = await http(b.url, path + "&n=2")
    assert following.body.startswith(b'42["news","came since",') and b"lost" not in following.body
    assert a.hub.engine.stats.polls_answered_again == 2
    refused = await http(b.url, path + "&n=two")
    assert refused.code == 400 and "Bad poll count" in json.loads(refused.body)["message"]


async def test_a_numbered_answer_the_relay_takes_back_is_sent_once(quiet_pair):
    a, b = quiet_pair
    sid, path = await connected_on(a, via=b, numbered=True)
    session = a.hub.engine.sessions[sid]
    waiting = asyncio.ensure_future(http(b.url, path + "&n=1"))
    await until(lambda: session.poller is not None)
    await gone(b)                    # b dies with the GET it relays: its answer never reaches the client
    a.hub.emit("news", "in transit")
    await until(lambda: sid in a.hub.engine.relay._kept or session.queue)
    again = await http(a.url, path + "&n=1")  # the same GET again, at the owner
    assert again.code == 200 and again.body.startswith(b'42["news","in transit",')
    await until(lambda: sid not in a.hub.engine.relay._kept and not session.held)
    a.hub.emit("news", "next")
    following = await http(a.url, path + "&n=2")
    assert following.body.startswith(b'42["news","next",') and b"in transit" not in following.body
    waiting.cancel()


@pytest.fixture
def quiet_trio(io_loop, redis_server):
    with running(io_loop, redis_server.url, 3, ping=10_000) as nodes:
        yield nodes


async def test_a_drain_moves_the_count_of_a_numbered_session(quiet_trio):
    a, b, c = quiet_trio
    sid, path = await connected_on(a, numbered=True)
    waiting = asyncio.ensure_future(http(a.url, path + "&n=1"))  # waiting at a as the drain begins
    await until(lambda: a.hub.engine.sessions[sid].poller is not None)
    await a.hub.drain(0.2)
    assert (await waiting).body == b"6"  # the GET in flight ends: the client asks again, elsewhere
    owner = next(n for n in (b, c) if sid in n.hub.engine.sessions)
    polls = owner.hub.engine.sessions[sid].polls
    assert (polls.count, polls.kept) == (2, "6")  # counted up to that noop, which went with it
    again = await http(owner.url, path + "&n=1")  # had that noop been lost: the same GET again
    assert (again.code, again.body) == (200, b"6")
    owner.hub.emit("news", "after the move")
    answer = await http(a.url, path + "&n=2")  # through a, still draining, to where it went
    assert answer.code == 200 and answer.body.startswith(b'42["news","after the move",'), answer.body


# -- the drain's edges, and a POST sent twice ------------------------------------------------------

async def test_a_session_a_peer_will_not_take_goes_to_the_next(trio):
    """The peer a drain picks first drains too (it said so after the drain began): it says no, and
    the session goes to the next one instead of being closed."""
    a, b, c = trio
    sid = await polling_session_on(a)
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert (await http(a.url, path, method="POST", body="40")).code == 200
    assert (await http(a.url, path)).body.startswith(b'40{"sid":')
    b.hub.ops.admission.draining = True               # b takes no session any more
    relay = a.hub.engine.relay
    relay._peer = 0                                   # b is asked first
    assert await relay.hand_over(a.hub.engine.sessions[sid], [b.hub.engine.relay.tag, c.hub.engine.relay.tag])
    assert sid in c.hub.engine.sessions and sid not in b.hub.engine.sessions
    c.hub.emit("news", "after")
    answer = await http(b.url, path)                  # through b, which asks a, which says c
    while answer.body.startswith(b"2") or answer.body == b"6":
        await http(b.url, path, method="POST", body="3")
        answer = await http(b.url, path)
    assert answer.code == 200 and b'"after"' in answer.body, answer.body


async def test_a_post_the_balancer_sends_again_is_read_once(trio):
    """nginx with `proxy_next_upstream ... non_idempotent` sends a POST again, to the next process,
    when the one it crossed died before answering: the same query (its `t`) and body. Wherever the
    retry lands (another relaying process, or the owner itself), the owner reads it once; a new POST
    with the same body (a new `t`) is read."""
    a, b, c = trio
    got = []
    a.hub.on("count")(lambda socket, n: got.append(n))
    sid = await polling_session_on(a)
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert (await http(a.url, path + "&t=open", method="POST", body="40")).code == 200
    assert (await http(a.url, path)).body.startswith(b'40{"sid":')
    once = path + "&t=Nx1"
    for node in (b, c, a, b):     # the first time through b; then again through c, at a, through b
        answer = await http(node.url, once, method="POST", body='42["count",1]')
        assert answer.code == 200 and answer.body == b"ok"
    assert (await http(c.url, path + "&t=Nx2", method="POST", body='42["count",1]')).code == 200
    assert (await http(b.url, path + "&t=Nx3", method="POST", body='42["count",2]')).code == 200
    await until(lambda: len(got) >= 3)
    assert got == [1, 1, 2]
    assert a.hub.engine.sessions[sid].closed is False


async def test_a_drain_moves_a_session_that_always_has_an_answer_in_transit(quiet_trio):
    """Under load the relaying process says late that it wrote an answer; a session whose GETs cross
    it and that has something to send at every moment always holds an answer in transit, and could
    never be handed over: it was closed at the end of the drain. While a drain hands over, nothing
    goes into transit; the session moves with what waited, and the client gets every packet once."""
    a, b, c = quiet_trio
    sid = await polling_session_on(a)
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    assert (await http(a.url, path, method="POST", body="40")).code == 200
    assert (await http(a.url, path)).body.startswith(b'40{"sid":')
    late = b.hub.engine.relay.written
    b.hub.engine.relay.written = lambda s, ok: asyncio.get_running_loop().call_later(0.2, late, s, ok)
    bodies: list[bytes] = []

    async def poll_through_b():
        while True:
            answer = await http(b.url, path)
            assert answer.code == 200, answer.body
            bodies.append(answer.body)

    polling = asyncio.ensure_future(poll_through_b())
    sent = 0

    async def news(until_sent: int):
        nonlocal sent
        while sent < until_sent:
            a.hub.emit("news", sent)
            sent += 1
            await asyncio.sleep(0.02)

    await news(10)
    assert sid in a.hub.engine.relay._kept             # an answer in transit, as at every moment
    streaming = asyncio.ensure_future(news(150))
    await a.hub.drain(0.5)                              # the hand-over has 2 s
    await streaming
    assert any(sid in n.hub.engine.sessions for n in (b, c)), "the session was not handed over"
    got = []
    while len(got) < sent:
        await until(lambda: bodies, 5)
        got += [int(n) for n in re.findall(rb'42\["news",(\d+)', b"".join(bodies))]
        bodies.clear()
    assert got == list(range(sent))
    polling.cancel()
