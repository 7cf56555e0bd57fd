"""The official Socket.IO JavaScript client (socket.io-client 4.x, tests/node) against the board."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import board, run_node  # noqa: E402,F401

pytestmark = [pytest.mark.node, pytest.mark.timeout(60)]


def check_post_exchange(seen, mode):
    assert seen["welcome"]["msg"].startswith("Welcome, you are person number "), seen
    assert seen["bWelcome"]["msg"].startswith("Welcome, you are person number "), seen
    assert seen["historyIsArray"] is True

    ack_a, ack_b = seen["ackA"], seen["ackB"]
    assert ack_a["ok"] is True and isinstance(ack_a["id"], int), ack_a
    assert ack_b["ok"] is True and isinstance(ack_b["id"], int) and ack_b["id"] != ack_a["id"], ack_b
    # Another client's post reaches this one as a `message` broadcast, and the sender gets its own.
    assert seen["bGotA"] == seen["aGotOwn"]
    assert seen["bGotA"]["id"] == ack_a["id"]
    assert seen["bGotA"]["name"] == f"node {mode}"
    assert seen["bGotA"]["text"].startswith("from a ")
    assert isinstance(seen["bGotA"]["ts"], int) and seen["bGotA"]["ts"] > 1_600_000_000_000
    assert seen["aGotB"]["id"] == ack_b["id"] and seen["aGotB"]["name"] == "node other"
    assert seen["aMessageIds"] == [ack_a["id"], ack_b["id"]]
    # A post with a blank name is refused in the ack, and nothing is broadcast for it.
    assert set(seen["invalidAck"]) == {"error"} and seen["invalidAck"]["error"], seen["invalidAck"]
    # The fresh board: a alone, then b arrives.
    assert seen["aNews"] == [
        {"msg": "One more person is online", "count": 1},
        {"msg": "One more person is online", "count": 2},
    ]


def test_default_transports_poll_then_upgrade_to_websocket(board):
    seen = run_node("default", board.url)
    assert seen["initialTransport"] == "polling", seen
    assert seen["upgrades"] == ["websocket"], seen
    assert seen["finalTransport"] == "websocket", seen
    check_post_exchange(seen, "default")


def test_websocket_only(board):
    seen = run_node("websocket", board.url)
    assert seen["initialTransport"] == "websocket" and seen["finalTransport"] == "websocket", seen
    assert seen["upgrades"] == []
    check_post_exchange(seen, "websocket")


def test_polling_only(board):
    seen = run_node("polling", board.url)
    assert seen["initialTransport"] == "polling" and seen["finalTransport"] == "polling", seen
    assert seen["upgrades"] == []
    check_post_exchange(seen, "polling")


def test_malformed_packet_disconnects_only_its_sender(board):
    seen = run_node("malformed", board.url)
    # The board drops the client that sent garbage...
    assert seen["badDisconnectReason"] in {"io server disconnect", "transport close", "transport error"}, seen
    assert seen["goodNews"]["msg"] == "Someone went home" and seen["goodNews"]["count"] == 1, seen
    # ...while the other one carries on.
    assert seen["goodAck"]["ok"] is True, seen
    assert seen["goodMessage"]["id"] == seen["goodAck"]["id"]
    assert seen["goodMessage"]["text"].startswith("still here ")
    assert seen["goodConnected"] is True
