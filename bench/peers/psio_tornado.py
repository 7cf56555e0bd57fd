"""Peer for Board's benchmark: python-socketio AsyncServer on Tornado, same behaviour as bench/board_app.py.

    python bench/peers/psio_tornado.py PORT

`bcast` (data) -> emit `bcast` (data) to everyone; `echo` (data) with an ack -> ack (data).
Binds 127.0.0.1, ping interval 25 s, prints "listening on PORT" once it accepts connections.
"""
import asyncio
import sys

import socketio
import tornado.web

sio = socketio.AsyncServer(async_mode="tornado", ping_interval=25, ping_timeout=20,
                           max_http_buffer_size=1_000_000, logger=False, engineio_logger=False)


@sio.on("bcast")
async def bcast(sid, data):
    await sio.emit("bcast", data)


@sio.on("echo")
async def echo(sid, data):
    return data


async def main(port):
    app = tornado.web.Application([(r"/socket.io/", socketio.get_tornado_handler(sio))])
    app.listen(port, address="127.0.0.1")
    print(f"listening on {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
