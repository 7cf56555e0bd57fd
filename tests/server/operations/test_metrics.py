"""/metrics: the board's counters in Prometheus' text format, read back with prometheus_client's parser."""

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import http, until
from handlers import Hub
from handlers.operations.metrics import registry_for

pytestmark = pytest.mark.gen_test(timeout=30)

EVENTS = ("news", "private", "history", "message")


async def scrape(url: str) -> dict:
    """{(sample name, frozenset(labels)): value} of one GET /metrics."""
    response = await http(url, "/metrics")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_counters_follow_what_the_clients_do(url, clients, hub):
    # Each one waits for the news of its own arrival (news is coalesced: at most one per 0.5 s).
    a = await clients(*EVENTS).connect(url, transports=["websocket"])
    await a.next("history")
    assert (await a.next("news"))["count"] == 1
    b = await clients(*EVENTS).connect(url, transports=["polling"])
    await b.next("history")
    assert (await b.next("news"))["count"] == 2
    c = await clients(*EVENTS).connect(url, transports=["polling", "websocket"])  # upgrades
    await c.next("history")
    assert (await c.next("news"))["count"] == 3
    await until(lambda: hub.stats.upgrades == 1)

    assert await a.client.call("post", {"name": "Ann", "text": "hi"}, timeout=3) == {"ok": True, "id": 1}
    for person in (a, b, c):
        await person.next("message")

    s = await scrape(url)
    assert value(s, "board_connections", transport="websocket") == 2
    assert value(s, "board_connections", transport="polling") == 1
    assert value(s, "board_handshakes_total", transport="websocket") == 1
    assert value(s, "board_handshakes_total", transport="polling") == 2
    assert value(s, "board_upgrades_total") == 1
    # Three "news" broadcasts (to 1, 2 and 3 people) and one "message" (to 3).
    assert value(s, "board_broadcasts_total") == 4
    assert value(s, "board_deliveries_total") == 1 + 2 + 3 + 3
    # Sent: the deliveries, "private" and "history" to each newcomer, and the post's ack.
    assert value(s, "board_packets_sent_total") == 9 + 3 * 2 + 1
    # Received: three CONNECTs and one post.
    assert value(s, "board_packets_received_total") == 4
    assert value(s, "board_handler_seconds_count") == 1
    assert value(s, "board_handler_seconds_bucket", le="+Inf") == 1
    assert value(s, "board_ack_timeouts_total") == 0
    assert value(s, "board_slow_clients_dropped_total") == 0

    await b.close()
    await until(lambda: len(hub.engine.sessions) == 2)
    s = await scrape(url)
    assert value(s, "board_disconnects_total", reason="client close") == 1
    assert value(s, "board_connections", transport="polling") == 0


async def test_ack_timeouts_are_counted(url, clients, hub):
    a = await clients().connect(url, transports=["websocket"])

    async def slow():  # the official client acknowledges when its handler returns: late
        await asyncio.sleep(0.5)
    a.client.on("slow", slow)
    await until(lambda: hub.count == 1)
    socket = next(iter(hub.sockets.values()))
    with pytest.raises(TimeoutError):
        await socket.call("slow", timeout=0.05)
    replies = await hub.call("slow", timeout=0.05)
    assert replies == []
    s = await scrape(url)
    assert value(s, "board_ack_timeouts_total") == 2


def test_each_hub_has_a_registry_of_its_own():
    one, two = Hub(), Hub()
    one.stats.broadcast(5)
    assert registry_for(one.engine) is registry_for(one.engine)
    assert registry_for(one.engine).get_sample_value("board_deliveries_total") == 5
    assert registry_for(two.engine).get_sample_value("board_deliveries_total") == 0


async def test_a_broadcast_counts_once_not_per_delivery(hub):
    """The fan-out adds N to the counters in one call, whatever N is."""
    calls = []
    original = hub.stats.broadcast
    hub.stats.broadcast = lambda n: (calls.append(n), original(n))  # type: ignore[method-assign]
    hub.emit("nobody-listens")
    assert calls == [0]


async def test_slow_client_dropped_is_counted(url, hub):
    from conftest import polling_session
    sid, _ = await polling_session(url)
    session = hub.engine.sessions[sid]
    from handlers.wire.protocol import Outgoing
    big = Outgoing(["4" + "x" * (hub.engine.max_queue_bytes + 1)])
    session.send(big)
    assert session.closed
    s = await scrape(url)
    assert value(s, "board_slow_clients_dropped_total") == 1
    assert value(s, "board_disconnects_total", reason="transport error") == 1
    await asyncio.sleep(0)
