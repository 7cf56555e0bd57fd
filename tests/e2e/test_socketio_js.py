"""Our browser client (static/socket.io.js) in headless Chromium against Board's Hub, feature by feature.

The server is tests/e2e/feature_app.py (one per module): a blank page that loads
/socket.io/socket.io.js, and the hub's features behind events. Each test opens a fresh
browser context and runs one scenario in the page (page.evaluate), over WebSocket or, with
window.WebSocket deleted as in an old browser, over long-polling; what the client saw and
what the server says it saw are then checked here.
"""

import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import FeatureApp, browser, pages  # noqa: E402,F401

pytestmark = [pytest.mark.browser, pytest.mark.timeout(30)]

TRANSPORTS = ["websocket", "polling"]

# Helpers for the scenarios, put in the page once it has loaded our client.
PRELUDE = r"""
window.T = (() => {
  const STEP_MS = 5000;

  // Resolves with the arguments of the first `event` for which test(...args) holds.
  function waitFor(emitter, event, what, test = () => true, ms = STEP_MS) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        emitter.off(event, handler);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      function handler(...args) {
        if (!test(...args)) return;
        clearTimeout(timer);
        emitter.off(event, handler);
        resolve(args);
      }
      emitter.on(event, handler);
    });
  }

  async function connected(socket, what) {
    if (socket.connected) return socket;
    const errors = [];
    const onError = (err) => errors.push(err.message);
    socket.on("connect_error", onError);
    try {
      await waitFor(socket, "connect", `${what}: connect`);
    } catch (e) {
      throw new Error(`${e.message} (connect_error: ${JSON.stringify(errors)})`);
    } finally {
      socket.off("connect_error", onError);
    }
    return socket;
  }

  function ask(socket, event, ...args) {
    return socket.timeout(STEP_MS).emitWithAck(event, ...args);
  }

  function kind(x) {
    if (x instanceof ArrayBuffer) return "ArrayBuffer";
    if (x instanceof Uint8Array) return "Uint8Array";
    if (x instanceof Blob) return "Blob";
    return x === null ? "null" : typeof x;
  }

  // Binary values as {bytes: [...]} (JSON can carry them back to the test); Blobs are read.
  async function plain(x) {
    if (x instanceof Blob) x = await x.arrayBuffer();
    if (x instanceof ArrayBuffer) return { bytes: Array.from(new Uint8Array(x)) };
    if (ArrayBuffer.isView(x)) return { bytes: Array.from(new Uint8Array(x.buffer, x.byteOffset, x.byteLength)) };
    if (Array.isArray(x)) return Promise.all(x.map(plain));
    if (x && typeof x === "object") {
      const out = {};
      for (const k of Object.keys(x)) out[k] = await plain(x[k]);
      return out;
    }
    return x;
  }

  const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Runs a scenario: what it saw, plus {error} when it threw, so a failure shows how far it got.
  async function run(scenario, arg) {
    const seen = {};
    const sockets = [];
    const open = (uri, opts) => {
      const s = io(uri, opts);
      sockets.push(s);
      return s;
    };
    try {
      await scenario({ seen, open, arg });
    } catch (e) {
      seen.error = String((e && e.stack) || e);
    } finally {
      for (const s of sockets) s.disconnect();
    }
    return seen;
  }

  return { waitFor, connected, ask, kind, plain, delay, run, STEP_MS };
})();
"""


@pytest.fixture(scope="module")
def app():
    with FeatureApp(name="socketio-js-features") as running:
        yield running


@pytest.fixture
def open_page(app, pages):
    """Opens the blank test page; websocket=False deletes window.WebSocket (an old browser)."""

    def open_(transport="websocket", label="page"):
        page = pages.open(app.url, label, websocket=(transport == "websocket"), wait_connected=False)
        page.wait_for_function("typeof window.io === 'function'")
        page.add_script_tag(content=PRELUDE)
        return page

    return open_


def scenario(page, body, arg=None):
    """Runs `body` (JS: the body of an async function of {seen, open, arg}) in the page."""
    seen = page.evaluate(
        "async (arg) => T.run(async ({seen, open, arg}) => {\n" + body + "\n}, arg)", arg
    )
    assert "error" not in seen, f"the scenario failed in the page: {seen['error']}\nit saw: {seen}"
    return seen


def tag():
    return uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- 1. namespaces


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_namespaces_share_the_page_connection(open_page, transport):
    # What the server sees when the page closes its Engine.IO connection.
    drop_reason = {"websocket": "transport close", "polling": "transport close"}
    page = open_page(transport)
    seen = scenario(page, """
        const opts = { auth: { tag: arg.tag }, reconnectionDelay: 100, reconnectionDelayMax: 300 };
        const main = await T.connected(open("/", opts), "/");
        const admin = await T.connected(open("/admin", opts), "/admin");
        seen.sameManager = main.io === admin.io;
        seen.mainWho = await T.ask(main, "whoami");
        seen.adminWho = await T.ask(admin, "whoami");
        seen.ids = { main: main.id, admin: admin.id };
        seen.transport = main.transport;

        const nope = open("/nope", opts);
        const [err] = await T.waitFor(nope, "connect_error", "/nope: connect_error");
        seen.unknownError = { isError: err instanceof Error, message: err.message, data: err.data === undefined ? null : err.data };
        seen.unknownConnected = nope.connected;
        seen.unknownSameManager = nope.io === main.io;

        // The connection drops: both namespaces come back together, on one new session, and
        // an emit made on /admin meanwhile is delivered.
        const back = Promise.all([T.waitFor(main, "connect", "/: reconnect"), T.waitFor(admin, "connect", "/admin: reconnect")]);
        const dropped = T.waitFor(main, "disconnect", "/: disconnect");
        main.io.engine.close();
        await dropped;
        const adminAck = T.ask(admin, "echo", "sent while down");
        await back;
        seen.adminAckWhileDown = await adminAck;
        seen.mainWho2 = await T.ask(main, "whoami");
        seen.adminWho2 = await T.ask(admin, "whoami");

        const gone = T.waitFor(admin, "disconnect", "/admin: disconnect");
        admin.disconnect();
        [seen.adminReason] = await gone;
        seen.afterWho = await T.ask(main, "whoami");
        seen.mainConnected = main.connected;
        seen.adminConnected = admin.connected;
        seen.history = await T.ask(main, "history", arg.tag);
    """, {"tag": tag()})
    main, admin = seen["mainWho"], seen["adminWho"]
    assert seen["sameManager"] is True
    # One Engine.IO session on the server, two sockets on it.
    assert main["engine"] == admin["engine"], seen
    assert main["id"] != admin["id"]
    assert seen["ids"] == {"main": main["id"], "admin": admin["id"]}
    assert main["namespaces"] == ["/", "/admin"] == admin["namespaces"]
    assert main["transport"] == transport == seen["transport"]
    assert seen["unknownError"] == {"isError": True, "message": "Invalid namespace", "data": None}
    assert seen["unknownConnected"] is False and seen["unknownSameManager"] is True
    # Leaving /admin: / stays connected, on the same session.
    # After the drop: a new session, still one for both namespaces.
    assert seen["adminAckWhileDown"] == "sent while down"
    main2, admin2 = seen["mainWho2"], seen["adminWho2"]
    assert main2["engine"] == admin2["engine"] != main["engine"], seen
    assert main2["namespaces"] == ["/", "/admin"]
    # Leaving /admin: / stays connected, on the same session.
    assert seen["adminReason"] == "io client disconnect"
    assert seen["afterWho"]["engine"] == main2["engine"] and seen["afterWho"]["id"] == main2["id"]
    assert seen["afterWho"]["namespaces"] == ["/"]
    assert seen["mainConnected"] is True and seen["adminConnected"] is False
    history = seen["history"]
    assert history[:2] == [["/", "connect"], ["/admin", "connect"]], history
    assert sorted(map(tuple, history[2:6])) == sorted(
        [("/", "connect"), ("/admin", "connect"), ("/", drop_reason[transport]), ("/admin", drop_reason[transport])]
    ), history
    assert history[6:] == [["/admin", "client namespace disconnect"]], history


# --------------------------------------------------------------------------- 2. auth, middleware


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_auth_and_a_refusing_middleware(open_page, transport):
    page = open_page(transport)
    seen = scenario(page, """
        const auth = { token: "secret", tag: arg.tag, extra: { n: 1, list: ["a", null, true] } };
        const ok = await T.connected(open("/private", { forceNew: true, auth }), "/private with the token");
        seen.authEcho = await T.ask(ok, "auth");
        seen.okAttempts = await T.ask(ok, "attempts", arg.tag);
        // auth as a function, called at each connection attempt.
        const main = await T.connected(open("/", { forceNew: true, auth: (cb) => cb({ who: "fn", tag: arg.tag + "-fn" }) }), "/");
        seen.fnAuthEcho = await T.ask(main, "auth");

        const refusedTag = arg.tag + "-refused";
        const refused = open("/private", { forceNew: true, auth: { token: "wrong", tag: refusedTag },
                                           reconnectionDelay: 100, reconnectionDelayMax: 200 });
        const errors = [];
        refused.on("connect_error", (e) => errors.push({ isError: e instanceof Error, message: e.message, data: e.data === undefined ? null : e.data }));
        let attempts = 0;
        refused.io.on("reconnect_attempt", () => attempts++);
        await T.waitFor(refused, "connect_error", "refused: connect_error");
        // A retry can only be watched for: ~2 s, 10x the reconnection delay.
        await T.delay(2000);
        seen.refusedErrors = errors;
        seen.refusedConnected = refused.connected;
        seen.refusedActive = refused.active;
        seen.reconnectAttempts = attempts;
        seen.serverAttempts = await T.ask(ok, "attempts", refusedTag);
    """, {"tag": tag()})
    assert seen["authEcho"]["token"] == "secret"
    assert seen["authEcho"]["extra"] == {"n": 1, "list": ["a", None, True]}
    assert seen["okAttempts"] == 1
    assert seen["fnAuthEcho"]["who"] == "fn"
    assert seen["refusedErrors"] == [
        {"isError": True, "message": "Not authorized", "data": {"hint": "send auth {token: 'secret'}"}}
    ]
    assert seen["refusedConnected"] is False and seen["refusedActive"] is False
    assert seen["reconnectAttempts"] == 0
    assert seen["serverAttempts"] == 1, "the refused client tried to connect again"


# --------------------------------------------------------------------------- 3. rooms


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rooms(open_page, transport):
    page = open_page(transport)
    seen = scenario(page, """
        const room = "room-" + arg.tag;
        const names = ["a", "b", "c"];
        const clients = {};
        for (const name of names) {
          const socket = await T.connected(open("/", { forceNew: true }), name);
          const got = [];
          socket.on("room-msg", (data) => got.push(data));
          clients[name] = { socket, got };
        }
        const { a, b, c } = clients;
        seen.aRooms = await T.ask(a.socket, "join", room);
        seen.bRooms = await T.ask(b.socket, "join", room);
        // Each step ends with a `fence` to everyone, sent after the room message: a client that
        // has the fence has all it will ever get of that step.
        let step = 0;
        async function send(sender, event, data) {
          const fence = arg.tag + "-" + (++step);
          const fenced = names.map((n) => T.waitFor(clients[n].socket, "fence", n + ": fence " + fence, (f) => f === fence));
          const count = await T.ask(sender.socket, event, room, data, fence);
          await Promise.all(fenced);
          return count;
        }
        seen.counts = [];
        seen.counts.push(await send(a, "to-room", "m1"));
        seen.counts.push(await send(a, "to-others", "m2"));
        seen.counts.push(await send(c, "to-others", "m3"));
        seen.bLeft = await T.ask(b.socket, "leave", room);
        seen.counts.push(await send(a, "to-room", "m4"));
        seen.got = { a: a.got, b: b.got, c: c.got };
        seen.transports = names.map((n) => clients[n].socket.transport);
    """, {"tag": tag()})
    room = seen["aRooms"][0]
    assert seen["aRooms"] == seen["bRooms"] == [room]
    assert seen["bLeft"] == []
    # m1 to the room (a, b); m2 socket.to(room) from a (b only); m3 socket.to(room) from c,
    # not a member (a, b); m4 to the room once b left (a only); c, never in it, gets nothing.
    assert seen["counts"] == [2, 1, 2, 1]
    assert seen["got"] == {"a": ["m1", "m3", "m4"], "b": ["m1", "m2", "m3"], "c": []}
    assert seen["transports"] == [transport] * 3


# --------------------------------------------------------------------------- 4. binary


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_binary_both_ways(open_page, transport):
    page = open_page(transport)
    seen = scenario(page, """
        const s = await T.connected(open("/", { forceNew: true }), "/");
        seen.transport = s.transport;
        seen.who = await T.ask(s, "whoami");
        const u8 = new Uint8Array([1, 2, 3, 250, 0, 255]);
        const ab = new Uint8Array([9, 8, 7]).buffer;
        const blob = new Blob([new Uint8Array([5, 6, 7, 8])]);
        const view = new Uint8Array([0, 1, 2, 3, 4, 5]).subarray(2, 5);   // a view into a larger buffer
        const reply = await T.ask(s, "reverse", { u8, ab, blob, view, list: [new Blob(["hi"]), "text"], n: 5 });
        seen.reverseKinds = [T.kind(reply.u8), T.kind(reply.ab), T.kind(reply.blob), T.kind(reply.list[0])];
        seen.reverseAck = await T.plain(reply);

        const big = new Uint8Array(65536);
        for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
        const bigBack = new Uint8Array(await T.ask(s, "reverse", big));
        seen.bigLength = bigBack.length;
        seen.bigOk = bigBack.every((v, i) => v === big[big.length - 1 - i]);

        const reversed = T.waitFor(s, "reversed", "the reversed event");
        seen.reverseBackAck = await T.ask(s, "reverse-back", [ab, "x", blob]);
        const [event] = await reversed;
        seen.reversedKinds = event.map(T.kind);
        seen.reversedEvent = await T.plain(event);

        // The server's socket.call() gets bytes back in the ack: a Blob, then an ArrayBuffer.
        let ackWith = "blob";
        seen.giveBytesKinds = [];
        s.on("give-bytes", (data, ack) => {
          seen.giveBytesKinds.push(T.kind(data));
          const rev = new Uint8Array(data).slice().reverse();
          ack(ackWith === "blob" ? new Blob([rev]) : rev.buffer);
        });
        seen.askBlob = await T.plain(await T.ask(s, "ask-bytes", new Uint8Array([10, 20, 30, 40])));
        ackWith = "arraybuffer";
        seen.askArrayBuffer = await T.plain(await T.ask(s, "ask-bytes", new Uint8Array([1, 2])));

        // A Blob is read asynchronously: emits keep their order all the same.
        const t = "order-" + Math.random().toString(36).slice(2);
        s.emit("record", t, new Blob([new Uint8Array(70000)]));
        s.emit("record", t, "after the blob");
        s.emit("record", t, new Uint8Array([1]));
        seen.order = (await T.ask(s, "records", t)).map(T.kind);
        seen.finalTransport = s.transport;
    """)
    assert seen["transport"] == seen["finalTransport"] == seen["who"]["transport"] == transport
    assert seen["reverseAck"] == {
        "u8": {"bytes": [255, 0, 250, 3, 2, 1]},
        "ab": {"bytes": [7, 8, 9]},
        "blob": {"bytes": [8, 7, 6, 5]},
        "view": {"bytes": [4, 3, 2]},
        "list": [{"bytes": list(b"ih")}, "text"],
        "n": 5,
    }
    # What the client receives is an ArrayBuffer (binaryType "arraybuffer"), on both transports.
    assert seen["reverseKinds"] == ["ArrayBuffer"] * 4
    assert seen["bigLength"] == 65536 and seen["bigOk"] is True
    assert seen["reverseBackAck"] == "sent"
    assert seen["reversedKinds"] == ["ArrayBuffer", "string", "ArrayBuffer"]
    assert seen["reversedEvent"] == [{"bytes": [7, 8, 9]}, "x", {"bytes": [8, 7, 6, 5]}]
    assert seen["giveBytesKinds"] == ["ArrayBuffer", "ArrayBuffer"]
    assert seen["askBlob"] == {"reply": {"bytes": [40, 30, 20, 10]}, "type": "bytes", "matches": True}
    assert seen["askArrayBuffer"] == {"reply": {"bytes": [2, 1]}, "type": "bytes", "matches": True}
    assert seen["order"] == ["ArrayBuffer", "string", "ArrayBuffer"]


# --------------------------------------------------------------------------- 5. acks


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_acks_and_timeouts_both_ways(open_page, transport):
    page = open_page(transport)
    seen = scenario(page, """
        const a = await T.connected(open("/", { forceNew: true }), "a");
        // Client side timeouts: the server never acknowledges "never-acks".
        let started = Date.now();
        const [err, late] = await new Promise((resolve) => a.timeout(200).emit("never-acks", 1, (...args) => resolve(args)));
        seen.timeoutMs = Date.now() - started;
        seen.timeoutError = { isError: err instanceof Error, message: err && err.message, late: late === undefined };
        try {
          await a.timeout(200).emitWithAck("never-acks");
          seen.emitWithAckTimeout = "resolved";
        } catch (e) {
          seen.emitWithAckTimeout = { isError: e instanceof Error, message: e.message };
        }
        seen.emitWithAck = await a.emitWithAck("echo", { x: 1 }, "two");
        seen.emitWithAckTimed = await a.timeout(T.STEP_MS).emitWithAck("echo", [1, 2, 3]);
        seen.plainAck = await new Promise((resolve) => a.emit("echo", 1, "two", { three: 3 }, (...args) => resolve(args)));
        seen.timedAck = await new Promise((resolve) => a.timeout(T.STEP_MS).emit("echo", "x", (...args) => resolve(args)));

        // Server side: `await socket.call()` gets this client's ack; without a handler, AckTimeout.
        a.on("question", (payload, ack) => ack({ answer: payload.n * 2 }));
        seen.callReply = await T.ask(a, "call-me", { n: 21 }, 3);
        const b = await T.connected(open("/", { forceNew: true }), "b");
        started = Date.now();
        seen.callTimeout = await T.ask(b, "call-me", { n: 1 }, 0.3);
        seen.callTimeoutMs = Date.now() - started;

        // Broadcast with acks (hub.call): a and c answer, b is silent.
        const c = await T.connected(open("/", { forceNew: true }), "c");
        const room = "vote-" + arg.tag;
        a.on("vote", (r, ack) => ack("a:" + (r === room)));
        c.on("vote", (r, ack) => ack("c:" + (r === room)));
        for (const s of [a, b, c]) await T.ask(s, "join", room);
        started = Date.now();
        seen.pollReplies = await T.ask(b, "poll", room, 0.5);
        seen.pollMs = Date.now() - started;
    """, {"tag": tag()})
    assert seen["timeoutError"] == {"isError": True, "message": "operation has timed out", "late": True}
    assert 190 <= seen["timeoutMs"] < 2000, seen["timeoutMs"]
    assert seen["emitWithAckTimeout"] == {"isError": True, "message": "operation has timed out"}
    assert seen["emitWithAck"] == {"x": 1}
    assert seen["emitWithAckTimed"] == [1, 2, 3]
    assert seen["plainAck"] == [1, "two", {"three": 3}]
    assert seen["timedAck"] == [None, "x"]   # with a timeout, the first argument is the error
    assert seen["callReply"] == {"reply": {"answer": 42}}
    assert seen["callTimeout"] == {"timeout": True}
    assert 290 <= seen["callTimeoutMs"] < 3000
    assert seen["pollReplies"] == ["a:true", "c:true"]
    assert 490 <= seen["pollMs"] < 3000


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_retries_resend_until_acked_one_at_a_time_in_order(open_page, transport):
    page = open_page(transport)
    seen = scenario(page, """
        const a = await T.connected(open("/", { forceNew: true, retries: 3, ackTimeout: 2000,
                                               reconnectionDelay: 50, reconnectionDelayMax: 100 }), "a");
        const ids = []; // [n, the packet's ack id] of every try, as it goes to the wire
        const packet = a.io._packet.bind(a.io);
        a.io._packet = (p) => { if (p.type === 2 && p.data[0] === "flaky") ids.push([p.data[2], p.id]); packet(p); };
        // The server drops the connection on the first try of 2 and the first two of 3: each is resent
        // on the new connection, and the next emit waits for the one before it.
        seen.acks = await Promise.all([[1, 0], [2, 1], [3, 2]].map(([n, drops]) =>
            new Promise((resolve) => a.emit("flaky", arg.tag, n, drops, (...args) => resolve(args)))));
        seen.records = await a.emitWithAck("records", arg.tag);
        seen.tries = ids;
        // Past its retries, the callback gets the error: "never-acks" is never acknowledged.
        const started = Date.now();
        const [err] = await new Promise((resolve) => a.timeout(200).emit("never-acks", (...args) => resolve(args)));
        seen.gaveUp = { message: err && err.message, ms: Date.now() - started };
        seen.after = await a.emitWithAck("echo", "still in order");
        // Emits wait in the queue while disconnected, at most maxBufferedPackets: the oldest gives up.
        const c = open("/", { forceNew: true, retries: 1, autoConnect: false, maxBufferedPackets: 2 });
        const queued = [1, 2, 3].map((n) => new Promise((resolve) => c.emit("echo", n, (...args) => resolve(args))));
        c.connect();
        seen.queued = (await Promise.all(queued)).map(([err, value]) => err ? err.message : value);
    """, {"tag": tag()})
    assert seen["acks"] == [[None, 10], [None, 20], [None, 30]]
    assert seen["records"] == [1, 2, 2, 3, 3, 3]  # one in flight at a time: in order
    # Every try of an emit carries the same ack id, and each emit its own.
    assert [n for n, _ in seen["tries"]] == [1, 2, 2, 3, 3, 3]
    assert len({(n, ack_id) for n, ack_id in seen["tries"]}) == len({ack_id for _, ack_id in seen["tries"]}) == 3
    assert seen["gaveUp"]["message"] == "operation has timed out"
    assert 4 * 200 <= seen["gaveUp"]["ms"] < 4000  # 1 try + 3 retries
    assert seen["after"] == "still in order"
    assert seen["queued"] == ["send buffer overflow", 2, 3]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_once_events_run_once_per_emit_and_a_retry_gets_the_stored_ack(open_page, transport):
    page = open_page(transport)
    seen = scenario(page, """
        const a = await T.connected(open("/", { forceNew: true, retries: 5, ackTimeout: 1500,
                                               reconnectionDelay: 50, reconnectionDelayMax: 100 }), "a");
        const first = a.id;
        let tries = 0;
        a.onAnyOutgoing((event) => { if (event.startsWith("once-")) tries++; });
        // 1 and 3: the handler runs, then the connection is lost before its ack; the page
        // reconnects (recovered: the same socket id) and sends them again with the same ack id.
        seen.acks = await Promise.all([[1, true], [2, false], [3, true]].map(([n, drop]) =>
            new Promise((resolve) => a.emit("once-drop", arg.tag, n, drop, (...args) => resolve(args)))));
        seen.sameSocket = a.id === first && a.recovered;
        // 4's handler takes longer than the ack timeout: the retry waits for it and gets its ack.
        seen.slow = await new Promise((resolve) => a.emit("once-slow", arg.tag, 4, 2500, (...args) => resolve(args)));
        seen.tries = tries;
        seen.records = await a.emitWithAck("records", arg.tag);
        // Two emits of the same data are two emits: each runs.
        const b = await T.connected(open("/", { forceNew: true }), "b");
        seen.twice = [await b.emitWithAck("once-drop", arg.tag, 5, false),
                      await b.emitWithAck("once-drop", arg.tag, 5, false)];
        seen.recordsAfter = await b.emitWithAck("records", arg.tag);
    """, {"tag": tag()})
    assert seen["acks"] == [[None, 10], [None, 20], [None, 30]]
    assert seen["slow"] == [None, 40]
    assert seen["sameSocket"] is True
    assert seen["tries"] >= 6  # 1 and 3 twice, 2 once, 4 at least twice
    assert seen["records"] == [1, 2, 3, 4]  # each handler ran once
    assert seen["twice"] == [50, 50]
    assert seen["recordsAfter"] == [1, 2, 3, 4, 5, 5]


# --------------------------------------------------------------------------- 6. the client's API


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_listeners_once_off_onany(open_page, transport):
    page = open_page(transport)
    seen = scenario(page, """
        const s = await T.connected(open("/", { forceNew: true }), "/");
        const any = [], onceGot = [], onGot = [], offGot = [], other = [];
        const anyFn = (event, ...args) => any.push([event, ...args]);
        s.onAny(anyFn);
        s.once("tick", (n) => onceGot.push(n));
        const onFn = (n) => onGot.push(n);
        s.on("tick", onFn);
        const offFn = (n) => offGot.push(n);
        s.on("tick", offFn);
        s.off("tick", offFn);
        s.on("tock", (n) => other.push(n));
        seen.first = await T.ask(s, "emit-twice", "tick");     // its ack comes after both ticks
        seen.afterFirst = { once: onceGot.slice(), on: onGot.slice(), off: offGot.slice(), any: any.slice() };
        seen.listenersAfterOnce = s.listeners("tick").length;

        s.off("tick");                                          // every listener of "tick"
        await T.ask(s, "emit-twice", "tick");
        seen.hasTickListeners = s.hasListeners("tick");
        seen.afterOffAll = { on: onGot.slice(), any: any.length };

        s.offAny(anyFn);
        await T.ask(s, "emit-twice", "tock");
        seen.afterOffAny = { any: any.length, tock: other.slice() };
        seen.listenersAny = s.listenersAny().length;
    """)
    assert seen["first"] == "done"
    assert seen["afterFirst"] == {
        "once": [1],
        "on": [1, 2],
        "off": [],
        "any": [["tick", 1], ["tick", 2]],
    }
    assert seen["listenersAfterOnce"] == 1
    assert seen["hasTickListeners"] is False
    assert seen["afterOffAll"] == {"on": [1, 2], "any": 4}
    assert seen["afterOffAny"] == {"any": 4, "tock": [1, 2]}
    assert seen["listenersAny"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_disconnect_connect_and_emits_while_disconnected(open_page, transport):
    page = open_page(transport)
    seen = scenario(page, """
        const t = arg.tag;
        const opts = { forceNew: true, auth: { tag: t }, reconnectionDelay: 100, reconnectionDelayMax: 300 };
        const s = await T.connected(open("/", opts), "/");
        const reasons = [];
        s.on("disconnect", (reason) => reasons.push(reason));
        let connects = 0;
        s.on("connect", () => connects++);
        const who = [await T.ask(s, "whoami")];

        // 1. disconnect() by the page, emits while down, connect() again.
        s.disconnect();
        seen.afterDisconnect = { connected: s.connected, active: s.active, engine: s.io.engine.readyState };
        s.emit("record", t, 1);
        const ackWhileDown = new Promise((resolve) => s.emit("echo", "buffered", (x) => resolve(x)));
        s.emit("record", t, 2);
        s.connect();
        await T.connected(s, "connect() again");
        seen.ackWhileDown = await ackWhileDown;
        who.push(await T.ask(s, "whoami"));
        seen.records1 = await T.ask(s, "records", t);

        // 2. The transport drops under the page (engine closed): automatic reconnection.
        const dropped = T.waitFor(s, "disconnect", "disconnect after the engine closed");
        s.io.engine.close();
        await dropped;
        s.emit("record", t, 3);
        s.emit("record", t, 4);
        await T.waitFor(s, "connect", "reconnection after the engine closed");
        who.push(await T.ask(s, "whoami"));
        seen.records2 = await T.ask(s, "records", t);

        // 3. The server drops the whole connection (socket.disconnect(close=True)).
        const kicked = T.waitFor(s, "disconnect", "disconnect by the server");
        s.emit("bye");
        await kicked;
        const ack5 = new Promise((resolve) => s.emit("record", t, 5, resolve));
        await T.waitFor(s, "connect", "reconnection after the server closed");
        seen.ack5 = await ack5;
        who.push(await T.ask(s, "whoami"));
        seen.records3 = await T.ask(s, "records", t);

        // 4. The server lets the socket go (socket.disconnect()): it stays down until connect().
        const let_go = T.waitFor(s, "disconnect", "disconnect by the server, namespace only");
        s.emit("kick");
        await let_go;
        seen.afterKick = { connected: s.connected, active: s.active };
        s.emit("record", t, 6);
        s.connect();
        await T.connected(s, "connect() after the server's disconnect");
        seen.records4 = await T.ask(s, "records", t);

        seen.reasons = reasons.slice();   // a copy: the clean-up disconnects it once more
        seen.connects = connects;
        seen.engines = who.map((w) => w.engine);
        seen.transports = who.map((w) => w.transport);
        seen.history = await T.ask(s, "history", t);
        seen.connected = s.connected;
    """, {"tag": tag()})
    assert seen["afterDisconnect"] == {"connected": False, "active": False, "engine": "closed"}
    assert seen["ackWhileDown"] == "buffered"
    # Emits made while disconnected are sent once connected again, each once, in order.
    assert seen["records1"] == [1, 2]
    assert seen["records2"] == [1, 2, 3, 4]
    assert seen["records3"] == [1, 2, 3, 4, 5]
    assert seen["ack5"] == 5
    assert seen["reasons"][0] == "io client disconnect"
    assert seen["reasons"][1] in {"forced close", "transport close"}, seen["reasons"]
    assert seen["reasons"][2] in {"transport close", "transport error"}, seen["reasons"]
    assert seen["reasons"][3] == "io server disconnect"
    assert seen["afterKick"] == {"connected": False, "active": False}
    assert seen["records4"] == [1, 2, 3, 4, 5, 6]
    assert len(seen["reasons"]) == 4 and seen["connects"] == 4
    # Each connection is a new Engine.IO session, on the same transport.
    assert len(set(seen["engines"])) == 4, seen["engines"]
    assert seen["transports"] == [transport] * 4
    history = seen["history"]
    assert [h for h in history if h[1] == "connect"] == [["/", "connect"]] * 5, history
    assert history[1] == ["/", "client namespace disconnect"], history
    assert history[5] == ["/", "forced close"], history
    assert history[7] == ["/", "server namespace disconnect"], history
    assert len(history) == 9, history
    assert seen["connected"] is True
