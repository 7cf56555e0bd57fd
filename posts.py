"""The board's posts: SQLite in one process, PostgreSQL for a cluster (Redis as a capped fallback).

Every store keeps the same small async interface, so the board does not care
which it has:

- `save(name, text, key=None)` returns `(post, created)`. A post may carry a
  key made by the page (unique per post): a key is stored once (a unique
  constraint), and saving it again returns the post first stored with it and
  `created` False. So a page that resends a post whose ack it lost (the
  connection dropped in between) gets the same answer, and the board
  broadcasts it once.
- `find(key)`: the post stored with that key, or None.
- `history(after=None)`: the newest `HISTORY` posts, or at most `MAX_RESYNC`
  after a page's last id, oldest first.
- `not_ready()`: None while the store answers, else why not (for `/readyz`).

SQLite writes run on a thread of their own and its recent posts are served
from memory. PostgreSQL (`--database=postgresql://…`, asyncpg and a pool)
keeps every post for any number of processes and machines; writes never block
the loop, and a database that is down fails the post (its ack says so) while
the process serves everything else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("board")

HISTORY = 100       # posts a newcomer gets
MAX_RESYNC = 1000   # posts sent to a page that comes back without its state (what it keeps)
MAX_KEY = 64        # characters of a post's key


def _now_ms() -> int:
    return int(time.time() * 1000)


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
        columns = [row[1] for row in self.db.execute("PRAGMA table_info(posts)")]
        if "key" not in columns:  # a board.db from before keys: NULL keys are never equal
            self.db.execute("ALTER TABLE posts ADD COLUMN key TEXT")
        self.db.execute("CREATE UNIQUE INDEX IF NOT EXISTS posts_key ON posts (key)")
        self.db.commit()
        rows = self.db.execute(
            "SELECT id, name, text, ts FROM (SELECT * FROM posts ORDER BY id DESC LIMIT ?) ORDER BY id", (history,)
        ).fetchall()
        self._recent: deque[dict] = deque(
            ({"id": i, "name": n, "text": t, "ts": ts} for i, n, t, ts in rows), maxlen=history)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="board-db")

    def _insert(self, name: str, text: str, key: str | None) -> tuple[dict, bool]:
        ts = _now_ms()
        try:
            with self.db:
                cursor = self.db.execute("INSERT INTO posts (name, text, ts, key) VALUES (?, ?, ?, ?)",
                                         (name, text, ts, key))
        except sqlite3.IntegrityError:  # this key is stored already: its first answer
            i, n, t, ts = self.db.execute("SELECT id, name, text, ts FROM posts WHERE key = ?", (key,)).fetchone()
            return {"id": i, "name": n, "text": t, "ts": ts}, False
        return {"id": cursor.lastrowid, "name": name, "text": text, "ts": ts}, True

    def _find(self, key: str) -> dict | None:
        row = self.db.execute("SELECT id, name, text, ts FROM posts WHERE key = ?", (key,)).fetchone()
        return None if row is None else {"id": row[0], "name": row[1], "text": row[2], "ts": row[3]}

    async def find(self, key: str) -> dict | None:
        """The post stored with `key`, if any (on the writer thread: after every save before it)."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._find, key)

    def add(self, name: str, text: str) -> dict:
        """Store a post on the calling thread (scripts, tests); the board uses `save`."""
        message, _ = self._writer.submit(self._insert, name, text, None).result()
        self._recent.append(message)
        return message

    async def save(self, name: str, text: str, key: str | None = None) -> tuple[dict, bool]:
        """Store a post on the writer thread; the loop serves everyone else meanwhile."""
        message, created = await asyncio.get_running_loop().run_in_executor(
            self._writer, self._insert, name, text, key)
        if created:
            self._recent.append(message)  # the single writer finishes in order: so do these
        return message, created

    def after(self, post_id: int) -> list[dict]:
        """The posts after `post_id`, oldest first, from memory (the newest ones a page can hold)."""
        return [post for post in self._recent if post["id"] > post_id]

    async def history(self, after: int | None = None) -> list[dict]:
        """The newest posts, or those after `after` (a page's last one), oldest first."""
        return self.recent() if after is None else self.after(after)

    def recent(self, limit: int = HISTORY) -> list[dict]:
        """The last `limit` posts, oldest first, from memory."""
        return list(self._recent)[-limit:] if limit < len(self._recent) else list(self._recent)

    def count(self) -> int:
        """Every post stored (scripts, tests)."""
        return self._writer.submit(lambda: self.db.execute("SELECT count(*) FROM posts").fetchone()[0]).result()

    def not_ready(self) -> str | None:
        return None

    async def start(self) -> None:
        """Nothing to connect to."""

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self.db.close()


PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    text TEXT NOT NULL,
    ts BIGINT NOT NULL,
    key TEXT UNIQUE
)
"""


class PgPosts:
    """The posts of a board on any number of processes and machines, in PostgreSQL (asyncpg, a pool).

    Every post is kept (no cap); reads are bounded. `start()` connects and
    makes the table (a clear error if the database cannot be reached); a
    heartbeat keeps `not_ready()` true to the database's state for `/readyz`.
    """

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 5.0, check_every: float = 2.0):
        self.url = url
        self.pool_size = pool_size
        self.timeout = timeout
        self.check_every = check_every
        self.pool: Any = None
        self.down: str | None = None
        self._checker: asyncio.Task | None = None

    async def start(self) -> None:
        import asyncpg  # only a board with --database needs it

        try:
            self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.pool_size,
                                                  timeout=self.timeout, command_timeout=self.timeout)
            async with self.pool.acquire() as conn:
                await conn.execute(PG_SCHEMA)
        except Exception as exc:
            raise RuntimeError(f"cannot use the database at {_safe(self.url)}: {exc}") from None
        self._checker = asyncio.ensure_future(self._check())

    async def _check(self) -> None:
        while True:
            await asyncio.sleep(self.check_every)
            try:
                await self.pool.fetchval("SELECT 1", timeout=self.check_every)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.down is None:
                    log.error("the database does not answer: %s", exc)
                self.down = "database unreachable"
            else:
                if self.down is not None:
                    log.warning("the database answers again")
                self.down = None

    def not_ready(self) -> str | None:
        return self.down

    async def save(self, name: str, text: str, key: str | None = None) -> tuple[dict, bool]:
        row = await self.pool.fetchrow(
            "INSERT INTO posts (name, text, ts, key) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING"
            " RETURNING id, name, text, ts", name, text, _now_ms(), key, timeout=self.timeout)
        if row is not None:
            return dict(row), True
        row = await self.pool.fetchrow("SELECT id, name, text, ts FROM posts WHERE key = $1", key,
                                       timeout=self.timeout)
        return dict(row), False

    async def find(self, key: str) -> dict | None:
        row = await self.pool.fetchrow("SELECT id, name, text, ts FROM posts WHERE key = $1", key,
                                       timeout=self.timeout)
        return None if row is None else dict(row)

    async def history(self, after: int | None = None) -> list[dict]:
        if after is None:
            rows = await self.pool.fetch(
                "SELECT * FROM (SELECT id, name, text, ts FROM posts ORDER BY id DESC LIMIT $1) p ORDER BY id",
                HISTORY, timeout=self.timeout)
        else:
            rows = await self.pool.fetch(
                "SELECT * FROM (SELECT id, name, text, ts FROM posts WHERE id > $1 ORDER BY id DESC LIMIT $2) p"
                " ORDER BY id", after, MAX_RESYNC, timeout=self.timeout)
        return [dict(row) for row in rows]

    async def aclose(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
        if self.pool is not None:
            await self.pool.close()

    def close(self) -> None:
        """The pool closes in `aclose` (board.py awaits it)."""


def _safe(url: str) -> str:
    """The URL without its password, for a log line."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.partition(':')[0]}@{tail}"


# A key is stored once: its post's JSON, or the one it first had. Without a key, KEYS[3] is KEYS[2].
REDIS_SAVE = """
if KEYS[3] ~= KEYS[2] then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {0, existing} end
end
local id = redis.call('INCR', KEYS[2])
local post = cjson.encode({id = id, name = ARGV[1], text = ARGV[2], ts = tonumber(ARGV[3])})
redis.call('ZADD', KEYS[1], id, post)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[4]) - 1)
if KEYS[3] ~= KEYS[2] then redis.call('SET', KEYS[3], post, 'PX', ARGV[5]) end
return {1, post}
"""


class RedisPosts:
    """The posts of a cluster without a database, in Redis under `prefix`: the newest `keep` kept, and
    only as long as Redis keeps them (`--database` keeps every post for good)."""

    def __init__(self, redis: Any, prefix: str = "board", keep: int = 10_000, key_ttl_ms: int = 24 * 3600_000):
        self.redis = redis
        self.key = f"{prefix}:posts"
        self.ids = f"{prefix}:posts:id"
        self.keys = f"{prefix}:posts:key:"
        self.keep = keep
        self.key_ttl_ms = key_ttl_ms
        self._save = redis.register_script(REDIS_SAVE)

    async def save(self, name: str, text: str, key: str | None = None) -> tuple[dict, bool]:
        created, raw = await self._save(
            keys=[self.key, self.ids, self.keys + key if key is not None else self.ids],
            args=[name, text, _now_ms(), self.keep, self.key_ttl_ms])
        message = json.loads(raw)
        return {"id": message["id"], "name": message["name"], "text": message["text"], "ts": message["ts"]}, \
            bool(created)

    async def find(self, key: str) -> dict | None:
        raw = await self.redis.get(self.keys + key)
        if raw is None:
            return None
        message = json.loads(raw)
        return {"id": message["id"], "name": message["name"], "text": message["text"], "ts": message["ts"]}

    async def history(self, after: int | None = None) -> list[dict]:
        if after is None:
            raw = await self.redis.zrange(self.key, -HISTORY, -1)
        else:
            raw = await self.redis.zrangebyscore(self.key, f"({after}", "+inf")
            raw = raw[-MAX_RESYNC:]
        return [json.loads(r) for r in raw]

    def not_ready(self) -> str | None:
        return None  # the adapter's check says when Redis is away

    async def start(self) -> None:
        """The Redis connection is the adapter's, already open."""

    def close(self) -> None:
        """The Redis connection belongs to the adapter, which closes it."""
