"""The rules of long-polling, once, for both ways of serving it.

`PollingTransport` (a Tornado `RequestHandler`: handshakes, OPTIONS, relayed
sessions, refusals) and `ConnectionPoll` (the same polls answered on the HTTP/1
connection, below `RequestHandler`) decide with these functions, so a GET or
a POST gets the same answer whichever of them reads it: the methods, a
session already on WebSocket, one POST at a time, the body bound before a
byte of it is buffered, one GET at a time, and what a GET gets at once, including
the answer again to a GET our client numbered as one it already sent (a browser's
silent retry: `answer_again`, which the cluster's relay applies too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from tornado.httputil import HTTPHeaders

from ..wire.errors import BAD_REQUEST, UNKNOWN_SID
from .entry import body_too_large

if TYPE_CHECKING:
    from ..engineio.engine import Engine
    from ..engineio.session import Session

METHODS = ("GET", "POST")
MAX_COUNT_DIGITS = 15
BAD_COUNT = "Bad poll count: n must be the number of answers received, in plain digits"


class Refusal(NamedTuple):
    """An answer of Socket.IO's JSON error body: its code, HTTP status and message."""

    code: int
    status: int = 400
    message: str | None = None


def refuse_request(engine: "Engine", session: "Session", method: str, headers: HTTPHeaders) -> Refusal | None:
    """Why a request of an open local session fails at the door, or None; a second POST or an
    announced body over `maxPayload` also closes the session (what a client may not do)."""
    if method not in METHODS:
        return Refusal(BAD_REQUEST, 400, f"{method} is not a method of this endpoint")
    if session.ws is not None:
        return Refusal(BAD_REQUEST, 400, "Session upgraded to WebSocket")
    if method == "POST":
        if session.posting:
            session.close("transport error", notify=False)
            return Refusal(BAD_REQUEST, 400, "Overlapping POST requests")
        if body_too_large(headers, engine.max_payload):
            session.close("transport error", notify=False)
            return Refusal(BAD_REQUEST, 413, "Payload too large")
    return None


def would_refuse(engine: "Engine", session: "Session", method: str, headers: HTTPHeaders) -> bool:
    """True if `refuse_request` would refuse (asked without its effects, at the door of the connection-level path)."""
    if method not in METHODS or session.ws is not None:
        return True
    return method == "POST" and (session.posting or body_too_large(headers, engine.max_payload))


def body_overflow(engine: "Engine", session: "Session", size: int) -> Refusal | None:
    """A POST's body has reached `size` bytes: past `maxPayload` the session closes."""
    if size <= engine.max_payload:
        return None
    session.end_post()
    session.close("transport error", notify=False)
    return Refusal(BAD_REQUEST, 413, "Payload too large")


def receive_post(session: "Session", body: bytes | str, uri: str | None = None) -> Refusal | None:
    """A POST's whole body: the client's packets, or the refusal (the session closed on bad input).
    The same POST again (its query's `t` and its body), a balancer's retry of one whose answer was
    lost, is answered "ok" and not read twice."""
    session.end_post()
    return read_post(session, body, uri)


def read_post(session: "Session", body: bytes | str, uri: str | None = None) -> Refusal | None:
    """`receive_post` but for the end of the POST's reading: one relayed from another process."""
    stamp = stamp_of(uri)
    if stamp is not None and session.engine.repeated_post(session.sid, stamp, body):
        return None
    refused = session.receive_body(body) if isinstance(body, bytes) else session.receive_payload(body)
    return Refusal(BAD_REQUEST, 400, refused) if refused else None


def stamp_of(uri: str | None) -> str | None:
    """The `t` of a request's query: the official clients put a new one on each request."""
    if not uri:
        return None
    for field in uri.partition("?")[2].split("&"):
        if field[:2] == "t=":
            return field[2:]
    return None


def query_count(args: dict[str, list[bytes]]) -> str | None:
    """The `n` of a parsed query (the GET answers our client got), as sent; twice is not a count."""
    n = args.get("n")
    if n is None:
        return None
    return n[0].decode("latin-1") if len(n) == 1 else ","


def answer_again(session: "Session", n: str) -> str | Refusal | None:
    """A GET numbered `n` by its client (our client's count of the answers it got): the last answer
    again if the client never got it (a browser's silent retry of the GET), a refusal of a count
    that is not one, or None: the GET is served as usual."""
    if not (n.isascii() and n.isdigit()) or len(n) > MAX_COUNT_DIGITS:
        return Refusal(BAD_REQUEST, 400, BAD_COUNT)
    return session.answer_again(int(n))


def answer_get(engine: "Engine", session: "Session", n: str | None = None) -> str | Refusal | None:
    """What a GET (numbered `n` by our client, None by others) gets at once: a payload (or the last
    answer of a session that closed as it came), a refusal, or None: it waits, as the session's poller."""
    if session.closed:
        last = engine.last_answer(session.sid)
        return last if last is not None else Refusal(UNKNOWN_SID)
    if n is not None:
        again = answer_again(session, n)
        if again is not None:
            return again
    if session.poller is not None and not session.replace_poller(n is not None):
        session.close("transport error")  # the first GET gets the close packet
        return Refusal(BAD_REQUEST, 400, "Overlapping GET requests")
    return session.poll()
