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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web
from tornado.httputil import HTTPServerRequest
from tornado.log import access_log
from tornado.options import define, options, parse_command_line

from handlers import Hub, Socket
from handlers.drain import drain
from handlers.logs import use_json_logs

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
define("drain_seconds", default=10.0, help="on SIGTERM/SIGINT, spread the clients' reconnections over this many s",
       type=float)
define("post_limit", default="10/10", help="posts per socket per seconds, as N/S (0 for no limit)")
define("admin", default="", help="USER:BCRYPT_HASH turns on the Socket.IO Admin UI's /admin namespace")
define("admin_origin", default="https://admin.socket.io", help="origin of the Admin UI (allowed cross-origin)")
define("admin_readonly", default=False, help="the Admin UI may look but not join, leave or disconnect", type=bool)
define("trusted_proxies", default="", help="comma-separated proxy addresses whose X-Forwarded-For is believed")
define("log_format", default="text", help="text or json (one JSON object per line)")


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

    def recent(self, limit: int = HISTORY) -> list[dict]:
        """The last `limit` posts, oldest first, from memory."""
        return list(self._recent)[-limit:] if limit < len(self._recent) else list(self._recent)

    def close(self) -> None:
        self._writer.shutdown(wait=True)
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


def parse_rate(text: str) -> tuple[int, float]:
    """'10/10' -> (10, 10.0): at most N per S seconds; '0' for no limit."""
    count, _, seconds = text.partition("/")
    return int(count), float(seconds or 1)


class Board:
    """The board's events, wired onto a hub.

    `post_limit` is (posts, seconds) per socket; past it the post is refused
    with an error ack and nothing is stored or broadcast. 0 posts: no limit.
    """

    def __init__(self, hub: Hub, posts: Posts, post_limit: tuple[int, float] = (10, 10.0)):
        self.hub = hub
        self.posts = posts
        self.post_limit = post_limit
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

    async def post(self, socket: Socket, data: Any = None) -> dict:
        checked = check_post(data)
        if isinstance(checked, str):
            return {"error": checked}
        if self.over_limit(socket):
            return {"error": f"Too many posts: at most {self.post_limit[0]} every {self.post_limit[1]:g} s"}
        message = await self.posts.save(*checked)
        self.hub.emit("message", message)
        return {"ok": True, "id": message["id"]}

    def over_limit(self, socket: Socket) -> bool:
        """True past `post_limit` posts in its window (the refused ones do not count)."""
        most, window = self.post_limit
        if most <= 0:
            return False
        now = time.monotonic()
        times = socket.data.get("posts")
        if times is None:
            times = socket.data["posts"] = deque(maxlen=most)
        if len(times) == most and now - times[0] < window:
            self.hub.ops.throttled.fired("posts", "%s posts too fast", socket)
            return True
        times.append(now)
        return False


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


# The page renders other people's text: scripts and connections from its own origin only, no framing.
CSP = ("default-src 'self'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class PageHandler(tornado.web.RequestHandler):
    """A page of the board, sent with the security headers."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Cache-Control", "no-cache")


class StaticFiles(tornado.web.StaticFileHandler):
    """Static files: versioned URLs (`static_url`) are cached for a year by Tornado; no sniffing."""

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")


class GzipButNotPolls(tornado.web.GZipContentEncoding):
    """gzip for text responses, except the long-poll answers.

    A poll answer carries packets encoded once for every receiver; gzipping it
    would redo work per client on the loop for a few hundred bytes saved
    (measured in the README), so those go out as they are.
    """

    def __init__(self, request: HTTPServerRequest):
        super().__init__(request)
        if request.path.startswith("/socket.io/") and not request.path.endswith(".js"):
            self._gzipping = False


class IndexHandler(PageHandler):
    def get(self) -> None:
        # Our client is served by the hub (same file as static/socket.io.js): versioned the same way.
        version = StaticFiles.get_version(self.settings, "socket.io.js")
        self.render("index.html", client_url=f"/socket.io/socket.io.js?v={version}")


def make_app(hub: Hub, posts: Posts, post_limit: tuple[int, float] = (10, 10.0),
             **settings: Any) -> tornado.web.Application:
    """The board's Tornado application around `hub`: the page, the hub, /metrics, /healthz, /readyz."""
    Board(hub, posts, post_limit)
    settings = {"static_handler_class": StaticFiles, **settings}
    return tornado.web.Application(
        hub.routes() + hub.ops.routes() + [(r"/", IndexHandler)],
        transforms=settings.pop("transforms", [GzipButNotPolls]),
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        log_function=log_request,
        **settings,
    )


async def main() -> None:
    parse_command_line()
    if options.log_format == "json":
        use_json_logs()
    origins: Any = None
    if options.allowed_origins:
        origins = "*" if options.allowed_origins == "*" else options.allowed_origins.split(",")
    proxies = tuple(a.strip() for a in options.trusted_proxies.split(",") if a.strip())
    hub = Hub(ping_interval=options.ping_interval, ping_timeout=options.ping_timeout,
              allowed_origins=origins, trusted_proxies=proxies,
              recover_within=options.recover_within)
    if options.admin:
        from handlers.admin import instrument

        user, _, password_hash = options.admin.partition(":")
        instrument(hub, auth={"username": user, "password": password_hash}, readonly=options.admin_readonly,
                   origins=[options.admin_origin])
        log.info("Admin UI enabled for %s at namespace /admin", options.admin_origin)
    posts = Posts(options.db)
    app = make_app(hub, posts, parse_rate(options.post_limit))
    server = app.listen(options.port, address=options.address, xheaders=False)
    log.info("Board listening on http://%s:%d", options.address, options.port)
    signals = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    await signals.get()
    # First signal: drain (readyz 503, no new sessions, clients told to come back later);
    # a second one during the drain: stop at once.
    log.info("draining over %.1f s (signal again to stop at once)", options.drain_seconds)
    draining = asyncio.ensure_future(drain(hub, options.drain_seconds))
    again = asyncio.ensure_future(signals.get())
    await asyncio.wait([draining, again], return_when=asyncio.FIRST_COMPLETED)
    if again.done():
        log.info("second signal: stopping now")
        draining.cancel()
    again.cancel()
    log.info("stopping")
    server.stop()
    hub.close()
    await asyncio.sleep(0)  # let the close packets leave
    posts.close()


if __name__ == "__main__":
    asyncio.run(main())
