"""The cluster's promise, end to end: three `board.py --redis` processes behind nginx round robin, the
official clients of JavaScript and Python on every transport, one process SIGKILLed, then a rolling
restart, all under posts (bench/rolling.py's scenario, small; the bench runs it with many clients).

Through the rolling restart every client of every kind gets every post once, in order, except
WebSocket clients without recovery, which miss only what was posted while they reconnected; long-
polling sessions are handed to a process that stays and do not even reconnect. Through the SIGKILL,
every recovering client and every client whose session lived elsewhere gets every post once; the
others are back within seconds and miss only what was posted meanwhile. No client is stranded.
"""

import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import ROOT, require  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import rolling  # noqa: E402

pytestmark = [pytest.mark.node, pytest.mark.nginx, pytest.mark.timeout(150)]

SLACK = 0.5  # s: a post acked this close to a disconnection may have been sent just before it


def missed_only_while_away(result: dict, client: dict) -> bool:
    """Every post the client missed was posted while it was disconnected."""
    times = result["times"]
    return all(any(since - SLACK <= times[n] <= (until or float("inf")) + SLACK for since, until in client["downs"])
               for n in client["missingIds"])


def test_a_sigkill_and_a_rolling_restart_strand_no_client_and_lose_nothing_that_can_be_kept():
    require("node", "node_modules", "nginx", "redis")
    result = asyncio.run(rolling.run(clients=2, posts=120, rate=10, drain=1.0, ping=5000, settle=10))
    clients = result["clients"]
    report = rolling.table(result)
    assert {c["kind"] for c in clients} == set(rolling.KINDS), report
    for c in clients:
        assert c["duplicates"] == 0 and c["outOfOrder"] == 0, (c, report)
        assert c["maxDownMs"] < 5000, (c, report)                    # nobody stranded
        through_kill, through_roll = rolling.phases(result, c)
        if c["kind"].startswith("js-") or c["kind"] == "py-recovering":  # they recover: nothing lost
            assert c["missingIds"] == [], (c, report)
        elif c["kind"] == "py-polling":
            assert through_roll == [], (c, report)                  # handed over in the drains ...
            on_killed = rolling.was_on(c, result["killed_tag"])
            assert c["connects"] == 1 + on_killed, (c, report)     # ... without even reconnecting
            assert not through_kill or on_killed, (c, report)
            assert missed_only_while_away(result, c), (c, report)
        else:  # py-websocket: no recovery, and its TCP connection ends with its process
            assert not through_kill or rolling.was_on(c, result["killed_tag"]), (c, report)
            assert missed_only_while_away(result, c), (c, report)
