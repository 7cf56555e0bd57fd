"""Logs an operator can follow: one line per session opened and closed, text or JSON.

`SessionLog` watches the engine and writes who came (sid prefix, client
address, transport) and who left (why, after how long, on which transport).
`JsonFormatter` turns every record into one JSON object per line, with those
fields as keys, for log shippers (`python board.py --log_format=json`).
`LogThrottle` keeps what a client can make the server write bounded: every
line its input can trigger (a bad packet, a refused recovery, a malformed
request, a traceback) is at most one a second per kind, and the next one
says how many were left out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from ..engineio.stats import Watcher

if TYPE_CHECKING:
    from ..engineio.session import Session

log = logging.getLogger("board.sessions")

# The loggers whose lines client input can trigger. The session lines (board.sessions) are one per
# session, as many as the door lets in; Tornado's access lines below WARNING (successful requests)
# are the operator's to keep or not.
THROTTLED_LOGGERS = ("board", "board.hub", "board.engine", "board.recovery", "board.redis", "board.relay",
                     "board.cluster", "board.handoff", "board.drain", "tornado.access", "tornado.general",
                     "tornado.application", "asyncio")
MAX_KINDS = 10_000  # kinds remembered; past it the memory starts afresh

# Fields of `extra=` that the JSON formatter copies into each line.
FIELDS = ("sid", "address", "transport", "reason", "seconds")


class SessionLog(Watcher):
    """One INFO line when a session opens, one when it closes."""

    def __init__(self) -> None:
        self._open: dict[str, list] = {}  # sid -> [address, transport, opened]

    def opened(self, session: "Session", environ: dict) -> None:
        address, transport = environ.get("remote_ip") or "", environ.get("transport", "polling")
        self._open[session.sid] = [address, transport, time.monotonic()]
        if log.isEnabledFor(logging.INFO):
            short = _short(session)
            log.info("session %s opened from %s over %s", short, address, transport,
                     extra={"sid": short, "address": address, "transport": transport})

    def upgraded(self, session: "Session") -> None:
        entry = self._open.get(session.sid)
        if entry is not None:
            entry[1] = "websocket"

    def closed(self, session: "Session", reason: str) -> None:
        entry = self._open.pop(session.sid, None)
        if entry is None or not log.isEnabledFor(logging.INFO):
            return
        address, transport, opened = entry
        seconds = round(time.monotonic() - opened, 3)
        short = _short(session)
        log.info("session %s closed (%s) from %s over %s after %.1f s", short, reason,
                 address, transport, seconds,
                 extra={"sid": short, "address": address, "transport": transport,
                        "reason": reason, "seconds": seconds})


def _short(session: "Session") -> str:
    """A session's id as the logs show it: enough to tell sessions apart, not enough to use one.
    On a cluster the id starts with the process's tag, which the logs add in front."""
    sid = session.sid
    tag = session.engine.sid_prefix
    return (tag + ":" if tag else "") + sid[len(tag):][:8]


class LogThrottle(logging.Filter):
    """At most one line per `every` seconds per kind (logger, level and message template)."""

    def __init__(self, every: float = 1.0, below: int = logging.NOTSET):
        super().__init__()
        self.every = every
        self.below = below  # records under this level pass untouched
        self._last: dict[tuple, float] = {}
        self._unsaid: dict[tuple, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.below:
            return True
        msg = record.msg
        key = (record.name, record.levelno, msg if isinstance(msg, str) else type(msg).__name__)
        now = time.monotonic()
        last = self._last.get(key)
        if getattr(record, "throttle_summary", False):
            return True
        if last is not None and now - last < self.every:
            unsaid = self._unsaid.get(key, 0)
            self._unsaid[key] = unsaid + 1
            if not unsaid:
                self._summarise_later(key, record)
            return False
        if len(self._last) >= MAX_KINDS:
            self._last.clear()
        self._last[key] = now
        unsaid = self._unsaid.pop(key, 0)
        if unsaid and isinstance(msg, str):
            record.msg = msg + f" (and {unsaid} more like it since the last line)"
        return True


    def _summarise_later(self, key: tuple, record: logging.LogRecord) -> None:
        """Say how many lines of a kind were left out when no later line of that kind came to say it
        (a burst of errors that stops is not silenced for good): a full window after it reopened."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a thread without a loop: the next line of the kind says it
            return
        loop.call_later(2 * self.every, self._summarise, key, record.name, record.levelno, self._last.get(key))

    def _summarise(self, key: tuple, name: str, level: int, stamp: float | None) -> None:
        if self._last.get(key) != stamp:
            return  # a line of the kind came since, and said the count (a newer summary is due if needed)
        unsaid = self._unsaid.pop(key, 0)
        if not unsaid:
            return
        self._last[key] = time.monotonic()
        logging.getLogger(name).log(level, "%d more lines like %r were left out", unsaid, str(key[2])[:200],
                                    extra={"throttle_summary": True})


_throttled = False
_filters: list[LogThrottle] = []


def reset_log_throttle() -> None:
    """Forget what was said (tests start each from a quiet log)."""
    for f in _filters:
        f._last.clear()
        f._unsaid.clear()


def throttle_logs() -> None:
    """Install `LogThrottle` on every logger client input can reach (once per process)."""
    global _throttled
    if _throttled:
        return
    _throttled = True
    for name in THROTTLED_LOGGERS:
        below = logging.WARNING if name == "tornado.access" else logging.NOTSET
        throttle = LogThrottle(below=below)
        _filters.append(throttle)
        logging.getLogger(name).addFilter(throttle)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, and the session fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def use_json_logs(logger: logging.Logger | None = None) -> None:
    """Make every handler of `logger` (the root one by default) write JSON lines."""
    logger = logger or logging.getLogger()
    if not logger.handlers:
        logger.addHandler(logging.StreamHandler())
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
