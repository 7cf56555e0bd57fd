"""A Redis pub/sub listener that outlives Redis restarts: the part the relay and the cluster share."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any


class Subscriber:
    """Listens on `channels` from `start()` to `stop()`, handing each JSON message to `_on_message`.

    A message that does not parse is logged and dropped; a lost connection is
    retried every second, subscribing again.
    """

    log: logging.Logger
    channels: tuple[str, ...] = ()

    def __init__(self, redis: Any):
        self.redis = redis
        self._pubsub: Any = None
        self._task: asyncio.Task | None = None

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
                await self._pubsub.aclose()
            except Exception:
                pass

    def _on_message(self, message: dict) -> None:
        raise NotImplementedError

    async def _listen(self) -> None:
        while True:
            try:
                async for item in self._pubsub.listen():
                    if item.get("type") == "message":
                        try:
                            self._on_message(json.loads(item["data"]))
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
