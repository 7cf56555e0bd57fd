"""Hostile clients written by hand: raw WebSocket frames and HTTP requests, and the attacks of issue 18.

The official clients refuse to misbehave, so every attacker here is a raw socket, its frames and
requests written byte by byte. Each attack takes a `Target` (the ports of the processes under attack,
the first one attacked) and returns what happened to the attacker: {"summary": text, ...figures}.
tests/e2e/bystanders.py measures what everyone else saw meanwhile. Every loop is bounded in count and time.

Addresses: the board under attack is started with `--trusted_proxies=127.0.0.1`, so each client
gives its own address in X-Forwarded-For (the attacker one, each bystander another). Limits that
follow the client's address then meter the attacker alone, as they would on the Internet.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ATTACKER = "203.0.113.66"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) attack-support"  # not python-socketio: gets recovery offsets


@dataclass
class Target:
    """The processes under attack: their ports, PIDs and log files (the first is the one attacked)."""

    ports: list[int]
    pids: list[int]
    logs: list[Path]
    post_limit: tuple[int, float] = (10, 10.0)


# --------------------------------------------------------------------------- frames by hand


def client_frame(data: str | bytes, opcode: int | None = None) -> bytes:
    """One masked client frame (RFC 6455). The mask key is all zeros: valid, and the payload stays as is."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if opcode is None:
        opcode = 0x1 if isinstance(data, str) else 0x2
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + b"\0\0\0\0" + payload


def frames(*packets: str | bytes) -> bytes:
    return b"".join(client_frame(p) for p in packets)


class RawWebSocket:
    """A WebSocket client written by hand, to an Engine.IO endpoint.

    mode "parse": a reader answers Engine.IO pings and keeps the messages it gets (see `expect`);
    "discard": the reader throws away what arrives, unparsed (a churn attacker reads, cheaply);
    "none": nothing is ever read after the open packet (a client that never reads).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode: str):
        self.reader, self.writer, self.mode = reader, writer, mode
        self.sid = ""
        self.recent: deque[str | bytes] = deque(maxlen=2000)
        self.received = 0
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._watchers: list[tuple[Callable[[Any], bool], asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    @classmethod
    async def open(cls, port: int, query: str = "EIO=4&transport=websocket", xff: str = ATTACKER,
                   agent: str = BROWSER, mode: str = "parse", rcvbuf: int | None = None,
                   timeout: float = 5.0) -> "RawWebSocket":
        sock = socket.socket()
        if rcvbuf is not None:  # before connect, so the window the server sees is small too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), timeout)
        except BaseException:
            sock.close()
            raise
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**22)
        ws = cls(reader, writer, mode)
        request = (f"GET /socket.io/?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   f"Sec-WebSocket-Version: 13\r\nUser-Agent: {agent}\r\nX-Forwarded-For: {xff}\r\n\r\n")
        writer.write(request.encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            if not head.startswith(b"HTTP/1.1 101"):
                status = head.split(b"\r\n", 1)[0].decode(errors="replace")
                raise ConnectionError(f"handshake refused: {status}")
            opcode, first = await asyncio.wait_for(ws._read_frame(), timeout)
        except BaseException:
            writer.transport.abort()
            raise
        if isinstance(first, str) and first.startswith("0"):
            ws.sid = json.loads(first[1:])["sid"]
        if mode != "none":
            ws._task = asyncio.ensure_future(ws._read_loop())
        return ws

    async def _read_frame(self) -> tuple[int, str | bytes]:
        head = await self.reader.readexactly(2)
        opcode, n = head[0] & 0x0F, head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await self.reader.readexactly(8), "big")
        payload = await self.reader.readexactly(n)
        return opcode, payload.decode("utf-8", "replace") if opcode == 0x1 else payload

    async def _read_loop(self) -> None:
        try:
            if self.mode == "discard":
                while await self.reader.read(2**20):
                    pass
                return
            while True:
                opcode, data = await self._read_frame()
                if opcode == 0x8:
                    self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    return
                if opcode not in (0x1, 0x2):
                    continue
                if data == "2":
                    self.writer.write(client_frame("3"))
                    continue
                self.received += 1
                self.recent.append(data)
                for watcher in list(self._watchers):
                    predicate, future = watcher
                    if not future.done() and predicate(data):
                        future.set_result(data)
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed.set()

    async def expect(self, predicate: Callable[[Any], bool], timeout: float) -> Any:
        """The first message (already kept, or to come) that satisfies `predicate`; None if none in time."""
        for data in self.recent:
            if predicate(data):
                return data
        future = asyncio.get_running_loop().create_future()
        watcher = (predicate, future)
        self._watchers.append(watcher)
        closed = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait([future, closed], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            return future.result() if future.done() else None
        finally:
            closed.cancel()
            self._watchers.remove(watcher)

    async def send(self, *packets: str | bytes) -> None:
        await self.send_raw(frames(*packets))

    async def send_raw(self, data: bytes, timeout: float = 10.0) -> bool:
        """Write `data`; False if the connection is gone or the server stopped reading for `timeout` s."""
        if self.writer.is_closing():
            return False
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), timeout)
            return True
        except (OSError, ConnectionError, asyncio.TimeoutError):
            return False

    async def wait_closed(self, timeout: float) -> bool:
        """True if the server closed this connection within `timeout` s."""
        if self._task is None:
            return self.writer.is_closing()
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    def abort(self) -> None:
        """Gone without a word: a reset, no close frame, no close packet (a lost connection)."""
        if self._task is not None:
            self._task.cancel()
        self.writer.transport.abort()


# --------------------------------------------------------------------------- HTTP by hand


async def http(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None,
               timeout: float = 5.0) -> tuple[int, bytes] | None:
    """(status, body) of one request on its own connection; None when nothing answers in time."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, limit=2**22), timeout)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
                 f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        raw = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        return None
    finally:
        if writer is not None:
            writer.transport.abort()
    head, _, rest = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
    if b"transfer-encoding: chunked" in head.lower():
        rest = _unchunk(rest)
    return status, rest


def _unchunk(data: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return bytes(out)
        size = int(data[pos:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2:end + 2 + size]
        pos = end + 2 + size + 2


async def polling_sid(port: int, xff: str = ATTACKER) -> str | None:
    answer = await http(port, "GET", "/socket.io/?EIO=4&transport=polling",
                        headers={"X-Forwarded-For": xff, "User-Agent": BROWSER})
    if answer is None or answer[0] != 200 or not answer[1].startswith(b"0"):
        return None
    return json.loads(answer[1][1:].split(b"\x1e")[0])["sid"]


# --------------------------------------------------------------------------- the attacks


CHURN_PAIR = ('40{"after":999999999}', "41")  # namespace CONNECT (with the board's `after`), DISCONNECT


def churn_burst(pairs: int = 30_000) -> bytes:
    """About 1 MB of WebSocket frames: CONNECT then DISCONNECT, `pairs` times."""
    return frames(*CHURN_PAIR) * pairs


def churn_payload(size: int = 950_000) -> bytes:
    """One polling POST body of CONNECT/DISCONNECT pairs, `size` bytes at most."""
    pair = "\x1e".join(CHURN_PAIR).encode()
    count = (size + 1) // (len(pair) + 1)
    return b"\x1e".join([pair] * count)


async def churn_websocket(target: Target, bursts: int = 1, gap: float = 1.5, port: int | None = None,
                          concurrent: int = 1) -> dict:
    """`bursts` rounds of `concurrent` raw WebSockets, each sending one 1 MB churn burst."""
    burst = churn_burst()
    closed = opened = refused = 0
    port = port or target.ports[0]

    async def one() -> None:
        nonlocal closed, opened, refused
        try:
            ws = await RawWebSocket.open(port, mode="discard")
        except (OSError, ConnectionError, asyncio.TimeoutError):
            refused += 1
            return
        opened += 1
        await ws.send_raw(burst)
        if await ws.wait_closed(3.0):
            closed += 1
        ws.abort()

    for n in range(bursts):
        if n:
            await asyncio.sleep(gap)
        await asyncio.gather(*(one() for _ in range(concurrent)))
    return {"summary": f"{opened} bursts of {len(burst) // 1000} KB sent; the server closed {closed} of "
                       f"those connections within 3 s; {refused} handshakes refused",
            "opened": opened, "closed": closed, "refused": refused}


async def churn_polling(target: Target, posts: int = 1, gap: float = 1.5) -> dict:
    """A polling session per round, one 950 KB POST of CONNECT/DISCONNECT pairs each."""
    payload = churn_payload()
    statuses = []
    after = []
    for n in range(posts):
        if n:
            await asyncio.sleep(gap)
        sid = await polling_sid(target.ports[0])
        if sid is None:
            statuses.append("no session")
            continue
        path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
        answer = await http(target.ports[0], "POST", path, payload, {"X-Forwarded-For": ATTACKER}, timeout=10)
        statuses.append(answer[0] if answer else "no answer")
        poll = await http(target.ports[0], "GET", path, headers={"X-Forwarded-For": ATTACKER}, timeout=3)
        if poll is None:
            after.append("open (GET waits)")
        elif poll[0] != 200 or poll[1] in (b"1", b"6") or poll[1].endswith(b"\x1e1"):
            after.append("closed")
        else:
            after.append("open")
    return {"summary": f"{posts} POSTs of {len(payload) // 1000} KB: status {statuses}; "
                       f"the attacker's session then {after}", "statuses": statuses, "after": after}


def post_packets(cycle: int, connection: int) -> bytes:
    """`40`, ten posts (their text says which connection sent them), `41`."""
    posts = (f'42{cycle * 10 + k}["post",{{"name":"attacker","text":"spam {connection} {cycle}.{k}"}}]'
             for k in range(10))
    return frames("40", *posts, "41")


async def post_reset(target: Target, seconds: float = 4.0, port: int | None = None) -> dict:
    """`40`, ten posts, `41`, again and again for `seconds`, on one connection (a new one if closed)."""
    port = port or target.ports[0]
    deadline = time.monotonic() + seconds
    cycles = connections = 0
    ws = None
    while time.monotonic() < deadline and connections < 50:
        if ws is None or ws.closed.is_set():
            try:
                ws = await RawWebSocket.open(port, mode="discard")
            except (OSError, ConnectionError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
                connections += 1
                continue
            connections += 1
        await ws.send_raw(post_packets(cycles, connections), timeout=2)
        cycles += 1
        await asyncio.sleep(0.01)
    if ws is not None:
        ws.abort()
    return {"summary": f"{cycles} cycles of 40/10 posts/41 ({cycles * 10} posts tried) over "
                       f"{connections} connection(s)", "cycles": cycles, "connections": connections}


def huge_auth(size: int = 990_000) -> str:
    count = (size - len('40{"junk":[]}')) // 3
    return '40{"junk":[' + ",".join(["[]"] * count) + "]}"


async def huge_auths(target: Target, sessions: int = 10, hold: float = 2.0) -> dict:
    """`sessions` WebSockets, each with a 990 KB auth of tiny arrays; held open `hold` s after their answers."""
    packet = client_frame(huge_auth())
    sockets, answers = [], []
    for _ in range(sessions):
        try:
            ws = await RawWebSocket.open(target.ports[0])
        except (OSError, ConnectionError, asyncio.TimeoutError):
            answers.append("refused")
            continue
        sockets.append(ws)
        await ws.send_raw(packet)
    for ws in sockets:
        answer = await ws.expect(lambda m: isinstance(m, str) and m[:2] in ("40", "44"), 5)
        answers.append("closed" if answer is None else "connected" if answer.startswith("40") else "CONNECT_ERROR")
    await asyncio.sleep(hold)
    for ws in sockets:
        ws.abort()
    counts = {a: answers.count(a) for a in sorted(set(answers))}
    return {"summary": f"{sessions} auths of {len(packet) // 1000} KB: {counts}", "answers": counts}


def ping_frames(size: int = 2**20) -> bytes:
    one = client_frame(b"x" * 125, opcode=0x9)
    return one * (size // len(one))


async def ping_flood(target: Target, total: int = 150 * 2**20, seconds: float = 10.0) -> dict:
    """WebSocket pings from a client that never reads, up to `total` bytes or `seconds`."""
    ws = await RawWebSocket.open(target.ports[0], mode="none", rcvbuf=4096)
    chunk = ping_frames()
    sent = 0
    deadline = time.monotonic() + seconds
    stalled = False
    while sent < total and time.monotonic() < deadline:
        if not await ws.send_raw(chunk, timeout=max(0.1, deadline - time.monotonic())):
            stalled = not ws.writer.is_closing()
            break
        sent += len(chunk)
    gone = ws.writer.is_closing() or ws.reader.at_eof()
    ws.abort()
    how = "server stopped reading" if stalled else "connection closed" if gone else "all taken"
    return {"summary": f"{sent // 2**20} MB of pings sent in {seconds:g} s at most ({how})", "sent": sent,
            "how": how}


async def half_open(target: Target, count: int = 300, hold: float = 5.0) -> dict:
    """`count` connections that send part of a request header and never the rest, held `hold` s."""
    partial = f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1:{target.ports[0]}\r\n"
    writers = []
    for _ in range(count):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", target.ports[0]), 1.0)
        except (OSError, asyncio.TimeoutError):
            break
        writer.write(partial.encode())
        writers.append((reader, writer))
    await asyncio.sleep(hold)
    cut = sum(1 for reader, _ in writers if reader.at_eof())
    for _, writer in writers:
        writer.transport.abort()
    return {"summary": f"{len(writers)} half-open connections held {hold:g} s, {cut} of them closed by the "
                       "server meanwhile", "held": len(writers), "cut": cut}


async def pid_of_lost_socket(port: int) -> str | None:
    """A pid as a recovering client would have it: connect (as a browser), then vanish without a word."""
    ws = await RawWebSocket.open(port)
    await ws.send("40")
    answer = await ws.expect(lambda m: isinstance(m, str) and m.startswith("40"), 5)
    ws.abort()
    if not answer:
        return None
    return json.loads(answer[2:]).get("pid")


async def recovering_connect(port: int, auth: dict, timeout: float = 3.0) -> str | None:
    """The answer to a CONNECT with this auth (`40…` or `44…`), or None if none came within `timeout`."""
    ws = await RawWebSocket.open(port)
    try:
        await ws.send("40" + json.dumps(auth))
        return await ws.expect(lambda m: isinstance(m, str) and m[:2] in ("40", "44"), timeout)
    finally:
        ws.abort()


# Superscripts first: "²".isdigit() is true and int("²") raises ("١٢٣" and "𝟗" are decimal: int() takes them).
BAD_OFFSETS = ["²", "³", "¹", "١٢٣", "𝟗", "99999999999999999999", "-1", "1e3", " 1", "", 12, None, [1],
               {"a": 1}]
BAD_PIDS = [12, None, "", "²", "x" * 65, ["p"], {"p": 1}, True]


async def bad_recovery(target: Target, rounds: int = 10) -> dict:
    """Lost sockets coming back with a superscript digit for offset ("²": isdigit() is true, int() raises)."""
    answered = 0
    for n in range(rounds):
        pid = await pid_of_lost_socket(target.ports[0])
        offset = BAD_OFFSETS[n % 3]  # the superscripts
        if pid is not None and await recovering_connect(target.ports[0], {"pid": pid, "offset": offset}):
            answered += 1
    return {"summary": f"recovering CONNECTs with a superscript-digit offset answered: {answered}/{rounds}",
            "answered": answered, "rounds": rounds}
