"""The board's events with the official client, on WebSocket and on polling."""

import asyncio
import logging

import pytest

from board import MAX_TEXT, Posts, check_post

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
