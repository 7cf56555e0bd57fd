// Drives tests/e2e/feature_app.py (Board's Hub) with the official Socket.IO JavaScript client.
//
//   node features.js <scenario> <url> [websocket|polling]
//
// scenario: namespaces | auth | rooms | binary | acks (over the given transport, alone),
//           upgrade (polling then the upgrade to websocket, the client's default)
// Prints one JSON object (what it saw) on stdout and exits 0 when the whole exchange
// happened; on a timeout or an error it prints {"error": ...} and exits 1.
// The pytest side (tests/e2e/test_node_features.py) checks the details.
"use strict";

const { io } = require("socket.io-client");

const [scenario, url, transport] = process.argv.slice(2);
const TOTAL_MS = 20000; // the whole scenario
const TAG = `${scenario}-${process.pid}-${Date.now()}`;

const { harness, STEP_MS } = require("./harness");
const { sockets, seen, fail, waitFor } = harness(scenario, TOTAL_MS);

// A socket on its own connection (forceNew), no reconnection: a test sees every failure.
function open(nsp, opts = {}) {
  const o = { forceNew: true, reconnection: false, timeout: STEP_MS, ...opts };
  if (transport && !o.transports) o.transports = [transport];
  const socket = io(url + nsp.replace(/^\//, ""), o);
  sockets.push(socket);
  return socket;
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

// Bytes as a plain array, for JSON; other values unchanged, recursively.
function plain(x) {
  if (Buffer.isBuffer(x) || x instanceof Uint8Array) return { bytes: Array.from(x) };
  if (x instanceof ArrayBuffer) return { bytes: Array.from(new Uint8Array(x)) };
  if (Array.isArray(x)) return x.map(plain);
  if (x && typeof x === "object") return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]));
  return x;
}

function kind(x) {
  if (Buffer.isBuffer(x)) return "Buffer";
  if (x instanceof ArrayBuffer) return "ArrayBuffer";
  if (x instanceof Uint8Array) return "Uint8Array";
  return typeof x;
}

// ---------------------------------------------------------------------------------------------

async function namespacesScenario() {
  // io(url) and io(url + "admin") without forceNew: one Manager, one Engine.IO connection.
  const opts = { reconnection: false, timeout: STEP_MS, auth: { tag: TAG }, transports: [transport] };
  const main = io(url, opts);
  const admin = io(url + "admin", opts);
  sockets.push(main, admin);
  seen.sameManager = main.io === admin.io;
  await connected(main, "/");
  await connected(admin, "/admin");
  seen.mainWho = await ask(main, "whoami");
  seen.adminWho = await ask(admin, "whoami");
  seen.clientIds = { main: main.id, admin: admin.id };

  const nope = io(url + "nope", opts);
  sockets.push(nope);
  const [err] = await waitFor(nope, "connect_error", "/nope: connect_error");
  seen.unknownError = { message: err.message, data: err.data === undefined ? null : err.data };
  seen.unknownConnected = nope.connected;

  const adminGone = waitFor(admin, "disconnect", "/admin: disconnect");
  admin.disconnect();
  [seen.adminReason] = await adminGone;
  seen.afterWho = await ask(main, "whoami");
  seen.mainConnected = main.connected;
  seen.adminConnected = admin.connected;
  seen.engineOpen = main.io.engine.readyState;
  seen.history = await ask(main, "history", TAG);
}

async function authScenario() {
  const auth = { token: "secret", tag: TAG, extra: { n: 1, list: ["a", null, true] } };
  const ok = await connected(open("/private", { auth }), "/private with the token");
  seen.authEcho = await ask(ok, "auth");
  const mainAuth = { tag: `${TAG}-main`, who: "main" };
  const main = await connected(open("/", { auth: mainAuth }), "/");
  seen.mainAuthEcho = await ask(main, "auth");

  // Refused by the middleware: one connect_error, and no new attempt afterwards.
  const refusedTag = `${TAG}-refused`;
  const refused = open("/private", { auth: { token: "wrong", tag: refusedTag }, reconnection: true,
    reconnectionDelay: 100, reconnectionDelayMax: 200 });
  const errors = [];
  refused.on("connect_error", (e) => errors.push({ message: e.message, data: e.data === undefined ? null : e.data }));
  let reconnectAttempts = 0;
  refused.io.on("reconnect_attempt", () => reconnectAttempts++);
  await waitFor(refused, "connect_error", "refused: connect_error");
  // The absence of a retry can only be watched for a while: ~2 s, 10x the reconnection delay.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  seen.refusedErrors = errors;
  seen.refusedConnected = refused.connected;
  seen.refusedActive = refused.active;
  seen.reconnectAttempts = reconnectAttempts;
  seen.serverAttempts = await ask(ok, "attempts", refusedTag);
  seen.okAttempts = await ask(ok, "attempts", TAG);
}

async function roomsScenario() {
  const room = `room-${TAG}`;
  const names = ["a", "b", "c"];
  const clients = {};
  for (const name of names) {
    const socket = await connected(open("/"), name);
    const got = [];
    socket.on("room-msg", (data) => got.push(data));
    clients[name] = { socket, got };
  }
  const { a, b, c } = clients;
  seen.aRooms = await ask(a.socket, "join", room);
  seen.bRooms = await ask(b.socket, "join", room);

  // Each step ends with a `fence` to everyone, after the room message: once a client has the
  // fence it has all it will ever get of that step (one connection keeps the server's order).
  let step = 0;
  async function send(sender, event, data) {
    const fence = `${TAG}-${++step}`;
    const fenced = names.map((n) => waitFor(clients[n].socket, "fence", `${n}: fence ${fence}`, (f) => f === fence));
    const count = await ask(sender.socket, event, room, data, fence);
    await Promise.all(fenced);
    return count;
  }
  seen.counts = [];
  seen.counts.push(await send(a, "to-room", "m1")); // a and b
  seen.counts.push(await send(a, "to-others", "m2")); // b only: socket.to() leaves out the sender
  seen.counts.push(await send(c, "to-others", "m3")); // a and b: c is not in the room
  seen.bLeft = await ask(b.socket, "leave", room);
  seen.counts.push(await send(a, "to-room", "m4")); // a only
  seen.got = Object.fromEntries(names.map((n) => [n, clients[n].got]));
}

async function binaryScenario() {
  const socket = await connected(open("/"), "/");
  seen.who = await ask(socket, "whoami");
  seen.transport = socket.io.engine.transport.name;

  const u8 = new Uint8Array([1, 2, 3, 250, 0, 255]);
  const ab = new Uint8Array([9, 8, 7]).buffer;
  const big = Buffer.alloc(65536);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
  const reply = await ask(socket, "reverse", { u8, ab, list: [Buffer.from("hi"), "text"], n: 5 });
  seen.reverseAck = plain(reply);
  seen.reverseKinds = [kind(reply.u8), kind(reply.ab), kind(reply.list[0])];
  const bigBack = await ask(socket, "reverse", big);
  seen.bigOk = Buffer.compare(Buffer.from(bigBack), Buffer.from(big).reverse()) === 0;
  seen.bigLength = bigBack.length;

  const reversed = waitFor(socket, "reversed", "the reversed event");
  seen.reverseBackAck = await ask(socket, "reverse-back", [ab, "x", u8]);
  seen.reversedEvent = plain((await reversed)[0]);

  socket.on("give-bytes", (data, ack) => {
    seen.giveBytesKind = kind(data);
    ack(new Uint8Array(Buffer.from(data).reverse()));
  });
  const asked = await ask(socket, "ask-bytes", Buffer.from([10, 20, 30, 40]));
  seen.askBytes = plain(asked);
  seen.finalTransport = socket.io.engine.transport.name;
}

async function acksScenario() {
  const a = await connected(open("/"), "a");

  // Client side timeouts: the server never acknowledges "never-acks".
  const started = Date.now();
  const [err, late] = await new Promise((resolve) => {
    a.timeout(200).emit("never-acks", 1, (...args) => resolve(args));
  });
  seen.timeoutMs = Date.now() - started;
  seen.timeoutError = { isError: err instanceof Error, message: err && err.message, late: late === undefined };
  try {
    await a.timeout(200).emitWithAck("never-acks");
    seen.emitWithAckTimeout = "resolved";
  } catch (e) {
    seen.emitWithAckTimeout = { isError: e instanceof Error, message: e.message };
  }
  seen.emitWithAck = await a.emitWithAck("echo", { x: 1 }, "two");
  seen.emitWithAckTimed = await a.timeout(STEP_MS).emitWithAck("echo", [1, 2, 3]);
  seen.plainAck = await new Promise((resolve) => a.emit("echo", 1, "two", { three: 3 }, (...args) => resolve(args)));

  // Server side: `await socket.call()` gets this client's ack; without a handler it times out.
  a.on("question", (payload, ack) => ack({ answer: payload.n * 2 }));
  seen.callReply = await ask(a, "call-me", { n: 21 }, 3);
  const b = await connected(open("/"), "b"); // no "question" handler: never acknowledges
  const callStarted = Date.now();
  seen.callTimeout = await ask(b, "call-me", { n: 1 }, 0.3);
  seen.callTimeoutMs = Date.now() - callStarted;

  // Broadcast with acks: a and c answer, b stays silent, the replies in time are collected.
  const c = await connected(open("/"), "c");
  const room = `vote-${TAG}`;
  a.on("vote", (r, ack) => ack(`a:${r === room}`));
  c.on("vote", (r, ack) => ack(`c:${r === room}`));
  for (const s of [a, b, c]) await ask(s, "join", room);
  const pollStarted = Date.now();
  seen.pollReplies = await ask(b, "poll", room, 0.5);
  seen.pollMs = Date.now() - pollStarted;
}

// The client's default: open on polling, probe a WebSocket, upgrade. Here the probe's answer
// ("3probe" on the WebSocket) is handled PROBE_DELAY_MS after it arrives, as when the HTTP
// response to the pending GET (the server's noop) overtakes it on the network: the client then
// sends a new GET before it pauses polling, and the upgrade needs the server to answer that
// GET too (Engine.IO v4: noop to the polling requests during the upgrade).
const PROBE_DELAY_MS = 150;

function delayProbeAnswers() {
  const eio = require("engine.io-client");
  const create = eio.Socket.prototype.createTransport;
  eio.Socket.prototype.createTransport = function (name) {
    const transport = create.call(this, name);
    if (name === "websocket" && this.transport) { // a probe, not the first transport
      const onPacket = transport.onPacket;
      transport.onPacket = function (packet) {
        if (packet.type === "pong" && packet.data === "probe") {
          seen.probeAnswered = true;
          setTimeout(() => onPacket.call(this, packet), PROBE_DELAY_MS);
        } else {
          onPacket.call(this, packet);
        }
      };
    }
    return transport;
  };
}

async function upgradeScenario() {
  delayProbeAnswers();
  const socket = io(url, { forceNew: true, reconnection: false, timeout: STEP_MS });
  sockets.push(socket);
  const upgraded = new Promise((resolve) => {
    socket.io.on("open", () => {
      seen.initialTransport = socket.io.engine.transport.name;
      socket.io.engine.on("upgrade", (t) => resolve(t.name));
    });
  });
  await connected(socket, "/");
  const started = Date.now();
  const UPGRADE_MS = 3000;
  let timer;
  seen.upgradedTo = await Promise.race([upgraded, new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), UPGRADE_MS);
  })]);
  clearTimeout(timer);
  seen.upgradeMs = Date.now() - started;
  if (!seen.upgradedTo) {
    throw new Error(`no upgrade within ${UPGRADE_MS} ms of the probe's answer: the client waits for its ` +
      `pending polling GET, which the server holds (still on ${socket.io.engine.transport.name}, ` +
      `upgrading=${socket.io.engine.upgrading})`);
  }
  seen.echo = await ask(socket, "echo", "after the upgrade");
  seen.who = await ask(socket, "whoami");
}

async function main() {
  if (!url) throw new Error("usage: node features.js namespaces|auth|rooms|binary|acks|upgrade URL [websocket|polling]");
  if (scenario !== "upgrade" && !["websocket", "polling"].includes(transport)) {
    throw new Error("the transport (websocket or polling) is required");
  }
  const scenarios = {
    namespaces: namespacesScenario,
    auth: authScenario,
    rooms: roomsScenario,
    binary: binaryScenario,
    acks: acksScenario,
    upgrade: upgradeScenario,
  };
  if (!scenarios[scenario]) throw new Error(`unknown scenario ${scenario}`);
  await scenarios[scenario]();
  for (const s of sockets) s.close();
  process.stdout.write(JSON.stringify(seen) + "\n");
  process.exit(0);
}

main().catch(fail);
