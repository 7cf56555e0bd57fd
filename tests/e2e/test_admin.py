"""The Socket.IO Admin UI's protocol on /admin: with the official client, then the real UI in Chromium."""

import asyncio
import http.server
import os
import sys
import threading
from functools import partial

import bcrypt
import pytest
import socketio

from conftest import until
from handlers.socketio.admin import instrument

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import NODE_DIR, Board, browser, expect, pages, require, screenshot  # noqa: E402,F401

PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


class AdminClient:
    """The official client on /admin, keeping every event the server sends it."""

    EVENTS = ("session", "config", "all_sockets", "server_stats", "socket_connected", "socket_disconnected",
              "room_joined", "room_left", "event_received", "socket_updated")

    def __init__(self):
        self.client = socketio.AsyncClient(reconnection=False)
        self.queues = {event: asyncio.Queue() for event in self.EVENTS}
        self.refused = asyncio.Queue()
        for event, queue in self.queues.items():
            self.client.on(event, partial(self._put, queue), namespace="/admin")
        self.client.on("connect_error", lambda data=None: self.refused.put_nowait(data), namespace="/admin")

    @staticmethod
    def _put(queue, *args):
        queue.put_nowait(args[0] if len(args) == 1 else args)

    async def next(self, event, timeout=5.0):
        return await asyncio.wait_for(self.queues[event].get(), timeout)

    async def connect(self, url, auth):
        await self.client.connect(url, namespaces=["/admin"], auth=auth, transports=["websocket"], wait_timeout=5)


@pytest.fixture
def admin_clients(io_loop):
    made = []

    def make():
        made.append(AdminClient())
        return made[-1]
    yield make
    for admin in made:
        if admin.client.connected:
            io_loop.run_sync(admin.client.disconnect)


@pytest.mark.gen_test(timeout=30)
async def test_without_instrument_admin_is_an_unknown_namespace(url, admin_clients):
    admin = admin_clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await admin.connect(url, {"username": "admin", "password": PASSWORD})
    assert (await asyncio.wait_for(admin.refused.get(), 5))["message"] == "Invalid namespace"


@pytest.mark.gen_test(timeout=30)
async def test_bad_credentials_are_refused(url, hub, admin_clients):
    instrument(hub, auth={"username": "admin", "password": HASH})
    for auth in ({"username": "admin", "password": "wrong"}, {"username": "root", "password": PASSWORD},
                 {"username": "admin", "password": "x" * 3000}, None, {"sessionId": "guessed"}):
        admin = admin_clients()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await admin.connect(url, auth)
        assert (await asyncio.wait_for(admin.refused.get(), 5))["message"] == "invalid credentials"
    # An auth above max_auth_bytes is refused before it is parsed, as for every namespace.
    admin = admin_clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await admin.connect(url, {"username": "admin", "password": "x" * 5000})
    assert (await asyncio.wait_for(admin.refused.get(), 5))["message"] == "Auth too large"


@pytest.mark.gen_test(timeout=30)
async def test_the_ui_sees_sockets_events_rooms_and_may_act(url, hub, clients, admin_clients):
    instrument(hub, auth={"username": "admin", "password": HASH})
    person = await clients("message").connect(url, transports=["polling"])
    admin = admin_clients()
    await admin.connect(url, {"username": "admin", "password": PASSWORD})
    session_id = await admin.next("session")
    features = (await admin.next("config"))["supportedFeatures"]
    assert {"JOIN", "LEAVE", "DISCONNECT", "MJOIN", "AGGREGATED_EVENTS", "ALL_EVENTS"} <= set(features)
    listed = {s["nsp"]: s for s in await admin.next("all_sockets")}
    board_socket = listed["/"]
    assert board_socket["transport"] == "polling"
    assert board_socket["handshake"]["address"] == "127.0.0.1"
    assert board_socket["rooms"] == [board_socket["id"]]
    stats = await admin.next("server_stats")
    assert stats["clientsCount"] == 2 and stats["pollingClientsCount"] == 1
    assert {"name": "/", "socketsCount": 1} in stats["namespaces"]

    await person.client.call("post", {"name": "Ann", "text": "seen by the admin"}, timeout=3)
    nsp, sid, args, when = await admin.next("event_received")
    assert (nsp, sid, args[0]) == ("/", board_socket["id"], "post") and when.endswith("Z")

    await admin.client.emit("join", ("/", "vip", board_socket["id"]), namespace="/admin")
    assert (await admin.next("room_joined"))[:3] == ("/", "vip", board_socket["id"])
    await until(lambda: "vip" in hub.sockets[board_socket["id"]].rooms)

    newcomer = await clients().connect(url, transports=["websocket"])
    connected, _ = await admin.next("socket_connected")
    while connected["nsp"] == "/admin":  # the UI's own socket is listed too, as with the npm package
        connected, _ = await admin.next("socket_connected")
    assert connected["transport"] == "websocket" and connected["nsp"] == "/"

    await admin.client.emit("_disconnect", ("/", False, "vip"), namespace="/admin")
    assert (await admin.next("socket_disconnected"))[:3] == ("/", board_socket["id"], "server namespace disconnect")
    await asyncio.wait_for(person.disconnected.wait(), 5)
    assert newcomer.client.connected

    # The UI comes back with its session id, without the password.
    again = admin_clients()
    await again.connect(url, {"sessionId": session_id})
    assert "ALL_EVENTS" in (await again.next("config"))["supportedFeatures"]


@pytest.mark.gen_test(timeout=30)
async def test_read_only_ui_may_look_but_not_act(url, hub, clients, admin_clients):
    instrument(hub, auth={"username": "admin", "password": HASH}, readonly=True)
    person = await clients().connect(url, transports=["websocket"])
    admin = admin_clients()
    await admin.connect(url, {"username": "admin", "password": PASSWORD})
    assert (await admin.next("config"))["supportedFeatures"] == ["AGGREGATED_EVENTS", "ALL_EVENTS"]
    before = hub.stats.packets_received
    await admin.client.emit("_disconnect", ("/", True, None), namespace="/admin")
    await until(lambda: hub.stats.packets_received > before)  # the operation arrived...
    assert person.client.connected and len(hub.sockets) == 1  # ... and did nothing (handled as it arrived)


def test_auth_must_be_said():
    from handlers import Hub
    with pytest.raises(ValueError):
        instrument(Hub())
    with pytest.raises(ValueError):
        instrument(Hub(), auth={"username": "admin", "password": "not a hash"})


# --------------------------------------------------------------------------- the real UI


class UIServer:
    """The Admin UI's static files from the npm package, on a loopback port of their own."""

    def __init__(self):
        root = NODE_DIR / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
        if not (root / "index.html").is_file():
            pytest.fail("@socket.io/admin-ui is missing: cd tests/node && npm ci (or run `make test`)",
                        pytrace=False)
        handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
        handler.log_message = lambda *args: None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.browser
@pytest.mark.timeout(90)
def test_the_official_admin_ui_lists_the_boards_sockets(browser, pages, tmp_path, request):  # noqa: F811
    require("node_modules")
    ui = UIServer()
    board = Board(tmp_path / "board.db", name=request.node.name,
                  args=[f"--admin=admin:{HASH}", f"--admin_origin={ui.url}"])
    try:
        board.start()
        modern = pages.open(board.url, "websocket-page")
        old = pages.open(board.url, "polling-page", websocket=False)
        expect(old.locator("#transport")).to_have_text("polling")
        expect(modern.locator("#transport")).to_have_text("websocket")

        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pages.contexts.append(context)
        admin = context.new_page()
        admin.set_default_timeout(15_000)
        admin.goto(ui.url + "/")
        # The connection dialog, filled in as a person would.
        dialog = admin.locator(".v-dialog--active")
        expect(dialog).to_be_visible()
        fields = dialog.locator("input[type=text], input:not([type])")
        fields.first.fill(board.url.rstrip("/"))
        dialog.locator("input[type=password]").fill("wrong password")
        username = dialog.locator("input").nth(1)
        username.fill("admin")
        dialog.locator("button[type=submit]").click()
        expect(dialog).to_contain_text("nvalid credentials")
        screenshot(admin, "admin-ui-refused")

        dialog.locator("input[type=password]").fill(PASSWORD)
        dialog.locator("button[type=submit]").click()
        expect(dialog).to_be_hidden()
        admin.goto(ui.url + "/#/sockets")
        rows = admin.locator("table tbody tr")
        expect(rows).to_have_count(2)  # the two pages' sockets on "/", each with its transport
        expect(rows.filter(has_text="WebSocket")).to_have_count(1)
        expect(rows.filter(has_text="HTTP long-polling")).to_have_count(1)
        screenshot(admin, "admin-ui-sockets")
    finally:
        board.stop()
        ui.stop()
