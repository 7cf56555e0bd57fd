"""Board configured as the official protocol test suites expect it.

    python tests/server/conformance_server.py engine.io   # for socketio/engine.io-protocol's test-suite/
    python tests/server/conformance_server.py socket.io   # for socketio/socket.io-protocol's test-suite/

Both suites talk to http://localhost:3000 with pingInterval 300, pingTimeout 200 and
maxPayload 1e6 (their READMEs give the Node server they were written against). The
Engine.IO suite wants an echo server at /engine.io/; the Socket.IO suite wants the
handlers below at /socket.io/, a `/custom` namespace and a 1 s connect timeout.
Our pytest mirror of both suites (tests/server/test_conformance.py) serves the same two
in one app, from `engine_routes()` and `socketio_rules()`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import tornado.web
from tornado.httpserver import HTTPServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from handlers import Engine, Hub  # noqa: E402
from handlers import engine_routes as routes_of  # noqa: E402
from handlers.wire.protocol import Outgoing  # noqa: E402

SUITE_OPTIONS = {"ping_interval": 300, "ping_timeout": 200, "max_payload": 1_000_000, "allowed_origins": "*"}


def engine_routes(**options) -> tuple[list, Engine]:
    """An Engine.IO echo server at /engine.io/: every message goes back to its sender."""
    def echo(session, data):
        session.send(Outgoing(["4" + data if isinstance(data, str) else data]))

    engine = Engine(on_message=echo, **{**SUITE_OPTIONS, **options})
    return routes_of(engine, "/engine.io/"), engine


def socketio_rules(**options) -> tuple[list, Hub]:
    """The Socket.IO server of the suite's README: auth echo, message-back, acks, /custom."""
    # As the suite's reference server: no connection state recovery (no pid, no offsets), and the
    # suite's client opens and floods from one address.
    hub = Hub(connect_timeout=1000, recover_within=0, limits=False, **{**SUITE_OPTIONS, **options})

    def greet(socket):
        socket.emit("auth", socket.auth if socket.auth is not None else {})

    hub.on("connection", greet)
    hub.of("/custom").on("connection", greet)

    @hub.on("message")
    def message_back(socket, *args):
        socket.emit("message-back", *args)

    @hub.on("message-with-ack")
    def message_with_ack(socket, *args):
        return args  # a tuple: every argument goes back in the ack

    return hub.routes(), hub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=["engine.io", "socket.io"])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args()

    async def serve() -> None:
        rules, server_side = engine_routes() if args.suite == "engine.io" else socketio_rules()
        server = HTTPServer(tornado.web.Application(rules))
        server.listen(args.port, args.address)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"Board ({args.suite} suite) on http://{args.address}:{args.port}", flush=True)
        await stop.wait()
        server.stop()
        server_side.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
