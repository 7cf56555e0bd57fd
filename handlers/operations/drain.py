"""Graceful drain: stop taking sessions, hand the long-polling ones to a process that stays, then
make each remaining client reconnect elsewhere.

On a cluster, each long-polling session is first handed to another live process
(the cluster's relay, handlers/cluster/moves.py): its next GET, wherever it lands,
carries on with the same sid, the same sockets and nothing missed, so even a
client without connection state recovery loses nothing. WebSocket sessions (their
TCP connection ends with the process) and polling sessions no process took are
closed as follows.

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
HAND_OVER_BATCH = 200   # polling sessions handed over at once


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
    """Refuse new sessions at once; on a cluster hand the polling ones over while the rest close
    over `seconds`; return when all are gone."""
    hub.ops.admission.draining = True
    engine = hub.engine
    # On a cluster the long-polling sessions are the hand-over's; those no process takes are
    # closed as the rest, once it ends. Both go on at once: a slow hand-over delays no close.
    moving = asyncio.ensure_future(hand_over(engine, seconds)) if engine.relay is not None else None
    sessions = [s for s in engine.sessions.values() if moving is None or s.ws is not None]
    log.info("draining %d sessions over %.1f s", len(engine.sessions), seconds)
    loop = asyncio.get_running_loop()
    start = loop.time()
    done = 0
    late: list[tuple[float, "Session"]] = []
    while True:
        if moving is not None and moving.done():
            moving = None
            taken = set(sessions)
            sessions += [s for s in list(engine.sessions.values()) if s not in taken]
        total = len(sessions)
        if done >= total and moving is None:
            break
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
        await asyncio.sleep(TICK)
    while late:
        await asyncio.sleep(TICK)
        late = _close_late(late, loop.time())
    await asyncio.sleep(TICK)  # let the last close frames and answers leave
    log.info("drained; %d sessions left", len(engine.sessions))


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


async def hand_over(engine: "Engine", seconds: float) -> int:
    """Hand every long-polling session to another live process, within `seconds` (at least 2);
    how many moved. One with something half-done (a POST being read, an answer in transit) waits
    for its turn; each moves as soon as it can, whatever the others' hand-overs wait for."""
    relay = engine.relay
    try:
        peers = await relay.draining(seconds)
    except Exception as exc:
        log.warning("long-polling sessions not handed over (%s): their clients reconnect", exc)
        return 0
    pending = [s for s in engine.sessions.values() if s.ws is None]
    if not pending:
        return 0
    if not peers:
        log.warning("no other process to hand %d long-polling sessions to: their clients reconnect", len(pending))
        return 0
    deadline = asyncio.get_running_loop().time() + max(seconds, 2.0)
    relay.leaving = True  # what is queued waits for the move, rather than hold a session here in transit
    try:
        moved, pending = await _hand_over_all(engine, pending, peers, deadline)
    finally:
        relay.leaving = False
        for session in list(engine.sessions.values()):
            if session.queue and not session.closed:
                session.flush()  # those that stay get what waited for the move
    log.info("%d long-polling sessions handed to %s%s", moved, ", ".join(peers),
             f"; {len(pending)} could not be in time" if pending else "")
    return moved


async def _hand_over_all(engine: "Engine", pending: list["Session"], peers: list[str],
                         deadline: float) -> tuple[int, list["Session"]]:
    """Each session moves as soon as it can, until `deadline`: (how many moved, those left)."""
    relay = engine.relay
    loop = asyncio.get_running_loop()
    moving: set[asyncio.Future] = set()
    moved = 0
    while True:
        later = []
        for session in pending:
            if session.closed or session.ws is not None or engine.sessions.get(session.sid) is not session:
                continue
            if relay.can_hand_over(session) and len(moving) < HAND_OVER_BATCH:
                moving.add(asyncio.ensure_future(relay.hand_over(session, peers)))
            else:
                later.append(session)
        pending = later
        if not pending or loop.time() >= deadline:
            break
        if moving:
            finished, moving = await asyncio.wait(moving, timeout=TICK)
            moved += _moved(finished)
        else:
            await asyncio.sleep(TICK)
    if moving:  # each bounded by its own timeout
        finished, _ = await asyncio.wait(moving)
        moved += _moved(finished)
    return moved, pending


def _moved(finished: set[asyncio.Future]) -> int:
    """How many of these hand-overs moved their session (one that failed is logged)."""
    count = 0
    for f in finished:
        if f.cancelled():
            continue
        if f.exception() is not None:
            log.warning("a hand-over failed: %r", f.exception())
        elif f.result() is True:
            count += 1
    return count
