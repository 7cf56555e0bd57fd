"""A TCP proxy of the tests' own that drops connections the way a network does.

It forwards each connection to the server, both ways, and on command resets
some of them: `SO_LINGER` 0 then close sends an RST to both ends, with no
WebSocket close frame and no Engine.IO close packet, as when a phone changes
network or a proxy cuts a connection. Runs on the test's loop, on loopback.
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


class FaultProxy:
    """`await FaultProxy(port).start()`; `proxy.port`; `proxy.reset(fraction)`; `await proxy.stop()`.

    `proxy.down = True` also resets every new connection: the network is gone
    until it is set back to False. `proxy.blackhole()` silently drops whatever the
    live connections carry from then on, both ways, and closes none of them (as a
    NAT that forgot them would): new connections still go through.
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
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
        try:
            await asyncio.gather(self._pump(reader, up_writer, link), self._pump(up_reader, writer, link))
        except asyncio.CancelledError:
            pass  # the proxy is stopping
        finally:
            self.links.discard(link)
            for w in link:
                if not w.is_closing():
                    w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: tuple) -> None:
        try:
            while data := await reader.read(65536):
                if link in self.holes:
                    continue  # dropped on the floor
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    def reset(self, fraction: float = 1.0) -> int:
        """Reset `fraction` of the live connections (at least one if any); how many were cut."""
        links = list(self.links)
        if not links:
            return 0
        chosen = random.sample(links, max(1, round(len(links) * fraction)))
        for link in chosen:
            self.links.discard(link)
            for writer in link:
                _reset(writer)
        self.resets += len(chosen)
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


async def _main(target_port: int, every: float = 0, fraction: float = 0) -> None:
    """As a process of its own (for browsers, benchmarks): SIGUSR1 cuts the network (every
    connection reset, new ones too), SIGUSR2 brings it back; with `every` > 0 it also
    resets `fraction` of the live connections every `every` seconds. SIGTERM stops it
    and prints how many connections it reset."""
    import signal
    import sys

    proxy = await FaultProxy(target_port).start()
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
    sys.stdout.close()


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    asyncio.run(_main(int(args[0]), *(float(x) for x in args[1:3])))
