"""The board's events with the official client, on WebSocket and on polling."""

import asyncio
import logging
import time

import pytest

from board import MAX_TEXT, Posts, check_post
from conftest import until

pytestmark = pytest.mark.gen_test(timeout=30)

EVENTS = ("news", "private", "history", "message")


@pytest.mark.parametrize("first, second", [("websocket", "polling"), ("polling", "websocket")])
async def test_two_people_see_each_other_and_each_others_posts(url, clients, first, second):
    a = await clients(*EVENTS).connect(url, transports=[first])
    assert await a.next("news") == {"msg": "One more person is online", "count": 1}
    assert await a.next("private") == {"msg": "Welcome, you are person number 1 here"}
    assert await a.next("history") == []

    b = await clients(*EVENTS).connect(url, transports=[second])
    assert await b.next("news") == {"msg": "One more person is online", "count": 2}
    assert await a.next("news") == {"msg": "One more person is online", "count": 2}
    assert await b.next("private") == {"msg": "Welcome, you are person number 2 here"}

    ack = await a.client.call("post", {"name": "  Ann ", "text": " Hello <b>you</b> "}, timeout=3)
    assert ack == {"ok": True, "id": 1}
    for person in (a, b):
        message = await person.next("message")
        assert (message["id"], message["name"], message["text"]) == (1, "Ann", "Hello <b>you</b>")
        assert isinstance(message["ts"], int)

    ack = await b.client.call("post", {"name": "Bob", "text": "Hi Ann"}, timeout=3)
    assert ack == {"ok": True, "id": 2}
    assert (await a.next("message"))["text"] == "Hi Ann"

    await b.close()
    assert await a.next("news") == {"msg": "Someone went home", "count": 1}


@pytest.mark.parametrize("data, error", [
    ({"name": "", "text": "x"}, "The name must be 1 to 40 characters"),
    ({"name": "   ", "text": "x"}, "The name must be 1 to 40 characters"),
    ({"name": "n" * 41, "text": "x"}, "The name must be 1 to 40 characters"),
    ({"name": "Ann", "text": " \n "}, "The text must be 1 to 2000 characters"),
    ({"name": "Ann", "text": "t" * (MAX_TEXT + 1)}, "The text must be 1 to 2000 characters"),
    ({"name": 3, "text": "x"}, "A post needs a name and a text"),
    ("just text", "A post needs a name and a text"),
    (None, "A post needs a name and a text"),
])
async def test_invalid_post_gets_an_error_and_nothing_is_broadcast(url, clients, posts, data, error):
    a = await clients(*EVENTS).connect(url, transports=["websocket"])
    assert await a.client.call("post", data, timeout=3) == {"error": error}
    assert await a.client.call("post", {"name": "Ann", "text": "ok"}, timeout=3) == {"ok": True, "id": 1}
    assert (await a.next("message"))["text"] == "ok"  # the first message broadcast is the valid one
    assert [p["text"] for p in posts.recent()] == ["ok"]


async def test_newcomer_gets_the_last_100_posts(url, clients, posts):
    for n in range(105):
        posts.add("Ann", f"post {n}")
    a = await clients(*EVENTS).connect(url, transports=["polling"])
    history = await a.next("history")
    assert len(history) == 100
    assert history[0]["text"] == "post 5" and history[-1]["text"] == "post 104"


async def test_private_reply_is_logged(url, clients, caplog):
    caplog.set_level(logging.INFO, logger="board")
    a = await clients(*EVENTS).connect(url, transports=["websocket"])
    await a.next("private")
    await a.client.emit("private", {"msg": "Thank you for your message"})
    await a.client.call("post", {"name": "x", "text": "sync point"}, timeout=3)  # handled after the private
    assert any("Thank you for your message" in r.getMessage() for r in caplog.records)


async def test_page_and_client_are_served(url):
    from conftest import http
    page = await http(url, "/")
    assert page.code == 200 and b"/socket.io/socket.io.js" in page.body
    client = await http(url, "/socket.io/socket.io.js")
    assert client.code == 200 and b"function" in client.body


def test_posts_survive_a_restart(tmp_path):
    path = str(tmp_path / "board.db")
    posts = Posts(path)
    posts.add("Ann", "before")
    posts.close()
    again = Posts(path)
    assert [p["text"] for p in again.recent()] == ["before"]
    assert again.add("Bob", "after")["id"] == 2
    again.close()


def test_check_post_trims():
    assert check_post({"name": " a ", "text": "\tb\n"}) == ("a", "b")


# -- limits and storage ------------------------------------------------------


async def test_posts_past_the_limit_get_an_error_and_nothing_is_broadcast(url, clients, posts, hub):
    a = await clients(*EVENTS).connect(url, transports=["websocket"])
    b = await clients(*EVENTS).connect(url, transports=["polling"])
    for n in range(10):
        assert (await a.client.call("post", {"name": "Ann", "text": f"p{n}"}, timeout=3))["ok"]
    refused = await a.client.call("post", {"name": "Ann", "text": "one too many"}, timeout=3)
    assert refused == {"error": "Too many posts: at most 10 every 10 s"}
    # Another person is not limited by Ann's posts, and what b sees is the ten, then b's own.
    assert (await b.client.call("post", {"name": "Bob", "text": "mine"}, timeout=3))["ok"]
    seen = [(await b.next("message"))["text"] for _ in range(11)]
    assert seen == [f"p{n}" for n in range(10)] + ["mine"]
    assert "one too many" not in [p["text"] for p in posts.recent()]
    assert hub.stats.limits["posts"] == 1


async def test_a_slow_disk_does_not_stall_the_other_clients(url, clients, posts):
    import threading
    loop_thread = threading.get_ident()
    writers = []
    insert = posts._insert

    def slow_insert(name, text, key):
        writers.append(threading.get_ident())
        time.sleep(0.5)  # a slow disk
        return insert(name, text, key)
    posts._insert = slow_insert
    a = await clients(*EVENTS).connect(url, transports=["websocket"])
    b = await clients(*EVENTS).connect(url, transports=["websocket"])
    writing = asyncio.ensure_future(a.client.call("post", {"name": "Ann", "text": "slow"}, timeout=5))
    await until(lambda: writers)
    started = time.monotonic()
    await b.client.call("private", {"msg": "still there?"}, timeout=3)
    assert time.monotonic() - started < 0.3  # served while the write is under way
    assert (await writing)["ok"]
    assert writers[0] != loop_thread


async def test_a_reconnect_storm_does_not_query_the_database(url, clients, posts):
    posts.add("Ann", "kept")
    queries = []
    posts.db.set_trace_callback(queries.append)
    for _ in range(5):
        person = await clients(*EVENTS).connect(url, transports=["websocket"])
        assert [p["text"] for p in await person.next("history")] == ["kept"]
    assert queries == []


# -- the page as the web expects it -------------------------------------------


async def test_page_sends_security_headers_and_versioned_assets(url):
    from conftest import http
    page = await http(url, "/", headers={"Accept-Encoding": "gzip"})
    assert page.code == 200
    csp = page.headers["Content-Security-Policy"]
    for directive in ("script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    body = page.body.decode()
    for asset in ("/static/board.css?v=", "/static/board.js?v=", "/socket.io/socket.io.js?v="):
        assert asset in body
    start = body.index("/static/board.js?v=")
    asset = await http(url, body[start:body.index('"', start)])
    assert asset.code == 200
    assert "max-age=31536000" in asset.headers["Cache-Control"]  # a year: the URL changes with the file
    assert asset.headers["X-Content-Type-Options"] == "nosniff"


async def test_text_is_gzipped_but_long_poll_answers_are_not(url, hub, clients):
    import gzip
    from conftest import http, polling_session
    plain = await http(url, "/socket.io/socket.io.js", headers={"Accept-Encoding": "identity"})
    # Tornado's client decompresses; ask it not to, to see the bytes on the wire.
    from tornado.httpclient import AsyncHTTPClient
    zipped = await AsyncHTTPClient().fetch(url + "/socket.io/socket.io.js", decompress_response=False,
                                           headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.body) == plain.body
    assert len(zipped.body) < len(plain.body) / 2

    sid, _ = await polling_session(url)
    poll_url = f"{url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    await http(url, poll_url[len(url):], method="POST", body="40")
    assert (await http(url, poll_url[len(url):])).body.startswith(b"40")
    hub.emit("big", "x" * 5000)
    poll = await AsyncHTTPClient().fetch(poll_url, decompress_response=False, headers={"Accept-Encoding": "gzip"})
    assert b'"big"' in poll.body
    assert "Content-Encoding" not in poll.headers


async def test_the_post_limit_follows_the_session_not_the_socket(url, clients, posts):
    """`40`, posts, `41`, again: the limit (10 per 10 s) counts them all, in every socket of the session."""
    from conftest import raw_websocket
    ws = await raw_websocket(url)
    assert (await ws.read_message()).startswith("0{")
    answers = []
    for round_ in range(3):
        await ws.write_message("40")
        for n in range(6):
            ack_id = round_ * 10 + n
            await ws.write_message(f'42{ack_id}["post",{{"name":"m","text":"{ack_id}"}}]')
            while not (answer := await ws.read_message()).startswith(f"43{ack_id}["):
                pass
            answers.append(answer)
        await ws.write_message("41")
    assert sum('"ok":true' in a for a in answers) == 10
    assert sum("Too many posts: at most 10 every 10 s" in a for a in answers) == 8
    assert len(posts.recent()) == 10
    # Another client from the same address posts too (the per-address bound is wider).
    other = await clients("message").connect(url, transports=["polling"])
    assert (await other.client.call("post", {"name": "o", "text": "mine"}, timeout=3))["ok"] is True


async def test_news_of_churn_is_coalesced(url, clients):
    """Five arrivals and departures within a moment make a few news, not ten, ending with the right count."""
    watcher = await clients("news").connect(url, transports=["websocket"])
    assert (await watcher.next("news"))["count"] == 1
    for _ in range(5):
        other = await clients().connect(url, transports=["websocket"])
        await other.close()
    seen = []
    while not seen or seen[-1]["count"] != 1 or "went home" not in seen[-1]["msg"]:
        seen.append(await watcher.next("news"))
    assert len(seen) <= 3, seen
    assert seen[-1]["msg"].endswith("went home")


async def test_a_resent_post_with_its_key_is_stored_and_shown_once(url, clients, posts):
    """A page that lost the ack resends the post with the same key: the first answer again, one broadcast."""
    a = await clients(*EVENTS).connect(url, transports=["websocket"])
    b = await clients(*EVENTS).connect(url, transports=["polling"])
    post = {"name": "Ann", "text": "once", "key": "tab-1:1"}
    first = await a.client.call("post", post, timeout=3)
    assert first == {"ok": True, "id": 1}
    assert await b.client.call("post", post, timeout=3) == first  # even from another connection
    assert await a.client.call("post", {"name": "Ann", "text": "next", "key": "tab-1:2"}, timeout=3) == \
        {"ok": True, "id": 2}
    assert [(await b.next("message"))["text"] for _ in range(2)] == ["once", "next"]
    assert [p["text"] for p in posts.recent()] == ["once", "next"]
    for bad in (7, "", "k" * 65):
        assert await a.client.call("post", {"name": "Ann", "text": "x", "key": bad}, timeout=3) == \
            {"error": "A post's key must be a string of 1 to 64 characters"}


async def test_news_that_carried_a_stale_count_is_corrected_with_the_count_alone():
    """On a cluster, news can read the count before another process's arrival is written (two
    arrivals at once on two processes): once the writes have landed the count is sent again, alone."""
    from board import News
    from handlers import Hub

    hub = Hub(limits=False)
    sent = []
    hub.emit = lambda event, data: sent.append((event, data))  # what the clients would be sent
    reads = iter([1, 2])  # the first read misses the other process's arrival

    async def fetch_count():
        return next(reads)

    hub.fetch_count = fetch_count
    news = News(hub, every=0.05)
    news.changed(arrived=True)
    await until(lambda: len(sent) == 2, timeout=2)
    assert sent == [("news", {"msg": "One more person is online", "count": 1}), ("news", {"count": 2})]


async def test_a_count_that_was_right_is_not_sent_again():
    from board import News
    from handlers import Hub

    hub = Hub(limits=False)
    sent = []
    hub.emit = lambda event, data: sent.append((event, data))
    reads = []

    async def fetch_count():
        reads.append(1)
        return 1

    hub.fetch_count = fetch_count
    news = News(hub, every=0.05)
    news.changed(arrived=True)
    await until(lambda: len(reads) == 2, timeout=2)  # told, then read again (and decided in the same step)
    assert sent == [("news", {"msg": "One more person is online", "count": 1})]
