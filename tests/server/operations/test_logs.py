"""One log line per session opened and closed; JSON lines for log shippers."""

import json
import logging

import pytest

from conftest import until
from handlers.operations.logs import JsonFormatter

pytestmark = pytest.mark.gen_test(timeout=30)


async def test_one_line_per_session_opened_and_closed(url, clients, hub, caplog):
    caplog.set_level(logging.INFO, logger="board.sessions")
    a = await clients().connect(url, transports=["polling", "websocket"])
    await until(lambda: hub.stats.upgrades == 1)
    sid = next(iter(hub.engine.sessions))
    await a.close()
    await until(lambda: not hub.engine.sessions)
    lines = [r for r in caplog.records if r.name == "board.sessions"]
    assert [r.getMessage() for r in lines] == [
        f"session {sid[:8]} opened from 127.0.0.1 over polling",
        f"session {sid[:8]} closed ({lines[1].reason}) from 127.0.0.1 over websocket after {lines[1].seconds:.1f} s",
    ]
    assert lines[1].sid == sid[:8] and lines[1].transport == "websocket"
    assert lines[1].reason in ("client close", "transport close")  # close packet or close frame first


def test_json_lines_carry_the_session_fields():
    record = logging.LogRecord("board.sessions", logging.INFO, __file__, 1, "session %s opened", ("abc",), None)
    record.sid, record.address, record.transport = "abc", "203.0.113.9", "websocket"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "session abc opened" and line["level"] == "info" and line["logger"] == "board.sessions"
    assert (line["sid"], line["address"], line["transport"]) == ("abc", "203.0.113.9", "websocket")
    assert isinstance(line["ts"], float)


async def test_lines_client_input_triggers_are_one_a_second_per_kind(url, hub, caplog):
    """A client sending bad packets in a loop (each closes its session with a log line) makes one line
    of that kind a second; the next one says how many were left out."""
    from conftest import raw_websocket
    from handlers.operations.logs import LogThrottle

    caplog.set_level(logging.INFO, logger="board.engine")
    for _ in range(20):
        ws = await raw_websocket(url)
        assert (await ws.read_message()).startswith("0{")
        await ws.write_message("4garbage")
        assert await ws.read_message() is None  # closed for it
    lines = [r for r in caplog.records if "closing" in r.getMessage() and r.name == "board.engine"]
    assert len(lines) == 1

    throttle = LogThrottle(every=0.05)
    record = logging.LogRecord("board.hub", logging.INFO, __file__, 1, "bad %s", ("x",), None)
    assert throttle.filter(record)
    assert not throttle.filter(logging.LogRecord("board.hub", logging.INFO, __file__, 1, "bad %s", ("y",), None))
    other = logging.LogRecord("board.hub", logging.INFO, __file__, 1, "another kind %s", ("z",), None)
    assert throttle.filter(other)
    later = logging.LogRecord("board.hub", logging.INFO, __file__, 1, "bad %s", ("w",), None)
    await until(lambda: throttle.filter(later), 1)  # each refused try counts as one more left out
    assert later.getMessage().startswith("bad w (and ") and later.getMessage().endswith(
        "more like it since the last line)")


async def test_a_burst_that_stops_is_still_counted_in_the_log(caplog):
    """Lines left out and never followed by another of their kind are summed up a window later."""
    from handlers.operations.logs import LogThrottle

    logger = logging.getLogger("board.test-burst")
    throttle = LogThrottle(every=0.05)
    logger.addFilter(throttle)
    try:
        with caplog.at_level(logging.WARNING, logger="board.test-burst"):
            for n in range(5):
                logger.warning("bad packet %d", n)
            await until(lambda: "more lines like" in caplog.text, 2)
        assert [r.getMessage() for r in caplog.records] == [
            "bad packet 0", "4 more lines like 'bad packet %d' were left out"]
    finally:
        logger.removeFilter(throttle)
