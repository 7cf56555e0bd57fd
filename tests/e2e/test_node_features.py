"""The official socket.io-client (Node, tests/node/features.js) against Board's Hub, feature by feature.

The server is tests/e2e/feature_app.py (one per module, on a free port); each scenario runs in
its own Node process over one transport alone (websocket, or polling), and the upgrade from
polling to websocket has its own test.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import FeatureApp, require, run_node_script  # noqa: E402

pytestmark = [pytest.mark.node, pytest.mark.timeout(30)]

TRANSPORTS = ["websocket", "polling"]


@pytest.fixture(scope="module")
def app():
    require("node", "node_modules")
    with FeatureApp(name="node-features") as running:
        yield running


def run(scenario, app, transport=None):
    args = [scenario, app.url] + ([transport] if transport else [])
    return run_node_script("features.js", args, timeout=25)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_namespaces_share_one_connection(app, transport):
    seen = run("namespaces", app, transport)
    main, admin = seen["mainWho"], seen["adminWho"]
    # io(url) and io(url + "admin"): one Manager, one Engine.IO session on the server, two sockets.
    assert seen["sameManager"] is True
    assert main["engine"] == admin["engine"], seen
    assert main["id"] != admin["id"]
    assert (main["nsp"], admin["nsp"]) == ("/", "/admin")
    assert main["namespaces"] == ["/", "/admin"] and admin["namespaces"] == ["/", "/admin"]
    assert seen["clientIds"] == {"main": main["id"], "admin": admin["id"]}
    assert main["transport"] == transport
    # A namespace nobody declared is refused.
    assert seen["unknownError"] == {"message": "Invalid namespace", "data": None}, seen
    assert seen["unknownConnected"] is False
    # Leaving /admin keeps / on the same connection.
    assert seen["adminReason"] == "io client disconnect"
    assert seen["afterWho"]["engine"] == main["engine"] and seen["afterWho"]["id"] == main["id"]
    assert seen["afterWho"]["namespaces"] == ["/"]
    assert seen["mainConnected"] is True and seen["adminConnected"] is False
    assert seen["engineOpen"] == "open"
    assert seen["history"] == [["/", "connect"], ["/admin", "connect"], ["/admin", "client namespace disconnect"]]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_auth_and_middleware(app, transport):
    seen = run("auth", app, transport)
    # The auth option reaches the server as sent, in the namespace with the middleware and in /.
    assert seen["authEcho"]["token"] == "secret"
    assert seen["authEcho"]["extra"] == {"n": 1, "list": ["a", None, True]}
    assert seen["mainAuthEcho"]["who"] == "main"
    assert seen["okAttempts"] == 1
    # Refused: one connect_error with the middleware's message and data, then nothing more.
    assert seen["refusedErrors"] == [{"message": "Not authorized", "data": {"hint": "send auth {token: 'secret'}"}}]
    assert seen["refusedConnected"] is False and seen["refusedActive"] is False
    assert seen["reconnectAttempts"] == 0
    assert seen["serverAttempts"] == 1, "the refused client tried to connect again"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rooms(app, transport):
    seen = run("rooms", app, transport)
    room = seen["aRooms"][0]
    assert seen["aRooms"] == seen["bRooms"] == [room]
    assert seen["bLeft"] == []
    # m1: to the room (a, b); m2: socket.to(room) from a (b only); m3: socket.to(room) from c,
    # not a member (a, b); m4: to the room after b left (a only). c is never in the room.
    assert seen["counts"] == [2, 1, 2, 1]
    assert seen["got"] == {"a": ["m1", "m3", "m4"], "b": ["m1", "m2", "m3"], "c": []}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_binary_both_ways(app, transport):
    seen = run("binary", app, transport)
    assert seen["transport"] == seen["finalTransport"] == seen["who"]["transport"] == transport
    # Uint8Array, ArrayBuffer and Buffer in the args; the server acks them reversed, as bytes.
    assert seen["reverseAck"] == {
        "u8": {"bytes": [255, 0, 250, 3, 2, 1]},
        "ab": {"bytes": [7, 8, 9]},
        "list": [{"bytes": list(b"ih")}, "text"],
        "n": 5,
    }
    assert seen["reverseKinds"] == ["Buffer", "Buffer", "Buffer"]
    assert seen["bigOk"] is True and seen["bigLength"] == 65536
    # Bytes in an event from the server.
    assert seen["reverseBackAck"] == "sent"
    assert seen["reversedEvent"] == [{"bytes": [7, 8, 9]}, "x", {"bytes": [255, 0, 250, 3, 2, 1]}]
    # Bytes in the client's ack to the server's socket.call().
    assert seen["giveBytesKind"] == "Buffer"
    assert seen["askBytes"] == {"reply": {"bytes": [40, 30, 20, 10]}, "type": "bytes", "matches": True}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_acks_and_timeouts_both_ways(app, transport):
    seen = run("acks", app, transport)
    # Client side: the server never acks "never-acks".
    assert seen["timeoutError"] == {"isError": True, "message": "operation has timed out", "late": True}
    assert 190 <= seen["timeoutMs"] < 2000, seen["timeoutMs"]
    assert seen["emitWithAckTimeout"] == {"isError": True, "message": "operation has timed out"}
    assert seen["emitWithAck"] == {"x": 1}
    assert seen["emitWithAckTimed"] == [1, 2, 3]
    assert seen["plainAck"] == [1, "two", {"three": 3}]
    # Server side: await socket.call() gets the client's ack, or AckTimeout without one.
    assert seen["callReply"] == {"reply": {"answer": 42}}
    assert seen["callTimeout"] == {"timeout": True}
    assert 290 <= seen["callTimeoutMs"] < 3000
    # hub.call to a room of three: the two that answer, once the 0.5 s are up for the silent one.
    assert seen["pollReplies"] == ["a:true", "c:true"]
    assert 490 <= seen["pollMs"] < 3000


def test_upgrade_from_polling_to_websocket(app):
    seen = run("upgrade", app)
    assert seen["initialTransport"] == "polling"
    assert seen["probeAnswered"] is True
    assert seen["upgradedTo"] == "websocket"
    assert seen["echo"] == "after the upgrade"
    assert seen["who"]["transport"] == "websocket"
