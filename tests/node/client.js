// Drives the board with the official Socket.IO JavaScript client (socket.io-client 4.x).
//
//   node client.js <scenario> <url>
//
// scenario: default | websocket | polling | malformed
// Prints one JSON object (what it saw) on stdout and exits 0 when the whole
// exchange happened; on a timeout or an error it prints {"error": ...} and exits 1.
// The pytest side (tests/e2e/test_node_client.py) checks the details.
"use strict";

const { io } = require("socket.io-client");

const [scenario, url] = process.argv.slice(2);
const TOTAL_MS = 25000; // the whole scenario
const TRANSPORTS = {
  default: undefined, // the client's own default: polling, then upgrade to websocket
  websocket: ["websocket"],
  polling: ["polling"],
};

const { harness, STEP_MS } = require("./harness");
const { sockets, seen, fail, waitFor: waitForArgs } = harness(scenario, TOTAL_MS);

// Resolves with the first argument of the first `event` for which `test(...args)` holds.
function waitFor(emitter, event, what, test = () => true) {
  return waitForArgs(emitter, event, what, test).then((args) => args[0]);
}

// Connects a client and records everything the board sends it from the first packet on.
function connect(label, transports) {
  const opts = { forceNew: true, reconnection: false, timeout: STEP_MS };
  if (transports) opts.transports = transports;
  const socket = io(url, opts);
  sockets.push(socket);
  const log = { label, privates: [], news: [], messages: [], history: null, openTransport: null, upgrades: [] };
  // The Manager emits "open" once the Engine.IO connection is open: its transport is the first one.
  let upgraded;
  log.upgraded = new Promise((resolve) => { upgraded = resolve; });
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    log.openTransport = engine.transport.name;
    engine.on("upgrade", (transport) => {
      log.upgrades.push(transport.name);
      upgraded(transport.name);
    });
  });
  socket.on("private", (data) => {
    log.privates.push(data);
    socket.emit("private", { msg: "Thank you for your message" });
  });
  socket.on("news", (data) => log.news.push(data));
  socket.on("message", (data) => log.messages.push(data));
  socket.on("history", (data) => { log.history = data; });
  socket.on("connect_error", (err) => fail(`${label}: connect_error: ${err.message}`));
  const ready = Promise.all([
    waitFor(socket, "connect", `${label}: connect`),
    waitFor(socket, "private", `${label}: the welcome "private" event`),
  ]);
  return { socket, log, ready };
}

// Resolves with the `message` broadcast carrying `id` (whether it came already or comes later).
function messageWithId(client, id) {
  const got = client.log.messages.find((m) => m && m.id === id);
  if (got) return Promise.resolve(got);
  return waitFor(client.socket, "message", `${client.log.label}: message id ${id}`, (m) => m && m.id === id);
}

async function transportScenario(mode) {
  const tag = `${mode}-${process.pid}-${Date.now()}`;
  const a = connect("a", TRANSPORTS[mode]);
  await a.ready;
  seen.initialTransport = a.log.openTransport;
  seen.welcome = a.log.privates[0];
  seen.historyIsArray = Array.isArray(a.log.history);
  if (mode === "default") {
    // The default client opens on polling and then probes and upgrades to websocket.
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(
        `a: no upgrade within ${STEP_MS} ms (still on ${a.socket.io.engine.transport.name})`)), STEP_MS);
    });
    await Promise.race([a.log.upgraded, late]);
    clearTimeout(timer);
  }
  seen.upgrades = a.log.upgrades;

  const b = connect("b", undefined);
  await b.ready;
  seen.bWelcome = b.log.privates[0];

  const ackA = await a.socket.timeout(STEP_MS).emitWithAck("post", { name: `node ${mode}`, text: `from a ${tag}` });
  seen.ackA = ackA;
  if (!ackA || ackA.ok !== true) throw new Error(`a: post ack was ${JSON.stringify(ackA)}`);
  seen.bGotA = await messageWithId(b, ackA.id);
  seen.aGotOwn = await messageWithId(a, ackA.id);

  const ackB = await b.socket.timeout(STEP_MS).emitWithAck("post", { name: "node other", text: `from b ${tag}` });
  seen.ackB = ackB;
  if (!ackB || ackB.ok !== true) throw new Error(`b: post ack was ${JSON.stringify(ackB)}`);
  seen.aGotB = await messageWithId(a, ackB.id);

  seen.invalidAck = await a.socket.timeout(STEP_MS).emitWithAck("post", { name: "   ", text: "no name" });
  seen.finalTransport = a.socket.io.engine.transport.name;
  // The board coalesces news (at most one each half second): b's arrival may still be on its way.
  if (!a.log.news.some((n) => n && n.count === 2)) {
    await waitFor(a.socket, "news", "a: news that b arrived", (n) => n && n.count === 2);
  }
  seen.aNews = a.log.news;
  seen.aMessageIds = a.log.messages.map((m) => m.id);
}

async function malformedScenario() {
  const tag = `malformed-${process.pid}-${Date.now()}`;
  const good = connect("good", ["websocket"]);
  await good.ready;
  const goodSawArrival = waitFor(good.socket, "news", "good: news that bad arrived", (n) => n && n.count === 2);
  const bad = connect("bad", ["websocket"]);
  await bad.ready;
  await goodSawArrival;  // news is coalesced: the leave below is then news of its own
  const badGone = waitFor(bad.socket, "disconnect", "bad: to be disconnected by the board");
  const goodSawLeave = waitFor(good.socket, "news", "good: news that someone went home",
    (n) => n && /went home/.test(n.msg));
  // An Engine.IO message whose Socket.IO payload is not valid (JSON cut short).
  bad.socket.io.engine.write('42["post",{"name":"bad","text":');
  seen.badDisconnectReason = await badGone;
  seen.goodNews = await goodSawLeave;
  const ack = await good.socket.timeout(STEP_MS).emitWithAck("post", { name: "node good", text: `still here ${tag}` });
  seen.goodAck = ack;
  if (!ack || ack.ok !== true) throw new Error(`good: post ack was ${JSON.stringify(ack)}`);
  seen.goodMessage = await messageWithId(good, ack.id);
  seen.goodConnected = good.socket.connected;
}

async function main() {
  if (!url) throw new Error("usage: node client.js default|websocket|polling|malformed URL");
  if (scenario === "malformed") await malformedScenario();
  else if (scenario in TRANSPORTS) await transportScenario(scenario);
  else throw new Error(`unknown scenario ${scenario}`);
  for (const s of sockets) s.close();
  process.stdout.write(JSON.stringify(seen) + "\n");
  process.exit(0);
}

main().catch(fail);
