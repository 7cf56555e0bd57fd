"""Board's real-time hub: Engine.IO v4 / Socket.IO v5 for Tornado. Everything an app needs is here.

    from handlers import Hub

    hub = Hub()                                   # Hub(limits=False) for a load test
    app = tornado.web.Application(hub.routes() + hub.ops.routes() + [...])
    hub.server(app).listen(8888)                  # the fast way; app.listen(8888) works too

The layers below, each importing only the ones under it (tests/unit/test_layers.py):
`wire` (the pure codecs), `engineio` (sessions, heartbeat), `operations`
(limits, connections, logs, metrics, drain), `transports` (long-polling and
WebSocket), `socketio` (hub, namespaces, sockets, adapter, recovery, Admin UI), `cluster`
(the Redis adapter). An app imports from here; the subpackages are the
implementation.
"""

from .cluster.redis_adapter import RedisAdapter
from .engineio.engine import Engine
from .operations.drain import drain
from .operations.limits import Limits
from .operations.logs import use_json_logs
from .operations.ops import tune_gc
from .socketio.admin import instrument
from .socketio.broadcast import Broadcast
from .socketio.files import STATIC_DIR, TEMPLATE_DIR
from .socketio.hub import Hub
from .socketio.namespace import ConnectionRefused, Namespace
from .socketio.sockets import AckTimeout, Disconnected, Socket
from .transports.routing import engine_routes
from .transports.server import engine_server
from .wire.protocol import ProtocolError

__all__ = [
    # the hub and what an app handles
    "Hub", "Namespace", "Socket", "Broadcast", "Limits",
    "AckTimeout", "Disconnected", "ConnectionRefused", "ProtocolError",
    # running it: a cluster, the Admin UI, drain, logs, the collector, the browser files
    "RedisAdapter", "instrument", "drain", "use_json_logs", "tune_gc", "STATIC_DIR", "TEMPLATE_DIR",
    # the Engine.IO layer alone, and serving an engine without a hub
    "Engine", "engine_routes", "engine_server",
]
