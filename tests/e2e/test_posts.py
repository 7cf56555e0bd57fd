"""The board's posts in every store: a key is stored once, history reads are bounded, and with
PostgreSQL (a real server, started here) every post survives the processes and Redis."""

import asyncio
import os
import sqlite3
import sys

import pytest
import socketio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import Board, PostgresServer, RedisServer  # noqa: E402

from posts import HISTORY, MAX_RESYNC, PgPosts, Posts, RedisPosts  # noqa: E402

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def postgres():
    with PostgresServer() as server:
        yield server


async def _fresh_pg(postgres) -> PgPosts:
    store = PgPosts(postgres.url, check_every=0.2)
    await store.start()
    await store.pool.execute("TRUNCATE posts RESTART IDENTITY")
    return store


async def _same_key_twice_and_concurrently(store) -> None:
    first, created = await store.save("Ann", "hello", "k-1")
    assert created and first["text"] == "hello"
    again, created = await store.save("Ann", "hello (resent)", "k-1")
    assert not created and again == first  # the first answer, not the resent text
    results = await asyncio.gather(*(store.save("Bob", f"race {n}", "k-2") for n in range(8)))
    assert sum(created for _, created in results) == 1
    assert len({post["id"] for post, _ in results}) == 1
    plain = [await store.save("Cy", "no key") for _ in range(2)]  # no key: no deduplication
    assert plain[0][0]["id"] != plain[1][0]["id"]
    assert [p["text"] for p in await store.history()] == ["hello", results[0][0]["text"], "no key", "no key"]
    assert await store.find("k-1") == first and await store.find("k-unknown") is None


def test_sqlite_stores_a_key_once(tmp_path):
    store = Posts(str(tmp_path / "board.db"))
    try:
        asyncio.run(_same_key_twice_and_concurrently(store))
        assert store.count() == 4
    finally:
        store.close()


def test_sqlite_takes_a_board_db_from_before_keys(tmp_path):
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, text TEXT NOT NULL,"
               " ts INTEGER NOT NULL)")
    db.execute("INSERT INTO posts (name, text, ts) VALUES ('Old', 'from before', 1)")
    db.commit()
    db.close()
    store = Posts(path)
    try:
        assert [p["text"] for p in store.recent()] == ["from before"]
        post, created = asyncio.run(store.save("New", "with a key", "k"))
        assert created and post["id"] == 2
        assert asyncio.run(store.save("New", "with a key", "k")) == (post, False)
    finally:
        store.close()


def test_postgresql_stores_a_key_once_and_reads_are_bounded(postgres):
    async def scenario():
        store = await _fresh_pg(postgres)
        try:
            await _same_key_twice_and_concurrently(store)
            await store.pool.executemany("INSERT INTO posts (name, text, ts) VALUES ($1, $2, 0)",
                                         [("n", str(i)) for i in range(1500)])
            newest = await store.history()
            assert len(newest) == HISTORY and newest[-1]["text"] == "1499"
            after = await store.history(after=3)
            assert len(after) == MAX_RESYNC and after[-1]["text"] == "1499"
            assert [p["id"] for p in after] == sorted(p["id"] for p in after)
            assert await store.pool.fetchval("SELECT count(*) FROM posts") == 1504  # nothing capped
        finally:
            await store.aclose()
    asyncio.run(scenario())


def test_a_database_that_goes_away_fails_the_post_and_readiness_then_comes_back(postgres):
    async def scenario():
        store = await _fresh_pg(postgres)
        try:
            await store.save("Ann", "before", "b")
            postgres.stop()
            with pytest.raises(Exception):
                await store.save("Ann", "while down", "w")
            deadline = asyncio.get_running_loop().time() + 10
            while store.not_ready() is None:
                assert asyncio.get_running_loop().time() < deadline, "readiness never said the database is down"
                await asyncio.sleep(0.05)
            assert store.not_ready() == "database unreachable"
            postgres.start()
            while store.not_ready() is not None:
                assert asyncio.get_running_loop().time() < deadline + 10, "readiness never came back"
                await asyncio.sleep(0.05)
            post, created = await store.save("Ann", "after", "a")
            assert created and [p["text"] for p in await store.history()] == ["before", "after"]
        finally:
            if not postgres.running:
                postgres.start()
            await store.aclose()
    asyncio.run(scenario())


def test_redis_stores_a_key_once(tmp_path):
    import redis.asyncio as redis

    async def scenario(url):
        client = redis.Redis.from_url(url)
        try:
            await _same_key_twice_and_concurrently(RedisPosts(client, "t"))
        finally:
            await client.aclose()
    with RedisServer(tmp_path / "redis") as server:
        asyncio.run(scenario(server.url))


def test_a_cluster_on_postgresql_keeps_every_post_through_a_redis_restart_and_its_processes(tmp_path, postgres):
    """Two processes on one Redis and one PostgreSQL: a post made through one is in the other's history,
    once, even after Redis (which saves nothing) and both processes restart; a resent key is one post."""
    async def scenario():
        store = await _fresh_pg(postgres)
        await store.aclose()
        with RedisServer(tmp_path / "redis") as redis_server:
            args = [f"--redis={redis_server.url}", f"--database={postgres.url}", "--redis_prefix=pg"]
            a = Board(tmp_path / "a.db", name="pg-a", args=args)
            b = Board(tmp_path / "b.db", name="pg-b", args=args)
            with a, b:
                sio = socketio.AsyncClient(reconnection=False)
                await sio.connect(a.url, transports=["websocket"], wait_timeout=5)
                first = await sio.call("post", {"name": "Ann", "text": "kept", "key": "page-1-post-1"}, timeout=5)
                again = await sio.call("post", {"name": "Ann", "text": "kept", "key": "page-1-post-1"}, timeout=5)
                assert first == again == {"ok": True, "id": 1}
                await sio.disconnect()
                redis_server.restart()
            with Board(tmp_path / "b.db", name="pg-b2", args=args) as b2:
                seen = asyncio.Queue()
                sio = socketio.AsyncClient(reconnection=False)
                sio.on("history", seen.put_nowait)
                await sio.connect(b2.url, transports=["polling"], wait_timeout=5)
                history = await asyncio.wait_for(seen.get(), 5)
                assert [(p["id"], p["text"]) for p in history] == [(1, "kept")]
                await sio.disconnect()
    asyncio.run(scenario())


def test_a_resent_post_past_the_post_limit_gets_its_first_answer(tmp_path):
    """The official client's retries (a new ack id each) run the handler again: past the limit, a
    post stored already is answered as stored, a new one is refused."""
    async def scenario(url):
        sio = socketio.AsyncClient(reconnection=False)
        await sio.connect(url, transports=["websocket"], wait_timeout=5)
        post = {"name": "Ann", "text": "once", "key": "page-1-post-1"}
        first = await sio.call("post", post, timeout=5)
        again = await sio.call("post", post, timeout=5)
        new = await sio.call("post", {**post, "key": "page-1-post-2"}, timeout=5)
        await sio.disconnect()
        return first, again, new

    with Board(tmp_path / "board.db", name="limit-resent", args=["--post_limit=1/60"]) as board:
        first, again, new = asyncio.run(scenario(board.url))
    assert first == again == {"ok": True, "id": 1}
    assert set(new) == {"error"} and new["error"].startswith("Too many posts")
