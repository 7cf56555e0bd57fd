"""The cluster's watchdog: a stream reader or a pub/sub listener that silently stopped is seen,
logged, reported by /readyz, and started again.

A Redis connection can go quiet without failing: a half-open TCP connection
after a network change, a NAT or a proxy that forgot it, a server that
dropped a subscription. Nothing raises; the reader waits forever, the
listener hears nothing, and the process, still alive and serving its own
clients, no longer sees the cluster (python-socketio's Redis manager is known
to stay deaf like this for a day, saying nothing). So: each second, every
listener publishes a beat on its own channel and must hear it, and the
reader, whose blocking read returns at least every 2 s, must have returned.
One that has not within `limit` seconds is logged, makes /readyz fail, and
is restarted on a new connection; it is reported as working again once it
has read or heard something since.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .stream import StreamReader
    from .subscriber import Subscriber

log = logging.getLogger("board.redis")


class Watchdog:
    """Watches `reader` and `listeners` (name -> listener) every `every` s while `reachable()`."""

    def __init__(self, reader: "StreamReader", listeners: dict[str, "Subscriber"], limit: float = 5.0,
                 every: float = 1.0, reachable: Callable[[], bool] = lambda: True):
        self.reader = reader
        self.listeners = listeners
        self.limit = limit
        self.every = every
        self.reachable = reachable
        self.stalled: dict[str, int] = {}  # name -> restarts since it stalled
        self._reads = 0                    # the reader's reads when it was last restarted

    def check(self) -> str | None:
        """For /readyz: None, or what has stalled."""
        return f"stalled: {', '.join(sorted(self.stalled))}" if self.stalled else None

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            if not self.reachable():
                continue  # an outage is reported as one; nothing can be heard meanwhile
            try:
                await self._look(asyncio.get_running_loop().time())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the Redis watchdog failed; it looks again in %.1f s", self.every)
            for listener in self.listeners.values():  # heard by the next look
                try:
                    await asyncio.wait_for(listener.beat(), 2 * self.every)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("a beat was not published: %s", exc)

    async def _look(self, now: float) -> None:
        reader = self.reader
        late = reader.stuck_for(now)
        if late > self.limit:
            self._stalled("stream reader", f"no read has returned for {late + reader.block_ms / 1000:.1f} s")
            self._reads = reader.reads
            await reader.restart()
        elif "stream reader" in self.stalled and reader.reads > self._reads:
            self._works("stream reader")
        for name, listener in self.listeners.items():
            deaf = listener.deaf_for(now)
            if deaf > self.limit:
                self._stalled(name, f"it has heard nothing for {deaf:.1f} s, not even its own beats")
                try:
                    await listener.restart()
                except Exception as exc:
                    log.warning("%s could not listen again yet: %s", name, exc)
            elif name in self.stalled and deaf == 0:
                self._works(name)

    def _stalled(self, name: str, why: str) -> None:
        restarts = self.stalled.get(name)
        self.stalled[name] = (restarts or 0) + 1
        # The part's name is in the template: the log throttle counts each part's lines apart.
        if restarts is None:
            log.error(f"Redis {name} has stalled (%s): this process misses the cluster's traffic; "
                      "/readyz fails until it works again; restarting it on a new connection", why)
        else:
            log.warning(f"Redis {name} still stalled (%s); restarting it again", why)

    def _works(self, name: str) -> None:
        restarts = self.stalled.pop(name)
        log.warning(f"Redis {name} works again (after %d restart(s))", restarts)
