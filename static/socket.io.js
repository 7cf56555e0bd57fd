/*!
 * Board's browser client for Socket.IO protocol v5 over Engine.IO protocol v4.
 * One plain file, no dependencies: defines window.io.
 *
 *   const socket = io();                 // main namespace "/" on this page's origin
 *   const admin = io("/admin");          // another namespace, same Engine.IO connection
 *   socket.on("news", (data) => ...);
 *   socket.emit("post", {name, text}, (reply) => ...);
 *   socket.timeout(5000).emit("post", data, (err, reply) => ...);
 *   const reply = await socket.emitWithAck("post", data);
 *
 * Transport: WebSocket first; HTTP long-polling when WebSocket is missing, fails before the Engine.IO
 * handshake, or does not open within options.wsTimeout. A WebSocket failure on an origin is remembered
 * in sessionStorage so later connections of the page session go straight to polling. On polling, the
 * client probes WebSocket again in the background (options.probeInterval, doubling on each failure up
 * to options.probeIntervalMax) and moves the same session to it when a probe succeeds (the Engine.IO
 * upgrade): no reconnection, no message lost or reordered; the remembered failure is then forgotten.
 */
(function (global) {
  'use strict';

  // ------------------------------------------------------------------------------------------------
  // Helpers
  // ------------------------------------------------------------------------------------------------

  /** Rethrow outside of our call stack: the page sees the error, our state machine keeps going. */
  function report(err) {
    setTimeout(function () { throw err; }, 0);
  }

  class Emitter {
    constructor() {
      this._callbacks = Object.create(null);
    }

    on(event, fn) {
      (this._callbacks[event] || (this._callbacks[event] = [])).push(fn);
      return this;
    }

    once(event, fn) {
      const self = this;
      function wrapper() {
        self.off(event, wrapper);
        return fn.apply(this, arguments);
      }
      wrapper.fn = fn;
      return this.on(event, wrapper);
    }

    off(event, fn) {
      if (event === undefined) {
        this._callbacks = Object.create(null);
        return this;
      }
      const list = this._callbacks[event];
      if (!list) return this;
      if (fn === undefined) {
        delete this._callbacks[event];
        return this;
      }
      for (let i = 0; i < list.length; i++) {
        if (list[i] === fn || list[i].fn === fn) {
          list.splice(i, 1);
          break;
        }
      }
      if (!list.length) delete this._callbacks[event];
      return this;
    }

    listeners(event) {
      return (this._callbacks[event] || []).slice();
    }

    hasListeners(event) {
      return !!(this._callbacks[event] && this._callbacks[event].length);
    }

    /** Call the listeners of `event`; a listener that throws does not stop the others. */
    emitReserved(event) {
      const args = Array.prototype.slice.call(arguments, 1);
      const list = this._callbacks[event];
      if (!list) return this;
      for (const fn of list.slice()) {
        try {
          fn.apply(this, args);
        } catch (e) {
          report(e);
        }
      }
      return this;
    }
  }
  Emitter.prototype.addEventListener = Emitter.prototype.on;
  Emitter.prototype.addListener = Emitter.prototype.on;
  Emitter.prototype.removeListener = Emitter.prototype.off;
  Emitter.prototype.removeEventListener = Emitter.prototype.off;
  Emitter.prototype.removeAllListeners = Emitter.prototype.off;

  function toBase64(buffer) {
    const bytes = new Uint8Array(buffer);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return global.btoa(s);
  }

  function fromBase64(text) {
    const s = global.atob(text); // throws on bad input: treated as a parse error by the caller
    const bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    return bytes.buffer;
  }

  function queryString(obj) {
    return Object.keys(obj)
      .filter(function (k) { return obj[k] !== undefined && obj[k] !== null; })
      .map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(obj[k]); })
      .join('&');
  }

  let stampCounter = 0;
  function cacheBuster() {
    stampCounter = (stampCounter + 1) % 1e6;
    return Date.now().toString(36) + stampCounter.toString(36);
  }

  const memory = { // where there is no sessionStorage (a worker): for the life of this global
    items: new Map(),
    getItem(k) { return this.items.has(k) ? this.items.get(k) : null; },
    setItem(k, v) { this.items.set(k, String(v)); },
    removeItem(k) { this.items.delete(k); }
  };

  function storage() {
    try {
      return global.sessionStorage || (global.document ? null : memory);
    } catch (e) {
      return null; // access can throw (privacy settings, sandboxed frames)
    }
  }

  function wsFailedKey(origin, path) {
    return 'io:websocket-failed:' + origin + path;
  }

  function wsRememberedFailed(origin, path) {
    try {
      const s = storage();
      return !!s && s.getItem(wsFailedKey(origin, path)) === '1';
    } catch (e) {
      return false;
    }
  }

  function rememberWsFailed(origin, path) {
    try {
      const s = storage();
      if (s) s.setItem(wsFailedKey(origin, path), '1');
    } catch (e) {
      /* storage full or denied: nothing to remember then */
    }
  }

  function forgetWsFailed(origin, path) {
    try {
      const s = storage();
      if (s) s.removeItem(wsFailedKey(origin, path));
    } catch (e) {
      /* nothing to forget */
    }
  }

  // Failed upgrade probes per endpoint, kept across reconnections: a proxy that blocks WebSocket for
  // good costs one probe per probeIntervalMax, not a fresh series of quick probes per session.
  const probeFailures = new Map();

  class Backoff {
    /** getOpts() returns {min, max, jitter}; read at each use so Manager setters take effect. */
    constructor(getOpts) {
      this._getOpts = getOpts;
      this.attempts = 0;
    }

    duration() {
      const o = this._getOpts();
      const exp = Math.min(this.attempts, 30);
      this.attempts++;
      let ms = Math.min(o.max, o.min * Math.pow(2, exp));
      if (o.jitter > 0) {
        const spread = Math.min(1, o.jitter);
        ms = ms * (1 - spread + 2 * spread * Math.random());
      }
      return Math.max(0, Math.floor(Math.min(ms, o.max)));
    }

    reset() {
      this.attempts = 0;
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Engine.IO v4: one connection, over WebSocket or HTTP long-polling
  // ------------------------------------------------------------------------------------------------
  //
  // Events: "open" (handshake done), "message" (string | ArrayBuffer), "close" (reason, details) once
  // after "open", "error" (Error) when it could not open. Strings given to write() are Engine.IO
  // message payloads, ArrayBuffers are binary messages.

  const SEPARATOR = '\x1e';

  class Engine extends Emitter {
    constructor(opts) {
      super();
      // origin, path, query, transports, wsTimeout, withCredentials, extraHeaders,
      // probeInterval, probeIntervalMax, randomizationFactor
      this.opts = opts;
      this.readyState = 'opening';
      this.transport = null; // {name: "websocket" | "polling"} once open
      this.id = null;
      this.pingInterval = 25000;
      this.pingTimeout = 20000;
      this.maxPayload = 1000000;
      this._ws = null;
      this._wsTimer = null;
      this._wsFailed = false;
      this._pingTimer = null;
      this._xhrs = new Set();
      this.upgrades = [];
      this._outbox = []; // polling: packets (strings, ArrayBuffers) waiting for a POST
      this._posting = false;
      this._polling = false; // a GET in flight
      this._probeWs = null; // the WebSocket trying to take the session over from polling
      this._probeTimer = null;
      this._paused = false; // the probe succeeded: polling winds down, then the WebSocket takes over
      this._postXhr = null; // the POST in flight
      this._afterPost = null; // the closing POST, waiting for the one in flight
    }

    start() {
      const o = this.opts;
      const useWs = !!global.WebSocket && o.transports.indexOf('websocket') !== -1 &&
        !(o.transports.indexOf('polling') !== -1 && wsRememberedFailed(o.origin, o.path));
      if (useWs) this._openWebSocket();
      else if (o.transports.indexOf('polling') !== -1) this._openPolling();
      else this._fail(new Error('websocket error'));
    }

    _url(transport, extra) {
      const q = Object.assign({}, this.opts.query, { EIO: 4, transport: transport }, extra || {});
      let base = this.opts.origin + this.opts.path;
      if (transport === 'websocket') base = base.replace(/^http/, 'ws');
      return base + '?' + queryString(q);
    }

    // ---- WebSocket ----

    _openWebSocket() {
      let ws;
      try {
        ws = new global.WebSocket(this._url('websocket'));
      } catch (e) {
        this._webSocketFailed();
        return;
      }
      ws.binaryType = 'arraybuffer';
      this._ws = ws;
      this._wsTimer = setTimeout(() => this._webSocketFailed(), this.opts.wsTimeout);
      ws.onmessage = (ev) => this._onWebSocketData(ev.data);
      ws.onerror = () => this._onWebSocketLost('transport error');
      ws.onclose = (ev) => this._onWebSocketLost('transport close', {
        description: 'websocket closed', code: ev && ev.code, reason: ev && ev.reason
      });
    }

    _dropWebSocket() {
      clearTimeout(this._wsTimer);
      this._wsTimer = null;
      const ws = this._ws;
      this._ws = null;
      if (!ws) return;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close();
      } catch (e) {
        /* already closed */
      }
    }

    /** The WebSocket did not get us an open packet: fall back to polling on the same endpoint. */
    _webSocketFailed() {
      this._dropWebSocket();
      if (this.readyState !== 'opening') return;
      this._wsFailed = true;
      if (this.opts.transports.indexOf('polling') !== -1) this._openPolling();
      else this._fail(new Error('websocket error'));
    }

    _onWebSocketLost(reason, details) {
      if (this.readyState === 'opening') this._webSocketFailed();
      else this._onClose(reason, details);
    }

    _onWebSocketData(data) {
      if (this.readyState === 'opening') {
        clearTimeout(this._wsTimer);
        this._wsTimer = null;
        try {
          this._handshake(data);
        } catch (e) {
          this._fail(new Error('parse error'));
          return;
        }
        this._opened('websocket');
        return;
      }
      if (this.readyState === 'open') this._onPacket(data);
    }

    // ---- HTTP long-polling ----

    _request(method, url, body, callback, untracked) {
      const xhr = new global.XMLHttpRequest();
      let done = false;
      const finish = (err, text) => {
        if (done) return;
        done = true;
        this._xhrs.delete(xhr);
        callback(err, text);
      };
      try {
        xhr.open(method, url, true);
        if (this.opts.withCredentials) xhr.withCredentials = true;
        if (body !== null) xhr.setRequestHeader('Content-Type', 'text/plain;charset=UTF-8');
        const headers = this.opts.extraHeaders || {};
        Object.keys(headers).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
        xhr.onreadystatechange = function () {
          if (xhr.readyState !== 4) return;
          if (xhr.status === 200) {
            finish(null, xhr.responseText);
          } else {
            const err = new Error('xhr poll error');
            err.type = 'TransportError';
            err.description = xhr.status;
            err.context = xhr.responseText;
            finish(err);
          }
        };
        xhr.send(body);
      } catch (e) {
        setTimeout(function () { finish(new Error('xhr poll error')); }, 0);
        return null;
      }
      if (!untracked) this._xhrs.add(xhr);
      return xhr;
    }

    _abortRequests() {
      for (const xhr of this._xhrs) {
        xhr.onreadystatechange = null;
        try {
          xhr.abort();
        } catch (e) {
          /* ignore */
        }
      }
      this._xhrs.clear();
    }

    static decodePayload(text) {
      if (text === '') return [];
      return text.split(SEPARATOR).map(function (p) {
        return p.charAt(0) === 'b' ? fromBase64(p.slice(1)) : p;
      });
    }

    _openPolling() {
      this._request('GET', this._url('polling', { t: cacheBuster() }), null, (err, text) => {
        if (this.readyState !== 'opening') return;
        if (err) {
          this._fail(err);
          return;
        }
        let packets;
        try {
          packets = Engine.decodePayload(text);
          this._handshake(packets[0]);
        } catch (e) {
          this._fail(new Error('parse error'));
          return;
        }
        if (this._wsFailed) rememberWsFailed(this.opts.origin, this.opts.path);
        this._opened('polling');
        for (let i = 1; i < packets.length && this.readyState === 'open'; i++) this._onPacket(packets[i]);
        this._poll();
        this._scheduleProbe();
      });
    }

    _poll() {
      if (this.readyState !== 'open' || this.transport.name !== 'polling') return;
      if (this._paused) {
        this._upgradeWhenIdle();
        return;
      }
      this._polling = true;
      this._request('GET', this._url('polling', { sid: this.id, t: cacheBuster() }), null, (err, text) => {
        this._polling = false;
        if (this.readyState !== 'open') return;
        if (err) {
          this._onClose('transport error', err);
          return;
        }
        let packets;
        try {
          packets = Engine.decodePayload(text);
        } catch (e) {
          this._onClose('parse error');
          return;
        }
        for (let i = 0; i < packets.length && this.readyState === 'open'; i++) this._onPacket(packets[i]);
        this._poll();
      });
    }

    _flushOutbox() {
      if (this._posting || !this._outbox.length || this.readyState !== 'open') return;
      if (this._paused || this.transport.name !== 'polling') return;
      // As many packets as fit in the server's maxPayload (at least one).
      let body = '';
      let n = 0;
      while (n < this._outbox.length) {
        const add = Engine.encodeForPolling(this._outbox[n]);
        if (n > 0 && body.length + 1 + add.length > this.maxPayload) break;
        body += (n > 0 ? SEPARATOR : '') + add;
        n++;
      }
      this._outbox.splice(0, n);
      this._posting = true;
      this._postXhr = this._request('POST', this._url('polling', { sid: this.id, t: cacheBuster() }), body, (err) => {
        this._posting = false;
        this._postXhr = null;
        const then = this._afterPost; // close() waiting for this POST
        this._afterPost = null;
        if (then) then();
        if (this.readyState !== 'open') return;
        if (err) {
          this._onClose('transport error', err);
          return;
        }
        if (this._paused) this._upgradeWhenIdle();
        else this._flushOutbox();
      });
    }

    static encodeForPolling(packet) {
      return typeof packet === 'string' ? packet : 'b' + toBase64(packet);
    }

    // ---- the upgrade: back from polling to WebSocket on the same session ----
    //
    // As engine.io-client does: a WebSocket opened with our sid sends "2probe"; on "3probe", polling
    // pauses (the GET in flight returns, the server answers it with a noop; the POST in flight ends),
    // then "5" on the WebSocket makes it the session's transport and what polling had queued goes out
    // on it, in order. A probe that fails leaves polling as it was; the next one comes later each time.

    _canProbe() {
      const o = this.opts;
      return this.readyState === 'open' && this.transport.name === 'polling' && !!global.WebSocket &&
        o.transports.indexOf('websocket') !== -1 && this.upgrades.indexOf('websocket') !== -1 &&
        o.probeInterval !== false && o.probeInterval >= 0;
    }

    _scheduleProbe() {
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      if (!this._canProbe()) return;
      const o = this.opts;
      const failures = probeFailures.get(o.origin + o.path) || 0;
      let ms = Math.min(o.probeIntervalMax, o.probeInterval * Math.pow(2, Math.min(failures, 30)));
      const jitter = Math.min(1, Math.max(0, o.randomizationFactor || 0));
      ms = Math.floor(ms * (1 - jitter / 2 + jitter * Math.random()));
      this._probeTimer = setTimeout(() => this._probe(), ms);
    }

    _probe() {
      this._probeTimer = null;
      if (!this._canProbe()) return;
      let ws;
      try {
        ws = new global.WebSocket(this._url('websocket', { sid: this.id }));
      } catch (e) {
        this._probeFailed();
        return;
      }
      ws.binaryType = 'arraybuffer';
      this._probeWs = ws;
      // Covers the whole upgrade, the pause included.
      this._probeTimer = setTimeout(() => this._probeFailed(), this.opts.wsTimeout);
      ws.onopen = () => {
        try {
          ws.send('2probe');
        } catch (e) {
          this._probeFailed();
        }
      };
      ws.onmessage = (ev) => {
        if (ev.data === '3probe' && !this._paused) {
          this._paused = true;
          this._upgradeWhenIdle();
        } else {
          this._probeFailed();
        }
      };
      ws.onerror = ws.onclose = () => this._probeFailed();
    }

    _dropProbe() {
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      const ws = this._probeWs;
      this._probeWs = null;
      if (!ws) return;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close();
      } catch (e) {
        /* already closed */
      }
    }

    _probeFailed() {
      if (!this._probeWs) return;
      this._dropProbe();
      const key = this.opts.origin + this.opts.path;
      probeFailures.set(key, (probeFailures.get(key) || 0) + 1);
      if (this._paused) {
        // The server never got "5": polling still carries the session.
        this._paused = false;
        if (!this._polling) this._poll();
        this._flushOutbox();
      }
      this._scheduleProbe();
    }

    /** Paused: once no GET and no POST is in flight, confirm on the WebSocket and switch to it. */
    _upgradeWhenIdle() {
      if (!this._paused || this._polling || this._posting || this.readyState !== 'open') return;
      const ws = this._probeWs;
      try {
        ws.send('5');
      } catch (e) {
        this._probeFailed();
        return;
      }
      this._probeWs = null;
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      this._paused = false;
      this._ws = ws;
      this.transport = { name: 'websocket' };
      ws.onopen = null;
      ws.onmessage = (ev) => this._onWebSocketData(ev.data);
      ws.onerror = () => this._onWebSocketLost('transport error');
      ws.onclose = (ev) => this._onWebSocketLost('transport close', {
        description: 'websocket closed', code: ev && ev.code, reason: ev && ev.reason
      });
      probeFailures.delete(this.opts.origin + this.opts.path);
      forgetWsFailed(this.opts.origin, this.opts.path);
      const queued = this._outbox.splice(0);
      for (const packet of queued) this._send(packet);
      this.emitReserved('upgrade', this.transport);
    }

    // ---- both transports ----

    _handshake(data) {
      if (typeof data !== 'string' || data.charAt(0) !== '0') throw new Error('no open packet');
      const h = JSON.parse(data.slice(1));
      if (!h || typeof h.sid !== 'string') throw new Error('bad open packet');
      this.id = h.sid;
      if (h.pingInterval > 0) this.pingInterval = +h.pingInterval;
      if (h.pingTimeout > 0) this.pingTimeout = +h.pingTimeout;
      if (h.maxPayload > 0) this.maxPayload = +h.maxPayload;
      this.upgrades = Array.isArray(h.upgrades) ? h.upgrades : [];
    }

    _opened(name) {
      this.readyState = 'open';
      this.transport = { name: name };
      this._resetPingTimer();
      this.emitReserved('open');
    }

    _resetPingTimer() {
      clearTimeout(this._pingTimer);
      this._pingTimer = setTimeout(() => this._onClose('ping timeout'), this.pingInterval + this.pingTimeout);
    }

    _onPacket(data) {
      this._resetPingTimer();
      if (typeof data !== 'string') {
        this.emitReserved('message', data);
        return;
      }
      switch (data.charAt(0)) {
        case '4': // message
          this.emitReserved('message', data.slice(1));
          break;
        case '2': // ping: answer pong with the same data
          this._send('3' + data.slice(1));
          this.emitReserved('ping');
          break;
        case '1': // close
          this._onClose('transport close', { description: 'closed by the server' });
          break;
        case '0': // open (again)
        case '3': // pong
        case '5': // upgrade
        case '6': // noop
          break;
        default:
          this._onClose('parse error');
      }
    }

    _send(packet) {
      if (this.readyState !== 'open') return;
      if (this.transport.name === 'websocket') {
        try {
          this._ws.send(packet);
        } catch (e) {
          this._onClose('transport error', e);
        }
      } else {
        this._outbox.push(packet);
        this._flushOutbox();
      }
    }

    /** items: array of strings (Engine.IO message payloads) and ArrayBuffers (binary messages). */
    write(items) {
      for (const item of items) {
        if (this.readyState !== 'open') return;
        this._send(typeof item === 'string' ? '4' + item : item);
      }
    }

    _cleanup() {
      clearTimeout(this._pingTimer);
      this._pingTimer = null;
      this._dropProbe();
      this._paused = false;
      this._dropWebSocket();
      this._abortRequests();
      this._outbox = [];
    }

    _onClose(reason, details) {
      if (this.readyState !== 'open') return;
      this.readyState = 'closed';
      this._cleanup();
      this.emitReserved('close', reason, details);
    }

    _fail(err) {
      if (this.readyState !== 'opening') return;
      this.readyState = 'closed';
      this._cleanup();
      if (!err.type) err.type = 'TransportError';
      this.emitReserved('error', err);
    }

    /** Give up opening (no "error" event). */
    abort() {
      if (this.readyState !== 'opening') return;
      this.readyState = 'closed';
      this._cleanup();
    }

    /** Close from our side; pending polling output and a close packet go out in a last POST. */
    close() {
      if (this.readyState === 'opening') {
        this.abort();
        return;
      }
      if (this.readyState !== 'open') return;
      if (this.transport.name === 'polling') {
        const body = this._outbox.map(Engine.encodeForPolling).concat(['1']).join(SEPARATOR);
        this._outbox = [];
        const url = this._url('polling', { sid: this.id, t: cacheBuster() });
        const last = () => this._request('POST', url, body, function () {}, true);
        if (this._posting && this._postXhr) {
          // One POST at a time (the server closes a session on overlapping POSTs, as engine.io
          // does): let the one in flight finish, it may carry a DISCONNECT, then send ours.
          this._xhrs.delete(this._postXhr);
          this._afterPost = last;
        } else {
          last();
        }
      }
      this._onClose('forced close');
    }

    /** Page is going away: tell a polling server now instead of letting it time out. */
    _beacon() {
      if (this.readyState !== 'open' || this.transport.name !== 'polling') return;
      const url = this._url('polling', { sid: this.id, t: cacheBuster() });
      try {
        if (global.navigator && global.navigator.sendBeacon) {
          global.navigator.sendBeacon(url, new global.Blob(['1'], { type: 'text/plain;charset=UTF-8' }));
        }
      } catch (e) {
        /* best effort */
      }
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Socket.IO v5 packets
  // ------------------------------------------------------------------------------------------------

  const CONNECT = 0;
  const DISCONNECT = 1;
  const EVENT = 2;
  const ACK = 3;
  const CONNECT_ERROR = 4;
  const BINARY_EVENT = 5;
  const BINARY_ACK = 6;

  function isBinary(x) {
    if (!x || typeof x !== 'object') return false;
    if (typeof ArrayBuffer !== 'undefined' && (x instanceof ArrayBuffer || ArrayBuffer.isView(x))) return true;
    return typeof global.Blob !== 'undefined' && x instanceof global.Blob;
  }

  function hasBinary(x) {
    if (!x || typeof x !== 'object') return false;
    if (isBinary(x)) return true;
    if (Array.isArray(x)) return x.some(hasBinary);
    if (typeof x.toJSON === 'function') return hasBinary(x.toJSON());
    return Object.keys(x).some(function (k) { return hasBinary(x[k]); });
  }

  /** Replace binary values with placeholders, collecting them in `buffers`. */
  function deconstruct(x, buffers) {
    if (!x || typeof x !== 'object') return x;
    if (isBinary(x)) {
      buffers.push(x);
      return { _placeholder: true, num: buffers.length - 1 };
    }
    if (Array.isArray(x)) return x.map(function (v) { return deconstruct(v, buffers); });
    if (typeof x.toJSON === 'function') return deconstruct(x.toJSON(), buffers);
    const out = {};
    Object.keys(x).forEach(function (k) { out[k] = deconstruct(x[k], buffers); });
    return out;
  }

  function reconstruct(x, buffers) {
    if (!x || typeof x !== 'object') return x;
    if (Array.isArray(x)) {
      for (let i = 0; i < x.length; i++) x[i] = reconstruct(x[i], buffers);
      return x;
    }
    if (x._placeholder === true) {
      if (typeof x.num !== 'number' || !(x.num >= 0 && x.num < buffers.length) || x.num % 1) {
        throw new Error('illegal attachment');
      }
      return buffers[x.num];
    }
    Object.keys(x).forEach(function (k) { x[k] = reconstruct(x[k], buffers); });
    return x;
  }

  /** ArrayBuffer for an ArrayBuffer or view; a Promise of one for a Blob. */
  function toArrayBuffer(x) {
    if (x instanceof ArrayBuffer) return x;
    if (ArrayBuffer.isView(x)) return x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength);
    if (typeof x.arrayBuffer === 'function') return x.arrayBuffer();
    return new Promise(function (resolve, reject) {
      const reader = new global.FileReader();
      reader.onload = function () { resolve(reader.result); };
      reader.onerror = function () { reject(reader.error); };
      reader.readAsArrayBuffer(x);
    });
  }

  /** Encode a packet into [string, ...ArrayBuffer], or a Promise of that when Blobs must be read. */
  function encodePacket(packet) {
    // A decoded binary packet (the worker passes them on) is encoded again from its plain type.
    let type = packet.type === BINARY_EVENT ? EVENT : packet.type === BINARY_ACK ? ACK : packet.type;
    let data = packet.data;
    const buffers = [];
    if ((type === EVENT || type === ACK) && hasBinary(data)) {
      data = deconstruct(data, buffers);
      type = type === EVENT ? BINARY_EVENT : BINARY_ACK;
    }
    let s = String(type);
    if (type === BINARY_EVENT || type === BINARY_ACK) s += buffers.length + '-';
    if (packet.nsp && packet.nsp !== '/') s += packet.nsp + ',';
    if (packet.id !== undefined && packet.id !== null) s += packet.id;
    if (data !== undefined) s += JSON.stringify(data);
    if (!buffers.length) return [s];
    const parts = buffers.map(toArrayBuffer);
    if (parts.some(function (p) { return p instanceof Promise; })) {
      return Promise.all(parts).then(function (bins) { return [s].concat(bins); });
    }
    return [s].concat(parts);
  }

  function isObject(x) {
    return !!x && typeof x === 'object' && !Array.isArray(x);
  }

  /** Decode the string part of a packet; throws on anything malformed. fromClient: a tab's packet, in the worker. */
  function decodePacket(str, fromClient) {
    let i = 0;
    const type = str.charCodeAt(0) - 48;
    if (!(type >= CONNECT && type <= BINARY_ACK)) throw new Error('unknown packet type');
    const packet = { type: type, nsp: '/', attachments: 0 };
    i = 1;
    if (type === BINARY_EVENT || type === BINARY_ACK) {
      const start = i;
      while (i < str.length && str.charAt(i) !== '-') i++;
      const count = str.slice(start, i);
      if (i >= str.length || !/^\d+$/.test(count)) throw new Error('illegal attachments');
      packet.attachments = Number(count);
      i++;
    }
    if (str.charAt(i) === '/') {
      const start = i;
      while (i < str.length && str.charAt(i) !== ',') i++;
      packet.nsp = str.slice(start, i);
      i++; // the comma (or the end)
    }
    const idStart = i;
    while (i < str.length && str.charCodeAt(i) >= 48 && str.charCodeAt(i) <= 57) i++;
    if (i > idStart) packet.id = Number(str.slice(idStart, i));
    if (i < str.length) packet.data = JSON.parse(str.slice(i));

    const d = packet.data;
    let ok;
    switch (type) {
      case CONNECT: ok = isObject(d) || (!!fromClient && d === undefined); break;
      case DISCONNECT: ok = d === undefined; break;
      case CONNECT_ERROR: ok = typeof d === 'string' || isObject(d); break;
      case EVENT:
      case BINARY_EVENT:
        ok = Array.isArray(d) && d.length > 0 && (typeof d[0] === 'string' || typeof d[0] === 'number');
        break;
      default: // ACK, BINARY_ACK
        ok = Array.isArray(d) && packet.id !== undefined;
    }
    if (!ok) throw new Error('invalid payload');
    return packet;
  }

  /** Engine.IO messages in, Socket.IO packets out: a binary packet is complete with its attachments. */
  class Decoder {
    constructor(fromClient) {
      this.fromClient = !!fromClient;
      this.pending = null; // a BINARY_EVENT/ACK waiting for its attachments
    }

    /** The packet `data` completes, or null; throws on anything malformed. */
    add(data) {
      if (typeof data === 'string') {
        if (this.pending) throw new Error('attachment expected');
        const p = decodePacket(data, this.fromClient);
        if (p.attachments > 0) {
          this.pending = { packet: p, buffers: [] };
          return null;
        }
        return p;
      }
      const pending = this.pending;
      if (!pending) throw new Error('unexpected binary message');
      pending.buffers.push(data);
      if (pending.buffers.length < pending.packet.attachments) return null;
      this.pending = null;
      pending.packet.data = reconstruct(pending.packet.data, pending.buffers);
      return pending.packet;
    }

    reset() {
      this.pending = null;
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Manager: one Engine.IO connection, its reconnection, and the namespace sockets on it
  // ------------------------------------------------------------------------------------------------

  function normalizePath(path) {
    path = path || '/socket.io/';
    if (path.charAt(0) !== '/') path = '/' + path;
    return path.replace(/\/+$/, '') + '/';
  }

  /** Split a URI into the Engine.IO origin, the namespace and the query. */
  function parseUri(uri) {
    const loc = global.location;
    const base = loc && loc.href ? loc.href : 'http://localhost/';
    if (uri === undefined || uri === null || uri === '') {
      const u = new URL(base);
      return { origin: u.protocol + '//' + u.host, nsp: '/', query: null };
    }
    const u = new URL(String(uri), base);
    let protocol = u.protocol;
    if (protocol === 'ws:') protocol = 'http:';
    if (protocol === 'wss:') protocol = 'https:';
    const query = {};
    let hasQuery = false;
    u.searchParams.forEach(function (v, k) {
      query[k] = v;
      hasQuery = true;
    });
    return { origin: protocol + '//' + u.host, nsp: u.pathname || '/', query: hasQuery ? query : null };
  }

  const managers = new Set(); // for the pagehide beacon

  class Manager extends Emitter {
    constructor(uri, opts) {
      super();
      if (uri && typeof uri === 'object') {
        opts = uri;
        uri = undefined;
      }
      opts = Object.assign({}, opts || {});
      const parsed = parseUri(uri);
      this.uri = parsed.origin;
      this.opts = Object.assign({
        reconnection: true,
        reconnectionAttempts: Infinity,
        reconnectionDelay: 1000,
        reconnectionDelayMax: 5000,
        randomizationFactor: 0.5,
        timeout: 20000,
        wsTimeout: 3000,
        probeInterval: 2000, // first upgrade probe after a fall back to polling; doubles on each failure
        probeIntervalMax: 60000,
        transports: ['websocket', 'polling'],
        autoConnect: true,
        withCredentials: false,
        maxBufferedPackets: 1000
      }, opts);
      this.opts.path = normalizePath(opts.path);
      this.opts.query = Object.assign({}, parsed.query || {}, opts.query || {});
      this.nsps = Object.create(null);
      this.engine = null;
      this.backoff = new Backoff(() => ({
        min: this.opts.reconnectionDelay,
        max: this.opts.reconnectionDelayMax,
        jitter: this.opts.randomizationFactor
      }));
      this.skipReconnect = false;
      this._readyState = 'closed';
      this._reconnecting = false;
      this._reconnectTimer = null;
      this._active = new Set(); // sockets that want to be connected
      this._outQueue = []; // encoded packets, in emit order (Blob reads are asynchronous)
      this._decoder = new Decoder();
      if (this.opts.autoConnect) this.open();
    }

    // Option getters/setters, like the official client.
    reconnection(v) { if (v === undefined) return this.opts.reconnection; this.opts.reconnection = !!v; if (!v) this.skipReconnect = true; return this; }
    reconnectionAttempts(v) { if (v === undefined) return this.opts.reconnectionAttempts; this.opts.reconnectionAttempts = v; return this; }
    reconnectionDelay(v) { if (v === undefined) return this.opts.reconnectionDelay; this.opts.reconnectionDelay = v; return this; }
    reconnectionDelayMax(v) { if (v === undefined) return this.opts.reconnectionDelayMax; this.opts.reconnectionDelayMax = v; return this; }
    randomizationFactor(v) { if (v === undefined) return this.opts.randomizationFactor; this.opts.randomizationFactor = v; return this; }
    timeout(v) { if (v === undefined) return this.opts.timeout; this.opts.timeout = v; return this; }

    get readyState() {
      return this._readyState;
    }

    /** True when this Manager's connection is the one the browser's tabs share (io({shared: true})). */
    get shared() {
      return this.engine instanceof PortEngine;
    }

    /** "websocket", "polling", or null while no connection is open. */
    get transport() {
      return this._readyState === 'open' && this.engine ? this.engine.transport.name : null;
    }

    socket(nsp, opts) {
      nsp = nsp || '/';
      if (nsp.charAt(0) !== '/') nsp = '/' + nsp;
      let socket = this.nsps[nsp];
      if (!socket) {
        socket = new Socket(this, nsp, opts);
        this.nsps[nsp] = socket;
      } else if (this.opts.autoConnect && !(opts && opts.autoConnect === false) && !socket.active) {
        socket.connect();
      }
      return socket;
    }

    open(fn) {
      if (this._readyState !== 'closed') {
        if (fn && this._readyState === 'open') fn();
        return this;
      }
      this.skipReconnect = !this.opts.reconnection;
      this._readyState = 'opening';
      managers.add(this);
      const engineOpts = {
        origin: this.uri,
        path: this.opts.path,
        query: this.opts.query,
        transports: this.opts.transports,
        wsTimeout: this.opts.wsTimeout,
        probeInterval: this.opts.probeInterval,
        probeIntervalMax: this.opts.probeIntervalMax,
        randomizationFactor: this.opts.randomizationFactor,
        withCredentials: this.opts.withCredentials,
        extraHeaders: this.opts.extraHeaders,
        reconnectionDelay: this.opts.reconnectionDelay,
        reconnectionDelayMax: this.opts.reconnectionDelayMax,
        timeout: this.opts.timeout
      };
      const port = this.opts.shared ? sharedLink() : null;
      const engine = port ? new PortEngine(engineOpts, port) : new Engine(engineOpts);
      this.engine = engine;
      this._decoder.reset();
      this._outQueue = [];
      let timer = null;
      engine.on('open', () => {
        clearTimeout(timer);
        if (this.engine !== engine) return;
        this._onopen();
        if (fn) fn();
      });
      engine.on('error', (err) => {
        clearTimeout(timer);
        if (this.engine !== engine) return;
        this._readyState = 'closed';
        this.emitReserved('error', err);
        for (const s of Array.from(this._active)) s._onManagerError(err);
        if (fn) fn(err);
        else this._maybeReconnectOnOpen();
      });
      engine.on('close', (reason, details) => {
        if (this.engine === engine) this._onclose(reason, details);
      });
      engine.on('message', (data) => {
        if (this.engine === engine) this._ondata(data);
      });
      engine.on('ping', () => this.emitReserved('ping'));
      engine.on('upgrade', (transport) => {
        if (this.engine === engine && this._readyState === 'open') this.emitReserved('transport', transport.name);
      });
      const t = this.opts.timeout;
      if (t !== false && t !== Infinity && t >= 0) {
        timer = setTimeout(() => {
          if (this.engine !== engine || engine.readyState !== 'opening') return;
          engine._fail(new Error('timeout'));
        }, t);
      }
      engine.start();
      return this;
    }

    connect(fn) {
      return this.open(fn);
    }

    _maybeReconnectOnOpen() {
      if (!this._reconnecting && this.opts.reconnection && this.backoff.attempts === 0) this._reconnect();
    }

    _onopen() {
      this._readyState = 'open';
      this.emitReserved('open');
      this.emitReserved('transport', this.engine.transport.name);
      for (const s of Array.from(this._active)) s._onopen();
    }

    _ondata(data) {
      let packet = null;
      try {
        packet = this._decoder.add(data);
      } catch (e) {
        this._decoder.reset();
        if (this.engine) this.engine._onClose('parse error', { description: e.message });
        return;
      }
      if (!packet) return;
      const socket = this.nsps[packet.nsp];
      if (socket && this._active.has(socket)) socket._onpacket(packet);
    }

    /** Encode and write a packet, keeping emit order even when Blobs are read first. */
    _packet(packet) {
      const encoded = encodePacket(packet); // throws (e.g. circular data) into the caller of emit
      const item = { parts: Array.isArray(encoded) ? encoded : null };
      this._outQueue.push(item);
      if (!item.parts) {
        encoded.then((parts) => {
          item.parts = parts;
          this._drainOutQueue();
        }, (err) => {
          item.parts = [];
          report(err);
          this._drainOutQueue();
        });
      }
      this._drainOutQueue();
    }

    _drainOutQueue() {
      while (this._outQueue.length && this._outQueue[0].parts) {
        const item = this._outQueue.shift();
        if (this._readyState === 'open' && this.engine && item.parts.length) this.engine.write(item.parts);
      }
    }

    _onclose(reason, details) {
      this._readyState = 'closed';
      this._decoder.reset();
      this._outQueue = [];
      this.backoff.reset();
      this.emitReserved('transport', null);
      this.emitReserved('close', reason, details);
      for (const s of Array.from(this._active)) s._onclose(reason, details);
      if (this.opts.reconnection && !this.skipReconnect) this._reconnect();
    }

    _reconnect() {
      if (this._reconnecting || this.skipReconnect) return;
      if (this.backoff.attempts >= this.opts.reconnectionAttempts) {
        this.backoff.reset();
        this.emitReserved('reconnect_failed');
        return;
      }
      const delay = this.backoff.duration();
      this._reconnecting = true;
      this._reconnectTimer = setTimeout(() => {
        this._reconnectTimer = null;
        if (this.skipReconnect) return;
        this.emitReserved('reconnect_attempt', this.backoff.attempts);
        if (this.skipReconnect) return;
        this.open((err) => {
          if (err) {
            this._reconnecting = false;
            this._reconnect();
            this.emitReserved('reconnect_error', err);
          } else {
            const attempts = this.backoff.attempts;
            this._reconnecting = false;
            this.backoff.reset();
            this.emitReserved('reconnect', attempts);
          }
        });
      }, delay);
    }

    /** A socket no longer wants to be connected; close when none does. */
    _destroy(socket) {
      this._active.delete(socket);
      if (!this._active.size) this._close();
    }

    _close() {
      managers.delete(this);
      this.skipReconnect = true;
      this._reconnecting = false;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this.backoff.reset();
      const wasOpen = this._readyState === 'open';
      this._readyState = 'closed';
      const engine = this.engine;
      if (engine) {
        engine.off();
        engine.close();
      }
      this._decoder.reset();
      this._outQueue = [];
      if (wasOpen) {
        this.emitReserved('transport', null);
        this.emitReserved('close', 'forced close');
        for (const s of Array.from(this._active)) s._onclose('forced close');
      }
    }

    disconnect() {
      this._close();
      return this;
    }

    close() {
      return this.disconnect();
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Socket: one namespace
  // ------------------------------------------------------------------------------------------------

  const RESERVED = new Set(['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

  class Socket extends Emitter {
    constructor(io, nsp, opts) {
      super();
      opts = opts || {};
      this.io = io;
      this.nsp = nsp;
      this.id = undefined;
      this.connected = false;
      this.recovered = false;
      this._pid = undefined;        // private session id: set by the server when recovery is on
      this._lastOffset = undefined; // offset of the last event received, for recovery
      this.auth = opts.auth;
      this.receiveBuffer = [];
      this.sendBuffer = [];
      this.ids = 0;
      this.acks = {};
      this.flags = {};
      this._opts = opts;
      this._any = [];
      this._anyOutgoing = [];
      this._connectAttempt = 0; // which CONNECT we are waiting for (0: none)
      this._retryTimer = null;
      this._backoff = new Backoff(() => ({
        min: io.opts.reconnectionDelay,
        max: io.opts.reconnectionDelayMax,
        jitter: io.opts.randomizationFactor
      }));
      if (io.opts.autoConnect && opts.autoConnect !== false) this.connect();
    }

    get disconnected() {
      return !this.connected;
    }

    get active() {
      return this.io._active.has(this);
    }

    /** "websocket" or "polling" while the connection is up, else null. */
    get transport() {
      return this.io.transport;
    }

    get volatile() {
      this.flags.volatile = true;
      return this;
    }

    compress() {
      return this;
    }

    timeout(ms) {
      this.flags.timeout = ms;
      return this;
    }

    connect() {
      if (this.connected) return this;
      this.io._active.add(this);
      if (this.io._readyState === 'open') this._onopen();
      else if (this.io._readyState === 'closed' && !this.io._reconnecting) this.io.open();
      return this;
    }

    open() {
      return this.connect();
    }

    disconnect() {
      const wasConnected = this.connected;
      if (wasConnected) this._send({ type: DISCONNECT, nsp: this.nsp });
      this._destroy();
      if (wasConnected) this._onclose('io client disconnect');
      return this;
    }

    close() {
      return this.disconnect();
    }

    _destroy() {
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      this._connectAttempt = 0;
      if (this.io._active.has(this)) this.io._destroy(this);
    }

    send() {
      const args = Array.prototype.slice.call(arguments);
      return this.emit.apply(this, ['message'].concat(args));
    }

    emit(event) {
      if (RESERVED.has(event)) throw new Error('"' + String(event) + '" is a reserved event name');
      const data = Array.prototype.slice.call(arguments);
      const packet = { type: EVENT, nsp: this.nsp, data: data };
      if (typeof data[data.length - 1] === 'function') {
        const id = this.ids++;
        this._registerAck(id, data.pop());
        packet.id = id;
      }
      const flags = this.flags;
      this.flags = {};
      if (this.connected && this.io._readyState === 'open') {
        this._notifyOutgoing(packet);
        this._send(packet);
      } else if (!flags.volatile) {
        if (this.sendBuffer.length >= this.io.opts.maxBufferedPackets) this._dropOldestBuffered();
        this.sendBuffer.push(packet);
      }
      return this;
    }

    emitWithAck(event) {
      const args = Array.prototype.slice.call(arguments, 1);
      const withErr = this.flags.timeout !== undefined || this._opts.ackTimeout !== undefined;
      return new Promise((resolve, reject) => {
        args.push(function (a, b) {
          if (!withErr) resolve(a);
          else if (a) reject(a);
          else resolve(b);
        });
        this.emit.apply(this, [event].concat(args));
      });
    }

    _registerAck(id, fn) {
      const ms = this.flags.timeout !== undefined ? this.flags.timeout : this._opts.ackTimeout;
      if (ms === undefined) {
        this.acks[id] = fn;
        return;
      }
      const timer = setTimeout(() => {
        delete this.acks[id];
        this.sendBuffer = this.sendBuffer.filter(function (p) { return p.id !== id; });
        fn.call(this, new Error('operation has timed out'));
      }, ms);
      const wrapped = (...args) => {
        clearTimeout(timer);
        fn.apply(this, args);
      };
      wrapped.withError = true;
      wrapped.timer = timer;
      this.acks[id] = wrapped;
    }

    _dropOldestBuffered() {
      const dropped = this.sendBuffer.shift();
      if (dropped && dropped.id !== undefined) {
        const ack = this.acks[dropped.id];
        delete this.acks[dropped.id];
        if (ack && ack.withError) {
          clearTimeout(ack.timer);
          try {
            ack.call(this, new Error('send buffer overflow'));
          } catch (e) {
            report(e);
          }
        }
      }
    }

    _send(packet) {
      if (this.io._readyState === 'open') this.io._packet(packet);
    }

    _notifyOutgoing(packet) {
      if (!this._anyOutgoing.length) return;
      for (const fn of this._anyOutgoing.slice()) {
        try {
          fn.apply(this, packet.data);
        } catch (e) {
          report(e);
        }
      }
    }

    // ---- called by the Manager ----

    _onopen() {
      if (this.connected || this._connectAttempt) return;
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      const attempt = this._connectAttempt = Date.now() + Math.random();
      const sendConnect = (data) => {
        if (this._connectAttempt !== attempt || this.io._readyState !== 'open') return;
        if (data === null) data = undefined;
        // Coming back: ask for our state and whatever we missed since the last offset.
        if (this._pid) data = Object.assign({ pid: this._pid, offset: this._lastOffset }, data);
        this._send({ type: CONNECT, nsp: this.nsp, data: data });
      };
      if (typeof this.auth === 'function') {
        try {
          this.auth(sendConnect);
        } catch (e) {
          report(e);
        }
      } else {
        sendConnect(this.auth);
      }
    }

    _onManagerError(err) {
      if (!this.connected) this.emitReserved('connect_error', err);
    }

    _onpacket(packet) {
      switch (packet.type) {
        case CONNECT:
          if (packet.data && typeof packet.data.sid === 'string') {
            // Through the worker, recovery is the worker's: it says whether the server socket recovered.
            const viaWorker = this.io.engine instanceof PortEngine;
            this._onconnect(packet.data.sid, packet.data.pid, viaWorker && packet.data.recovered === true);
          } else {
            this._connectAttempt = 0;
            this.emitReserved('connect_error', new Error(
              'It seems you are trying to reach a Socket.IO server in v2.x with a v3.x client, but they are not compatible'));
          }
          break;
        case EVENT:
        case BINARY_EVENT:
          this._onevent(packet);
          break;
        case ACK:
        case BINARY_ACK:
          this._onack(packet);
          break;
        case DISCONNECT:
          this._ondisconnect();
          break;
        case CONNECT_ERROR: {
          // Refused (e.g. by a middleware): stay down until connect() is called again.
          this._destroy();
          const d = packet.data;
          const err = new Error(isObject(d) ? String(d.message) : String(d));
          if (isObject(d)) err.data = d.data;
          this.emitReserved('connect_error', err);
          break;
        }
      }
    }

    _onconnect(id, pid, recovered) {
      this._connectAttempt = 0;
      this.id = id;
      this.recovered = !!recovered || (typeof pid === 'string' && pid === this._pid);
      this._pid = typeof pid === 'string' ? pid : undefined;
      this.connected = true;
      this._backoff.reset();
      const received = this.receiveBuffer.splice(0);
      for (const args of received) this._dispatch(args);
      const toSend = this.sendBuffer.splice(0);
      for (const packet of toSend) {
        this._notifyOutgoing(packet);
        this._send(packet);
      }
      this.emitReserved('connect');
    }

    _onevent(packet) {
      const args = packet.data.slice();
      // With recovery on, an event without an ack id carries its offset last: ours, not the page's.
      if (this._pid && packet.id === undefined && args.length > 1 && typeof args[args.length - 1] === 'string') {
        this._lastOffset = args.pop();
      }
      if (packet.id !== undefined) args.push(this._ackCallback(packet.id));
      if (this.connected) this._dispatch(args);
      else this.receiveBuffer.push(args);
    }

    _dispatch(args) {
      for (const fn of this._any.slice()) {
        try {
          fn.apply(this, args);
        } catch (e) {
          report(e);
        }
      }
      this.emitReserved.apply(this, args);
    }

    _ackCallback(id) {
      let sent = false;
      return (...args) => {
        if (sent) return;
        sent = true;
        this._send({ type: ACK, nsp: this.nsp, id: id, data: args });
      };
    }

    _onack(packet) {
      const ack = this.acks[packet.id];
      if (typeof ack !== 'function') return;
      delete this.acks[packet.id];
      const args = packet.data.slice();
      if (ack.withError) args.unshift(null);
      try {
        ack.apply(this, args);
      } catch (e) {
        report(e);
      }
    }

    _ondisconnect() {
      // The server let this socket go on purpose: like the official client,
      // stay down until the page calls connect() again.
      this._onclose('io server disconnect');
      this._destroy();
    }

    _onclose(reason, details) {
      this._connectAttempt = 0;
      const wasConnected = this.connected;
      this.connected = false;
      this.id = undefined;
      this._clearAcks();
      if (wasConnected) this.emitReserved('disconnect', reason, details);
    }

    /** Acks with a timeout fail at once on disconnection unless their packet is still buffered. */
    _clearAcks() {
      Object.keys(this.acks).forEach((key) => {
        const id = Number(key);
        if (this.sendBuffer.some(function (p) { return p.id === id; })) return;
        const ack = this.acks[key];
        if (!ack.withError) return;
        delete this.acks[key];
        clearTimeout(ack.timer);
        try {
          ack.call(this, new Error('socket has been disconnected'));
        } catch (e) {
          report(e);
        }
      });
    }

    // ---- catch-all listeners ----

    onAny(fn) { this._any.push(fn); return this; }
    prependAny(fn) { this._any.unshift(fn); return this; }
    offAny(fn) {
      if (!fn) this._any = [];
      else this._any = this._any.filter(function (f) { return f !== fn; });
      return this;
    }
    listenersAny() { return this._any.slice(); }
    onAnyOutgoing(fn) { this._anyOutgoing.push(fn); return this; }
    prependAnyOutgoing(fn) { this._anyOutgoing.unshift(fn); return this; }
    offAnyOutgoing(fn) {
      if (!fn) this._anyOutgoing = [];
      else this._anyOutgoing = this._anyOutgoing.filter(function (f) { return f !== fn; });
      return this;
    }
    listenersAnyOutgoing() { return this._anyOutgoing.slice(); }
  }

  // ------------------------------------------------------------------------------------------------
  // One connection for all the tabs of an origin: io({shared: true})
  // ------------------------------------------------------------------------------------------------
  //
  // This very file runs as a SharedWorker (one per origin and script URL in a browser profile). The
  // worker holds one Manager per endpoint, so one Engine.IO session (one pending GET on polling) and
  // one server socket per namespace for the whole browser. Each tab keeps its own Manager and Sockets
  // (handlers, emits, acks, buffering, timeouts are the tab's own); only the tab's engine is replaced by
  // a PortEngine that carries the tab's Socket.IO packets, encoded as on the wire, to the worker. The
  // worker joins the tabs' sockets of a namespace onto its one server socket (a Mux): the first CONNECT
  // (with that tab's auth) goes to the server, later tabs are answered at once with the socket's id;
  // events from the server go to every tab in the namespace; each tab's acks come back to it alone (the
  // worker renumbers ack ids); an event the server sends with an ack is answered by the first tab that
  // acks it. The worker keeps the recovery state (pid, offset) of the server socket. The server socket
  // leaves when the last tab of the namespace leaves; the connection closes when no tab needs it.

  const IN_WORKER = typeof global.SharedWorkerGlobalScope !== 'undefined' && global instanceof global.SharedWorkerGlobalScope;
  const SCRIPT_URL = !IN_WORKER && global.document && global.document.currentScript ? global.document.currentScript.src : null;
  let link; // the tab's port to the worker: undefined until tried, null when sharing is not possible

  /** The port to the worker, made once per page; null where there is no SharedWorker (then each tab connects itself). */
  function sharedLink() {
    if (link !== undefined) return link;
    link = null;
    if (IN_WORKER || !SCRIPT_URL || typeof global.SharedWorker !== 'function') return null;
    let worker;
    try {
      worker = new global.SharedWorker(SCRIPT_URL, { name: 'socket.io' });
    } catch (e) {
      return null; // e.g. the script is on another origin, or workers are blocked
    }
    const port = worker.port;
    const engines = new Map();
    let next = 1;
    link = {
      post(msg) {
        try {
          port.postMessage(msg);
        } catch (e) {
          report(e); // data that cannot be cloned: dropped, as JSON would drop a function
        }
      },
      add(engine) {
        engines.set(next, engine);
        return next++;
      },
      remove(id) {
        engines.delete(id);
      }
    };
    port.onmessage = function (ev) {
      const msg = ev.data;
      const engine = msg && engines.get(msg.c);
      if (engine) engine._onWorker(msg);
    };
    worker.onerror = function () {
      // The worker could not start or died: later connections of this page are its own.
      link = null;
      for (const engine of Array.from(engines.values())) engine._onWorker({ t: 'close', reason: 'transport error' });
    };
    // The worker must learn when this tab is gone: at pagehide, and through a Web Lock held for the
    // page's life, which the browser releases however the page ends (crash, kill, closed tab).
    // "hello" names the lock once the tab holds it, so the worker's request can only come after.
    const tab = Date.now().toString(36) + Math.random().toString(36).slice(2);
    try {
      global.navigator.locks.request('socket.io-tab:' + tab, function () {
        if (link) link.post({ t: 'hello', tab: tab });
        return new Promise(function () {});
      });
    } catch (e) {
      /* no locks: pagehide alone */
    }
    global.addEventListener('pagehide', function () { link && link.post({ t: 'bye' }); });
    return link;
  }

  /** A tab's end of the shared connection, with the Engine's interface that the Manager uses. */
  class PortEngine extends Emitter {
    constructor(opts, port) {
      super();
      this.opts = opts;
      this.readyState = 'opening';
      this.transport = null;
      this.id = null;
      this._link = port;
      this._c = port.add(this);
    }

    start() {
      this._link.post({ t: 'open', c: this._c, opts: this.opts });
    }

    _onWorker(msg) {
      switch (msg.t) {
        case 'open':
          if (this.readyState !== 'opening') return;
          this.readyState = 'open';
          this.id = msg.sid;
          this.transport = { name: msg.transport };
          this.emitReserved('open');
          break;
        case 'data':
          for (const item of msg.items) {
            if (this.readyState !== 'open') return;
            this.emitReserved('message', item);
          }
          break;
        case 'upgrade':
          if (this.readyState !== 'open') return;
          this.transport = { name: msg.transport };
          this.emitReserved('upgrade', this.transport);
          break;
        case 'close':
        case 'error': {
          const was = this.readyState;
          this._gone();
          if (was === 'open') this.emitReserved('close', msg.reason, msg.details);
          else if (was === 'opening') this.emitReserved('error', Object.assign(new Error(msg.reason), { type: 'TransportError' }));
          break;
        }
      }
    }

    _gone() {
      this.readyState = 'closed';
      this._link.remove(this._c);
    }

    write(items) {
      if (this.readyState === 'open') this._link.post({ t: 'data', c: this._c, items: items });
    }

    close() {
      if (this.readyState === 'closed') return;
      const was = this.readyState;
      this._link.post({ t: 'close', c: this._c });
      this._gone();
      if (was === 'open') this.emitReserved('close', 'forced close');
    }

    abort() {
      if (this.readyState === 'opening') this.close();
    }

    _fail(err) {
      if (this.readyState !== 'opening') return;
      this.close();
      this.emitReserved('error', err);
    }

    _onClose(reason, details) {
      // The tab could not parse what the worker passed on: this tab's connection ends, not the others'.
      if (this.readyState !== 'open') return;
      this._link.post({ t: 'close', c: this._c });
      this._gone();
      this.emitReserved('close', reason, details);
    }

    _beacon() {
      /* the worker's connection outlives this tab */
    }
  }

  // ---- the worker's side ----

  /** One namespace's server socket in the worker, shared by the tabs' sockets of that namespace. */
  class Mux {
    constructor(upstream, nsp) {
      this.upstream = upstream;
      this.io = upstream.manager;
      this.nsp = nsp;
      this.asking = new Map(); // conn -> its CONNECT data, waiting for the server's answer
      this.ready = new Set(); // conns whose socket is connected
      this.connected = false;
      this.sent = false; // our CONNECT is on its way
      this.sid = undefined;
      this.pid = undefined; // recovery: the server socket's private id and the last offset seen
      this.lastOffset = undefined;
      this.ids = 0;
      this.acks = new Map(); // our ack id -> {conn, id}: the tab that emitted and its own id
      this.serverAcks = new Set(); // ack ids of server events no tab has answered yet
      // Tabs that were connected when the connection dropped and have not connected again yet: what
      // the server sends (a recovery's missed packets first) waits here for them, so a tab that comes
      // back later than another misses nothing.
      this.away = new Map(); // Tab -> [encoded packets]
    }

    has(conn) {
      return this.ready.has(conn) || this.asking.has(conn);
    }

    // ---- from a tab ----

    fromTab(conn, packet) {
      switch (packet.type) {
        case CONNECT:
          if (this.connected) {
            const missed = this.away.get(conn.tab);
            this.away.delete(conn.tab);
            this.ready.add(conn);
            conn.send(encodePacket({ type: CONNECT, nsp: this.nsp, data: { sid: this.sid, recovered: !!missed } }));
            if (missed) for (const parts of missed) conn.send(parts);
          } else {
            this.asking.set(conn, packet.data);
            this._connect();
          }
          break;
        case DISCONNECT:
          this.leave(conn);
          break;
        case EVENT:
        case BINARY_EVENT:
          if (!this.connected || !this.ready.has(conn)) return; // in flight when the connection dropped
          if (packet.id !== undefined) {
            const id = this.ids++;
            this.acks.set(id, { conn: conn, id: packet.id });
            packet.id = id;
          }
          this.io._packet(packet);
          break;
        case ACK:
        case BINARY_ACK:
          if (this.connected && this.serverAcks.delete(packet.id)) this.io._packet(packet);
          break;
      }
    }

    leave(conn) {
      if (!this.has(conn)) return;
      this.ready.delete(conn);
      this.asking.delete(conn);
      for (const [id, ack] of this.acks) if (ack.conn === conn) this.acks.delete(id);
      if (this.ready.size || this.asking.size) return;
      // The last tab of the namespace left: so does the server socket.
      if (this.connected || this.sent) this.io._packet({ type: DISCONNECT, nsp: this.nsp });
      this._reset();
      this.io._destroy(this);
    }

    _connect() {
      if (this.sent || !this.asking.size) return;
      this.io._active.add(this);
      this.io.nsps[this.nsp] = this;
      if (this.io._readyState !== 'open') {
        if (this.io._readyState === 'closed' && !this.io._reconnecting) this.io.open();
        return;
      }
      let data = this.asking.values().next().value; // the first tab's auth speaks for the browser
      if (data === null) data = undefined;
      if (this.pid) data = Object.assign({}, data, { pid: this.pid, offset: this.lastOffset });
      this.sent = true;
      this.io._packet({ type: CONNECT, nsp: this.nsp, data: data });
    }

    _reset() {
      this.connected = this.sent = false;
      this.ready.clear();
      this.asking.clear();
      this.acks.clear();
      this.serverAcks.clear();
    }

    _toReady(packet) {
      if (!this.ready.size && !this.away.size) return;
      const parts = encodePacket(packet); // ArrayBuffers only here: never a Promise
      for (const conn of this.ready) conn.send(parts);
      for (const [tab, missed] of this.away) {
        if (missed.length < 1000) missed.push(parts);
        else this.away.delete(tab); // too far behind: it will connect as not recovered, and resync
      }
    }

    /** The connection dropped: the tabs connected now will be back. */
    _wentAway() {
      for (const conn of this.ready) this.away.set(conn.tab, []);
    }

    // ---- what the Manager calls (a Socket's interface) ----

    _onopen() {
      this.sent = false;
      this._connect();
    }

    _onpacket(packet) {
      switch (packet.type) {
        case CONNECT: {
          if (!packet.data || typeof packet.data.sid !== 'string') return;
          const pid = typeof packet.data.pid === 'string' ? packet.data.pid : undefined;
          const recovered = pid !== undefined && pid === this.pid;
          this.pid = pid;
          this.sid = packet.data.sid;
          this.connected = true;
          this.sent = false;
          if (!recovered) this.away.clear(); // a new server socket: nothing to wait for
          for (const conn of this.asking.keys()) {
            const back = recovered && this.away.delete(conn.tab);
            this.ready.add(conn);
            conn.send(encodePacket({ type: CONNECT, nsp: this.nsp, data: { sid: this.sid, recovered: back } }));
          }
          this.asking.clear();
          break;
        }
        case EVENT:
        case BINARY_EVENT: {
          const args = packet.data;
          // The offset is ours (the worker's socket recovers), not the tabs'.
          if (this.pid && packet.id === undefined && args.length > 1 && typeof args[args.length - 1] === 'string') {
            this.lastOffset = args.pop();
          }
          if (packet.id !== undefined) this.serverAcks.add(packet.id);
          this._toReady(packet);
          break;
        }
        case ACK:
        case BINARY_ACK: {
          const ack = this.acks.get(packet.id);
          if (!ack) return;
          this.acks.delete(packet.id);
          if (this.ready.has(ack.conn)) ack.conn.send(encodePacket(Object.assign({}, packet, { id: ack.id })));
          break;
        }
        case DISCONNECT:
          // The server let the socket go: every tab's socket stays down until it connects again.
          this.away.clear();
          this._toReady(packet);
          this._reset();
          this.io._destroy(this);
          break;
        case CONNECT_ERROR: {
          const refused = encodePacket(packet);
          for (const conn of this.asking.keys()) conn.send(refused);
          this.asking.clear();
          this.sent = false;
          if (!this.ready.size) this.io._destroy(this);
          break;
        }
      }
    }

    _onclose() {
      // The Upstream drops every tab's connection: their Managers reconnect and CONNECT again.
      this._reset();
    }

    _onManagerError() {}
  }

  /** One endpoint in the worker: its Manager, the tabs' connections (Conns) on it, a Mux per namespace. */
  class Upstream {
    constructor(key, opts) {
      this.key = key;
      this.conns = new Set();
      this.muxes = Object.create(null);
      const m = this.manager = new Manager(opts.origin, Object.assign({}, opts, {
        // The tabs reconnect (each its own Manager, with its backoff); the worker follows them.
        autoConnect: false, reconnection: false, shared: false
      }));
      m.on('open', () => {
        for (const conn of this.conns) conn.opened();
      });
      m.on('transport', (name) => {
        if (!name) return;
        for (const conn of this.conns) conn.upgraded(name);
      });
      m.on('close', (reason, details) => {
        for (const nsp of Object.keys(this.muxes)) this.muxes[nsp]._wentAway();
        for (const conn of Array.from(this.conns)) conn.drop('close', reason, details && { description: String(details.description || details.message || details) });
      });
      m.on('error', (err) => {
        for (const conn of Array.from(this.conns)) if (!conn.open) conn.drop('error', err && err.message);
      });
    }

    attach(conn) {
      this.conns.add(conn);
      const m = this.manager;
      if (m._readyState === 'open') conn.opened();
      else if (m._readyState === 'closed' && !m._reconnecting) m.open();
    }

    fromTab(conn, packet) {
      let mux = this.muxes[packet.nsp];
      if (!mux) mux = this.muxes[packet.nsp] = new Mux(this, packet.nsp);
      mux.fromTab(conn, packet);
    }

    detach(conn) {
      if (!this.conns.delete(conn)) return;
      for (const nsp of Object.keys(this.muxes)) this.muxes[nsp].leave(conn);
      if (!this.conns.size && this.manager._readyState !== 'closed' && !this.manager._active.size) this.manager._close();
    }
  }

  /** A tab Manager's connection in the worker (the far end of its PortEngine). */
  class Conn {
    constructor(tab, c, upstream) {
      this.tab = tab;
      this.c = c;
      this.upstream = upstream;
      this.open = false;
      this.transport = null;
      this.decoder = new Decoder(true);
    }

    post(msg) {
      msg.c = this.c;
      this.tab.port.postMessage(msg);
    }

    opened() {
      if (this.open) return;
      const engine = this.upstream.manager.engine;
      this.open = true;
      this.transport = engine.transport.name;
      this.post({ t: 'open', sid: engine.id, transport: this.transport });
    }

    upgraded(name) {
      if (!this.open || name === this.transport) return;
      this.transport = name;
      this.post({ t: 'upgrade', transport: name });
    }

    send(parts) {
      if (this.open) this.post({ t: 'data', items: parts });
    }

    fromTab(items) {
      if (!this.open) return;
      for (const item of items) {
        let packet;
        try {
          packet = this.decoder.add(item);
        } catch (e) {
          this.drop('close', 'parse error'); // this tab's connection only
          return;
        }
        if (packet) this.upstream.fromTab(this, packet);
      }
    }

    /** The worker ends this connection ('close' or 'error' to the tab), leaving the namespaces. */
    drop(kind, reason, details) {
      this.tab.conns.delete(this.c);
      this.upstream.detach(this);
      this.open = false;
      this.post({ t: kind, reason: reason, details: details });
    }
  }

  /** One tab (one port) in the worker. */
  class Tab {
    constructor(port, upstreams) {
      this.port = port;
      this.upstreams = upstreams;
      this.conns = new Map();
      port.onmessage = (ev) => this._onmessage(ev.data);
    }

    _onmessage(msg) {
      if (!msg || typeof msg !== 'object') return;
      const conn = this.conns.get(msg.c);
      switch (msg.t) {
        case 'hello':
          try {
            // Granted once the tab holding it is gone, however it went.
            global.navigator.locks.request('socket.io-tab:' + msg.tab, () => this.gone());
          } catch (e) {
            /* no locks: pagehide alone */
          }
          break;
        case 'open': {
          if (conn || !msg.opts) return;
          const o = msg.opts;
          const key = JSON.stringify([o.origin, o.path, o.query, o.transports]);
          let upstream = this.upstreams.get(key);
          if (!upstream) {
            upstream = new Upstream(key, o);
            this.upstreams.set(key, upstream);
          }
          const created = new Conn(this, msg.c, upstream);
          this.conns.set(msg.c, created);
          upstream.attach(created);
          break;
        }
        case 'data':
          if (conn && Array.isArray(msg.items)) conn.fromTab(msg.items);
          break;
        case 'close':
          if (!conn) return;
          this.conns.delete(msg.c);
          conn.upstream.detach(conn);
          break;
        case 'bye':
          this.gone();
          break;
      }
    }

    gone() {
      for (const conn of Array.from(this.conns.values())) conn.drop('close', 'transport close');
      for (const upstream of this.upstreams.values()) {
        for (const nsp of Object.keys(upstream.muxes)) upstream.muxes[nsp].away.delete(this);
      }
    }
  }

  if (IN_WORKER) {
    const upstreams = new Map();
    global.addEventListener('connect', function (ev) {
      new Tab(ev.ports[0], upstreams);
    });
  }

  // ------------------------------------------------------------------------------------------------
  // io()
  // ------------------------------------------------------------------------------------------------

  const cache = Object.create(null);

  function lookup(uri, opts) {
    if (uri && typeof uri === 'object') {
      opts = uri;
      uri = undefined;
    }
    opts = Object.assign({}, opts || {});
    const parsed = parseUri(uri);
    opts.path = normalizePath(opts.path);
    const id = parsed.origin + opts.path;
    const sameNamespace = !!cache[id] && parsed.nsp in cache[id].nsps;
    const newConnection = opts.forceNew || opts['force new connection'] || opts.multiplex === false || sameNamespace;
    const managerUri = parsed.origin + (parsed.query ? '/?' + queryString(parsed.query) : '');
    let manager;
    if (newConnection) {
      manager = new Manager(managerUri, opts);
    } else {
      if (!cache[id]) cache[id] = new Manager(managerUri, opts);
      manager = cache[id];
    }
    return manager.socket(parsed.nsp, opts);
  }

  if (global.addEventListener) {
    global.addEventListener('pagehide', function () {
      managers.forEach(function (m) {
        if (m.engine) m.engine._beacon();
      });
    });
  }

  lookup.Manager = Manager;
  lookup.Socket = Socket;
  lookup.io = lookup;
  lookup.connect = lookup;
  lookup.protocol = 5;
  lookup.managers = cache;

  global.io = lookup;
})(typeof window !== 'undefined' ? window : this);
