#!/usr/bin/env python3
"""The Message Board: who is online, news as people come and go, live posts.

The app is a handful of event handlers on the hub; the hub carries them to
every browser, over WebSocket or long-polling alike. Posts live in SQLite.

    python board.py --port=8888 --db=board.db
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import time
from typing import Any

import tornado.web
from tornado.log import access_log
from tornado.options import define, options, parse_command_line

from handlers import Hub, Socket

log = logging.getLogger("board")

HERE = os.path.dirname(os.path.abspath(__file__))
HISTORY = 100
MAX_RESYNC = 1000   # posts sent to a page that comes back without its state (what it keeps)
MAX_NAME, MAX_TEXT = 40, 2000

define("port", default=8888, help="port to listen on", type=int)
define("address", default="127.0.0.1", help="address to listen on")
define("db", default="board.db", help="SQLite file for the posts (:memory: to keep none)")
define("ping_interval", default=25000, help="heartbeat interval, ms", type=int)
define("ping_timeout", default=20000, help="heartbeat timeout, ms", type=int)
define("recover_within", default=120_000, type=int,
       help="ms a dropped client may come back with what it missed (0: off)")
define("allowed_origins", default="", help="comma-separated origins allowed besides the page's own ('*' for any)")


class Posts:
    """The board's posts, kept in SQLite so they survive a restart."""

    def __init__(self, path: str = ":memory:"):
        self.db = sqlite3.connect(path)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS posts ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL)"
        )
        self.db.commit()

    def add(self, name: str, text: str) -> dict:
        ts = int(time.time() * 1000)
        with self.db:
            cursor = self.db.execute("INSERT INTO posts (name, text, ts) VALUES (?, ?, ?)", (name, text, ts))
        return {"id": cursor.lastrowid, "name": name, "text": text, "ts": ts}

    def after(self, post_id: int, limit: int = MAX_RESYNC) -> list[dict]:
        """The posts after `post_id`, oldest first (the newest `limit` of them)."""
        rows = self.db.execute(
            "SELECT id, name, text, ts FROM (SELECT * FROM posts WHERE id > ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (post_id, limit),
        ).fetchall()
        return [{"id": i, "name": n, "text": t, "ts": ts} for i, n, t, ts in rows]

    def recent(self, limit: int = HISTORY) -> list[dict]:
        rows = self.db.execute(
            "SELECT id, name, text, ts FROM (SELECT * FROM posts ORDER BY id DESC LIMIT ?) ORDER BY id", (limit,)
        ).fetchall()
        return [{"id": i, "name": n, "text": t, "ts": ts} for i, n, t, ts in rows]

    def close(self) -> None:
        self.db.close()


def check_post(data: Any) -> tuple[str, str] | str:
    """(name, text) trimmed, or the reason the post is refused."""
    if not isinstance(data, dict):
        return "A post needs a name and a text"
    name, text = data.get("name"), data.get("text")
    if not isinstance(name, str) or not isinstance(text, str):
        return "A post needs a name and a text"
    name, text = name.strip(), text.strip()
    if not 1 <= len(name) <= MAX_NAME:
        return f"The name must be 1 to {MAX_NAME} characters"
    if not 1 <= len(text) <= MAX_TEXT:
        return f"The text must be 1 to {MAX_TEXT} characters"
    return name, text


class Board:
    """The board's events, wired onto a hub."""

    def __init__(self, hub: Hub, posts: Posts):
        self.hub = hub
        self.posts = posts
        hub.on("connection", self.connected)
        hub.on("disconnect", self.gone)
        hub.on("private", self.private)
        hub.on("post", self.post)
        hub.on("sync", self.sync)

    def connected(self, socket: Socket) -> None:
        count = self.hub.count
        self.hub.emit("news", {"msg": "One more person is online", "count": count})
        if socket.recovered:
            return  # back after a drop: what it missed is replayed, welcome and posts included
        after = socket.auth.get("after") if isinstance(socket.auth, dict) else None
        if type(after) is int and after >= 0:
            socket.emit("history", self.posts.after(after))  # a page that has posts up to `after`
            return
        socket.emit("private", {"msg": f"Welcome, you are person number {count} here"})
        socket.emit("history", self.posts.recent())

    def gone(self, socket: Socket, reason: str) -> None:
        self.hub.emit("news", {"msg": "Someone went home", "count": self.hub.count})

    def private(self, socket: Socket, data: Any = None) -> None:
        msg = data.get("msg") if isinstance(data, dict) else None
        log.info("private from %s: %r", socket.id, str(msg)[:200])

    def sync(self, socket: Socket, data: Any = None) -> dict:
        """For a tab that joins a connection its browser already has (shared): the posts after
        `after` (or the newest) and the online count, which went to the tabs open at the connection."""
        after = data.get("after") if isinstance(data, dict) else None
        posts = self.posts.after(after) if type(after) is int and after >= 0 else self.posts.recent()
        return {"posts": posts, "count": self.hub.count}

    def post(self, socket: Socket, data: Any = None) -> dict:
        checked = check_post(data)
        if isinstance(checked, str):
            return {"error": checked}
        message = self.posts.add(*checked)
        self.hub.emit("message", message)
        return {"ok": True, "id": message["id"]}


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Tornado's access log, minus the routine long-poll requests (one per message)."""
    status = handler.get_status()
    if status < 400 and handler.request.path.startswith("/socket.io/"):
        level = logging.DEBUG
    else:
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    access_log.log(level, "%d %s %s (%s) %.2fms", status, request.method, request.uri,
                   request.remote_ip, 1000.0 * request.request_time())


class IndexHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.render("index.html")


def make_app(hub: Hub, posts: Posts, **settings: Any) -> tornado.web.Application:
    """The board's Tornado application around `hub`."""
    Board(hub, posts)
    return tornado.web.Application(
        hub.routes() + [(r"/", IndexHandler)],
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        log_function=log_request,
        **settings,
    )


async def main() -> None:
    parse_command_line()
    origins: Any = None
    if options.allowed_origins:
        origins = "*" if options.allowed_origins == "*" else options.allowed_origins.split(",")
    hub = Hub(ping_interval=options.ping_interval, ping_timeout=options.ping_timeout,
              allowed_origins=origins, recover_within=options.recover_within)
    posts = Posts(options.db)
    app = make_app(hub, posts)
    server = app.listen(options.port, address=options.address, xheaders=False)
    log.info("Board listening on http://%s:%d", options.address, options.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    server.stop()
    hub.close()
    await asyncio.sleep(0)  # let the close packets leave
    posts.close()


if __name__ == "__main__":
    asyncio.run(main())
