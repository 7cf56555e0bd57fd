"""Logs an operator can follow: one line per session opened and closed, text or JSON.

`SessionLog` watches the engine and writes who came (sid prefix, client
address, transport) and who left (why, after how long, on which transport).
`JsonFormatter` turns every record into one JSON object per line, with those
fields as keys, for log shippers (`python board.py --log_format=json`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from ..engineio.stats import Watcher

if TYPE_CHECKING:
    from ..engineio.session import Session

log = logging.getLogger("board.sessions")

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
            log.info("session %s opened from %s over %s", session.sid[:8], address, transport,
                     extra={"sid": session.sid[:8], "address": address, "transport": transport})

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
        log.info("session %s closed (%s) from %s over %s after %.1f s", session.sid[:8], reason,
                 address, transport, seconds,
                 extra={"sid": session.sid[:8], "address": address, "transport": transport,
                        "reason": reason, "seconds": seconds})


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
