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


def test_a_sigkill_and_a_rolling_restart_strand_no_client_and_lose_nothing_that_can_be_kept():
    require("node", "node_modules", "nginx", "redis")
    result = asyncio.run(rolling.run(clients=2, posts=120, rate=10, drain=1.0, ping=5000, settle=10))
    report = rolling.table(result)
    assert {c["kind"] for c in result["clients"]} == set(rolling.KINDS), report
    # The bar, client by client (bench/rolling.py's `broken`; the servers' logs are kept if it breaks):
    # no duplicates, nothing out of order, nobody away 5 s; through the rolling restart every client
    # but a WebSocket one without recovery gets every post, a polling one without even reconnecting;
    # through the kill every recovering client and every client whose session lived elsewhere does;
    # the rest miss only what was posted while they were away.
    assert rolling.broken(result) == [], (report, result.get("logs"))
