"""One session on a real Engine, no network: queueing, flushing, bounds, closing."""

import asyncio

import pytest

from handlers import Engine
from handlers.wire.protocol import PING, Outgoing

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
    """Let the write loop's flush run: two loop turns after the first packet was queued."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_emits_in_one_loop_turn_become_one_write():
    session, _ = new_session()
    ws = session.ws = Recorder()
    one, two = Outgoing(["4a"]), Outgoing(["4b"])
    session.send(one)
    session.send(two)
    assert ws.written == []  # nothing leaves before the end of the turn
    await asyncio.sleep(0)
    assert ws.written == []  # ... nor before the loop has looked at the sockets once more
    await asyncio.sleep(0)
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


# -- polling answers ---------------------------------------------------------

def packets_of(payload: str) -> list[str]:
    return payload.split("\x1e")


async def test_a_poll_answer_holds_at_most_16_packets():
    session, _ = new_session()
    for n in range(40):
        session.send(Outgoing([f"4m{n}"]))
    answers = []
    while (payload := session.take_payload()) is not None:
        answers.append(packets_of(payload))
    assert [len(a) for a in answers] == [16, 16, 8]
    assert sum(answers, []) == [f"4m{n}" for n in range(40)]
    assert session.queued_bytes == 0


async def test_a_waiting_get_gets_16_and_the_next_get_the_rest():
    session, _ = new_session()
    poller = session.poller = Recorder()
    for n in range(20):
        session.send(Outgoing([f"4m{n}"]))
    await turn()
    assert len(packets_of(poller.delivered[0])) == 16
    assert packets_of(session.take_payload()) == [f"4m{n}" for n in range(16, 20)]


async def test_an_emit_with_attachments_is_never_split_unless_it_alone_is_too_big():
    session, _ = new_session()
    session.send(Outgoing([f"4m{n}" for n in range(10)]))
    session.send(Outgoing(["451-[\"b\",{\"_placeholder\":true,\"num\":0}]", b"\x01"]))
    session.send(Outgoing([f"4x{n}" for n in range(20)]))  # made by hand: more than one poll may carry
    assert len(packets_of(session.take_payload())) == 12
    first, second = session.take_payload(), session.take_payload()
    assert packets_of(first) == [f"4x{n}" for n in range(16)]
    assert packets_of(second) == [f"4x{n}" for n in range(16, 20)]
    assert session.take_payload() is None and session.queued_bytes == 0


async def test_closing_a_polling_session_sends_its_backlog_and_the_close_packet_within_16():
    session, closed = new_session()
    poller = session.poller = Recorder()
    for n in range(20):
        session.queue.append(Outgoing([f"4m{n}"]))
    session.close("forced close")
    assert packets_of(poller.delivered[0]) == [f"4m{n}" for n in range(15)] + ["1"]
    assert closed == ["forced close"]


async def test_a_close_with_no_get_waiting_is_kept_for_the_next_get():
    session, _ = new_session()
    engine = session.engine
    session.receive(1, "")  # the client's close packet, read before its GET
    assert engine.last_answer(session.sid) == "6"
    assert engine.last_answer(session.sid) is None  # for one GET only
    other, _ = new_session()
    other.close("ping timeout", notify=False)  # nothing kept: the client is gone
    assert engine.last_answer(other.sid) is None


# -- writing -----------------------------------------------------------------

class Counting(Recorder):
    """Sets `second` at its second write."""

    def __init__(self):
        super().__init__()
        self.second = asyncio.Event()

    def send_packets(self, queue):
        accepted = super().send_packets(queue)
        if len(self.written) == 2:
            self.second.set()
        return accepted


async def test_write_apart_writes_now_and_the_rest_after_a_pause():
    session, _ = new_session()
    ws = session.ws = Counting()
    connect, auth = Outgoing(["40{}"]), Outgoing(["42[\"auth\"]"])
    session.send(connect)
    session.write_apart(0.01)
    assert ws.written == [connect.frames]  # at once, alone
    session.send(auth)
    await turn()
    assert ws.written == [connect.frames]  # held
    await asyncio.wait_for(ws.second.wait(), 2)
    assert ws.written == [connect.frames, auth.frames]


class Broken(Recorder):
    def send_packets(self, queue):
        raise RuntimeError("a bug in a transport")


async def test_one_session_that_cannot_write_does_not_stop_the_others(caplog):
    engine = Engine()
    sessions = [engine.open_session({"transport": "websocket"}) for _ in range(3)]
    for session, ws in zip(sessions, (Recorder(), Broken(), Recorder())):
        session.ws = ws
    out = Outgoing(["4news"])
    for session in sessions:
        session.send(out)
    good, bad, last = sessions
    good_ws, last_ws = good.ws, last.ws
    await turn()
    assert good_ws.written == [out.frames] and last_ws.written == [out.frames]
    assert bad.closed and not good.closed and not last.closed
    assert "could not be written" in caplog.text
    good.send(Outgoing(["2"]))  # the engine still flushes
    await turn()
    assert good_ws.written[-1] == Outgoing(["2"]).frames


# -- numbered GETs (our client's `n`): an answer lost on the way is answered again ----------------

def numbered_session():
    """A polling session whose client numbers its GETs, after its first numbered GET (n=0)."""
    session, closed = new_session()
    assert session.answer_again(0) is None
    return session, closed


async def test_a_get_sent_again_with_the_same_count_gets_the_answer_it_never_got():
    session, _ = numbered_session()
    session.send(Outgoing(["42[\"post\",1]"]))
    await turn()
    first = session.poll()
    assert first == "42[\"post\",1]" and session.polls.count == 1
    session.send(Outgoing(["42[\"post\",2]"]))  # what came since waits for the GET that says it got the first
    await turn()
    assert session.answer_again(0) == first  # the browser's retry of that GET: the same n
    assert session.answer_again(0) == first  # ... and again, should that answer be lost too
    assert session.polls.count == 1 and session.engine.stats.polls_answered_again == 2  # not counted again
    assert session.answer_again(1) is None  # the client got it: served as usual, the kept answer dropped
    assert session.polls.kept is None
    assert session.poll() == "42[\"post\",2]" and session.polls.count == 2


async def test_every_answer_handed_to_a_get_is_counted_and_the_last_kept():
    session, _ = numbered_session()
    poller = session.poller = Recorder()
    session.send(Outgoing(["4a"]))
    await turn()
    assert poller.delivered == ["4a"] and (session.polls.count, session.polls.kept) == (1, "4a")
    assert session.answer_again(1) is None
    poller = session.poller = Recorder()
    assert session.begin_probe()
    session.probe_step(Recorder(), PING, "probe")  # a probe answered: the GET in flight ends with a noop
    assert poller.delivered == ["6"] and (session.polls.count, session.polls.kept) == (2, "6")
    session.end_probe()
    assert session.answer_again(2) is None
    poller = session.poller = Recorder()
    session.close("server shutting down")  # the last answer: the close packet
    assert poller.delivered == ["1"] and (session.polls.count, session.polls.kept) == (3, "1")


async def test_the_noop_ending_a_relayed_get_that_was_retried_is_not_counted():
    session, _ = numbered_session()
    gone = Recorder()
    gone.relayed = True  # the cluster's RemotePoller: its GET came again, through another process
    session.poller = gone
    assert session.replace_poller() and gone.delivered == ["6"]
    assert session.polls.count == 0  # that noop reaches no client


async def test_a_count_that_does_not_follow_is_served_as_usual_and_counted_from():
    session, _ = numbered_session()
    session.send(Outgoing(["4a"]))
    await turn()
    assert session.poll() == "4a"
    assert session.answer_again(5) is None and (session.polls.count, session.polls.kept) == (5, None)
    assert session.answer_again(4) is None  # nothing kept to answer again: served as usual
    assert session.engine.stats.polls_answered_again == 0


async def test_an_answer_taken_back_is_no_longer_counted():
    session, _ = numbered_session()
    session.send(Outgoing(["4a"]))
    await turn()
    answer = session.poll()
    session.taken_back("".join(["4", "a"]))  # another answer with the same text is not that one
    assert session.polls.count == 1
    session.taken_back(answer)  # the relay could not write it: it goes back to the queue
    assert (session.polls.count, session.polls.kept) == (0, None)
    assert session.answer_again(0) is None  # the retry is served from the queue, as a new answer


async def test_a_client_that_does_not_number_its_gets_has_nothing_kept():
    session, _ = new_session()
    for text in ("4a", "4b"):
        session.send(Outgoing([text]))
        await turn()
        assert session.poll() == text
    poller = session.poller = Recorder()
    session.send(Outgoing(["4c"]))
    await turn()
    assert poller.delivered == ["4c"] and session.polls is None


async def test_the_last_answer_of_a_numbered_session_waits_for_its_retry():
    session, _ = numbered_session()
    poller = session.poller = Recorder()
    session.close("server shutting down")
    assert poller.delivered == ["1"]
    assert session.engine.last_answer(session.sid) == "1"  # the same GET, sent again, gets it too
    official, _ = new_session()
    official.poller = Recorder()
    official.close("server shutting down")
    assert official.engine.last_answer(official.sid) is None  # nothing kept for a client that does not number
