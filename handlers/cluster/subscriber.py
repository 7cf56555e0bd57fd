"""A Redis pub/sub listener that outlives Redis restarts and says when it has gone deaf: the
part the relay and the cluster share."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

BEAT = b'{"op":"beat"}'  # published on a listener's own channel: it must hear it


class Subscriber:
    """Listens on `channels` from `start()` to `stop()`, handing each JSON message to `_on_message`.

    A message that does not parse is logged and dropped; a lost connection is
    retried every second, subscribing again. A connection can also go quiet
    without failing (a half-open TCP connection, a NAT that forgot it): the
    cluster's watchdog publishes a `beat()` on the last channel, the listener's
    own, and a listener that has heard nothing since a beat for a while
    (`deaf_for`) is `restart`ed on a new connection.
    """

    log: logging.Logger
    channels: tuple[str, ...] = ()

    def __init__(self, redis: Any):
        self.redis = redis
        self._pubsub: Any = None
        self._task: asyncio.Task | None = None
        self._unheard_since: float | None = None  # a beat went out then, and nothing was heard since

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub()
        await self._pubsub.subscribe(*self.channels)
        self._task = asyncio.ensure_future(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pubsub is not None:
            try:
                await asyncio.wait_for(self._pubsub.aclose(), 2)
            except Exception:
                pass

    async def restart(self) -> None:
        """Listen again on a new connection (the old one is dropped, whatever it was doing)."""
        await Subscriber.stop(self)
        self._unheard_since = None
        await asyncio.wait_for(Subscriber.start(self), 5)

    # -- is it still listening? -------------------------------------------------

    async def beat(self) -> None:
        """Publish a beat this listener should hear: see `deaf_for`."""
        before = self._unheard_since
        if before is None:
            self._unheard_since = asyncio.get_running_loop().time()
        try:
            await self.redis.publish(self.channels[-1], BEAT)
        except BaseException:
            self._unheard_since = before  # not sent: nothing to hear
            raise

    def deaf_for(self, now: float) -> float:
        """Seconds since a beat was published that this listener has not heard (nor anything else)."""
        return 0.0 if self._unheard_since is None else now - self._unheard_since

    # -- listening ----------------------------------------------------------------

    def _on_message(self, message: dict) -> None:
        raise NotImplementedError

    async def _listen(self) -> None:
        while True:
            try:
                async for item in self._pubsub.listen():
                    if item.get("type") == "message":
                        self._unheard_since = None
                        data = item["data"]
                        if data == BEAT:
                            continue
                        try:
                            self._on_message(json.loads(data))
                        except Exception:
                            self.log.exception("a message that does not parse was dropped")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.warning("listening failed (%s); again in 1 s", exc)
                await asyncio.sleep(1)
                try:
                    await self._pubsub.subscribe(*self.channels)
                except Exception:
                    pass
