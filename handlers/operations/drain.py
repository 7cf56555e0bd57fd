"""Graceful drain: stop taking sessions, then make each client reconnect elsewhere.

The official clients read a Socket.IO DISCONNECT, or an Engine.IO close
packet, as "the server does not want me back" and stay away. A drain sends
neither: it flushes what is queued, then simply ends the transport (a
WebSocket close frame 1012 "service restart"; on long-polling the waiting GET
is answered and the session forgotten, so the next request gets 400), which
every client takes as a network failure and answers by reconnecting. The
closes are spread over the drain window so that clients do not all come back
at the same instant.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..engineio.engine import Engine
    from ..engineio.session import Session
    from .ops import Ops

log = logging.getLogger("board.drain")

SERVICE_RESTART = 1012  # RFC 6455 close code registered for "service restart"
TICK = 0.05             # seconds between batches of closes
POLL_GRACE = 1.0        # how long a polling session with queued data may wait for its next GET


class Drained(Protocol):
    """What a drain needs of the hub (a layer above): its engine's sessions and its operations."""

    engine: "Engine"
    ops: "Ops"


def close_for_restart(session: "Session") -> None:
    """End the session's transport without a close packet, after flushing its queue."""
    if session.closed:
        return
    session.flush()  # WebSocket: written now; polling: answers the waiting GET
    ws = session.ws
    if ws is not None:
        ws.close_transport(SERVICE_RESTART, "service restart")
    session.close("server restart", notify=False)


async def drain(hub: Drained, seconds: float) -> None:
    """Refuse new sessions at once; close the open ones over `seconds`; return when all are gone."""
    hub.ops.admission.draining = True
    sessions = list(hub.engine.sessions.values())
    log.info("draining %d sessions over %.1f s", len(sessions), seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = len(sessions)
    done = 0
    late: list[tuple[float, "Session"]] = []
    while done < total:
        # Close the share of sessions due by now: evenly spread over the window.
        due = total if seconds <= 0 else min(total, int(total * (loop.time() - start) / seconds) + 1)
        while done < due:
            session = sessions[done]
            done += 1
            if session.ws is None and session.queue and session.poller is None and not session.closed:
                late.append((loop.time() + POLL_GRACE, session))  # let its next GET take the data
            else:
                close_for_restart(session)
        late = _close_late(late, loop.time())
        if done < total:
            await asyncio.sleep(TICK)
    while late:
        await asyncio.sleep(TICK)
        late = _close_late(late, loop.time())
    await asyncio.sleep(TICK)  # let the last close frames and answers leave
    log.info("drained; %d sessions left", len(hub.engine.sessions))


def _close_late(late: list[tuple[float, "Session"]], now: float) -> list[tuple[float, "Session"]]:
    """Closes the deferred polling sessions whose data left, or whose grace ran out."""
    waiting = []
    for deadline, session in late:
        if session.closed:
            continue
        if not session.queue or now >= deadline:
            close_for_restart(session)
        else:
            waiting.append((deadline, session))
    return waiting
