"""Engine.IO's HTTP errors: the codes and messages of Socket.IO's JSON body for a refused request.

Their own module so that the transports, the engine and the routes all depend on it and on
nothing of each other's.
"""

from __future__ import annotations

import json

# Socket.IO's error codes for the HTTP 400 JSON body.
UNKNOWN_TRANSPORT, UNKNOWN_SID, BAD_HANDSHAKE_METHOD, BAD_REQUEST, FORBIDDEN, UNSUPPORTED_PROTOCOL_VERSION = range(6)
ERROR_MESSAGES = {
    UNKNOWN_TRANSPORT: "Transport unknown",
    UNKNOWN_SID: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    FORBIDDEN: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


def error_body(code: int, message: str | None = None) -> str:
    """The JSON body of a refused request: `{"code": …, "message": …}`."""
    return json.dumps({"code": code, "message": message or ERROR_MESSAGES[code]})
