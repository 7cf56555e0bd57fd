"""Board's hub with the benchmark behaviour (the peers in bench/peers/ do the same).

    python bench/board_app.py PORT [--recover_within=MS] [--redis=URL] [--loop=asyncio] [--lean_ws=0]
                                   [--header_timer=1] [--handover=0]

`bcast` (data) -> emit `bcast` (data) to everyone; `echo` (data) with an ack -> ack (data);
`ticks` (count, every_ms) with an ack -> emits `tick` 1..count to everyone, one every
`every_ms`, then acks the count (bench/recovery.py); `join` (room) joins it; `room_ticks` (room, count, per_s)
emits `tick` to that room only, `per_s` a second (bench/rooms.py). Connection state recovery is on
(Board's default) unless `--recover_within=0`. `--redis=URL` makes it one process of a
cluster on that Redis (bench/cluster.py). `--lean_ws=0` sends every WebSocket through Tornado's
handler rather than the lean path (handlers/transports/websocket_connection.py); `--header_timer=1` serves without
`engine_server`'s sweep, with Tornado's header timer per request; `--handover=0` keeps polls on Tornado's
HTTP/1 connection rather than handing keep-alive connections to handlers/transports/polling_protocol.py.
Runs on uvloop, as the board does (`--loop=asyncio` for asyncio's own loop). Binds 127.0.0.1, ping interval 25 s, prints "listening on PORT" once it accepts connections.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tornado.web  # noqa: E402
from tornado.httpserver import HTTPServer  # noqa: E402

from handlers import Hub  # noqa: E402
from handlers.transports.server import EngineDelegate, engine_server  # noqa: E402
from handlers.operations.ops import tune_gc  # noqa: E402

def option(name, default):
    return next((a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith(f"--{name}=")), default)


RECOVER = int(option("recover_within", 120_000))
REDIS = option("redis", "")
if REDIS:
    from handlers.cluster.redis_adapter import RedisAdapter  # noqa: E402

    CLUSTER = {"adapter": RedisAdapter(REDIS, prefix="bench", window=RECOVER)}
else:
    CLUSTER = {}
# The load generator is one address opening many clients and flooding on purpose: no abuse limits here.
hub = Hub(ping_interval=25000, ping_timeout=20000, max_payload=1_000_000, recover_within=RECOVER,
          limits=False, **CLUSTER)


@hub.on("bcast")
def bcast(socket, data):
    hub.emit("bcast", data)


@hub.on("echo")
def echo(socket, data):
    return data


@hub.on("ticks")
async def ticks(socket, count, every_ms):
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(1, count + 1):
        hub.emit("tick", n)
        # The pace of the broadcasts, on a fixed schedule (a slow turn does not push the rest back).
        await asyncio.sleep(max(0.0, start + n * every_ms / 1000 - loop.time()))
    return count


@hub.on("join")
def join(socket, room):
    socket.join(room)
    return room


@hub.on("room_ticks")
async def room_ticks(socket, room, count, per_s):
    """`count` emits of `tick` to `room`, `per_s` a second, in steps of 10 ms (bench/rooms.py)."""
    loop = asyncio.get_running_loop()
    start, sent = loop.time(), 0
    while sent < count:
        due = min(count, int((loop.time() - start) * per_s) + 1)
        for n in range(sent + 1, due + 1):
            hub.to(room).emit("tick", n)
        sent = due
        await asyncio.sleep(0.01)
    return count


async def main(port):
    await hub.start()
    app = tornado.web.Application(hub.routes())
    tune_gc()  # as board.py does
    # As board.py serves: the polls of open sessions picked in front of the application.
    hub.engine.connection_websockets = option("lean_ws", "1") == "1"
    if option("header_timer", "0") == "1":  # Tornado's timer per request rather than the front's sweep
        HTTPServer(EngineDelegate(app, hub.engine, hub.path)).listen(port, address="127.0.0.1")
    else:
        server = engine_server(app, hub.engine, hub.path)
        server.request_callback.handover = option("handover", "1") == "1"
        server.listen(port, address="127.0.0.1")
    print(f"listening on {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if option("loop", "uvloop") == "uvloop":
        import uvloop

        uvloop.run(main(int(sys.argv[1])))
    else:
        asyncio.run(main(int(sys.argv[1])))
