"""Connection state recovery: the log alone, then on the wire with raw clients.

The raw WebSocket client plays what socket.io-client 4.6+ does: it keeps the
`pid` of the CONNECT ack and the offset of the last event, and comes back with
both in its CONNECT auth.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from handlers.operations.logs import reset_log_throttle
from conftest import raw_websocket, until

from handlers.wire.protocol import Outgoing
from handlers.socketio.recovery import Recent, RecoveryLog, Saved

# --------------------------------------------------------------------------- the log, pure


def out(text: str) -> Outgoing:
    return Outgoing([text])


def saved(log: RecoveryLog, pid="p" * 24, sid="s1", rooms=("r",), start=0, recent=None, window=60.0):
    state = Saved(pid, sid, "/", rooms, {"k": 1}, start, recent, time.monotonic() + window)
    log.save(state)
    return state


def test_missed_packets_are_those_of_its_rooms_after_its_offset_in_order():
    log = RecoveryLog(60_000)
    offsets = {}
    for name, include, exclude in [("all", (), ()), ("room r", ("r",), ()), ("room x", ("x",), ()),
                                   ("all but it", (), ("s1",)), ("other ns", (), ())]:
        offsets[name] = log.next_offset()
        namespace = "/other" if name == "other ns" else "/"
        log.append(offsets[name], namespace, frozenset(include), frozenset(exclude), out(name))
    saved(log)
    state, missed = log.restore("/", "p" * 24, log.format(offsets["all"]))
    assert state.sid == "s1" and state.data == {"k": 1}
    assert [o.packets[0] for o in missed] == ["room r"]


def test_own_emits_and_group_emits_merge_in_the_order_they_were_sent():
    log = RecoveryLog(60_000)
    recent = Recent()
    sent = []
    for i in range(6):
        offset = log.next_offset()
        if i % 2:
            recent.add(offset, out(f"own {i}"), 10, 10_000)
        else:
            log.append(offset, "/", frozenset(), frozenset(), out(f"group {i}"))
        sent.append(offset)
    saved(log, recent=recent)
    _, missed = log.restore("/", "p" * 24, log.format(sent[1]))
    assert [o.packets[0] for o in missed] == ["group 2", "own 3", "group 4", "own 5"]


def test_a_socket_that_received_nothing_gets_everything_since_it_connected():
    log = RecoveryLog(60_000)
    before = log.next_offset()
    log.append(before, "/", frozenset(), frozenset(), out("before it came"))
    start = log.offset
    after = log.next_offset()
    log.append(after, "/", frozenset(), frozenset(), out("after"))
    saved(log, start=start)
    _, missed = log.restore("/", "p" * 24, None)
    assert [o.packets[0] for o in missed] == ["after"]


def test_an_offset_older_than_the_socket_replays_nothing_from_before_it():
    log = RecoveryLog(60_000)
    first = log.next_offset()
    log.append(first, "/", frozenset(), frozenset(), out("before it came"))
    saved(log, start=log.offset)
    _, missed = log.restore("/", "p" * 24, "0")
    assert missed == []


@pytest.mark.parametrize("pid, offset, why", [
    ("p" * 24, "x1", "malformed offset"),
    ("p" * 24, "99", "malformed offset"),       # an offset from the future
    ("p" * 24, 7, "malformed offset"),
    ("p" * 24, "²", "malformed offset"),       # a digit to str.isdigit, not to int()
    ("p" * 24, "١", "malformed offset"),       # an Arabic-Indic one: int() would take it
    ("p" * 24, "1\n", "malformed offset"),
    (12, "1", "malformed pid"),
    ("q" * 200, "1", "malformed pid"),
    ("unknown-pid-0000000000", "1", "unknown pid"),
])
def test_bad_pids_and_offsets_are_refused_with_a_log_line(caplog, pid, offset, why):
    log = RecoveryLog(60_000)
    log.append(log.next_offset(), "/", frozenset(), frozenset(), out("a"))
    saved(log)
    with caplog.at_level(logging.INFO, logger="board.recovery"):
        assert log.restore("/", pid, offset) is None
    assert why in caplog.text


def test_past_the_window_or_past_the_log_there_is_nothing_to_recover():
    log = RecoveryLog(60_000, max_packets=3)
    saved(log, pid="late" * 6, window=-1)
    assert log.restore("/", "late" * 6, None) is None
    saved(log, pid="evicted" * 3)
    first = log.next_offset()
    for _ in range(4):
        log.append(log.next_offset(), "/", frozenset(), frozenset(), out("x"))
    assert len(log.entries) == 3 and log.dropped > first
    assert log.restore("/", "evicted" * 3, log.format(first)) is None


def test_the_log_is_bounded_by_bytes_and_expired_states_are_forgotten():
    log = RecoveryLog(60_000, max_bytes=100)
    for _ in range(10):
        log.append(log.next_offset(), "/", frozenset(), frozenset(), out("x" * 30))
    assert log.size <= 100 and len(log.entries) == 3
    saved(log, pid="old" * 8, window=-1)
    saved(log, pid="new" * 8)
    log.expire()
    assert list(log.saved) == ["new" * 8]


def test_a_socket_ring_is_bounded_and_remembers_what_it_dropped():
    recent = Recent()
    for offset in range(1, 8):
        recent.add(offset, out("y" * 10), 5, 40)
    assert [o for o, _ in recent.entries] == [4, 5, 6, 7] and recent.dropped == 3


# --------------------------------------------------------------------------- on the wire

wire = pytest.mark.gen_test(timeout=30)


class RawClient:
    """A raw Socket.IO client over WebSocket that keeps pid and offset as socket.io-client does."""

    def __init__(self, url: str):
        self.url = url
        self.ws = None
        self.pid = None
        self.offset = None
        self.sid = None

    async def connect(self, auth: dict | None = None) -> dict:
        self.ws = await raw_websocket(self.url)
        assert (await self.ws.read_message()).startswith("0{")
        if self.pid:
            auth = {"pid": self.pid, "offset": self.offset, **(auth or {})}
        await self.ws.write_message("40" + (json.dumps(auth) if auth else ""))
        ack = await self.next_packet()
        assert ack.startswith("40"), ack
        data = json.loads(ack[2:])
        self.sid, self.pid = data["sid"], data.get("pid")
        return data

    async def next_packet(self) -> str:
        while True:
            message = await self.ws.read_message()
            assert message is not None, "connection closed"
            if message == "2":
                await self.ws.write_message("3")
                continue
            return message

    async def event(self) -> list:
        packet = await self.next_packet()
        assert packet.startswith("42"), packet
        args = json.loads(packet[2:])
        if self.pid and isinstance(args[-1], str):
            self.offset = args.pop()
        return args

    def drop(self) -> None:
        """The network goes: no close frame, no close packet."""
        self.ws.protocol.stream.close()


@pytest.fixture
def hub_options() -> dict:
    return {"ping_interval": 300, "ping_timeout": 300}


@pytest.fixture
def app(hub):
    import tornado.web

    @hub.on("connection")
    def connected(socket):
        socket.emit("hello", {"recovered": socket.recovered})

    @hub.on("join")
    def join(socket, room):
        socket.join(room)
        socket.data["joined"] = room
        return sorted(socket.rooms - {socket.id})

    @hub.on("data")
    def data(socket):
        return socket.data

    return tornado.web.Application(hub.routes())


@wire
async def test_a_dropped_socket_comes_back_with_its_id_rooms_data_and_what_it_missed(url, hub):
    client = RawClient(url)
    first = await client.connect()
    assert isinstance(first["pid"], str) and len(first["pid"]) >= 20
    assert await client.event() == ["hello", {"recovered": False}]
    await client.ws.write_message('421["join","blue"]')
    assert await client.next_packet() == '431[["blue"]]'
    hub.emit("news", 1)
    assert await client.event() == ["news", 1]
    socket = hub.sockets[client.sid]
    client.drop()
    await until(lambda: not socket.connected)
    hub.emit("news", 2)
    hub.to("blue").emit("blue", "only for blue")
    hub.to("red").emit("red", "not for it")
    hub.emit("news", 3, skip=client.sid)
    hub.emit("news", 4)
    again = await client.connect()
    assert again == first  # same sid, same pid: recovered
    assert [await client.event() for _ in range(3)] == [["news", 2], ["blue", "only for blue"], ["news", 4]]
    assert await client.event() == ["hello", {"recovered": True}]  # then what is new
    restored = hub.sockets[client.sid]
    assert restored.recovered and restored.rooms == {client.sid, "blue"}
    await client.ws.write_message('422["data"]')
    assert await client.next_packet() == '432[{"joined":"blue"}]'
    hub.to("blue").emit("blue", "still in blue")
    assert await client.event() == ["blue", "still in blue"]


@wire
async def test_a_client_back_before_its_old_connection_is_seen_dead_takes_it_over(url, hub):
    client = RawClient(url)
    first = await client.connect()
    await client.event()
    old = client.ws
    hub.emit("news", 1)
    await client.event()
    hub.emit("news", 2)  # sent on the old connection, which the client no longer reads
    again = await client.connect()
    assert again == first
    assert await client.event() == ["news", 2]
    while await old.read_message() is not None:  # the server closed the old connection
        pass
    assert len(hub.engine.sessions) == 1


@wire
async def test_a_socket_own_emits_are_replayed_too(url, hub):
    client = RawClient(url)
    await client.connect()
    await client.event()
    socket = hub.sockets[client.sid]
    client.drop()
    await until(lambda: not socket.connected)
    socket.emit("lost", "while down")   # the socket object is gone: nothing to send
    hub.to(client.sid).emit("private", "to its room while down")
    await client.connect()
    assert await client.event() == ["private", "to its room while down"]


@wire
async def test_unknown_or_malformed_pids_connect_as_new(url, hub, caplog):
    for auth in [{"pid": "nope", "offset": "1"}, {"pid": ["x"], "offset": {}}, {"pid": "x" * 500}]:
        client = RawClient(url)
        with caplog.at_level(logging.INFO, logger="board.recovery"):
            data = await client.connect(auth)
        assert data["pid"] != auth["pid"]
        assert await client.event() == ["hello", {"recovered": False}]
        assert "recovery refused" in caplog.text
        caplog.clear()
        reset_log_throttle()  # a line per refusal here; the same kind within a second is one line (test_logs)


@pytest.mark.parametrize("hub_options", [{"ping_interval": 300, "ping_timeout": 300, "recover_within": 1}])
@wire
async def test_away_longer_than_the_window_connects_as_new(url, hub, hub_options):
    client = RawClient(url)
    first = await client.connect()
    await client.event()
    socket = hub.sockets[client.sid]
    client.drop()
    await until(lambda: not socket.connected)
    await until(lambda: all(s.expires < time.monotonic() for s in hub.adapter.recovery.saved.values()))
    again = await client.connect()
    assert again["sid"] != first["sid"] and again["pid"] != first["pid"]
    assert await client.event() == ["hello", {"recovered": False}]


@wire
async def test_a_deliberate_disconnect_leaves_nothing_to_recover(url, hub):
    client = RawClient(url)
    await client.connect()
    await client.event()
    await client.ws.write_message("41")
    await until(lambda: not hub.sockets)
    assert hub.adapter.recovery.saved == {}


@pytest.mark.parametrize("hub_options", [{"ping_interval": 300, "ping_timeout": 300, "recover_within": 0}])
@wire
async def test_recovery_off_means_no_pid_and_no_offsets(url, hub, hub_options):
    client = RawClient(url)
    assert "pid" not in await client.connect()
    assert await client.event() == ["hello", {"recovered": False}]
    hub.emit("news", 1)
    assert await client.next_packet() == '42["news",1]'


@wire
async def test_the_python_client_gets_no_offsets_its_handlers_see_only_their_arguments(url, hub, clients):
    client = await clients("news").connect(url)
    hub.emit("news", {"n": 1})
    assert await client.next("news") == {"n": 1}  # one argument, not (data, offset)
    assert not hub.sockets[client.client.get_sid()].pid


class RecoveringPythonClient:
    """The official python-socketio client (a Python User-Agent) with recovery added as socket.io-client
    does it: it says so in its CONNECT auth, keeps the pid of the CONNECT answer and the offset that
    ends each event, and comes back with both."""

    def __init__(self):
        import socketio

        owner = self

        class Client(socketio.AsyncClient):
            async def _handle_connect(self, namespace, data):
                if isinstance(data, dict) and data.get("pid"):
                    owner.pid = data["pid"]
                await super()._handle_connect(namespace, data)

        self.sio = Client(reconnection_delay=0.05, reconnection_delay_max=0.1, randomization_factor=0)
        self.pid = self.offset = None
        self.events: list = []
        self.hellos: list = []

        @self.sio.on("news")
        def news(*args):
            *data, self.offset = args
            self.events.append(data)

        @self.sio.on("hello")
        def hello(*args):
            *data, self.offset = args if len(args) > 1 else (*args, self.offset)
            self.hellos.append(data[0])

    def auth(self) -> dict:  # asked at each connect
        return {"recovery": True, **({"pid": self.pid, "offset": self.offset} if self.pid else {})}


@wire
async def test_a_python_client_that_says_it_recovers_gets_recovery_whatever_its_library(url, hub):
    client = RecoveringPythonClient()
    await client.sio.connect(url, transports=["websocket"], auth=client.auth, wait_timeout=5)
    try:
        await until(lambda: client.hellos == [{"recovered": False}])
        assert client.pid  # given a pid, though its User-Agent is Python's
        sid = client.sio.get_sid()
        hub.emit("news", 1)
        await until(lambda: client.events == [[1]])
        session = hub.sockets[sid].client.session
        session.ws.close_transport(1006, "network gone")   # the connection is lost, not closed
        await until(lambda: hub.sockets.get(sid) is None)
        hub.emit("news", 2)                                # missed while it was away
        await until(lambda: client.hellos == [{"recovered": False}, {"recovered": True}], 5)
        await until(lambda: client.events == [[1], [2]])
        assert client.sio.get_sid() == sid                 # itself again: same id, nothing missed
    finally:
        await client.sio.disconnect()


@wire
async def test_a_client_that_says_it_does_not_recover_gets_no_offsets(url, hub):
    client = RawClient(url)
    assert "pid" not in await client.connect({"recovery": False})
    assert await client.event() == ["hello", {"recovered": False}]
    hub.emit("news", 1)
    assert await client.next_packet() == '42["news",1]'
