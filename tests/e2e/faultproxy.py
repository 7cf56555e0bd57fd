"""A TCP proxy of the tests' own that drops connections the way a network does.

It forwards each connection to the server, both ways, and on command resets
some of them: `SO_LINGER` 0 then close sends an RST to both ends, with no
WebSocket close frame and no Engine.IO close packet, as when a phone changes
network or a proxy cuts a connection. Runs on the test's loop, on loopback.

With `drop_acks=N` it also loses every Nth Socket.IO ACK the server sends on
each WebSocket (the frame is not forwarded; the connection stays up): the
client hears nothing and must try again. With `cut_at_acks=N` it resets the
connection right before one ACK in N instead (WebSocket or long-polling): the
server did the work, the connection dropped before the client heard of it.

With `swallow_polls=N` it loses every Nth long-polling answer that carries a message (an event or an
ACK) on a connection that served a request before: not a byte of the answer is forwarded and the
connection is reset, so the browser sends the same GET again by itself on another connection, with no
error the page could see (Chromium does so when a reused connection drops before any byte of the
answer). The answer to that retry goes through.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class AckFault:
    """The server's side of one connection, watched for Socket.IO ACKs ("43…": an Engine.IO message
    holding an ACK): every `every`th one is lost (`cut` False: on a WebSocket, the frame is not
    forwarded and the connection stays up), or one in `every` at random has the connection reset
    right before it (`cut` True: on a WebSocket or a long-polling response). The server's WebSocket
    frames are unmasked and, from our hub, uncompressed."""

    def __init__(self, every: int, cut: bool, proxy: "FaultProxy"):
        self.every = every
        self.cut = cut
        self.proxy = proxy
        self.buffer = bytearray()
        self.websocket: bool | None = None  # None until the response head has passed
        self.acks = 0

    def _turn(self, before: bytes = b"") -> bool:
        """One more ACK: True if this one is lost (counted), or the connection cut (raises, with
        `before`: what still reaches the client)."""
        self.acks += 1
        if self.cut:  # at random: a cycle of reconnection would meet the same ACK at every Nth
            if random.random() * self.every < 1:
                raise _Cut(before)
            return False
        if self.acks % self.every:
            return False
        self.proxy.dropped_acks += 1
        return True

    def feed(self, data: bytes) -> bytes:
        if self.websocket is False:  # long-polling (HTTP/1.1 keep-alive): a record may be an ACK
            at = data.find(b"\r\n\r\n43")
            at = at + 4 if at >= 0 else data.find(b"\x1e43")
            if self.cut and at >= 0:
                # The response is cut in the middle, its head through: a browser retries a GET on
                # its own when a reused connection drops before any byte of the answer (see README).
                self._turn(data[:max(at, data.find(b"\r\n\r\n") + 4)])
            return data
        self.buffer += data
        out = bytearray()
        if self.websocket is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return b""
            self.websocket = self.buffer.startswith(b"HTTP/1.1 101")
            if not self.websocket:
                rest = bytes(self.buffer)
                self.buffer.clear()
                return self.feed(rest)
            out += self.buffer[:end + 4]
            del self.buffer[:end + 4]
        while len(self.buffer) >= 2:
            size, start = self.buffer[1] & 0x7F, 2
            if size == 126:
                size, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif size == 127:
                size, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if self.buffer[1] & 0x80:
                start += 4
            if len(self.buffer) < start + size:
                break
            frame = bytes(self.buffer[:start + size])
            del self.buffer[:start + size]
            if frame[0] == 0x81 and frame[start:start + 2] == b"43" and self._turn(bytes(out)):
                continue
            out += frame
        return bytes(out)


class PollFault:
    """Both directions of one connection, read as HTTP/1.1 messages: every `every`th answer, counted
    over the proxy, that carries a message to a long-polling GET on a reused connection is swallowed
    whole and the connection reset. A connection that becomes a WebSocket is passed through."""

    def __init__(self, every: int, proxy: "FaultProxy"):
        self.every = every
        self.proxy = proxy
        self.requests = bytearray()  # what the client sent, not yet split into requests
        self.asked: list[bytes] = []  # the request lines not answered yet, in order
        self.answers = bytearray()   # what the server sent, not yet a whole answer
        self.served = 0              # answers forwarded on this connection
        self.plain = False           # passing everything through from now on

    @staticmethod
    def _split(buffer: bytearray) -> tuple[bytes, bytes] | None:
        """The next whole message (head, body as sent) taken out of `buffer`; None if it is not all
        there. Raises ValueError for a WebSocket's handshake answer (not a message this fault reads)."""
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buffer[:end])
        if head.startswith(b"HTTP/1.1 101"):
            raise ValueError("upgrade")
        length, chunked = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if head.startswith(b"HTTP/") and head[9:12] in (b"204", b"304"):
            length, chunked = 0, False  # no body, whatever the head says
        at = end + 4
        if chunked:  # sizes in hex, each chunk and its CRLF; the last is empty (no trailers here)
            while True:
                eol = buffer.find(b"\r\n", at)
                if eol < 0:
                    return None
                size = int(bytes(buffer[at:eol]).split(b";")[0], 16)
                at = eol + 2 + size + 2
                if len(buffer) < at:
                    return None
                if size == 0:
                    break
        else:
            at += length
            if len(buffer) < at:
                return None
        body = bytes(buffer[end + 4:at])
        del buffer[:at]
        return head, body

    def asking(self, data: bytes) -> None:
        """From the client: note each request's line, to know what each answer answers."""
        if self.plain:
            return
        self.requests += data
        try:
            while (message := self._split(self.requests)) is not None:
                self.asked.append(message[0].split(b"\r\n", 1)[0])
        except ValueError:
            self.plain = True

    def feed(self, data: bytes) -> bytes:
        """From the server: whole answers only, less the one swallowed (raises _Cut with what precedes it)."""
        if self.plain:
            return data
        self.answers += data
        out = bytearray()
        try:
            while (message := self._split(self.answers)) is not None:
                head, body = message
                asked = self.asked.pop(0) if self.asked else b""
                if self._swallows(asked, head, body):
                    raise _Cut(bytes(out))
                self.served += 1
                out += head + b"\r\n\r\n" + body
        except ValueError:
            self.plain = True
            out += self.answers
            self.answers.clear()
        return bytes(out)

    def _swallows(self, asked: bytes, head: bytes, body: bytes) -> bool:
        if not (self.served and asked.startswith(b"GET ") and b"transport=polling" in asked
                and b"sid=" in asked and head.startswith(b"HTTP/1.1 200")):
            return False
        if not any(packet[:2] in (b"42", b"43") for packet in body.split(b"\x1e")):
            return False
        if asked in self.proxy.swallowed_asks:
            return False  # the browser's retry of an answer swallowed: it goes through
        self.proxy.poll_turns += 1
        if self.proxy.poll_turns % self.every:
            return False
        self.proxy.swallowed_asks.add(asked)
        self.proxy.swallowed_polls += 1
        return True


class _Cut(Exception):
    """An AckFault's turn to reset the connection, once `before` has reached the client."""

    def __init__(self, before: bytes):
        super().__init__()
        self.before = before


class FaultProxy:
    """`await FaultProxy(port).start()`; `proxy.port`; `proxy.reset(fraction)`; `await proxy.stop()`.

    `proxy.down = True` also resets every new connection: the network is gone
    until it is set back to False. `proxy.blackhole()` silently drops whatever the
    live connections carry from then on, both ways, and closes none of them (as a
    NAT that forgot them would): new connections still go through.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1", drop_acks: int = 0,
                 cut_at_acks: int = 0, swallow_polls: int = 0):
        self.target = (target_host, target_port)
        self.drop_acks = drop_acks
        self.cut_at_acks = cut_at_acks
        self.swallow_polls = swallow_polls
        self.poll_turns = 0          # answers with a message on a reused connection, seen
        self.swallowed_polls = 0
        self.swallowed_asks: set[bytes] = set()  # the request lines whose answer was swallowed
        self.dropped_acks = 0
        self.cuts_at_acks = 0
        self.links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.resets = 0
        self.down = False
        self.holes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> "FaultProxy":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        link = (writer, up_writer)
        self.links.add(link)
        fault = None
        if self.swallow_polls > 0:
            fault = PollFault(self.swallow_polls, self)
        elif self.cut_at_acks > 0:
            fault = AckFault(self.cut_at_acks, True, self)
        elif self.drop_acks > 0:
            fault = AckFault(self.drop_acks, False, self)
        try:
            asking = fault if isinstance(fault, PollFault) else None
            await asyncio.gather(self._pump(reader, up_writer, link, watch=asking),
                                 self._pump(up_reader, writer, link, fault))
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            self.links.discard(link)
            for w in link:
                if not w.is_closing():
                    w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: tuple,
                    fault: AckFault | PollFault | None = None, watch: PollFault | None = None) -> None:
        try:
            while data := await reader.read(65536):
                if link in self.holes:
                    continue  # dropped on the floor
                if watch is not None:
                    watch.asking(data)
                if fault is not None:
                    try:
                        data = fault.feed(data)
                    except _Cut as cut:  # the ACK (or poll answer) never arrives: the connection is reset
                        if isinstance(fault, AckFault):
                            self.cuts_at_acks += 1
                        if cut.before:
                            writer.write(cut.before)
                            await writer.drain()
                            await asyncio.sleep(0.05)  # read by the client before the reset
                        self._cut(link)
                        return
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    def _cut(self, link: tuple) -> None:
        self.links.discard(link)
        for writer in link:
            _reset(writer)
        self.resets += 1

    def reset(self, fraction: float = 1.0) -> int:
        """Reset `fraction` of the live connections (at least one if any); how many were cut."""
        links = list(self.links)
        if not links:
            return 0
        chosen = random.sample(links, max(1, round(len(links) * fraction)))
        for link in chosen:
            self._cut(link)
        return len(chosen)

    def blackhole(self) -> int:
        """Drop, from now on, all the live connections carry; how many there are."""
        self.holes |= self.links
        return len(self.links)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for link in list(self.links):
            for writer in link:
                _reset(writer)
        if self.server is not None:
            await self.server.wait_closed()


async def _chaos(proxy: FaultProxy, every: float, fraction: float) -> None:
    while True:
        await asyncio.sleep(every)
        proxy.reset(fraction)


async def _main(target_port: int, every: float = 0, fraction: float = 0, drop_acks: float = 0,
                cut_at_acks: float = 0, swallow_polls: float = 0) -> None:
    """As a process of its own (for browsers, benchmarks): SIGUSR1 cuts the network (every
    connection reset, new ones too), SIGUSR2 brings it back; with `every` > 0 it also
    resets `fraction` of the live connections every `every` seconds; with `drop_acks` N > 0
    it loses every Nth ACK of each WebSocket, with `cut_at_acks` N > 0 it resets the
    connection before one ACK in N instead; with `swallow_polls` N > 0 it swallows every Nth
    long-polling answer carrying a message on a reused connection. SIGTERM stops it and prints how
    many connections it reset (at an ACK, and in all), how many acks and poll answers it lost."""
    import signal
    import sys

    proxy = await FaultProxy(target_port, drop_acks=int(drop_acks), cut_at_acks=int(cut_at_acks),
                             swallow_polls=int(swallow_polls)).start()
    loop = asyncio.get_running_loop()
    chaos = asyncio.ensure_future(_chaos(proxy, every, fraction)) if every > 0 else None

    def cut() -> None:
        proxy.down = True
        proxy.reset(1.0)

    def restore() -> None:
        proxy.down = False

    loop.add_signal_handler(signal.SIGUSR1, cut)
    loop.add_signal_handler(signal.SIGUSR2, restore)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(proxy.port, flush=True)
    await stop.wait()
    if chaos is not None:
        chaos.cancel()
    await proxy.stop()
    print(f"resets {proxy.resets}", flush=True)
    print(f"cuts_at_acks {proxy.cuts_at_acks}", flush=True)
    print(f"dropped_acks {proxy.dropped_acks}", flush=True)
    print(f"swallowed_polls {proxy.swallowed_polls}", flush=True)
    sys.stdout.close()


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    asyncio.run(_main(int(args[0]), *(float(x) for x in args[1:6])))
