"""Board's real-time hub: Engine.IO v4 / Socket.IO v5 for Tornado.

`Hub` is what an app mounts (`hub.routes()`); `Engine` is the Engine.IO
layer alone; `protocol` is the pure codec both are built on.
"""

from .engine import Engine
from .broadcast import Broadcast
from .hub import Hub
from .namespace import ConnectionRefused, Namespace
from .sockets import AckTimeout, Disconnected, Socket
from .protocol import ProtocolError

__all__ = [
    "Hub", "Namespace", "Socket", "Broadcast", "Engine",
    "AckTimeout", "Disconnected", "ConnectionRefused", "ProtocolError",
]
