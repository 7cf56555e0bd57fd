"""Attacks on connections, from a bystander's seat: a ping flood that never reads, half-open
connections, descriptors running out.

The board runs as `python board.py` (a subprocess: its RSS and its log are
measured as an operator would), with well-behaved bystanders connected
first (official python-socketio clients, over WebSocket and long-polling).
The attack comes from raw sockets written by hand, in a thread, while the
bystanders keep checking what a user sees: a post another client makes
reaches every one of them within 2 s, `/healthz` answers within 1 s, nobody
is dropped. Then: RSS growth under 50 MB, log growth under 5 MB. The
mechanisms themselves (cap per address, header timeout, accept backoff,
pongs past the queue cap) are checked in process at the end.
"""

import asyncio
import errno
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time

import pytest
from tornado.iostream import IOStream
from tornado.testing import bind_unused_port

from board import make_app
from conftest import Recorder, connected, until
from e2e_support import ROOT, _tail, artifact, free_port, http_status, safe_name, stop_process
from handlers.operations import connections as conns
from handlers.transports.server import engine_server
from handlers.transports.websocket_connection import WebSocketConnection
from handlers.operations.limits import Throttled
from handlers.engineio.stats import Stats
from handlers.transports.websocket_handler import WebSocketTransport
from conftest import client_frame

pytestmark = pytest.mark.gen_test(timeout=60)

MB = 2**20
LATENCY = 2.0      # s: a post reaches every bystander within this
HEALTHZ = 1.0      # s: /healthz answers within this
RSS_GROWTH = 50 * MB
LOG_GROWTH = 5 * MB

HANDSHAKE = ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n")
KEYS = {"lean": "dGhlIHNhbXBsZSBub25jZQ==",  # the plain RFC 6455 handshake: the lean path takes it
        "tornado": "c2hvcnRrZXkxMjM0"}       # a key of unusual length: Tornado's handler takes it
PARTIAL = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: half"  # headers that never end


# --------------------------------------------------------------------------- the board, measured


class MeasuredBoard:
    """`python board.py` on a free port, optionally with few descriptors; its log in test-artifacts."""

    def __init__(self, name: str, nofile: int | None = None, args: tuple = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.nofile = nofile
        self.args = list(args)
        self.log_path = artifact(f"{safe_name(name)}.board.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "MeasuredBoard":
        nofile = self.nofile

        def limit() -> None:  # in the child, before board.py runs
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        command = [sys.executable, "board.py", f"--port={self.port}", "--address=127.0.0.1", "--db=:memory:",
                   "--post_limit=0", "--post_limit_per_address=0", "--drain_seconds=0.2", *self.args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, preexec_fn=limit)
        deadline = time.monotonic() + 20
        while http_status(self.url + "healthz") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the board did not start; its log:\n{_tail(self.log_path)}", pytrace=False)
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def log_size(self) -> int:
        return os.path.getsize(self.log_path)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent)."""
        import urllib.request
        with urllib.request.urlopen(self.url + "metrics", timeout=5) as response:
            text = response.read().decode()
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture
def start_board(request):
    made: list[MeasuredBoard] = []

    def start(nofile: int | None = None, args: tuple = ()) -> MeasuredBoard:
        board = MeasuredBoard(request.node.name, nofile, args).start()
        made.append(board)
        return board

    yield start
    for board in made:
        board.stop()


class Bystanders:
    """Readers over WebSocket and long-polling, and a poster: what each of them sees during an attack."""

    def __init__(self, board: MeasuredBoard):
        self.board = board
        self.readers = [Recorder(("message",)), Recorder(("message",))]
        self.poster = Recorder(("message",))
        self.latencies: list[float] = []  # s from a post to the last bystander seeing it (inf: never)
        self.health: list[tuple[int | None, float]] = []  # (status, s) of each /healthz during the attack
        self.rss_before = self.rss_peak = 0

    @property
    def everyone(self) -> list[Recorder]:
        return self.readers + [self.poster]

    async def connect(self) -> "Bystanders":
        url = self.board.url.rstrip("/")
        await self.readers[0].connect(url, transports=["websocket"])
        await self.readers[1].connect(url, transports=["polling"])
        await self.poster.connect(url, transports=["websocket"])
        await self.round(0)  # everything on the way warmed up once
        self.latencies.clear()
        self.health.clear()
        self.rss_before = self.rss_peak = self.board.rss()
        self.log_before = self.board.log_size()
        return self

    async def round(self, n: int) -> None:
        """A post by the poster, awaited by every bystander; then /healthz, timed."""
        text = f"still here {n}"
        start = time.monotonic()
        try:
            ack = await self.poster.client.call("post", {"name": "poster", "text": text}, timeout=LATENCY + 1)
            assert ack.get("ok"), ack
            for recorder in self.everyone:
                await recorder.until("message", lambda m: m.get("text") == text, timeout=LATENCY + 1)
            self.latencies.append(time.monotonic() - start)
        except (asyncio.TimeoutError, TimeoutError, Exception):
            self.latencies.append(float("inf"))
        start = time.monotonic()
        status = await asyncio.to_thread(http_status, self.board.url + "healthz", HEALTHZ + 1)
        self.health.append((status, time.monotonic() - start))
        self.rss_peak = max(self.rss_peak, self.board.rss())

    async def watch(self, attack: "asyncio.Future") -> None:
        """Rounds while the attack runs, and one after it."""
        n = 0
        while not attack.done():
            n += 1
            await self.round(n)
            await asyncio.sleep(0.1)  # pacing, not synchronisation
        await self.round(n + 1)

    def check(self) -> None:
        """What the bar asks, as each bystander saw it."""
        assert self.latencies, "no round ran during the attack"
        for recorder in self.everyone:
            assert recorder.client.connected and not recorder.disconnected.is_set(), "a bystander was dropped"
        assert max(self.latencies) < LATENCY, f"posts reached the bystanders after {self.latencies} s"
        assert all(status == 200 and took < HEALTHZ for status, took in self.health), self.health
        growth = self.rss_peak - self.rss_before
        assert growth < RSS_GROWTH, f"the server's RSS grew {growth / MB:.0f} MB"
        logged = self.board.log_size() - self.log_before
        assert logged < LOG_GROWTH, f"the server logged {logged / MB:.1f} MB"
        with open(self.board.log_path, "rb") as log:
            log.seek(self.log_before)
            assert b"Traceback" not in log.read(), "the attack made the server log a traceback"

    async def close(self) -> None:
        for recorder in self.everyone:
            await recorder.close()


async def attacked(board: MeasuredBoard, attack, *args) -> dict:
    """Run `attack(*args)` in a thread while the bystanders watch, and check what they saw; its result."""
    bystanders = await Bystanders(board).connect()
    try:
        running = asyncio.ensure_future(asyncio.to_thread(attack, *args))
        await bystanders.watch(running)
        result = running.result()
        print(f"{result}; RSS {bystanders.rss_before / MB:.0f} -> peak {bystanders.rss_peak / MB:.0f} MB; "
              f"post to every bystander max {max(bystanders.latencies):.3f} s; /healthz max "
              f"{max(t for _, t in bystanders.health):.3f} s; log +{board.log_size() - bystanders.log_before} bytes")
        bystanders.check()
        return result
    finally:
        await bystanders.close()


# --------------------------------------------------------------------------- the attacks (blocking, in a thread)


def ping_frames(count: int) -> bytes:
    """`count` masked WebSocket pings of 125 bytes each (the most a control frame carries)."""
    return client_frame(0x9, b"p" * 125) * count


def ping_flood(port: int, key: str, total: int = 150 * MB, seconds: float = 3.0) -> dict:
    """A WebSocket that sends pings and never reads: until `total` bytes are sent, `seconds` pass,
    the server stops taking them for a second, or it cuts the connection."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it reads nothing: keep its window small
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall(HANDSHAKE.format(key=key).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    chunk = ping_frames(8000)  # about 1 MB
    sent, ended = 0, "sent it all"
    sock.settimeout(1.0)
    deadline = time.monotonic() + seconds
    try:
        while sent < total:
            if time.monotonic() > deadline:
                ended = "time"
                break
            try:
                sent += sock.send(chunk)
            except socket.timeout:
                ended = "the server stopped reading"
                break
            except OSError as exc:
                ended = f"the server cut it ({exc.strerror})"
                break
    finally:
        sock.close()
    return {"sent": sent, "ended": ended}


def half_open(port: int, sources: tuple[str, ...], count: int = 100, seconds: float = 2.0,
              reopen: bool = False) -> dict:
    """From each address of `sources` (loopback has them all), up to `count` connections that sent
    part of a request's headers, held for `seconds`; with `reopen`, those the server closes are
    opened again at once. How many were held at the end, and opened in all."""
    poller = select.poll()
    held: dict[int, socket.socket] = {}
    per_source = dict.fromkeys(sources, 0)
    source_of: dict[int, str] = {}
    opened = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for source in sources:
                while per_source[source] < count and time.monotonic() < deadline:
                    sock = socket.socket()
                    sock.settimeout(0.2)
                    try:
                        sock.bind((source, 0))
                        sock.connect(("127.0.0.1", port))
                        sock.sendall(PARTIAL)
                    except OSError:  # the backlog is full: the server is not accepting right now
                        sock.close()
                        break
                    held[sock.fileno()] = sock
                    source_of[sock.fileno()] = source
                    per_source[source] += 1
                    poller.register(sock, select.POLLIN)
                    opened += 1
            for fd, _ in poller.poll(100):  # readable: closed by the server (it never answers these)
                poller.unregister(fd)
                held.pop(fd).close()
                source = source_of.pop(fd)
                if reopen:
                    per_source[source] -= 1
        return {"held": len(held), "opened": opened}
    finally:
        for sock in held.values():
            sock.close()


# --------------------------------------------------------------------------- from a bystander's seat


@pytest.mark.parametrize("path", ["lean", "tornado"])
async def test_a_ping_flood_from_a_client_that_never_reads(start_board, path):
    board = start_board()
    await attacked(board, ping_flood, board.port, KEYS[path])


async def test_half_open_connections_held(start_board):
    board = start_board()
    result = await attacked(board, half_open, board.port, ("127.0.0.2", "127.0.0.3"))
    assert result["held"] == 200  # all held at once, and the board served everyone meanwhile


async def test_descriptors_running_out(start_board):
    # 128 descriptors: about 110 for connections. Each attacking address may hold 64 (half the limit),
    # three of them hold more than the process has: accept() fails, the board sheds and carries on.
    board = start_board(nofile=128)
    await attacked(board, half_open, board.port, ("127.0.0.2", "127.0.0.3", "127.0.0.4"))
    assert board.metric("board_limits_total", limit="descriptors") >= 1
    assert "limit descriptors: accept() failed (Too many open files)" in board.log_path.read_text()


async def test_one_address_reconnecting_cannot_take_the_descriptors(start_board):
    board = start_board(nofile=128)
    await attacked(board, half_open, board.port, ("127.0.0.2",), 300, 2.0, True)
    assert board.metric("board_limits_total", limit="connections_per_address") >= 1
    assert board.metric("board_limits_total", limit="descriptors") == 0


# --------------------------------------------------------------------------- the mechanisms, in process


@pytest.fixture
def served(io_loop, hub, posts):
    """The board's app through `engine_server`, as board.py serves it: (port, server)."""
    sock, port = bind_unused_port()
    server = engine_server(make_app(hub, posts), hub.engine, hub.path)
    server.add_sockets([sock])
    yield port, server
    server.stop()
    io_loop.run_sync(server.close_all_connections)


async def websocket_on(port: int, path: str = "lean") -> IOStream:
    stream = await connected(port)
    await stream.write(HANDSHAKE.format(key=KEYS[path]).encode())
    assert (await stream.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return stream


@pytest.mark.parametrize("hub_options", [{"header_timeout": 0.3}])
async def test_headers_not_finished_in_time_are_closed(served, hub):
    port, server = served
    silent = await connected(port)
    partial = await connected(port)
    await partial.write(PARTIAL)
    websocket = await websocket_on(port)  # its headers came in time: it stays
    for stream in (silent, partial):
        await asyncio.wait_for(stream.read_until_close(), 3)
    assert not websocket.closed() and len(hub.engine.sessions) == 1
    websocket.close()
    front = server.request_callback
    leaving = await connected(port)
    await until(lambda: len(front.waiting) == 1)
    leaving.close()  # a connection its client closes is forgotten at once, not at the next sweep
    await until(lambda: not front.waiting and not server.connections.open)


async def test_shedding_closes_connections_that_never_sent_a_request_before_served_keep_alives(served):
    """Descriptors ran out: half the connections waiting for headers are closed. A client's idle
    keep-alive (served before) goes after the half-open ones, even those newer than it."""
    port, server = served
    front = server.request_callback
    client = await connected(port)

    async def healthy() -> bool:
        await client.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await client.read_until(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await client.read_bytes(length)  # the whole answer: the keep-alive then waits for the next request
        return head.startswith(b"HTTP/1.1 200")

    assert await healthy()
    silent = [await connected(port) for _ in range(3)]
    await until(lambda: len(front.waiting) == 4)
    assert front.shed() == 2  # half of the four: two of the silent three
    assert await asyncio.wait_for(silent[0].read_until_close(), 3) == b""
    assert await asyncio.wait_for(silent[1].read_until_close(), 3) == b""
    assert front.shed() == 1  # half of the two left: the third silent one, not the client
    assert await asyncio.wait_for(silent[2].read_until_close(), 3) == b""
    assert await healthy()  # the client's keep-alive was left alone
    client.close()


@pytest.mark.parametrize("hub_options", [{"max_connections_per_address": 3}])
@pytest.mark.parametrize("path", ["lean", "tornado"])
async def test_connections_per_address_are_capped(served, hub, path):
    port, server = served
    websocket = await websocket_on(port, path)  # counted after it leaves the HTTP server too
    await until(lambda: len(hub.engine.sessions) == 1)
    kind = type(next(iter(hub.engine.sessions.values())).ws)
    assert kind is {"lean": WebSocketConnection, "tornado": WebSocketTransport}[path]  # the key picks the path
    others = [await connected(port), await connected(port)]
    await until(lambda: server.connections.open.get("127.0.0.1") == 3)
    over = await connected(port)  # accepted by the kernel, closed at once by the server
    assert await asyncio.wait_for(over.read_until_close(), 3) == b""
    assert hub.stats.limits["connections_per_address"] == 1
    websocket.close()  # one fewer: a new one is served
    await until(lambda: server.connections.open.get("127.0.0.1") == 2)
    again = await connected(port)
    await again.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert (await again.read_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    for stream in others + [again]:
        stream.close()
    await until(lambda: not server.connections.open)


def test_by_default_one_address_holds_at_most_half_the_descriptors():
    throttled = Throttled(Stats())
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert conns.Connections(None, throttled).limit == min(10_000, soft // 2)
    assert conns.Connections(20_000, throttled).limit == 20_000  # said outright: as said


class Exhausted:
    """A listening socket whose accept() fails as a process out of descriptors does, until told not to."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.failing = True

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self):
        if self.failing:
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return self.sock.accept()


async def test_out_of_descriptors_accepting_backs_off_then_resumes(io_loop):
    sock, port = bind_unused_port()
    listening = Exhausted(sock)
    pauses: list[float] = []
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()
    acceptor = conns.Acceptor(listening, lambda c, a: accepted.set_result(c), lambda exc, p: pauses.append(p))
    client = await connected(port)  # waits in the backlog: the listening socket stays readable
    await until(lambda: len(pauses) >= 3, timeout=3)
    assert pauses[:3] == [0.1, 0.2, 0.4]  # one call per pause, not one per readable event
    listening.failing = False
    connection = await asyncio.wait_for(accepted, 3)  # accepting again once the pause is over
    assert acceptor.backoff == 0.0
    connection.close()
    client.close()
    acceptor.remove()
    sock.close()


@pytest.mark.parametrize("hub_options", [{"ping_interval": 5000, "ping_timeout": 5000}])
async def test_pongs_owed_past_the_queue_cap_cut_the_client(served, hub, clients):
    port, server = served
    hub.engine.max_queue_bytes = 64 * 1024
    bystander = await clients("news").connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    await bystander.next("news")
    flooder = socket.socket()
    flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flooder.setblocking(False)
    stream = IOStream(flooder)
    await stream.connect(("127.0.0.1", port))
    await stream.write(HANDSHAKE.format(key=KEYS["lean"]).encode())
    await stream.read_until(b"\r\n\r\n")
    chunk = ping_frames(2000)  # 256 KiB of pings, a read's worth: their pongs pass the cap within one read

    async def flood() -> None:
        for _ in range(200):  # at most 50 MB; the kernel's buffers fill first, then the server's
            await stream.write(chunk)
    sending = asyncio.ensure_future(flood())
    await until(lambda: hub.stats.slow_clients_dropped == 1, timeout=10)
    sending.cancel()
    stream.close()
    await until(lambda: len(hub.engine.sessions) == 1)  # the bystander's alone
    hub.emit("news", {"still": "here"})
    assert await bystander.until("news", lambda d: d.get("still")) == {"still": "here"}
