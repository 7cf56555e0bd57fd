"""How many arguments a handler takes: a client decides how many it sends.

In JavaScript a function called with too many or too few arguments runs;
in Python it raises `TypeError` before the handler's first line. A client
sending `["post", data, extra]` would otherwise make the hub log a traceback
and never answer the ack, for every such packet. The hub asks here first,
once per handler (the answer is kept: handlers are the app's, not the
client's, so the table stays small).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

_TAKES: dict[Any, tuple[int, float]] = {}

POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def takes(handler: Callable[..., Any], count: int) -> bool:
    """True if `handler` can be called with `count` positional arguments."""
    try:
        low, high = _TAKES[handler]
    except KeyError:
        low, high = _TAKES[handler] = _range(handler)
    except TypeError:  # an unhashable callable: ask each time
        low, high = _range(handler)
    return low <= count <= high


def describe(handler: Callable[..., Any]) -> str:
    """'2', '1 to 3' or '1 or more': what the handler takes, for a log line."""
    low, high = _range(handler)
    if high == math.inf:
        return f"{low} or more"
    return str(low) if low == high else f"{low} to {int(high)}"


def _range(handler: Callable[..., Any]) -> tuple[int, float]:
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # a builtin without a signature: let it decide
        return 0, math.inf
    low, high = 0, 0.0
    for parameter in signature.parameters.values():
        if parameter.kind in POSITIONAL:
            high += 1
            if parameter.default is parameter.empty:
                low += 1
        elif parameter.kind == inspect.Parameter.VAR_POSITIONAL:
            high = math.inf
    return low, high
