// Many official socket.io-client sockets that reconnect by themselves, counting "tick" events.
//
//   node recovery.js <url> <default|websocket|polling> <clients> <ticks> [deadline ms] [event]
//
// Prints {"ready": true} once every client is connected, then, when every client
// has received tick number <ticks> (or at the deadline), one JSON summary: per
// client the ticks received (numbers 1..<ticks>: the data of <event>, "tick" by default, or its `id`), duplicates, ticks out of order, connects and how many
// of them recovered the session, the ticks missing (up to 50 of them), the longest time it was disconnected and
// the longest silence between two ticks (ms), and the engine's sid prefix of each connection. The pytest side (or bench/) drives the ticks and
// the network faults and judges the summary.
"use strict";

const { io } = require("socket.io-client");

const [url, mode, clientsArg, ticksArg, deadlineArg, eventArg] = process.argv.slice(2);
const EVENT = eventArg || "tick";
const CLIENTS = Number(clientsArg);
const TICKS = Number(ticksArg);
const DEADLINE_MS = Number(deadlineArg || 60000);
const TRANSPORTS = { default: undefined, websocket: ["websocket"], polling: ["polling"] }[mode];

const clients = [];
let readySent = false;

function summary(reason) {
  const out = clients.map((c) => ({
    received: c.received.length,
    last: c.received.length ? c.received[c.received.length - 1] : 0,
    duplicates: c.duplicates,
    outOfOrder: c.outOfOrder,
    missing: TICKS - new Set(c.received).size,
    connects: c.connects,
    recovered: c.recovered,
    errors: c.errors,
    transport: c.socket.io.engine ? c.socket.io.engine.transport.name : null,
    missingIds: Array.from({ length: TICKS }, (_, i) => i + 1).filter((n) => !c.seen.has(n)).slice(0, 50),
    maxDownMs: Math.round(c.maxDownMs),
    maxGapMs: Math.round(c.maxGapMs),
    sids: c.sids,
  }));
  process.stdout.write(JSON.stringify({ done: reason, clients: out }) + "\n");
  for (const c of clients) c.socket.close();
  process.exit(0);
}

function check() {
  if (!readySent && clients.every((c) => c.connects > 0)) {
    readySent = true;
    process.stdout.write(JSON.stringify({ ready: true }) + "\n");
  }
  if (clients.every((c) => c.received.length && c.received[c.received.length - 1] === TICKS)) summary("all");
}

setTimeout(() => summary("deadline"), DEADLINE_MS).unref();

for (let i = 0; i < CLIENTS; i++) {
  const opts = {
    forceNew: true, reconnectionDelay: 50, reconnectionDelayMax: 500, randomizationFactor: 0.5, timeout: 5000,
  };
  if (TRANSPORTS) opts.transports = TRANSPORTS;
  const socket = io(url, opts);
  const c = { socket, received: [], seen: new Set(), duplicates: 0, outOfOrder: 0, connects: 0, recovered: 0, errors: 0,
    maxDownMs: 0, maxGapMs: 0, downSince: 0, lastAt: 0, sids: [] };
  clients.push(c);
  socket.on("disconnect", () => { c.downSince = Date.now(); });
  socket.on("connect", () => {
    if (c.downSince) c.maxDownMs = Math.max(c.maxDownMs, Date.now() - c.downSince);
    c.downSince = 0;
    if (socket.io.engine && socket.io.engine.id) c.sids.push(socket.io.engine.id.slice(0, 8));
    c.connects += 1;
    if (socket.recovered) c.recovered += 1;
    check();
  });
  socket.on("connect_error", () => { c.errors += 1; });
  socket.on(EVENT, (data) => {
    const n = data !== null && typeof data === "object" ? data.id : data;
    if (c.seen.has(n)) c.duplicates += 1;
    else if (c.received.length && n < c.received[c.received.length - 1]) c.outOfOrder += 1;
    c.seen.add(n);
    c.received.push(n);
    const now = Date.now();
    if (c.lastAt) c.maxGapMs = Math.max(c.maxGapMs, now - c.lastAt);
    c.lastAt = now;
    check();
  });
}
