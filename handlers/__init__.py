"""Board's real-time hub: Engine.IO v4 / Socket.IO v5 for Tornado.

`Hub` is what an app mounts (`hub.routes()`); `Engine` is the Engine.IO
layer alone; `protocol` is the pure codec both are built on.
"""

from .engineio.engine import Engine
from .socketio.broadcast import Broadcast
from .socketio.files import STATIC_DIR, TEMPLATE_DIR
from .socketio.hub import Hub
from .socketio.namespace import ConnectionRefused, Namespace
from .socketio.sockets import AckTimeout, Disconnected, Socket
from .transports.routing import engine_routes
from .wire.protocol import ProtocolError

__all__ = [
    "Hub", "Namespace", "Socket", "Broadcast", "Engine", "engine_routes",
    "AckTimeout", "Disconnected", "ConnectionRefused", "ProtocolError", "STATIC_DIR", "TEMPLATE_DIR",
]
