"""The server side of the official Socket.IO Admin UI (`@socket.io/admin-ui`).

`instrument(hub, auth=...)` opens the `/admin` namespace and speaks the
UI's protocol as the npm package's `instrument()` does: `config` (the
features: development mode's lets the UI list sockets), `server_stats` every
two seconds, `all_sockets` with transport, handshake and rooms, the life of
every socket and room, the event log, and the `join` / `leave` /
`_disconnect` / `emit` operations unless read-only. Credentials are checked
against a bcrypt hash off the event loop; a wrong one gets `invalid
credentials`, which the UI shows. Without `instrument`, `/admin` is an
unknown namespace like any other.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
import socket as _socket
import time
from collections import OrderedDict
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

from .namespace import ConnectionRefused, Namespace
from ..engineio.stats import Watcher

if TYPE_CHECKING:
    from .hub import Hub
    from ..engineio.session import Session
    from .sockets import Socket

STATS_INTERVAL = 2.0    # seconds between server_stats, as the npm package
MAX_ADMIN_SESSIONS = 1000
MAX_PENDING_CHECKS = 4  # bcrypt checks at once; more attempts are refused outright
OPERATIONS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(value: Any, depth: int = 0) -> Any:
    """`value` as JSON can carry it (the app's socket.data may hold anything)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth < 4 and isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in list(value.items())[:100]}
    if depth < 4 and isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in list(value)[:100]]
    return repr(value)[:200]


class Admin(Watcher):
    """The `/admin` namespace of one hub, for the Admin UI."""

    def __init__(self, hub: "Hub", auth: dict | bool, readonly: bool, mode: str, namespace: str,
                 server_id: str | None):
        self.hub = hub
        self.readonly = readonly
        self.development = mode == "development"
        self.features = ([] if readonly else list(OPERATIONS)) + ["AGGREGATED_EVENTS"]
        if self.development:
            self.features.append("ALL_EVENTS")
        self.nsp = hub.of(namespace)
        self.hostname = _socket.gethostname()
        self.server_id = server_id or self.hostname
        self.started = time.monotonic()
        self.sessions: OrderedDict[str, None] = OrderedDict()  # session ids the UI may reconnect with
        self._checks = 0
        self._timer: asyncio.TimerHandle | None = None
        self._last: dict[str, Any] = {}
        if auth is not False:
            import bcrypt  # only when basic auth is asked for

            self.bcrypt = bcrypt
            self.username = str(auth["username"])
            self.password_hash = str(auth["password"]).encode()
            try:
                bcrypt.checkpw(b"", self.password_hash)
            except ValueError as exc:
                raise ValueError("the admin password must be a valid bcrypt hash") from exc
            self.nsp.use(self.authenticate)
        self.nsp.on("connection", self.admin_connected)
        if self.development:
            for nsp in list(hub.namespaces.values()):
                self.watch(nsp)
            hub.ops.watch_with(self)
            hub.engine.watchers.append(self)

    # -- authentication --------------------------------------------------

    async def authenticate(self, socket: "Socket", auth: Any) -> None:
        auth = auth if isinstance(auth, dict) else {}
        session_id = auth.get("sessionId")
        if isinstance(session_id, str) and session_id in self.sessions:
            return
        username, password = auth.get("username"), auth.get("password")
        if (isinstance(username, str) and isinstance(password, str) and len(password) <= 1024
                and self._checks < MAX_PENDING_CHECKS
                and hmac.compare_digest(username.encode(), self.username.encode())):
            self._checks += 1
            try:
                ok = await asyncio.get_running_loop().run_in_executor(None, self._check, password)
            finally:
                self._checks -= 1
            if ok:
                session_id = secrets.token_hex(8)
                self.sessions[session_id] = None
                while len(self.sessions) > MAX_ADMIN_SESSIONS:
                    self.sessions.popitem(last=False)
                socket.data["_admin_session"] = session_id
                return
        raise ConnectionRefused("invalid credentials")

    def _check(self, password: str) -> bool:
        try:
            return self.bcrypt.checkpw(password.encode(), self.password_hash)
        except ValueError:  # e.g. longer than bcrypt takes
            return False

    # -- the UI's own sockets --------------------------------------------

    def admin_connected(self, socket: "Socket") -> None:
        session_id = socket.data.pop("_admin_session", None)
        if session_id is not None:
            socket.emit("session", session_id)
        if not self.readonly:
            socket.on("emit", self.op_emit)
            socket.on("join", self.op_join)
            socket.on("leave", self.op_leave)
            socket.on("_disconnect", self.op_disconnect)
        socket.emit("config", {"supportedFeatures": self.features})
        if self.development:
            socket.emit("all_sockets", [self.serialize(s) for nsp in list(self.hub.namespaces.values())
                                        for s in list(nsp.sockets.values())])
        self.emit_stats()

    def _targets(self, nsp: Any, filter: Any) -> Iterable["Socket"]:
        namespace = self.hub.namespaces.get(nsp) if isinstance(nsp, str) else None  # never create one
        if namespace is None:
            return []
        if isinstance(filter, str) and filter:
            return namespace.to(filter).sockets()
        return list(namespace.sockets.values())

    def op_emit(self, nsp: Any = None, filter: Any = None, event: Any = None, *args: Any) -> None:
        namespace = self.hub.namespaces.get(nsp) if isinstance(nsp, str) else None
        if namespace is not None and isinstance(event, str):
            namespace.emit(event, *args, to=filter if isinstance(filter, str) and filter else None)

    def op_join(self, nsp: Any = None, room: Any = None, filter: Any = None) -> None:
        if isinstance(room, str):
            for socket in self._targets(nsp, filter):
                try:
                    socket.join(room)
                except RuntimeError:
                    pass  # that socket is in too many rooms already

    def op_leave(self, nsp: Any = None, room: Any = None, filter: Any = None) -> None:
        if isinstance(room, str):
            for socket in self._targets(nsp, filter):
                socket.leave(room)

    def op_disconnect(self, nsp: Any = None, close: Any = False, filter: Any = None) -> None:
        for socket in list(self._targets(nsp, filter)):
            socket.disconnect(close=bool(close))

    # -- what the UI is told ---------------------------------------------

    def serialize(self, socket: "Socket") -> dict:
        environ = socket.handshake
        headers = environ.get("headers")
        query = environ.get("query") or {}
        issued = environ.get("time") or time.time()
        data = socket._data or {}
        return {
            "id": socket.id,
            "clientId": socket.client.session.sid[:12],
            "transport": socket.transport,
            "nsp": socket.namespace.name,
            "data": plain({k: v for k, v in data.items() if not k.startswith("_admin")}),
            "handshake": {
                "address": environ.get("remote_ip"),
                "headers": {k.lower(): v for k, v in headers.get_all()} if headers is not None else {},
                "query": {k: v[-1].decode("utf-8", "replace") for k, v in query.items() if v},
                "issued": int(issued * 1000),
                "secure": bool(environ.get("secure")),
                "time": datetime.fromtimestamp(issued, timezone.utc).strftime("%a %b %d %Y %H:%M:%S GMT%z"),
                "url": environ.get("url", ""),
                "xdomain": bool(headers is not None and headers.get("Origin")),
            },
            "rooms": sorted(socket.rooms),
        }

    def watch(self, nsp: Namespace) -> None:
        """Report the sockets of `nsp` coming and going (call it for namespaces made later)."""
        nsp.on("connection", lambda socket: self.nsp.emit("socket_connected", self.serialize(socket), now_iso()))
        nsp.on("disconnect", lambda socket, reason: self.nsp.emit(
            "socket_disconnected", socket.namespace.name, socket.id, reason, now_iso()))

    def event_received(self, socket: "Socket", args: list) -> None:
        if socket.namespace is not self.nsp and self.nsp.sockets:
            self.nsp.emit("event_received", socket.namespace.name, socket.id, args, now_iso())

    def room_joined(self, socket: "Socket", room: str) -> None:
        if self.nsp.sockets:
            self.nsp.emit("room_joined", socket.namespace.name, room, socket.id, now_iso())

    def room_left(self, socket: "Socket", room: str) -> None:
        if self.nsp.sockets:
            self.nsp.emit("room_left", socket.namespace.name, room, socket.id, now_iso())

    def upgraded(self, session: "Session") -> None:
        client = session.context
        if client is not None and self.nsp.sockets:
            for socket in list(client.sockets.values()):
                self.nsp.emit("socket_updated", {"id": socket.id, "nsp": socket.namespace.name,
                                                 "transport": "websocket"})

    def emit_stats(self) -> None:
        """server_stats now, then every STATS_INTERVAL while a UI is connected."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.nsp.sockets:
            return
        engine = self.hub.engine
        stats = engine.stats
        current = {"rawConnection": sum(stats.handshakes.values()), "packetsIn": stats.packets_received,
                   "packetsOut": stats.packets_sent, **{f"rawDisconnection;{r}": n
                                                        for r, n in stats.disconnects.items()}}
        stamp = int(time.time()) * 1000
        events = []
        for key, value in current.items() if self._last else ():  # counts since the last stats
            delta = value - self._last.get(key, 0)
            if delta > 0:
                kind, _, sub = key.partition(";")
                events.append({"timestamp": stamp, "type": kind, "subType": sub or None, "count": delta})
        self._last = current
        self.nsp.emit("server_stats", {
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.started, 1),
            "clientsCount": len(engine.sessions),
            "pollingClientsCount": sum(1 for s in engine.sessions.values() if s.ws is None),
            "aggregatedEvents": events,
            "namespaces": [{"name": n.name, "socketsCount": len(n.sockets)} for n in self.hub.namespaces.values()],
        })
        self._timer = asyncio.get_running_loop().call_later(STATS_INTERVAL, self.emit_stats)


def instrument(hub: "Hub", *, auth: dict | bool | None = None, readonly: bool = False,
               mode: str = "development", namespace: str = "/admin", origins: Iterable[str] = (),
               server_id: str | None = None) -> Admin:
    """Serve the Admin UI's protocol on `namespace` of `hub`.

    `auth` is {"username": ..., "password": <bcrypt hash>}, or False to turn
    authentication off (it must be said). `origins` are where the UI is served
    from (https://admin.socket.io for the hosted one): allowed cross-origin.
    `mode` "development" lists sockets and logs events; "production" only counts.
    """
    if auth is None:
        raise ValueError("auth must be given: {'username': ..., 'password': <bcrypt hash>}, or False")
    hub.engine.extra_origins.update(origins)
    return Admin(hub, auth, readonly, mode, namespace, server_id)


__all__ = ["Admin", "instrument"]
