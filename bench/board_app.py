"""Board's hub with the benchmark behaviour (the peers in bench/peers/ do the same).

    python bench/board_app.py PORT

`bcast` (data) -> emit `bcast` (data) to everyone; `echo` (data) with an ack -> ack (data).
Binds 127.0.0.1, ping interval 25 s, prints "listening on PORT" once it accepts connections.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tornado.web  # noqa: E402

from handlers import Hub  # noqa: E402

hub = Hub(ping_interval=25000, ping_timeout=20000, max_payload=1_000_000)


@hub.on("bcast")
def bcast(socket, data):
    hub.emit("bcast", data)


@hub.on("echo")
def echo(socket, data):
    return data


async def main(port):
    app = tornado.web.Application(hub.routes())
    app.listen(port, address="127.0.0.1")
    print(f"listening on {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
