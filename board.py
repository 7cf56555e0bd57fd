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
import sys
import time
from collections import deque
from typing import Any

import tornado.web
from tornado.netutil import bind_sockets
from tornado.httputil import HTTPServerRequest
from tornado.log import access_log
from tornado.options import define, options, parse_command_line

from handlers import STATIC_DIR, TEMPLATE_DIR, Hub, RedisAdapter, Socket, instrument, tune_gc, use_json_logs
from posts import MAX_KEY, PgPosts, Posts, RedisPosts

log = logging.getLogger("board")

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
define("post_limit", default="10/10", help="posts per client session per seconds, as N/S (0 for no limit)")
define("post_limit_per_address", default="20/10",
       help="posts per client address (all its sessions) per seconds, as N/S (0 for no limit)")
define("news_every", default=0.5, type=float,
       help="at most one 'news' of arrivals and departures per this many seconds (churn is coalesced)")
define("admin", default="", help="USER:BCRYPT_HASH turns on the Socket.IO Admin UI's /admin namespace")
define("admin_origin", default="https://admin.socket.io", help="origin of the Admin UI (allowed cross-origin)")
define("admin_readonly", default=False, help="the Admin UI may look but not join, leave or disconnect", type=bool)
define("trusted_proxies", default="", help="comma-separated proxy addresses whose X-Forwarded-For is believed")
define("redis", default="", help="redis://HOST:PORT/DB: one process of a cluster sharing that Redis")
define("database", default="",
       help="postgresql://USER@HOST:PORT/DB: the posts in PostgreSQL, for any number of processes (else --db)")
define("loop", default="uvloop", help="event loop: uvloop (when installed: faster acks and polls) or asyncio")
define("processes", default=1, type=int, help="processes serving one port (more than 1 needs --redis)")
define("redis_prefix", default="board", help="prefix of every Redis key and stream of the board")
define("log_format", default="text", help="text or json (one JSON object per line)")


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


class PostLimit:
    """At most `most` posts per `window` seconds per key; the refused ones do not count.

    The board keys it by the client's Engine.IO session and by its address, so
    leaving the namespace and joining it again (a new socket) starts nothing
    afresh. Memory stays bounded: keys quiet for a window are forgotten.
    """

    def __init__(self, most: int, window: float):
        self.most = most
        self.window = window
        self._times: dict[str, deque] = {}
        self._swept = time.monotonic()

    def full(self, key: str, now: float) -> bool:
        if self.most <= 0:
            return False
        times = self._times.get(key)
        return times is not None and len(times) >= self.most and now - times[0] < self.window

    def count(self, key: str, now: float) -> None:
        if self.most <= 0:
            return
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque(maxlen=self.most)
        times.append(now)
        if now - self._swept > self.window:
            self._swept = now
            for old in [k for k, t in self._times.items() if now - t[-1] >= self.window]:
                del self._times[old]


class News:
    """Arrivals and departures told to everyone, coalesced: at most one `news` per `every` seconds.

    One client that joins and leaves in a loop would otherwise make the board
    write to every other client on each packet it sends; what people need is
    the count, and a word on who came and went.
    """

    def __init__(self, hub: Hub, every: float = 0.5):
        self.hub = hub
        self.every = every
        self.arrived = self.left = 0
        self.last = -1e9
        self.timer: asyncio.TimerHandle | None = None
        self.told = 0  # news told so far (a recount is for the newest only)

    def changed(self, arrived: bool) -> None:
        if arrived:
            self.arrived += 1
        else:
            self.left += 1
        if self.timer is None:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_at(max(loop.time(), self.last + self.every), self._due)

    def _due(self) -> None:
        self.timer = None
        self.last = asyncio.get_running_loop().time()
        self.told += 1
        arrived, left, self.arrived, self.left = self.arrived, self.left, 0, 0
        asyncio.ensure_future(self._tell(arrived, left, self.told))

    async def _tell(self, arrived: int, left: int, news: int) -> None:
        try:
            count = await self.hub.fetch_count()  # the cluster's, whichever process this is
        except Exception as exc:
            log.warning("news not sent: the count could not be read (%s)", exc)
            return
        if (arrived, left) == (1, 0):
            msg = "One more person is online"
        elif (arrived, left) == (0, 1):
            msg = "Someone went home"
        else:
            msg = f"{arrived} arrived, {left} went home"
        self.hub.emit("news", {"msg": msg, "count": count})
        # On a cluster, two processes' news can cross: each read the count before the other's
        # arrival was written, and the later emit carries the older count. Once the writes have
        # landed, the count is read again and sent alone (no line of news) if it is not what was told.
        asyncio.get_running_loop().call_later(
            self.every, lambda: asyncio.ensure_future(self._recount(news, count)))

    async def _recount(self, news: int, count: int) -> None:
        if self.timer is not None or self.told != news:
            return  # newer news is due or told, with the count as it is then
        try:
            now = await self.hub.fetch_count()
        except Exception:
            return
        if now != count and self.told == news:
            self.hub.emit("news", {"count": now})


class Board:
    """The board's events, wired onto a hub.

    `post_limit` is (posts, seconds) per client session, `address_limit` the
    same per client address (every session from it); past either the post is
    refused with an error ack and nothing is stored or broadcast. 0 posts: no
    limit. Arrivals and departures are told as `news`, at most once per
    `news_every` seconds.
    """

    def __init__(self, hub: Hub, posts: Posts | PgPosts | RedisPosts, post_limit: tuple[int, float] = (10, 10.0),
                 address_limit: tuple[int, float] = (20, 10.0), news_every: float = 0.5):
        self.hub = hub
        self.posts = posts
        self.post_limit = post_limit
        self.per_session = PostLimit(*post_limit)
        self.per_address = PostLimit(*address_limit)
        self.news = News(hub, news_every)
        hub.on("connection", self.connected)
        hub.on("disconnect", self.gone)
        hub.on("private", self.private)
        hub.on("post", self.post, once=True)  # a retried emit gets its first answer (handlers/once.py)
        hub.on("sync", self.sync)

    async def connected(self, socket: Socket) -> None:
        self.news.changed(arrived=True)
        if socket.recovered:
            return  # back after a drop: what it missed is replayed, welcome and posts included
        after = socket.auth.get("after") if isinstance(socket.auth, dict) else None
        if type(after) is int and after >= 0:
            socket.emit("history", await self.posts.history(after))  # a page that has posts up to `after`
            return
        count = await self.hub.fetch_count()
        socket.emit("private", {"msg": f"Welcome, you are person number {count} here"})
        socket.emit("history", await self.posts.history())

    def gone(self, socket: Socket, reason: str) -> None:
        self.news.changed(arrived=False)

    def private(self, socket: Socket, data: Any = None) -> None:
        msg = data.get("msg") if isinstance(data, dict) else None
        log.info("private from %s: %r", socket.id, str(msg)[:200])

    async def sync(self, socket: Socket, data: Any = None) -> dict:
        """For a tab that joins a connection its browser already has (shared): the posts after
        `after` (or the newest) and the online count, which went to the tabs open at the connection."""
        after = data.get("after") if isinstance(data, dict) else None
        posts = await self.posts.history(after if type(after) is int and after >= 0 else None)
        return {"posts": posts, "count": await self.hub.fetch_count()}

    async def post(self, socket: Socket, data: Any = None) -> dict:
        """Store and broadcast a post; a post with a `key` the board has seen gets the first answer
        again and is not broadcast again (a page resending a post whose ack it lost)."""
        checked = check_post(data)
        if isinstance(checked, str):
            return {"error": checked}
        key = data.get("key")
        if key is not None and not (isinstance(key, str) and 1 <= len(key) <= MAX_KEY):
            return {"error": f"A post's key must be a string of 1 to {MAX_KEY} characters"}
        refused = self.over_limit(socket)
        if refused is not None:
            # A resent post that was stored already is no new post: its first answer, not a refusal.
            stored = await self._stored(key) if key is not None else None
            return {"ok": True, "id": stored["id"]} if stored is not None else {"error": refused}
        try:
            message, created = await self.posts.save(*checked, key=key)
        except Exception as exc:
            log.error("a post could not be stored: %s", exc)
            return {"error": "The post could not be stored; try again"}
        if created:
            self.hub.emit("message", message)
        return {"ok": True, "id": message["id"]}

    async def _stored(self, key: str) -> dict | None:
        try:
            return await self.posts.find(key)
        except Exception as exc:
            log.error("a post's key could not be looked up: %s", exc)
            return None

    def over_limit(self, socket: Socket) -> str | None:
        """Why a post is refused, past the limit of its session or of its address; else None
        (and the post counts: the refused ones do not)."""
        now = time.monotonic()
        session, address = socket.eio_sid, socket.address
        for limit, key in ((self.per_session, session), (self.per_address, address)):
            if limit.full(key, now):
                self.hub.ops.throttled.fired("posts", "%s posts too fast", socket)
                return f"Too many posts: at most {limit.most} every {limit.window:g} s"
        self.per_session.count(session, now)
        self.per_address.count(address, now)
        return None


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


def make_app(hub: Hub, posts: Posts | PgPosts | RedisPosts, post_limit: tuple[int, float] = (10, 10.0),
             address_limit: tuple[int, float] = (20, 10.0), news_every: float = 0.5,
             **settings: Any) -> tornado.web.Application:
    """The board's Tornado application around `hub`: the page, the hub, /metrics, /healthz, /readyz."""
    Board(hub, posts, post_limit, address_limit, news_every)
    hub.ops.checks.append(posts.not_ready)  # /readyz: 503 while the posts cannot be stored
    settings = {"static_handler_class": StaticFiles, **settings}
    return tornado.web.Application(
        hub.routes() + hub.ops.routes() + [(r"/", IndexHandler)],
        transforms=settings.pop("transforms", [GzipButNotPolls]),
        template_path=TEMPLATE_DIR,
        static_path=STATIC_DIR,
        log_function=log_request,
        **settings,
    )


async def main(sockets: list | None = None) -> None:
    """One process of the board; `sockets` are the listening sockets shared by --processes."""
    if options.log_format == "json":
        use_json_logs()
    origins: Any = None
    if options.allowed_origins:
        origins = "*" if options.allowed_origins == "*" else options.allowed_origins.split(",")
    proxies = tuple(a.strip() for a in options.trusted_proxies.split(",") if a.strip())
    cluster: dict = {}
    if options.redis:
        adapter = RedisAdapter(options.redis, prefix=options.redis_prefix, window=options.recover_within)
        cluster = {"adapter": adapter}
    hub = Hub(ping_interval=options.ping_interval, ping_timeout=options.ping_timeout,
              allowed_origins=origins, trusted_proxies=proxies,
              recover_within=options.recover_within, **cluster)
    try:
        await hub.start()
    except RuntimeError as exc:
        log.error("%s", exc)
        sys.exit(1)
    if options.admin:
        user, _, password_hash = options.admin.partition(":")
        instrument(hub, auth={"username": user, "password": password_hash}, readonly=options.admin_readonly,
                   origins=[options.admin_origin])
        log.info("Admin UI enabled for %s at namespace /admin", options.admin_origin)
    if options.database:
        posts: Posts | PgPosts | RedisPosts = PgPosts(options.database)
    elif options.redis:
        log.warning("a cluster without --database keeps its posts in Redis: the newest 10,000, and only as "
                    "long as Redis keeps them")
        posts = RedisPosts(hub.adapter.redis, options.redis_prefix)
    else:
        posts = Posts(options.db)
    try:
        await posts.start()
    except RuntimeError as exc:
        log.error("%s", exc)
        await hub.stop()
        sys.exit(1)
    app = make_app(hub, posts, parse_rate(options.post_limit), parse_rate(options.post_limit_per_address),
                   options.news_every)
    tune_gc()  # fewer garbage collections: a third of opening a connection at Python's default
    # Polls of open sessions and WebSocket handshakes are answered in front of the application.
    server = hub.server(app, xheaders=False)
    if sockets is None:
        server.listen(options.port, address=options.address)
    else:
        server.add_sockets(sockets)
    log.info("Board listening on http://%s:%d", options.address, options.port)
    signals = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    await signals.get()
    # First signal: drain (readyz 503, no new sessions, clients told to come back later);
    # a second one during the drain: stop at once.
    log.info("draining over %.1f s (signal again to stop at once)", options.drain_seconds)
    draining = asyncio.ensure_future(hub.drain(options.drain_seconds))
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
    if isinstance(posts, PgPosts):
        await posts.aclose()
    await hub.stop()


def run(coroutine: Any) -> None:
    """Run the board on the chosen event loop (uvloop unless told otherwise or not installed)."""
    if options.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.info("uvloop is not installed: running on asyncio's own loop")
        else:
            uvloop.run(coroutine)
            return
    asyncio.run(coroutine)


def _drain_when_parent_dies() -> None:
    """Linux: a child gets SIGTERM (and drains) if its parent dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def serve_processes(count: int) -> None:
    """`count` processes on one port (the kernel spreads connections over them, no stickiness):
    the parent binds, forks, forwards SIGTERM/SIGINT to the children (each drains) and waits."""
    sockets = bind_sockets(options.port, address=options.address)
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _drain_when_parent_dies()
            run(main(sockets))
            os._exit(0)
        children.append(pid)
    for sock in sockets:
        sock.close()

    def forward(sig: int, frame: Any) -> None:
        for child in children:
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        os.waitpid(child, 0)


def cli() -> None:
    """`board` and `python -m board`: the options from the command line, then one process or several."""
    parse_command_line()
    if options.processes > 1:
        if not options.redis:
            sys.exit("--processes above 1 needs --redis=URL: the processes share their sessions through Redis")
        serve_processes(options.processes)
    else:
        run(main())


if __name__ == "__main__":
    cli()
