"""Limits against abuse: event floods, handshake storms, too many sessions, forged addresses."""

import asyncio
import json
import time

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from conftest import error_of, http, polling_session, until
from handlers import Hub, Limits
from handlers.operations.limits import forwarded_address

pytestmark = pytest.mark.gen_test(timeout=30)


@pytest.fixture
def hub_options():
    return {"ping_interval": 300, "ping_timeout": 300, "event_rate": 20, "event_burst": 5,
            "event_strikes": 30, "handshake_rate": 1, "handshake_burst": 4,
            "max_sessions_per_address": 50}


async def test_a_flooding_socket_is_slowed_then_disconnected_and_others_are_served(url, clients, hub):
    flooder = await clients().connect(url, transports=["websocket"])
    witness = await clients().connect(url, transports=["websocket"])
    acks: list = []
    for n in range(10):  # a burst of 5 goes through; the rest get an error ack
        await flooder.client.emit("private", {"msg": n}, callback=lambda *a: acks.append(a[0] if a else None))
    await until(lambda: len(acks) == 10)
    assert acks.count(None) == 5
    assert acks.count({"error": "Too many events, slow down"}) == 5
    assert hub.stats.limits["events"] == 5

    # It keeps going: disconnected (a Socket.IO DISCONNECT: do not come back); the witness is still served.
    worst = 0.0
    for n in range(200):
        if not flooder.client.connected:
            break
        await flooder.client.emit("private", {"msg": "again"})
        if n % 10 == 0:
            started = time.monotonic()
            await witness.client.call("post", {"name": "w", "text": f"{n}"}, timeout=3)
            worst = max(worst, time.monotonic() - started)
    await asyncio.wait_for(flooder.disconnected.wait(), 5)
    assert worst < 0.5
    assert len(hub.sockets) == 1


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_handshakes_per_address_are_metered(url, hub, transport):
    from conftest import raw_websocket
    from tornado.websocket import WebSocketClientConnection
    for _ in range(4):  # the burst
        if transport == "polling":
            await polling_session(url)
        else:
            ws: WebSocketClientConnection = await raw_websocket(url)
            ws.close()
    refused = await http(url)
    assert refused.code == 429
    assert "handshakes" in error_of(refused)["message"]
    assert hub.stats.limits["handshakes"] == 1
    hub.ops.admission.handshakes._buckets["127.0.0.1"].tokens = 1.0  # as if a second had passed
    assert (await http(url)).code == 200


async def test_open_sessions_per_address_and_in_all(url, hub):
    hub.ops.limits.handshake_burst = hub.ops.limits.max_sessions_per_address = 2
    hub.ops.admission.handshakes.clear()
    hub.ops.limits.handshake_rate = 1000
    sids = [(await polling_session(url))[0] for _ in range(2)]
    refused = await http(url)
    assert refused.code == 429 and "sessions" in error_of(refused)["message"]
    hub.engine.sessions[sids[0]].close("client close")
    assert (await http(url)).code == 200  # a place came free

    hub.ops.limits.max_sessions_per_address = 100
    hub.ops.limits.max_sessions = 2
    refused = await http(url)
    assert refused.code == 503 and error_of(refused)["message"] == "Too many sessions"
    assert hub.stats.limits["sessions_per_address"] == 1 and hub.stats.limits["sessions"] == 1


def request_from(peer: str, forwarded: str | None) -> HTTPServerRequest:
    headers = HTTPHeaders({"Host": "board.example", **({"X-Forwarded-For": forwarded} if forwarded else {})})
    request = HTTPServerRequest(headers=headers, start_line=RequestStartLine("GET", "/", "HTTP/1.1"))
    request.remote_ip = peer
    return request


def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    trusted = frozenset({"10.0.0.1", "10.0.0.2"})
    assert forwarded_address(request_from("10.0.0.1", "203.0.113.7"), trusted) == "203.0.113.7"
    # The client may write anything left of what our proxies added: the rightmost untrusted hop counts.
    assert forwarded_address(request_from("10.0.0.1", "1.2.3.4, 203.0.113.7, 10.0.0.2"), trusted) == "203.0.113.7"
    assert forwarded_address(request_from("198.51.100.9", "203.0.113.7"), trusted) == "198.51.100.9"
    assert forwarded_address(request_from("10.0.0.1", "not an address"), trusted) == "10.0.0.1"
    assert forwarded_address(request_from("10.0.0.1", None), trusted) == "10.0.0.1"


@pytest.mark.parametrize("hub_options", [{"trusted_proxies": ("127.0.0.1",), "max_sessions_per_address": 1}])
async def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_share(url, hub):
    one = await http(url, headers={"X-Forwarded-For": "203.0.113.1"})
    two = await http(url, headers={"X-Forwarded-For": "203.0.113.2"})
    assert one.code == two.code == 200
    again = await http(url, headers={"X-Forwarded-For": "203.0.113.1"})
    assert again.code == 429
    sid = json.loads(two.body[1:])["sid"]
    assert hub.engine.sessions[sid].context.environ["remote_ip"] == "203.0.113.2"


def test_limits_are_hub_options():
    options = {"event_rate": 5, "ping_interval": 100}
    assert Limits.take(True, options) == Limits(event_rate=5)
    assert options == {"ping_interval": 100}


def test_one_switch_turns_every_limit_off_or_sets_them_all():
    """`Hub(limits=False)` for a load test; a `Limits` object to set them together; a named option wins."""
    off = Hub(limits=False).ops.limits
    assert off == Limits.off() and off.event_rate >= 10**9 and off.max_sessions >= 10**9
    assert off.trusted_proxies == ()
    mine = Limits(event_rate=7, max_sessions=3)
    assert Hub(limits=mine).ops.limits is mine
    assert Hub(limits=mine, max_sessions=4).ops.limits == Limits(event_rate=7, max_sessions=4)
    assert Hub().ops.limits == Limits()


def test_tune_gc_freezes_what_exists_and_collects_the_young_less_often():
    import gc
    from handlers.operations.ops import tune_gc
    before = gc.get_threshold()
    try:
        tune_gc(12_345)
        assert gc.get_threshold() == (12_345, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def _raw_session(url: str):
    """A raw WebSocket past the open packet."""
    from conftest import raw_websocket
    ws = await raw_websocket(url)
    assert (await ws.read_message()).startswith("0{")
    return ws


async def _next(ws, prefix: str) -> str:
    """The next message starting with `prefix` (the board's welcome and history come meanwhile)."""
    while True:
        message = await ws.read_message()
        assert message is not None, f"closed while waiting for {prefix!r}"
        if message.startswith(prefix):
            return message


async def test_namespace_churn_closes_the_sender_alone(url, clients, hub):
    """`40`/`41` in a loop (each one makes the board tell everyone): past the connect budget the
    sender's session is closed; the bystander stays and sees few news, not one per packet."""
    bystander = await clients("news", "message").connect(url, transports=["websocket"])
    await bystander.next("news")
    ws = await _raw_session(url)
    await ws.write_message("40")
    await _next(ws, "40{")
    sent = 0
    try:
        for _ in range(500):
            await ws.write_message("41")
            await ws.write_message("40")
            sent += 2
    except Exception:  # the server hung up mid-burst
        pass
    while await ws.read_message() is not None:  # read until the server hangs up
        pass
    assert sent < 1000 or hub.stats.limits["connects"] >= 1
    assert hub.stats.limits["connects"] >= 1
    assert hub.stats.disconnects.get("too many connects") == 1
    assert bystander.client.connected and len(hub.sockets) == 1
    poster = await clients().connect(url, transports=["polling"])
    await poster.client.call("post", {"name": "p", "text": "still here"}, timeout=3)
    assert (await bystander.next("message"))["text"] == "still here"
    news = 0
    while not bystander.queues["/news"].empty():
        bystander.queues["/news"].get_nowait()
        news += 1
    assert news <= 3  # coalesced: at most one per 0.5 s, whatever the churn


async def test_a_connect_above_max_auth_bytes_is_refused_unparsed(url, hub):
    ws = await _raw_session(url)
    await ws.write_message("40" + json.dumps({"junk": [[]] * 3000}))
    assert json.loads((await ws.read_message())[2:]) == {"message": "Auth too large"}
    await ws.write_message("40" + json.dumps({"junk": [[]] * 300}))  # small, but 300 values to hold
    assert json.loads((await ws.read_message())[2:]) == {"message": "Auth too large"}
    await ws.write_message("40" + json.dumps({"token": "t" * 3000}))  # under the bound: welcome
    await _next(ws, "40{")
    assert hub.stats.limits["auth_bytes"] == 2
    assert [s.auth for s in hub.sockets.values()] == [{"token": "t" * 3000}]


@pytest.mark.parametrize("hub_options", [{"ping_interval": 300, "ping_timeout": 300, "event_rate": 0.01,
                                          "event_burst": 6}])
async def test_the_event_budget_follows_the_session_not_the_socket(url, hub):
    """Leaving the namespace and joining again does not refill the bucket (burst 6)."""
    ws = await _raw_session(url)
    for round_ in range(2):
        await ws.write_message("40")
        await _next(ws, "40{")
        for n in range(3):
            await ws.write_message(f'42{round_ * 10 + n}["private",{{"msg":"x"}}]')
            await _next(ws, f"43{round_ * 10 + n}[")
        await ws.write_message("41")
    await ws.write_message("40")
    await _next(ws, "40{")
    await ws.write_message('4299["private",{"msg":"x"}]')
    assert await _next(ws, "4399") == '4399[{"error":"Too many events, slow down"}]'


@pytest.mark.parametrize("hub_options", [{"ping_interval": 300, "ping_timeout": 300, "event_rate": 1000,
                                          "event_burst": 1000, "address_event_rate": 1,
                                          "address_event_burst": 3}])
async def test_sessions_of_one_address_share_an_event_budget(url, hub):
    acks = []
    for _ in range(2):
        ws = await _raw_session(url)
        await ws.write_message("40")
        await _next(ws, "40{")
        for n in range(3):
            await ws.write_message(f'42{n}["private",{{"msg":"x"}}]')
            acks.append(await _next(ws, f"43{n}["))
    assert acks == ["430[]", "431[]", "432[]"] + [f'43{n}[{{"error":"Too many events, slow down"}}]'
                                                 for n in range(3)]
    assert hub.stats.limits["address_events"] == 3
