"""The board's posts: SQLite in one process, Redis for a cluster.

Both keep the same small interface, `history(after)` and `save(name, text)`,
both async, so the board does not care which it has. SQLite writes run on a
thread of their own; its recent posts are served from memory. In a cluster
every process reads and writes the posts in Redis, so a newcomer on any
process sees the posts made through the others, and a process restart loses
none of them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

HISTORY = 100       # posts a newcomer gets
MAX_RESYNC = 1000   # posts sent to a page that comes back without its state (what it keeps)


class Posts:
    """The board's posts, kept in SQLite so they survive a restart.

    Writes run on one thread of their own (`save`), so a slow disk never
    stalls the other clients; the recent history is kept in memory, so a
    reconnect storm does not query the database once per newcomer.
    """

    def __init__(self, path: str = ":memory:", history: int = MAX_RESYNC):
        self.db = sqlite3.connect(path, check_same_thread=False)  # used by one thread at a time
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS posts ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL)"
        )
        self.db.commit()
        rows = self.db.execute(
            "SELECT id, name, text, ts FROM (SELECT * FROM posts ORDER BY id DESC LIMIT ?) ORDER BY id", (history,)
        ).fetchall()
        self._recent: deque[dict] = deque(
            ({"id": i, "name": n, "text": t, "ts": ts} for i, n, t, ts in rows), maxlen=history)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="board-db")

    def _insert(self, name: str, text: str) -> dict:
        ts = int(time.time() * 1000)
        with self.db:
            cursor = self.db.execute("INSERT INTO posts (name, text, ts) VALUES (?, ?, ?)", (name, text, ts))
        return {"id": cursor.lastrowid, "name": name, "text": text, "ts": ts}

    def add(self, name: str, text: str) -> dict:
        """Store a post on the calling thread (scripts, tests); the board uses `save`."""
        message = self._writer.submit(self._insert, name, text).result()
        self._recent.append(message)
        return message

    async def save(self, name: str, text: str) -> dict:
        """Store a post on the writer thread; the loop serves everyone else meanwhile."""
        message = await asyncio.get_running_loop().run_in_executor(self._writer, self._insert, name, text)
        self._recent.append(message)  # the single writer finishes in order: so do these
        return message

    def after(self, post_id: int) -> list[dict]:
        """The posts after `post_id`, oldest first, from memory (the newest ones a page can hold)."""
        return [post for post in self._recent if post["id"] > post_id]

    async def history(self, after: int | None = None) -> list[dict]:
        """The newest posts, or those after `after` (a page's last one), oldest first."""
        return self.recent() if after is None else self.after(after)

    def recent(self, limit: int = HISTORY) -> list[dict]:
        """The last `limit` posts, oldest first, from memory."""
        return list(self._recent)[-limit:] if limit < len(self._recent) else list(self._recent)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.db.close()


class RedisPosts:
    """The posts of a cluster, in Redis under `prefix`: ids from one counter, the newest `keep` kept."""

    def __init__(self, redis, prefix: str = "board", keep: int = 10_000):
        self.redis = redis
        self.key = f"{prefix}:posts"
        self.ids = f"{prefix}:posts:id"
        self.keep = keep

    async def save(self, name: str, text: str) -> dict:
        post_id = await self.redis.incr(self.ids)
        message = {"id": post_id, "name": name, "text": text, "ts": int(time.time() * 1000)}
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.key, {json.dumps(message): post_id})
        pipe.zremrangebyrank(self.key, 0, -self.keep - 1)
        await pipe.execute()
        return message

    async def history(self, after: int | None = None) -> list[dict]:
        if after is None:
            raw = await self.redis.zrange(self.key, -HISTORY, -1)
        else:
            raw = await self.redis.zrangebyscore(self.key, f"({after}", "+inf")
            raw = raw[-MAX_RESYNC:]
        return [json.loads(r) for r in raw]

    def close(self) -> None:
        """The Redis connection belongs to the adapter, which closes it."""
