'use strict';
// Load generator for Board's benchmark. Speaks the raw Engine.IO v4 / Socket.IO v5 wire (ws for WebSocket,
// http for long-polling), so it drives any compliant server. Loopback only; every loop is bounded in count and
// time. Prints progress marks and one final JSON line on stdout:
//
//   {"mark":"start", ...}      then waits for a line on stdin (bench/run.py samples server CPU/RSS), unless
//                              --marks=0
//   {"result": {...}}          the scenario's numbers
//
// Usage: node loadgen.js --scenario=open|fanout|echo-ws|echo-polling|slow --port=N [options]
//   --clients=N            clients (open: 10000, fanout/slow: 1000, echo: 50)
//   --slow=N               slow readers among the clients (slow: 100)
//   --duration=S           measured seconds (fanout/echo/slow: 8)
//   --warmup=S             unmeasured seconds before measuring (1)
//   --window=N             broadcasts in flight not yet received by every (fast) client (8)
//   --payload=N            extra bytes of padding in each broadcast (fanout: 0, slow: 4096)
//   --concurrency=N        handshakes in flight while opening clients (100)
//   --settle=S             idle seconds before the "idle" RSS sample in the open scenario (2)
//   --slow-interval=MS     a slow reader reads one socket chunk (<= 64 KiB) every MS milliseconds (2000)
//   --host=127.0.0.1       loopback only
//   --ports=P1,P2,...      WebSocket clients spread over these ports in turn (processes of a cluster);
//                          the first one (--port) also sends the broadcasts; every long-polling request
//                          goes to the next of them (a round-robin balancer without stickiness)
//   --marks=1              0: do not wait for stdin after marks (run by hand)
const http = require('http');
const readline = require('readline');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');

// ---------------------------------------------------------------------------------------------- options
const DEFAULTS = {
  scenario: 'fanout', port: 0, host: '127.0.0.1', clients: 0, slow: 100, duration: 8, warmup: 1, window: 8,
  payload: -1, concurrency: 100, settle: 2, 'slow-interval': 2000, marks: 1, 'connect-timeout': 30, ports: '',
};
const opt = { ...DEFAULTS };
for (const arg of process.argv.slice(2)) {
  const m = /^--([a-z-]+)=(.*)$/.exec(arg);
  if (!m || !(m[1] in DEFAULTS)) {
    console.error(`unknown argument ${arg}`);
    process.exit(2);
  }
  opt[m[1]] = typeof DEFAULTS[m[1]] === 'number' ? Number(m[2]) : m[2];
}
if (!['127.0.0.1', 'localhost', '::1'].includes(opt.host)) {
  console.error('loopback only');
  process.exit(2);
}
if (!opt.port) {
  console.error('--port is required');
  process.exit(2);
}
const DEFAULT_CLIENTS = { open: 10000, fanout: 1000, slow: 1000, 'echo-ws': 50, 'echo-polling': 50 };
if (!(opt.scenario in DEFAULT_CLIENTS)) {
  console.error(`unknown scenario ${opt.scenario}`);
  process.exit(2);
}
if (!opt.clients) opt.clients = DEFAULT_CLIENTS[opt.scenario];
if (opt.payload < 0) opt.payload = opt.scenario === 'slow' ? 4096 : 0;
const CONNECT_TIMEOUT_MS = opt['connect-timeout'] * 1000;
const WS_PORTS = opt.ports ? opt.ports.split(',').map(Number) : [opt.port];
const wsUrl = (port) => `ws://${opt.host}:${port}/socket.io/?EIO=4&transport=websocket`;
let wsOpened = 0;
const POLL_PATH = '/socket.io/?EIO=4&transport=polling';

// Whole-run deadline: nothing below may outlive it.
const DEADLINE_S = 120 + opt.warmup + opt.duration + opt.settle + opt.clients * 0.05;
setTimeout(() => fatal(`deadline of ${DEADLINE_S.toFixed(0)} s exceeded`), DEADLINE_S * 1000).unref();

function fatal(msg) {
  process.stdout.write(JSON.stringify({ error: String(msg) }) + '\n');
  process.exit(1);
}
process.on('uncaughtException', (e) => fatal(e && e.stack ? e.stack : e));
process.on('unhandledRejection', (e) => fatal(e && e.stack ? e.stack : e));

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------- marks (stdin handshake)
const stdinLines = [];
const stdinWaiters = [];
if (opt.marks) {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const w = stdinWaiters.shift();
    if (w) w(line);
    else stdinLines.push(line);
  });
  rl.on('close', () => fatal('stdin closed'));
}
// Print a mark and wait (bounded) until the runner has sampled the server.
async function mark(name, extra = {}) {
  process.stdout.write(JSON.stringify({ mark: name, ...extra }) + '\n');
  if (!opt.marks) return;
  if (stdinLines.length) {
    stdinLines.shift();
    return;
  }
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer to mark ${name}`)), 30000);
    stdinWaiters.push(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

// ------------------------------------------------------------------------------------------ histogram
// Latencies in microseconds, 1 us buckets below 1 ms, then 128 log buckets per doubling (0.55 % wide).
class Hist {
  constructor() {
    this.b = new Float64Array(1024 + 128 * 32);
    this.n = 0;
    this.max = 0;
  }
  add(ms) {
    const us = ms * 1000;
    let i;
    if (us < 1024) i = us < 0 ? 0 : us | 0;
    else i = Math.min(this.b.length - 1, 1024 + Math.floor(Math.log2(us / 1024) * 128));
    this.b[i]++;
    this.n++;
    if (ms > this.max) this.max = ms;
  }
  q(p) {
    if (!this.n) return null;
    const want = Math.ceil(this.n * p);
    let acc = 0;
    for (let i = 0; i < this.b.length; i++) {
      acc += this.b[i];
      if (acc >= want) {
        const us = i < 1024 ? i + 0.5 : 1024 * Math.pow(2, (i - 1024 + 0.5) / 128);
        return us / 1000;
      }
    }
    return this.max;
  }
  summary() {
    return { n: this.n, p50_ms: this.q(0.5), p99_ms: this.q(0.99), max_ms: this.n ? this.max : null };
  }
}

// ------------------------------------------------------------------------------------ WebSocket client
// Resolves once the server answered our `40` with `40{...}`. The caller sets onEvent(str) / onAck(str) /
// onClose(). Answers pings itself.
function openWs() {
  return new Promise((resolve, reject) => {
    let settled = false;
    const ws = new WebSocket(wsUrl(WS_PORTS[wsOpened++ % WS_PORTS.length]), {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: CONNECT_TIMEOUT_MS,
    });
    const c = { ws, connected: false, closed: false, onEvent: null, onAck: null, onClose: null, bytes: 0 };
    const timer = setTimeout(() => fail(new Error('connect timeout')), CONNECT_TIMEOUT_MS);
    function fail(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try {
        ws.terminate();
      } catch (e) { /* already gone */ }
      reject(err);
    }
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      c.bytes += data.length;
      const s = data.toString();
      const c0 = s.charCodeAt(0);
      if (c0 === 52) { // '4' message
        const c1 = s.charCodeAt(1);
        if (c1 === 50) { // '2' event
          if (c.onEvent) c.onEvent(s);
        } else if (c1 === 51) { // '3' ack
          if (c.onAck) c.onAck(s);
        } else if (c1 === 48) { // '0' connect
          if (!settled) {
            settled = true;
            c.connected = true;
            clearTimeout(timer);
            resolve(c);
          }
        } else if (c1 === 52) { // '4' connect_error
          fail(new Error(`connect_error ${s.slice(0, 200)}`));
        }
      } else if (c0 === 50) { // '2' ping
        ws.send('3');
      } else if (c0 === 48) { // '0' open
        ws.send('40');
      }
    });
    ws.on('error', (e) => fail(e));
    ws.on('close', (code) => {
      c.closed = true;
      if (!settled) fail(new Error(`closed before connect (${code})`));
      else if (c.onClose) c.onClose(code);
    });
  });
}

// Opens n clients with at most `concurrency` handshakes in flight.
async function openMany(n, open = openWs) {
  const clients = [];
  const errors = {};
  let failed = 0;
  let next = 0;
  async function worker() {
    while (next < n) {
      next++;
      try {
        clients.push(await open());
      } catch (e) {
        failed++;
        const k = String(e && e.message ? e.message : e).slice(0, 120);
        errors[k] = (errors[k] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(opt.concurrency, n) }, worker));
  return { clients, failed, errors };
}

function closeAll(clients) {
  for (const c of clients) {
    c.onClose = null;
    try {
      if (c.ws) c.ws.terminate();
      else if (c.close) c.close();
    } catch (e) { /* already gone */ }
  }
}

function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

// -------------------------------------------------------------------------------------- (a) open many
async function scenarioOpen() {
  const warm = await openMany(Math.min(20, opt.clients));
  closeAll(warm.clients);
  await sleep(500); // measurement settling: let the server drop the warm-up sessions
  await mark('start');
  const t0 = now();
  const { clients, failed, errors } = await openMany(opt.clients);
  const openS = (now() - t0) / 1000;
  await mark('end', { open_s: openS });
  await sleep(opt.settle * 1000); // measurement settling: the server is idle before the "after" RSS sample
  const stillOpen = clients.filter((c) => !c.closed).length;
  await mark('idle', { open: stillOpen });
  closeAll(clients);
  return { clients: opt.clients, opened: clients.length, failed, errors, still_open: stillOpen, open_s: openS,
    conn_per_s: clients.length / openS };
}

// ------------------------------------------------------------------------- (b) fan-out, (e) slow readers
async function scenarioFanout(nSlow) {
  const { clients, failed, errors } = await openMany(opt.clients);
  if (failed) throw new Error(`${failed} clients failed to connect: ${JSON.stringify(errors)}`);
  const fast = clients.slice(0, clients.length - nSlow);
  const slow = clients.slice(clients.length - nSlow);
  const sender = fast[0];
  const MASK = 1023; // window must stay far below this
  if (opt.window >= MASK) throw new Error('window too large');
  const counts = new Int32Array(MASK + 1);
  let target = fast.length; // deliveries per broadcast that complete it
  let seq = 0;
  let inflight = 0;
  let sending = false;
  let measuring = false;
  let deliveries = 0; // fast deliveries while measuring
  let sent = 0; // broadcasts sent while measuring
  let sentTotal = 0;
  let completed = 0;
  let lastProgress = now();
  let fastClosed = 0;
  let slowClosed = 0;
  let slowBytes = 0;
  let badFrames = 0;
  const hist = new Hist();
  const pad = opt.payload > 0 ? ',"' + 'x'.repeat(opt.payload) + '"' : '';
  let bcastBytes = 0;
  let onDrained = null;

  function send() {
    while (sending && inflight < opt.window) {
      seq++;
      inflight++;
      counts[seq & MASK] = 0;
      const frame = `42["bcast",[${seq},${now().toFixed(3)}${pad}]]`;
      bcastBytes = frame.length;
      if (measuring) sent++;
      sentTotal++;
      sender.ws.send(frame);
    }
  }
  function onFastEvent(s) {
    // 42["bcast",[SEQ,T...]] ; tolerate whitespace from any JSON encoder
    const i = s.indexOf('[', 4);
    const comma = s.indexOf(',', i);
    const sq = parseInt(s.slice(i + 1, comma), 10);
    const t = parseFloat(s.slice(comma + 1, comma + 24));
    if (!(sq > 0) || !(t >= 0)) {
      badFrames++;
      return;
    }
    if (measuring) {
      deliveries++;
      hist.add(now() - t);
    }
    if (++counts[sq & MASK] === target) {
      inflight--;
      completed++;
      lastProgress = now();
      if (sending) send();
      else if (inflight === 0 && onDrained) onDrained();
    }
  }
  for (const c of fast) {
    c.onEvent = onFastEvent;
    c.onClose = () => {
      fastClosed++;
      target--;
    };
  }
  for (const c of slow) {
    c.onEvent = () => {};
    c.onClose = () => {
      slowClosed++;
    };
    c.reading = false;
    // Pause again on the first chunk read after a resume (ws's own listener still parses that chunk).
    c.ws._socket.prependListener('data', () => {
      if (c.reading) {
        c.reading = false;
        c.ws.pause();
      }
    });
    c.ws.pause();
  }
  // A slow reader takes one socket read (one chunk, <= 64 KiB) every slow-interval ms, nothing in between.
  const slowTimer = nSlow ? setInterval(() => {
    for (const c of slow) {
      if (c.closed || c.reading) continue;
      c.reading = true;
      c.ws.resume();
    }
  }, opt['slow-interval']) : null;

  // Stall watchdog: no broadcast completed for 15 s is a failure, not a hang.
  let stalled = false;
  const watchdog = setInterval(() => {
    if (inflight > 0 && now() - lastProgress > 15000) {
      stalled = true;
      if (onDrained) onDrained();
    }
  }, 1000);

  await mark('ready'); // all clients connected, nothing sent yet: the RSS baseline of (e)
  sending = true;
  send();
  await sleep(opt.warmup * 1000);
  if (stalled) throw new Error(`stalled during warm-up (${completed} broadcasts completed)`);
  await mark('start');
  const cpu0 = cpuMs();
  measuring = true;
  sent = 0;
  deliveries = 0;
  const completed0 = completed;
  const t0 = now();
  await sleep(opt.duration * 1000);
  measuring = false;
  const elapsed = (now() - t0) / 1000;
  const cpu = (cpuMs() - cpu0) / 1000 / elapsed;
  const done = completed - completed0;
  sending = false;
  const slowAtEnd = slow.reduce((a, c) => a + c.bytes, 0);
  const sentAtEnd = sentTotal;
  await mark('end');
  // Drain what is still in flight (bounded by the watchdog).
  if (inflight > 0 && !stalled) await new Promise((r) => { onDrained = r; });
  clearInterval(watchdog);
  if (slowTimer) clearInterval(slowTimer);
  slowBytes = slowAtEnd;
  closeAll(clients);
  if (stalled) throw new Error(`stalled: no broadcast completed for 15 s (${inflight} in flight)`);
  const res = {
    clients: clients.length, fast: fast.length, slow: slow.length, window: opt.window, frame_bytes: bcastBytes,
    duration_s: elapsed, broadcasts: done, broadcasts_per_s: done / elapsed,
    deliveries, deliveries_per_s: deliveries / elapsed, latency: hist.summary(),
    fast_closed: fastClosed, bad_frames: badFrames, loadgen_cpu: cpu,
  };
  if (nSlow) {
    // What the slow readers were owed at the end of the window (held by the server or the kernel):
    // everything broadcast since they connected minus what they read.
    res.slow_closed = slowClosed;
    res.slow_read_bytes = slowBytes;
    res.slow_backlog_mb = Math.max(0, (sentAtEnd * bcastBytes * slow.length - slowBytes) / 1e6);
  }
  return res;
}

// ---------------------------------------------------------------------------- (c) echo with ack over ws
async function echoLoop(clients, sendEcho) {
  const hist = new Hist();
  const PAYLOAD = 'board-bench-echo-0123456789';
  let running = true;
  let measuring = false;
  let trips = 0;
  let mismatches = 0;
  let closed = 0;
  let inflight = 0;
  let onDrained = null;
  for (const c of clients) {
    let id = 0;
    let t = 0;
    const fire = () => {
      id++;
      t = now();
      inflight++;
      sendEcho(c, `${id}["echo","${PAYLOAD}"]`);
    };
    c.onAck = (s) => {
      const br = s.indexOf('[');
      const ackId = parseInt(s.slice(2, br), 10);
      if (ackId !== id) {
        mismatches++;
        return;
      }
      let ok = false;
      try {
        const a = JSON.parse(s.slice(br));
        ok = a.length === 1 && a[0] === PAYLOAD;
      } catch (e) { /* counted below */ }
      if (!ok) mismatches++;
      inflight--;
      if (measuring) {
        trips++;
        hist.add(now() - t);
      }
      if (running) fire();
      else if (inflight === 0 && onDrained) onDrained();
    };
    c.onClose = () => {
      closed++;
    };
    fire();
  }
  await sleep(opt.warmup * 1000);
  await mark('start');
  const cpu0 = cpuMs();
  measuring = true;
  const t0 = now();
  await sleep(opt.duration * 1000);
  measuring = false;
  const elapsed = (now() - t0) / 1000;
  const cpu = (cpuMs() - cpu0) / 1000 / elapsed;
  running = false;
  await mark('end');
  if (inflight > 0) {
    await Promise.race([new Promise((r) => { onDrained = r; }), sleep(10000)]);
  }
  return { clients: clients.length, duration_s: elapsed, round_trips: trips, rt_per_s: trips / elapsed,
    latency: hist.summary(), mismatches, closed, stuck: inflight, loadgen_cpu: cpu };
}

async function scenarioEchoWs() {
  const { clients, failed, errors } = await openMany(opt.clients);
  if (failed) throw new Error(`${failed} clients failed to connect: ${JSON.stringify(errors)}`);
  const res = await echoLoop(clients, (c, body) => c.ws.send('42' + body));
  closeAll(clients);
  return res;
}

// ------------------------------------------------------------------------ (d) echo with ack over polling
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 1024 });
let polled = 0;

function request(method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: opt.host, port: WS_PORTS[polled++ % WS_PORTS.length], method, path, agent,
      headers: body !== undefined
        ? { 'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': Buffer.byteLength(body) } : {},
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) reject(new Error(`${method} ${res.statusCode} ${text.slice(0, 120)}`));
        else resolve(text);
      });
      res.on('error', reject);
    });
    req.setTimeout(60000, () => req.destroy(new Error(`${method} timeout`)));
    req.on('error', reject);
    req.end(body); // headers and body in one write
  });
}

async function openPolling() {
  const open = await request('GET', POLL_PATH);
  if (open[0] !== '0') throw new Error(`bad open packet ${open.slice(0, 80)}`);
  const sid = JSON.parse(open.slice(1)).sid;
  const path = `${POLL_PATH}&sid=${encodeURIComponent(sid)}`;
  const c = { sid, closed: false, connected: false, onEvent: null, onAck: null, onClose: null, running: true };
  let resolveConnect;
  let rejectConnect;
  const connected = new Promise((res, rej) => {
    resolveConnect = res;
    rejectConnect = rej;
  });
  const post = (payload) => request('POST', path, payload).then((r) => {
    if (r.toLowerCase() !== 'ok') throw new Error(`POST answered ${r.slice(0, 80)}`);
  });
  c.post = post;
  c.close = () => {
    c.running = false;
    if (!c.closed) post('1').catch(() => {});
  };
  // The GET loop: bounded by `running` (cleared at the end of the scenario) and the whole-run deadline.
  (async () => {
    while (c.running) {
      let body;
      try {
        body = await request('GET', path);
      } catch (e) {
        c.closed = true;
        rejectConnect(e);
        if (c.onClose) c.onClose(String(e.message));
        return;
      }
      for (const p of body.split('\x1e')) {
        const c0 = p.charCodeAt(0);
        if (c0 === 52) {
          const c1 = p.charCodeAt(1);
          if (c1 === 51) {
            if (c.onAck) c.onAck(p);
          } else if (c1 === 50) {
            if (c.onEvent) c.onEvent(p);
          } else if (c1 === 48) {
            c.connected = true;
            resolveConnect(c);
          } else if (c1 === 52) {
            rejectConnect(new Error(`connect_error ${p.slice(0, 120)}`));
          }
        } else if (c0 === 50) {
          post('3').catch(() => {});
        } else if (c0 === 49) {
          c.closed = true;
          c.running = false;
          if (c.onClose) c.onClose('server closed');
          return;
        }
      }
    }
  })();
  await post('40');
  const timer = setTimeout(() => rejectConnect(new Error('connect timeout')), CONNECT_TIMEOUT_MS);
  try {
    await connected;
  } finally {
    clearTimeout(timer);
  }
  return c;
}

async function scenarioEchoPolling() {
  const { clients, failed, errors } = await openMany(opt.clients, openPolling);
  if (failed) throw new Error(`${failed} clients failed to connect: ${JSON.stringify(errors)}`);
  let postErrors = 0;
  const res = await echoLoop(clients, (c, body) => c.post('42' + body).catch(() => { postErrors++; }));
  closeAll(clients);
  res.post_errors = postErrors;
  agent.destroy();
  return res;
}

// -------------------------------------------------------------------------------------------------- main
(async () => {
  let result;
  if (opt.scenario === 'open') result = await scenarioOpen();
  else if (opt.scenario === 'fanout') result = await scenarioFanout(0);
  else if (opt.scenario === 'slow') result = await scenarioFanout(Math.min(opt.slow, opt.clients - 1));
  else if (opt.scenario === 'echo-ws') result = await scenarioEchoWs();
  else result = await scenarioEchoPolling();
  result.scenario = opt.scenario;
  process.stdout.write(JSON.stringify({ result }) + '\n');
  // Closing handshakes are not awaited: exit now.
  process.exit(0);
})();
