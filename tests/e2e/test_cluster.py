"""The board as a cluster: real `board.py --redis` processes, a real redis-server, nginx round robin.

What a person sees across processes: a post reaches everyone once, the count and
the history are the cluster's, and a process killed without warning (SIGKILL)
loses nothing for the WebSocket clients that were on it: they come back through
the balancer to another process and get what they missed, once, in order.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest
import socketio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import (  # noqa: E402,F401
    CONNECT_MS, NODE_DIR, Board, Nginx, RedisServer, redis_server, browser, expect, expect_post, pages, post, require, screenshot,
)

pytestmark = [pytest.mark.node, pytest.mark.nginx, pytest.mark.timeout(120)]


def cluster_board(tmp_path, redis_server, name):
    return Board(tmp_path / f"{name}.db", name=name, ping_interval=1000, ping_timeout=1000,
                 args=[f"--redis={redis_server.url}", "--redis_prefix=test-board", "--post_limit=0"])


async def client(url, *events, transport="websocket"):
    sio = socketio.AsyncClient(reconnection=False)
    got = {event: asyncio.Queue() for event in events}
    for event, queue in got.items():
        sio.on(event, queue.put_nowait)
    await sio.connect(url, transports=[transport], wait_timeout=5)
    return sio, got


async def next_of(queue, predicate=lambda data: True):
    while not predicate(data := await asyncio.wait_for(queue.get(), 10)):
        pass
    return data


def watch_posts(url, mode, clients, posts, poster_url, on_post=lambda n: None, pace=0.02, transport="websocket"):
    """Official Node clients (tests/node/recovery.js) watch `message` through `url` while a Python client
    posts `posts` posts through `poster_url`, calling `on_post(n)` after each; returns the Node summary."""
    node = require("node", "node_modules")["node"]
    watchers = subprocess.Popen(
        [node, str(NODE_DIR / "recovery.js"), url.rstrip("/"), mode, str(clients), str(posts), "60000", "message"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(watchers.stdout.readline()) == {"ready": True}

        async def post_all():
            poster, _ = await client(poster_url, transport=transport)
            try:
                for n in range(1, posts + 1):
                    ack = await poster.call("post", {"name": "P", "text": f"post {n}"}, timeout=5)
                    assert ack["id"] == n, ack
                    done = on_post(n)
                    if done is not None:
                        await done
                    await asyncio.sleep(pace)  # the pace of the posts, not a synchronisation
            finally:
                await poster.disconnect()
        asyncio.run(post_all())
        return json.loads(watchers.stdout.readline())
    finally:
        if watchers.poll() is None:
            watchers.kill()
        watchers.wait(5)


def assert_every_post_once(summary, dropped=True):
    """Every watcher got every post once, in order; with `dropped`, some were cut off and all came back whole."""
    assert summary["done"] == "all", summary
    for c in summary["clients"]:
        assert c["missing"] == 0 and c["duplicates"] == 0 and c["outOfOrder"] == 0, summary
    if dropped:
        comebacks = sum(c["connects"] - 1 for c in summary["clients"])
        assert comebacks > 0, summary  # the cuts did drop clients ...
        assert sum(c["recovered"] for c in summary["clients"]) == comebacks, summary  # ... and each came back whole


def test_posts_counts_and_history_are_the_clusters(tmp_path, redis_server, request):
    with cluster_board(tmp_path, redis_server, f"{request.node.name}-a") as a, \
            cluster_board(tmp_path, redis_server, f"{request.node.name}-b") as b:
        async def scenario():
            ann, ann_got = await client(a.url, "message", "news")
            bob, bob_got = await client(b.url, "message", "news", "history")
            try:
                # Bob arrives on b: the count in the news is the cluster's (Ann is on a).
                news = await next_of(ann_got["news"], lambda n: n["count"] == 2)
                assert news["msg"] == "One more person is online"
                ack = await ann.call("post", {"name": "Ann", "text": "from a"}, timeout=5)
                assert ack["ok"] is True
                for got in (ann_got, bob_got):
                    message = await next_of(got["message"])
                    assert (message["id"], message["text"]) == (ack["id"], "from a")
                ack2 = await bob.call("post", {"name": "Bob", "text": "from b"}, timeout=5)
                assert (await next_of(ann_got["message"]))["id"] == ack2["id"]
                assert (await next_of(bob_got["message"]))["id"] == ack2["id"]
                assert ann_got["message"].empty() and bob_got["message"].empty()  # once each
                # A newcomer on a sees the posts made through b, and the other way round.
                carl, carl_got = await client(a.url, "history")
                history = await next_of(carl_got["history"])
                assert [p["text"] for p in history] == ["from a", "from b"]
                await carl.disconnect()
            finally:
                await ann.disconnect()
                await bob.disconnect()
        asyncio.run(scenario())


def test_a_process_killed_without_warning_loses_nothing_for_its_clients(tmp_path, redis_server, request):
    name = request.node.name
    with cluster_board(tmp_path, redis_server, f"{name}-a") as a, \
            cluster_board(tmp_path, redis_server, f"{name}-b") as b, \
            Nginx([a.port, b.port], tmp_path / "nginx", name=name, upgrade=True) as nginx:
        def kill_a(n):
            if n == 15:
                a.proc.send_signal(signal.SIGKILL)  # no drain, no goodbye
                a.proc.wait(5)
        summary = watch_posts(nginx.url, "websocket", 8, 40, b.url, on_post=kill_a)
    assert_every_post_once(summary)


def test_long_polling_needs_no_sticky_sessions(tmp_path, redis_server, request):
    """Three processes behind nginx round robin (no ip_hash): each request of a polling session
    may land on any of them, and the session works, for the official Node and Python clients."""
    posts, clients = 20, 4
    name = request.node.name
    with cluster_board(tmp_path, redis_server, f"{name}-a") as a, \
            cluster_board(tmp_path, redis_server, f"{name}-b") as b, \
            cluster_board(tmp_path, redis_server, f"{name}-c") as c, \
            Nginx([a.port, b.port, c.port], tmp_path / "nginx", name=name) as nginx:
        summary = watch_posts(nginx.url, "polling", clients, posts, nginx.url, pace=0, transport="polling")
        served_by = {}
        for line in (nginx.prefix / "upstreams.log").read_text().splitlines():
            upstream, _, req = line.partition(" ")
            if "transport=polling" in req and "sid=" in req:
                sid = req.split("sid=", 1)[1].split("&", 1)[0].split(" ", 1)[0]
                served_by.setdefault(sid, set()).add(upstream)
    assert_every_post_once(summary, dropped=False)
    # Every session's requests were spread over the three processes: nothing sticky about it.
    # (nginx here strips Upgrade, as many proxies do: the sessions stay on polling.)
    assert len(served_by) >= clients + 1 and all(len(ups) == 3 for ups in served_by.values()), served_by


def test_the_upgrade_to_websocket_needs_no_sticky_sessions(tmp_path, redis_server, request):
    """Official clients on the default transport behind nginx round robin over three processes: the
    WebSocket of an upgrade mostly reaches another process than the session's, the session moves
    there (handlers/cluster/handoff.py), and every client ends on WebSocket with every post once, in order."""
    posts, clients = 20, 6
    name = request.node.name
    with cluster_board(tmp_path, redis_server, f"{name}-a") as a, \
            cluster_board(tmp_path, redis_server, f"{name}-b") as b, \
            cluster_board(tmp_path, redis_server, f"{name}-c") as c, \
            Nginx([a.port, b.port, c.port], tmp_path / "nginx", name=name, upgrade=True) as nginx:
        summary = watch_posts(nginx.url, "default", clients, posts, nginx.url, pace=0.02)

        async def python_client_upgrades():  # python-socketio's client upgrades the same way
            sio = socketio.AsyncClient(reconnection=False)
            await sio.connect(nginx.url, transports=["polling", "websocket"], wait_timeout=5)
            try:
                for _ in range(200):  # the upgrade runs after connect; bounded wait for it
                    if sio.transport() == "websocket":
                        break
                    await asyncio.sleep(0.01)
                assert sio.transport() == "websocket"
                ack = await sio.call("post", {"name": "Py", "text": "upgraded"}, timeout=5)
                assert ack["id"] == posts + 1, ack
            finally:
                await sio.disconnect()
        for _ in range(3):  # round robin: some of these land on another process than the session's
            asyncio.run(python_client_upgrades())
            posts += 1
        upgraded_on = {}
        for line in (nginx.prefix / "upstreams.log").read_text().splitlines():
            upstream, _, req = line.partition(" ")
            if "sid=" in req:
                sid = req.split("sid=", 1)[1].split("&", 1)[0].split(" ", 1)[0]
                if "transport=websocket" in req:
                    upgraded_on[sid] = upstream
    assert_every_post_once(summary, dropped=False)
    assert [c["connects"] for c in summary["clients"]] == [1] * clients, summary  # no reconnection
    assert [c["transport"] for c in summary["clients"]] == ["websocket"] * clients, summary
    # Every client's upgrade went through the balancer, which sends each request to the next process:
    # the WebSocket reached another process than the session's for most of them.
    assert len(upgraded_on) >= clients + 3, upgraded_on


def test_processes_share_one_port_and_a_rolling_restart_loses_nothing(tmp_path, redis_server, request):
    """`--processes=2` on one port; then a rolling restart under traffic: each of the two processes
    behind nginx in turn gets SIGTERM, drains (its clients come back through nginx to the other) and
    starts again, while a third process posts; no post is lost, none comes twice."""
    name = request.node.name
    with Board(tmp_path / "p.db", name=f"{name}-processes",
               args=[f"--redis={redis_server.url}", "--redis_prefix=procs", "--processes=2",
                     "--drain_seconds=0.5"]) as shared:
        async def two_on_one_port():
            one, one_got = await client(shared.url, "message", transport="polling")
            two, _ = await client(shared.url, transport="polling")
            try:
                ack = await two.call("post", {"name": "Two", "text": "hello"}, timeout=5)
                assert (await next_of(one_got["message"]))["id"] == ack["id"]
            finally:
                await one.disconnect()
                await two.disconnect()
        asyncio.run(two_on_one_port())

    def drained(name):
        return Board(tmp_path / f"{name}.db", name=f"{request.node.name}-{name}", ping_interval=1000,
                     ping_timeout=1000, args=[f"--redis={redis_server.url}", "--redis_prefix=test-board",
                                              "--post_limit=0", "--drain_seconds=1"])

    def restart(board):
        board.proc.send_signal(signal.SIGTERM)  # drains: its clients reconnect, to the other process
        assert board.proc.wait(10) == 0
        board.start()                           # the new version, on the same port

    with drained("a") as a, drained("b") as b, cluster_board(tmp_path, redis_server, f"{name}-poster") as poster, \
            Nginx([a.port, b.port], tmp_path / "nginx", name=name, upgrade=True) as nginx:
        def roll(n):
            if n in (10, 25):
                return asyncio.to_thread(restart, a if n == 10 else b)
        summary = watch_posts(nginx.url, "default", 6, 40, poster.url, on_post=roll, pace=0.05)
    assert_every_post_once(summary)


@pytest.mark.browser
def test_pages_of_one_board_on_two_processes_over_both_transports(tmp_path, redis_server, request, pages):
    """Our client in Chromium, a page on WebSocket and an old browser on long-polling, behind nginx round
    robin over two processes: each sees the other's posts and the cluster's count."""
    name = request.node.name
    with cluster_board(tmp_path, redis_server, f"{name}-a") as a, \
            cluster_board(tmp_path, redis_server, f"{name}-b") as b, \
            Nginx([a.port, b.port], tmp_path / "nginx", name=name, upgrade=True) as nginx:
        modern = pages.open(nginx.url, "websocket page")
        old = pages.open(nginx.url, "polling page", websocket=False)
        expect(modern.locator("#transport")).to_have_text("websocket")
        expect(old.locator("#transport")).to_have_text("polling")
        for page in (modern, old):
            expect(page.locator("#count")).to_have_text("2", timeout=CONNECT_MS)
        post(modern, "Ann", "over WebSocket")
        expect_post(old, "Ann", "over WebSocket", CONNECT_MS)
        post(old, "Bob", "over long-polling, whichever process each request reaches")
        expect_post(modern, "Bob", "over long-polling, whichever process each request reaches", CONNECT_MS)
        screenshot(old, "cluster-polling-page")


@pytest.mark.browser
def test_a_page_on_polling_climbs_back_to_websocket_across_processes(tmp_path, redis_server, request, pages):
    """Our client in Chromium behind nginx round robin over two processes, first stripping Upgrade: the
    page runs on polling; once nginx lets WebSocket through, its probe reaches either process and the
    session moves there if needed: same session, no reconnection, every post once, in order."""
    from test_client_upgrade import FAST_PROBES, FLOOD, IDS, WATCH, wait_for_every_post
    from e2e_support import io_options_script, nginx_reload, wait_until, websocket_handshake_status

    name = request.node.name
    with cluster_board(tmp_path, redis_server, f"{name}-a") as a, \
            cluster_board(tmp_path, redis_server, f"{name}-b") as b, \
            Nginx([a.port, b.port], tmp_path / "nginx", name=name, upgrade=False) as nginx:
        direct = pages.open(a.url, "direct")
        proxied = pages.open(nginx.url, "proxied", init=io_options_script(FAST_PROBES))
        expect(proxied.locator("#transport")).to_have_text("polling", timeout=8000)
        proxied.evaluate(WATCH)
        before = proxied.evaluate(IDS)
        direct.evaluate(FLOOD, ["Direct", "d", 20])
        proxied.evaluate(FLOOD, ["Proxied", "p", 20])
        nginx_reload(nginx, upgrade=True)
        wait_until(lambda: websocket_handshake_status(nginx.port) == 101, 10, "nginx to forward Upgrade")
        expect(proxied.locator("#transport")).to_have_text("websocket", timeout=8000)
        wait_for_every_post({"proxied": proxied, "direct": direct}, ("d", "p"), 20)
        watch = proxied.evaluate("() => window.watch")
        after = proxied.evaluate(IDS)
        assert watch == {"disconnects": [], "connects": 0, "transports": ["websocket"]}, watch
        assert after == before
        expect(direct.locator("#count")).to_have_text("2")
        screenshot(proxied, "cluster-climb-back")
