"""Connections and descriptors: what one address may hold open, and accepting when descriptors run out.

Every TCP connection costs a descriptor and a little memory before it has
said anything, so a client that opens many and sends nothing (or half a
request) could exhaust the process for everyone. Three bounds, kept here
and in `EngineDelegate`'s sweep (handlers/transports/server.py):

- open connections per client address are counted (`Connections`): HTTP
  connections from `accept` to their close, connection-level WebSockets from their
  detach to their close; past `max_connections_per_address` (by default
  10,000, or half the process's descriptor limit if lower) a new one is closed at once,
  counted and logged as the limit `connections_per_address` (a trusted
  proxy speaks for many clients and is not capped);
- `ConnectionServer` accepts with `Acceptor`, not Tornado's accept handler,
  which lets `accept`'s OSError escape on every readable event (a traceback
  each time, thousands a second): when descriptors or kernel memory run out
  it logs (limit `descriptors`, a line a second at most), closes half of the
  connections still waiting for request headers, those that never sent a
  whole request first (they are served nothing, and their descriptors let a
  health check or a bystander's next request in), and stops accepting for a short backoff (0.1 s, doubling to
  1 s while it lasts); what is open carries on;
- connections that have not finished a request's headers within
  `header_timeout` are closed by the front's sweep.
"""

from __future__ import annotations

import errno
import logging
import socket
from ipaddress import ip_address
from typing import Any, Callable, Iterable

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.ioloop import IOLoop

from .limits import Throttled

log = logging.getLogger("board.engine")

BACKOFF_FIRST = 0.1  # seconds without accepting after accept() ran out of descriptors...
BACKOFF_MAX = 1.0    # ... doubling up to this while it keeps failing
PER_ADDRESS = 10_000  # open connections one address may hold by default: offices behind one NAT address
ACCEPT_BATCH = 128   # connections accepted per readable event, as Tornado's handler: the loop serves the rest too
# accept(2) on Linux passes on a pending network error of the new connection: retry, as for EAGAIN.
RETRY = frozenset(getattr(errno, name) for name in (
    "ECONNABORTED", "EPROTO", "ENOPROTOOPT", "EHOSTDOWN", "ENONET", "EHOSTUNREACH", "EOPNOTSUPP",
    "ENETDOWN", "ENETUNREACH", "EPERM", "EINTR") if hasattr(errno, name))


def peer_ip(peer: Any) -> str | None:
    """The IP of a socket's peer (as `accept` or `getpeername` give it); None for a Unix socket."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return None


def half_the_descriptors() -> int:
    """Half of this process's descriptor limit (`ulimit -n`): what one address may hold at most."""
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # not on this platform
        return 1 << 30
    return 1 << 30 if soft == resource.RLIM_INFINITY else max(1, soft // 2)


class Connections:
    """Open TCP connections per client address, capped at accept (trusted proxies excepted): at
    `limit`; by default (None) at `PER_ADDRESS` or half the process's descriptors if fewer, so that
    no one address can take them all."""

    def __init__(self, limit: int | None, throttled: Throttled, trusted: Iterable[str] = ()):
        self.limit = min(PER_ADDRESS, half_the_descriptors()) if limit is None else limit
        self.throttled = throttled
        self.trusted = frozenset(str(ip_address(a)) for a in trusted)
        self.open: dict[str, int] = {}  # address -> open connections (only addresses that have some)

    def refuse(self, peer: Any) -> bool:
        """True if a connection from `peer` would pass the cap (counted and logged as the limit)."""
        address = peer_ip(peer)
        if address is None or address in self.trusted:
            return False
        count = self.open.get(address, 0)
        if count < self.limit:
            return False
        self.throttled.fired("connections_per_address", "%s has %d connections open; closing a new one",
                             address, count)
        return True

    def hold(self, peer: Any) -> str | None:
        """Count a connection from `peer`; the address to `release` it with (None: not counted)."""
        address = peer_ip(peer)
        if address is None or address in self.trusted:
            return None
        self.open[address] = self.open.get(address, 0) + 1
        return address

    def release(self, address: str | None) -> None:
        if address is None:
            return
        left = self.open.get(address, 0) - 1
        if left > 0:
            self.open[address] = left
        else:
            self.open.pop(address, None)


class Acceptor:
    """Accepts connections on one listening socket, as Tornado's `add_accept_handler` does, except
    that a failing `accept` (descriptors or memory exhausted) pauses accepting for a backoff
    instead of raising again at every readable event."""

    def __init__(self, sock: socket.socket, accepted: Callable[[socket.socket, Any], None],
                 exhausted: Callable[[OSError, float], bool]):
        self.sock = sock
        self.accepted = accepted    # (connection, address)
        self.exhausted = exhausted  # (the error, the pause in seconds): told once per failure; True if it
        #                             freed descriptors (accepting goes on at once, the pause is not taken)
        self.io_loop = IOLoop.current()
        self.backoff = 0.0          # the last pause; 0 once an accept succeeds
        self.timer: object | None = None
        self.removed = False
        self.io_loop.add_handler(sock, self._ready, IOLoop.READ)

    def _ready(self, fd: Any, events: int) -> None:
        for _ in range(ACCEPT_BATCH):
            if self.removed or self.timer is not None:
                return
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return  # every waiting connection is taken
            except OSError as exc:
                if exc.errno in RETRY:
                    continue
                if not self._pause(exc):
                    return
                continue
            self.backoff = 0.0
            self.accepted(connection, address)

    def _pause(self, exc: OSError) -> bool:
        """Pause accepting, unless the failure was dealt with (descriptors freed): True to go on."""
        backoff = min(BACKOFF_MAX, self.backoff * 2) if self.backoff else BACKOFF_FIRST
        if self.exhausted(exc, backoff):
            return True
        self.backoff = backoff
        self.io_loop.remove_handler(self.sock)
        self.timer = self.io_loop.call_later(backoff, self._resume)
        return False

    def _resume(self) -> None:
        self.timer = None
        if not self.removed:
            self.io_loop.add_handler(self.sock, self._ready, IOLoop.READ)

    def remove(self) -> None:
        """Stop accepting (the server stops); what `add_accept_handler`'s returned callable does."""
        if self.removed:
            return
        self.removed = True
        if self.timer is not None:
            self.io_loop.remove_timeout(self.timer)  # type: ignore[arg-type]
            self.timer = None
        else:
            self.io_loop.remove_handler(self.sock)


class ConnectionServer(HTTPServer):
    """Tornado's `HTTPServer`, accepting through `Acceptor` and counting connections per address.

    `connections` is set by `engine_server` (handlers/transports/server.py); the front
    (`request_callback`) is asked to `shed` when descriptors run out.
    """

    connections: Connections

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = Acceptor(sock, self._accepted, self._exhausted).remove

    def _accepted(self, connection: socket.socket, address: Any) -> None:
        if self.connections.refuse(address):
            connection.close()
            return
        self._handle_connection(connection, address)  # TCPServer's: TLS if configured, the stream, handle_stream

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        self.connections.hold(address)
        super().handle_stream(stream, address)

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        front_closed = getattr(self.request_callback, "on_close", None)
        if front_closed is not None:  # HTTPServer does not tell its delegate; the front forgets it waited
            front_closed(server_conn)
        context = getattr(server_conn, "context", None)
        self.connections.release(peer_ip(getattr(context, "address", None)))

    def _exhausted(self, exc: OSError, pause: float) -> bool:
        shed = getattr(self.request_callback, "shed", None)
        closed = shed() if shed is not None else 0
        if closed:
            self.connections.throttled.fired(
                "descriptors", "accept() failed (%s); closed %d connections waiting for request headers",
                exc.strerror or exc, closed)
        else:
            self.connections.throttled.fired(
                "descriptors", "accept() failed (%s); accepting again in %.1f s", exc.strerror or exc, pause)
        return closed > 0
