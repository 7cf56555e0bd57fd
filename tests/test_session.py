"""One session on a real Engine, no network: queueing, flushing, bounds, closing."""

import asyncio

import pytest

from handlers import Engine
from handlers.protocol import Outgoing

pytestmark = pytest.mark.gen_test(timeout=10)


class Recorder:
    """A transport end as the session sees it: keeps what it is given."""

    def __init__(self, accept: bool = True):
        self.accept = accept
        self.written: list[bytes] = []
        self.delivered: list[str] = []
        self.closed: tuple | None = None

    def send_packets(self, queue):
        self.written.append(b"".join(o.frames for o in queue))
        return self.accept

    def close_transport(self, code, reason):
        self.closed = (code, reason)

    def deliver(self, payload):
        self.delivered.append(payload)


def new_session(**options):
    closed = []
    engine = Engine(on_close=lambda session, reason: closed.append(reason), **options)
    return engine.open_session({"transport": "websocket"}), closed


async def turn():
    """Let the write loop's once-per-iteration flush run."""
    await asyncio.sleep(0)


async def test_emits_in_one_loop_turn_become_one_write():
    session, _ = new_session()
    ws = session.ws = Recorder()
    one, two = Outgoing(["4a"]), Outgoing(["4b"])
    session.send(one)
    session.send(two)
    assert ws.written == []  # nothing leaves before the end of the turn
    await turn()
    assert ws.written == [one.frames + two.frames]


async def test_polling_queue_waits_for_a_get_then_goes_in_one_payload():
    session, _ = new_session()
    session.send(Outgoing(["4a"]))
    session.send(Outgoing(["4b", b"\x01"]))
    await turn()
    assert session.take_payload() == "4a\x1e4b\x1ebAQ=="
    poller = session.poller = Recorder()
    session.send(Outgoing(["4c"]))
    await turn()
    assert poller.delivered == ["4c"] and session.poller is None


async def test_the_queue_is_bounded():
    session, closed = new_session(max_queue_bytes=10)
    session.send(Outgoing(["4" + "x" * 5]))
    assert not session.closed
    session.send(Outgoing(["4" + "x" * 5]))
    assert session.closed and closed == ["transport error"]


async def test_a_transport_that_refuses_closes_the_session():
    session, closed = new_session()
    session.ws = Recorder(accept=False)
    session.send(Outgoing(["4a"]))
    await turn()
    assert closed == ["transport error"]


async def test_close_notifies_the_client_once_and_the_engine_once():
    session, closed = new_session()
    ws = session.ws = Recorder()
    session.close("server shutting down")
    session.close("again")
    assert ws.written == [Outgoing(["1"]).frames]
    assert ws.closed == (1000, "server shutting down")
    assert closed == ["server shutting down"]
    session.send(Outgoing(["4late"]))  # ignored
    assert session.queue == []


async def test_client_close_ends_a_pending_get_with_noop():
    session, closed = new_session()
    poller = session.poller = Recorder()
    session.receive(1, "")
    assert poller.delivered == ["6"] and closed == ["client close"]
