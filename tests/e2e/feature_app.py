"""A small Tornado app on Board's Hub, for the end-to-end feature tests.

    python tests/e2e/feature_app.py --port=N

Binds 127.0.0.1, serves a blank test page at / (it loads /socket.io/socket.io.js and
nothing else) and the hub, with the whole Socket.IO feature set behind a few events.
The tests (tests/e2e/test_socketio_js.py with our browser client, tests/e2e/test_node_features.py
with the official socket.io-client) drive it; what the server saw is asked back through
events, keyed by a `tag` each test makes up, so one app serves a whole test module.

Namespaces: "/" and "/admin" (the same events), "/private" (a middleware: auth
{"token": "secret"} or ConnectionRefused("Not authorized", {"hint": ...})).
Events (each returns its ack):
  whoami                      {id, engine: the Engine.IO session id, nsp, namespaces, transport}
  auth                        the socket's auth, as it reached the server
  echo(*args)                 the args
  reverse(data)               data with every bytes value reversed (in the ack)
  reverse-back(data)          emits `reversed` with data reversed; acks "sent"
  ask-bytes(data)             awaits socket.call("give-bytes", data); acks {reply, matches}
  call-me(payload, seconds)   awaits socket.call("question", payload); acks {reply} or {timeout: true}
  poll(room, seconds)         hub.call("vote", room) to the room; acks the sorted replies
  join(room) / leave(room)    acks the socket's rooms (its own id left out)
  to-room(room, data, fence)  `room-msg` to the room, then `fence` to everyone
  to-others(room, data, fence)  the same through socket.to(room): the sender left out
  emit-twice(event)           emits event(1) then event(2), then acks "done"
  record(tag, n) / records(tag)  the server keeps the n's in arrival order
  attempts(tag)               CONNECT attempts the /private middleware saw for the tag
  history(tag)                [[namespace, "connect" | reason], ...] of the sockets with auth.tag
  flaky(tag, n, drops)        records n; its first `drops` tries drop the connection (no ack), then acks n * 10
  once-drop(tag, n, drop)     once=True: records n; with `drop` the connection is lost before the ack goes; acks n * 10
  once-slow(tag, n, ms)       once=True: records n, acks n * 10 after `ms`
  bye                         socket.disconnect(close=True): the whole connection is dropped
  kick                        socket.disconnect(): this namespace only
"never-acks" has no handler on purpose: the server never acknowledges it.
"""

import asyncio
import logging
import os
import signal
import sys
from collections import defaultdict

import tornado.web
from tornado.options import define, options, parse_command_line

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from handlers import AckTimeout, ConnectionRefused, Disconnected, Hub  # noqa: E402

log = logging.getLogger("feature_app")

define("port", default=8890, help="port to listen on", type=int)
define("address", default="127.0.0.1", help="address to listen on")

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Socket.IO feature tests</title></head>
<body><script src="/socket.io/socket.io.js"></script></body></html>
"""

SECRET = "secret"


class PageHandler(tornado.web.RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.write(PAGE)


def _tag(socket):
    auth = socket.auth
    return auth.get("tag") if isinstance(auth, dict) else None


def _reversed(data):
    """Every bytes value in `data` reversed, the structure kept."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)[::-1]
    if isinstance(data, list):
        return [_reversed(x) for x in data]
    if isinstance(data, dict):
        return {k: _reversed(v) for k, v in data.items()}
    return data


def make_hub():
    hub = Hub(event_rate=1e6, event_burst=10**6)  # the tests drive our client hard, on purpose
    records = defaultdict(list)    # tag -> [n, ...]
    attempts = defaultdict(int)    # tag -> CONNECT attempts seen by the /private middleware
    history = defaultdict(list)    # tag -> [[namespace, "connect" | disconnect reason], ...]

    def add_common(nsp):
        @nsp.on("connection")
        def connected(socket):
            if _tag(socket):
                history[_tag(socket)].append([nsp.name, "connect"])

        @nsp.on("disconnect")
        def disconnected(socket, reason):
            if _tag(socket):
                history[_tag(socket)].append([nsp.name, reason])

        @nsp.on("whoami")
        def whoami(socket):
            return {
                "id": socket.id,
                "engine": socket.client.session.sid,
                "nsp": socket.namespace.name,
                "namespaces": sorted(socket.client.sockets),
                "transport": socket.transport,
            }

        @nsp.on("auth")
        def auth(socket):
            return socket.auth

        @nsp.on("echo")
        def echo(socket, *args):
            return tuple(args)

        @nsp.on("reverse")
        def reverse(socket, data):
            return _reversed(data)

        @nsp.on("reverse-back")
        def reverse_back(socket, data):
            socket.emit("reversed", _reversed(data))
            return "sent"

        @nsp.on("ask-bytes")
        async def ask_bytes(socket, data):
            reply = await socket.call("give-bytes", data, timeout=5)
            return {"reply": reply, "type": type(reply).__name__, "matches": reply == _reversed(data)}

        @nsp.on("call-me")
        async def call_me(socket, payload, seconds):
            try:
                reply = await socket.call("question", payload, timeout=seconds)
            except AckTimeout:
                return {"timeout": True}
            except Disconnected:
                return {"disconnected": True}
            return {"reply": reply}

        @nsp.on("poll")
        async def poll(socket, room, seconds):
            replies = await socket.namespace.call("vote", room, to=room, timeout=seconds)
            return sorted(replies, key=repr)

        @nsp.on("join")
        def join(socket, room):
            socket.join(room)
            return sorted(socket.rooms - {socket.id})

        @nsp.on("leave")
        def leave(socket, room):
            socket.leave(room)
            return sorted(socket.rooms - {socket.id})

        @nsp.on("to-room")
        def to_room(socket, room, data, fence):
            sent = socket.namespace.emit("room-msg", data, to=room)
            socket.namespace.emit("fence", fence)
            return sent

        @nsp.on("to-others")
        def to_others(socket, room, data, fence):
            sent = socket.to(room).emit("room-msg", data)
            socket.namespace.emit("fence", fence)
            return sent

        @nsp.on("emit-twice")
        def emit_twice(socket, event):
            socket.emit(event, 1)
            socket.emit(event, 2)
            return "done"

        @nsp.on("record")
        def record(socket, tag, n):
            records[tag].append(n)
            return len(records[tag])

        @nsp.on("flaky")
        def flaky(socket, tag, n, drops):
            records[tag].append(n)
            if records[tag].count(n) <= drops:
                socket.disconnect(close=True)  # the ack is lost with the connection
                return None
            return n * 10

        @nsp.on("once-drop", once=True)
        def once_drop(socket, tag, n, drop):
            records[tag].append(n)
            if drop:  # the work is done, the connection is lost before the ack goes out
                socket.client.session.close("transport error", notify=False)
            return n * 10

        @nsp.on("once-slow", once=True)
        async def once_slow(socket, tag, n, ms):
            records[tag].append(n)
            await asyncio.sleep(ms / 1000)
            return n * 10

        @nsp.on("records")
        def get_records(socket, tag):
            return records.get(tag, [])

        @nsp.on("attempts")
        def get_attempts(socket, tag):
            return attempts.get(tag, 0)

        @nsp.on("history")
        def get_history(socket, tag):
            return history.get(tag, [])

        @nsp.on("bye")
        def bye(socket):
            socket.disconnect(close=True)

        @nsp.on("kick")
        def kick(socket):
            socket.disconnect()

    for name in ("/", "/admin", "/private"):
        add_common(hub.of(name))

    private = hub.of("/private")

    @private.use
    def only_with_token(socket, auth):
        tag = auth.get("tag") if isinstance(auth, dict) else None
        if tag:
            attempts[tag] += 1
        if not isinstance(auth, dict) or auth.get("token") != SECRET:
            raise ConnectionRefused("Not authorized", {"hint": "send auth {token: 'secret'}"})

    return hub


async def main():
    parse_command_line()
    hub = make_hub()
    app = tornado.web.Application(hub.routes() + [(r"/", PageHandler)])
    server = app.listen(options.port, address=options.address)
    log.info("feature app listening on http://%s:%d", options.address, options.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    hub.close()
    await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(main())
