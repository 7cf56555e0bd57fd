"""The rules of long-polling (handlers/transports/polling.py) on a real Engine, no network: numbered GETs."""

import asyncio

import pytest

from handlers import Engine
from handlers.transports.polling import BAD_COUNT, Refusal, answer_get, query_count
from handlers.transports.server import EngineDelegate
from handlers.wire.errors import BAD_REQUEST
from handlers.wire.protocol import Outgoing

pytestmark = pytest.mark.gen_test(timeout=10)


def polling_session():
    engine = Engine()
    return engine, engine.open_session({"transport": "polling"})


async def test_a_numbered_get_sent_again_gets_the_same_answer_and_the_next_one_what_came_since():
    engine, session = polling_session()
    assert answer_get(engine, session, "0") is None  # nothing yet: it waits
    session.poller = None  # that GET went away
    session.send(Outgoing(["42[\"post\",\"first\"]"]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert answer_get(engine, session, "0") == "42[\"post\",\"first\"]"
    session.send(Outgoing(["42[\"post\",\"second\"]"]))
    assert answer_get(engine, session, "0") == "42[\"post\",\"first\"]"  # its answer was lost: again
    assert answer_get(engine, session, "1") == "42[\"post\",\"second\"]"


@pytest.mark.parametrize("n", ["", "-1", "1.0", "0x1", "١", "1" * 16, ","])
async def test_a_count_that_is_not_plain_digits_is_refused(n):
    engine, session = polling_session()
    assert answer_get(engine, session, n) == Refusal(BAD_REQUEST, 400, BAD_COUNT)
    assert session.polls is None and not session.closed


async def test_a_get_without_a_count_changes_nothing():
    engine, session = polling_session()
    session.send(Outgoing(["4a"]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert answer_get(engine, session) == "4a"
    assert session.polls is None


def test_the_count_is_read_from_the_query_once():
    assert query_count({}) is None
    assert query_count({"n": [b"3"]}) == "3"
    assert query_count({"n": [b"3", b"3"]}) == ","  # twice: not a count


def test_the_front_reads_the_count_on_its_fast_path():
    front = EngineDelegate(None, Engine())
    assert front.engine_query("/socket.io/?EIO=4&transport=polling&sid=abc&t=x") == ("polling", "abc", None)
    assert front.engine_query("/socket.io/?EIO=4&transport=polling&sid=abc&t=x&n=7") == ("polling", "abc", "7")
    assert front.engine_query("/socket.io/?EIO=4&transport=polling&sid=abc&n=1&n=2") is None  # Tornado's way
