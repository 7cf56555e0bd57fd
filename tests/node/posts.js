// Posters on the official socket.io-client with `retries` and a key in each post, through a faulty
// network, and a watcher that connects directly: every post meant, acked, and seen by every client.
//
//   node posts.js <proxied url> <direct url> <posters> <posts each> [deadline ms] [ack timeout ms] [nokeys]
//
// Each poster emits its posts at once; the client's queue sends them one at a time and resends
// one until it is acked (every try with a new ack id, as socket.io-client does since 4.6.1: only
// the key tells the board it is the same post). Prints one JSON summary when every post is acked
// and every client has seen every post (or at the deadline): meant, acked, ack errors, tries (every
// send of a post), and per client the posts seen, distinct, missing and seen twice. Exits 0.
"use strict";

const { io } = require("socket.io-client");

const [proxied, direct, postersArg, postsArg, deadlineArg, ackTimeoutArg, keysArg] = process.argv.slice(2);
const KEYS = keysArg !== "nokeys"; // "nokeys": the control run, posts without a key
const POSTERS = Number(postersArg);
const POSTS = Number(postsArg);
const DEADLINE_MS = Number(deadlineArg || 60000);
const ACK_TIMEOUT_MS = Number(ackTimeoutArg || 1500);
const TRANSPORTS = [undefined, ["websocket"], ["polling"]]; // the client's default: polling, then WebSocket
const RUN = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);

const meant = [];
const acked = new Map(); // text -> ack
const ackErrors = [];
const clients = [];
let tries = 0;

function client(label, url, opts) {
  const socket = io(url, { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 500, ...opts });
  const c = { label, socket, seen: [], connects: 0, recovered: 0 };
  socket.on("connect", () => {
    c.connects += 1;
    if (socket.recovered) c.recovered += 1;
  });
  socket.on("message", (post) => {
    if (post && typeof post.text === "string" && post.text.startsWith(RUN)) c.seen.push(post.text);
  });
  clients.push(c);
  return c;
}

function summary(reason) {
  const want = new Set(meant);
  const out = clients.map((c) => {
    const distinct = new Set(c.seen);
    return {
      label: c.label,
      seen: c.seen.length,
      distinct: distinct.size,
      missing: [...want].filter((t) => !distinct.has(t)).length,
      missed: [...want].filter((t) => !distinct.has(t)).slice(0, 5),
      twice: c.seen.length - distinct.size,
      connects: c.connects,
      recovered: c.recovered,
    };
  });
  const ids = new Set([...acked.values()].map((ack) => ack && ack.id));
  process.stdout.write(JSON.stringify({
    done: reason, run: RUN, meant: meant.length, acked: acked.size, ackedIds: ids.size, ackErrors, tries, clients: out,
  }) + "\n");
  for (const c of clients) c.socket.close();
  process.exit(0);
}

function finished() {
  return meant.length > 0 && acked.size === meant.length && clients.every((c) => new Set(c.seen).size === meant.length);
}

setTimeout(() => summary("deadline"), DEADLINE_MS).unref();
const check = setInterval(() => {
  if (finished()) {
    clearInterval(check);
    setTimeout(() => summary("all acked and seen"), 300); // a post shown twice would show up by then
  }
}, 50);

// Every client is connected before the first post (one that joins later would get the posts as
// history, not as messages); the posts go once all are.
const watcher = client("watcher", direct, {});
const posters = [];
for (let p = 0; p < POSTERS; p++) {
  const transports = TRANSPORTS[p % TRANSPORTS.length];
  const { socket } = client(`poster ${p}`, proxied, { retries: 50, ackTimeout: ACK_TIMEOUT_MS, transports });
  socket.onAnyOutgoing((event) => { if (event === "post") tries += 1; });
  posters.push(socket);
}
Promise.all(clients.map((c) => c.socket.connected || new Promise((resolve) => c.socket.once("connect", resolve))))
  .then(() => posters.forEach((socket, p) => {
    for (let n = 0; n < POSTS; n++) {
      const text = `${RUN} poster ${p} post ${n}`;
      meant.push(text);
      const post = { name: `poster ${p}`, text };
      if (KEYS) post.key = `${RUN}.${p}.${n}`;
      socket.emit("post", post, (err, ack) => {
        if (err || !ack || !ack.ok) ackErrors.push(String(err || JSON.stringify(ack)));
        else acked.set(text, ack);
      });
    }
  }));
