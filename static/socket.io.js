/*!
 * Board's browser client for Socket.IO protocol v5 over Engine.IO protocol v4.
 * One plain file, no dependencies, no build step: defines window.io.
 *
 *   var socket = io();                   // main namespace "/" on this page's origin
 *   var admin = io("/admin");            // another namespace, same Engine.IO connection
 *   socket.on("news", function (data) { ... });
 *   socket.emit("post", {name: name, text: text}, function (reply) { ... });
 *   socket.timeout(5000).emit("post", data, function (err, reply) { ... });
 *   socket.emitWithAck("post", data).then(...);   // where the browser has Promise
 *
 * Written in ECMAScript 5 by hand so that old browsers run it (IE 9-11, old Android WebViews, old TVs
 * and kiosks): no classes, arrow functions, let/const or for-of; nothing used at load or on the
 * long-polling path that IE9 lacks (no Promise, Map, Set, URL, fetch, TextEncoder, typed arrays, btoa).
 * What needs more is feature-detected where it is used: WebSocket, binary data (typed arrays, and
 * btoa/atob on long-polling), emitWithAck (Promise), one connection for all tabs (SharedWorker).
 *
 * Layers, as in engine.io-client and socket.io-client:
 *   helpers -> Engine.IO transports (WebSocketTransport, PollingTransport) -> Engine (one Engine.IO
 *   session: handshake, heartbeat, write buffer, fall back and upgrade between the transports) ->
 *   Socket.IO packets -> Manager (one connection, reconnection) -> Socket (one namespace) ->
 *   the shared connection (the tab's PortEngine; the SharedWorker's side) -> io().
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

  var hasOwn = Object.prototype.hasOwnProperty;

  /** Object.assign's job (ES2015): copy the own enumerable properties of the sources onto target. */
  function extend(target) {
    for (var i = 1; i < arguments.length; i++) {
      var source = arguments[i];
      if (source === undefined || source === null) continue;
      for (var k in source) {
        if (hasOwn.call(source, k)) target[k] = source[k];
      }
    }
    return target;
  }

  /** ES5's `class Child extends Parent { methods }`. */
  function inherit(Child, Parent, methods) {
    Child.prototype = Object.create(Parent.prototype, {
      constructor: { value: Child, writable: true, configurable: true }
    });
    extend(Child.prototype, methods);
  }

  /** A read-only property computed on each read (a class getter). */
  function getter(Ctor, name, get) {
    Object.defineProperty(Ctor.prototype, name, { get: get, configurable: true });
  }

  function contains(list, x) {
    return list.indexOf(x) !== -1;
  }

  /** An ordered set of objects: ES5 has no Set, and the sets here hold a handful of items. */
  function ObjectSet() {
    this.items = [];
  }
  ObjectSet.prototype.add = function (x) {
    if (!contains(this.items, x)) this.items.push(x);
  };
  ObjectSet.prototype.has = function (x) {
    return contains(this.items, x);
  };
  /** True if x was there. */
  ObjectSet.prototype.remove = function (x) {
    var i = this.items.indexOf(x);
    if (i === -1) return false;
    this.items.splice(i, 1);
    return true;
  };
  /** A copy, safe to iterate while the set changes. */
  ObjectSet.prototype.list = function () {
    return this.items.slice();
  };
  ObjectSet.prototype.clear = function () {
    this.items = [];
  };
  getter(ObjectSet, 'size', function () { return this.items.length; });

  function Emitter() {
    this._callbacks = Object.create(null);
  }

  extend(Emitter.prototype, {
    on: function (event, fn) {
      (this._callbacks[event] || (this._callbacks[event] = [])).push(fn);
      return this;
    },

    once: function (event, fn) {
      var self = this;
      function wrapper() {
        self.off(event, wrapper);
        return fn.apply(this, arguments);
      }
      wrapper.fn = fn;
      return this.on(event, wrapper);
    },

    off: function (event, fn) {
      if (event === undefined) {
        this._callbacks = Object.create(null);
        return this;
      }
      var list = this._callbacks[event];
      if (!list) return this;
      if (fn === undefined) {
        delete this._callbacks[event];
        return this;
      }
      for (var i = 0; i < list.length; i++) {
        if (list[i] === fn || list[i].fn === fn) {
          list.splice(i, 1);
          break;
        }
      }
      if (!list.length) delete this._callbacks[event];
      return this;
    },

    listeners: function (event) {
      return (this._callbacks[event] || []).slice();
    },

    hasListeners: function (event) {
      return !!(this._callbacks[event] && this._callbacks[event].length);
    },

    /** Call the listeners of `event`; a listener that throws does not stop the others. */
    emitReserved: function (event) {
      var args = Array.prototype.slice.call(arguments, 1);
      var list = this._callbacks[event];
      if (!list) return this;
      list = list.slice();
      for (var i = 0; i < list.length; i++) {
        try {
          list[i].apply(this, args);
        } catch (e) {
          report(e);
        }
      }
      return this;
    }
  });
  Emitter.prototype.addEventListener = Emitter.prototype.on;
  Emitter.prototype.addListener = Emitter.prototype.on;
  Emitter.prototype.removeListener = Emitter.prototype.off;
  Emitter.prototype.removeEventListener = Emitter.prototype.off;
  Emitter.prototype.removeAllListeners = Emitter.prototype.off;

  // ---- binary data: typed arrays (IE10+), base64 on long-polling (btoa/atob, IE10+) ----

  var HAS_TYPED_ARRAYS = typeof ArrayBuffer !== 'undefined' && typeof Uint8Array !== 'undefined';

  function isView(x) {
    if (!HAS_TYPED_ARRAYS) return false;
    if (typeof ArrayBuffer.isView === 'function') return ArrayBuffer.isView(x);
    return !!x && x.buffer instanceof ArrayBuffer; // IE10 has no ArrayBuffer.isView
  }

  function isBlob(x) {
    return typeof global.Blob !== 'undefined' && x instanceof global.Blob;
  }

  function isBinary(x) {
    if (!x || typeof x !== 'object') return false;
    if (HAS_TYPED_ARRAYS && (x instanceof ArrayBuffer || isView(x))) return true;
    return isBlob(x);
  }

  function toBase64(buffer) {
    if (typeof global.btoa !== 'function') {
      throw new Error('binary data over long-polling needs btoa, which this browser lacks');
    }
    var bytes = new Uint8Array(buffer);
    var s = '';
    for (var i = 0; i < bytes.length; i += 0x8000) {
      var chunk = bytes.subarray(i, i + 0x8000);
      try {
        s += String.fromCharCode.apply(null, chunk);
      } catch (e) {
        s += String.fromCharCode.apply(null, Array.prototype.slice.call(chunk)); // apply() of old engines takes arrays only
      }
    }
    return global.btoa(s);
  }

  /**
   * An ArrayBuffer; where the browser has no typed arrays or atob (IE9), {base64: true, data: text}
   * instead, as the official client gives: the page still gets the bytes, and the connection goes on.
   */
  function fromBase64(text) {
    if (!HAS_TYPED_ARRAYS || typeof global.atob !== 'function') return { base64: true, data: text };
    var s = global.atob(text); // throws on bad input: treated as a parse error by the caller
    var bytes = new Uint8Array(s.length);
    for (var i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    return bytes.buffer;
  }

  // ---- URLs ----

  function queryString(obj) {
    return Object.keys(obj)
      .filter(function (k) { return obj[k] !== undefined && obj[k] !== null; })
      .map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(obj[k]); })
      .join('&');
  }

  function decodeQueryPart(s) {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch (e) {
      return s; // a malformed escape is kept as it is
    }
  }

  /** "a=1&b=2" -> {a: "1", b: "2"}, or null when empty. */
  function parseQuery(text) {
    var query = null;
    text.split('&').forEach(function (pair) {
      if (!pair) return;
      var eq = pair.indexOf('=');
      var k = decodeQueryPart(eq === -1 ? pair : pair.slice(0, eq));
      query = query || {};
      query[k] = eq === -1 ? '' : decodeQueryPart(pair.slice(eq + 1));
    });
    return query;
  }

  var DEFAULT_PORTS = { 'http:': '80', 'https:': '443' };

  /**
   * Split a URI into the Engine.IO origin, the namespace and the query. As the official client reads
   * it: "/admin" is a namespace of this page's origin, "//host/nsp" takes the page's protocol, "host:3000/nsp"
   * is http(s) on that host; ws: and wss: mean http: and https:. (No URL object: IE has none.)
   */
  function parseUri(uri) {
    var loc = global.location;
    var protocol = loc && loc.protocol ? loc.protocol : 'http:';
    var host = loc && loc.host ? loc.host : 'localhost';
    if (uri === undefined || uri === null || uri === '') return { origin: protocol + '//' + host, nsp: '/', query: null };
    var s = String(uri);
    if (s.slice(0, 2) === '//') s = protocol + s;
    else if (s.charAt(0) === '/') s = protocol + '//' + host + s;
    else if (!/^[a-z][a-z0-9+.\-]*:\/\//i.test(s)) s = protocol + '//' + s;
    var m = /^([a-z][a-z0-9+.\-]*:)\/\/(?:[^@\/?#]*@)?([^\/?#]*)([^?#]*)(?:\?([^#]*))?/i.exec(s);
    if (!m || !m[2]) throw new TypeError('Invalid URL: ' + uri);
    protocol = m[1].toLowerCase();
    if (protocol === 'ws:') protocol = 'http:';
    if (protocol === 'wss:') protocol = 'https:';
    host = m[2].toLowerCase();
    var port = /:(\d+)$/.exec(host);
    if (port && DEFAULT_PORTS[protocol] === port[1]) host = host.slice(0, host.length - port[0].length);
    return { origin: protocol + '//' + host, nsp: m[3] || '/', query: parseQuery(m[4] || '') };
  }

  function normalizePath(path) {
    path = path || '/socket.io/';
    if (path.charAt(0) !== '/') path = '/' + path;
    return path.replace(/\/+$/, '') + '/';
  }

  var stampCounter = 0;
  function cacheBuster() {
    stampCounter = (stampCounter + 1) % 1e6;
    return Date.now().toString(36) + stampCounter.toString(36);
  }

  // ---- what is remembered about an endpoint ----

  var memory = { // where there is no sessionStorage (a worker): for the life of this global
    items: Object.create(null),
    getItem: function (k) { return k in this.items ? this.items[k] : null; },
    setItem: function (k, v) { this.items[k] = String(v); },
    removeItem: function (k) { delete this.items[k]; }
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
      var s = storage();
      return !!s && s.getItem(wsFailedKey(origin, path)) === '1';
    } catch (e) {
      return false;
    }
  }

  function rememberWsFailed(origin, path) {
    try {
      var s = storage();
      if (s) s.setItem(wsFailedKey(origin, path), '1');
    } catch (e) {
      /* storage full or denied: nothing to remember then */
    }
  }

  function forgetWsFailed(origin, path) {
    try {
      var s = storage();
      if (s) s.removeItem(wsFailedKey(origin, path));
    } catch (e) {
      /* nothing to forget */
    }
  }

  // Failed upgrade probes per endpoint (origin + path), kept across reconnections: a proxy that blocks
  // WebSocket for good costs one probe per probeIntervalMax, not a fresh series of quick probes per session.
  var probeFailures = Object.create(null);

  /** getOpts() returns {min, max, jitter}; read at each use so Manager setters take effect. */
  function Backoff(getOpts) {
    this._getOpts = getOpts;
    this.attempts = 0;
  }

  Backoff.prototype.duration = function () {
    var o = this._getOpts();
    var exp = Math.min(this.attempts, 30);
    this.attempts++;
    var ms = Math.min(o.max, o.min * Math.pow(2, exp));
    if (o.jitter > 0) {
      var spread = Math.min(1, o.jitter);
      ms = ms * (1 - spread + 2 * spread * Math.random());
    }
    return Math.max(0, Math.floor(Math.min(ms, o.max)));
  };

  Backoff.prototype.reset = function () {
    this.attempts = 0;
  };

  // ------------------------------------------------------------------------------------------------
  // Engine.IO v4 transports: WebSocket and HTTP long-polling
  // ------------------------------------------------------------------------------------------------
  //
  // A transport moves Engine.IO packets (strings such as "4hello", ArrayBuffers for binary messages)
  // and knows nothing of the session: the Engine reads the handshake, answers pings and decides
  // which transport carries the session. Events: "packet" (data); "lost" (reason, details) when the
  // transport ended by itself (it is stopped by then); "open" (WebSocket: the socket opened);
  // "drain" (polling: the POST is done, send more). `writable` says whether send() takes packets now.

  var SEPARATOR = '\x1e';

  function Transport(name, opts) {
    Emitter.call(this);
    this.name = name;
    this.opts = opts; // origin, path, query, withCredentials, extraHeaders
    this.sid = null; // the session's id, once the Engine has the handshake
    this.writable = false;
    this.stopped = false;
  }

  inherit(Transport, Emitter, {
    url: function (extra) {
      var q = extend({}, this.opts.query, { EIO: 4, transport: this.name }, this.sid ? { sid: this.sid } : null, extra);
      var base = this.opts.origin + this.opts.path;
      if (this.name === 'websocket') base = base.replace(/^http/, 'ws');
      return base + '?' + queryString(q);
    },

    /** The Engine has the handshake: the transport carries the session `sid` from now on. */
    opened: function (sid) {
      this.sid = sid;
      this.writable = true;
    },

    /** The transport ended by itself: stop, then say why. */
    _lost: function (reason, details) {
      if (this.stopped) return;
      this.stop();
      this.emitReserved('lost', reason, details);
    }
  });

  // ---- WebSocket: one packet per frame ----

  function WebSocketTransport(opts) {
    Transport.call(this, 'websocket', opts);
    this._ws = null;
  }

  inherit(WebSocketTransport, Transport, {
    open: function () {
      var self = this;
      var ws;
      try {
        ws = new global.WebSocket(this.url());
      } catch (e) {
        this._lost('transport error', e);
        return;
      }
      if (HAS_TYPED_ARRAYS) ws.binaryType = 'arraybuffer';
      this._ws = ws;
      ws.onopen = function () { self.emitReserved('open'); };
      ws.onmessage = function (ev) { self.emitReserved('packet', ev.data); };
      ws.onerror = function () { self._lost('transport error'); };
      ws.onclose = function (ev) {
        self._lost('transport close', { description: 'websocket closed', code: ev && ev.code, reason: ev && ev.reason });
      };
    },

    /** Sends every packet; returns how many it took (all of them). */
    send: function (packets) {
      for (var i = 0; i < packets.length && !this.stopped; i++) {
        try {
          this._ws.send(packets[i]);
        } catch (e) {
          this._lost('transport error', e);
        }
      }
      return packets.length;
    },

    stop: function () {
      this.stopped = true;
      this.writable = false;
      var ws = this._ws;
      this._ws = null;
      if (!ws) return;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try {
        ws.close();
      } catch (e) {
        /* already closed */
      }
    },

    /** Our side closes: the server sees the WebSocket end. */
    close: function () {
      this.stop();
    }
  });

  // ---- HTTP long-polling: a GET waits for packets, a POST delivers ours (XMLHttpRequest, IE7+) ----

  function PollingTransport(opts) {
    Transport.call(this, 'polling', opts);
    this._xhrs = []; // requests to abort when stopped
    this._polling = false; // a GET in flight
    this._posting = false; // a POST in flight
    this._postXhr = null;
    this._afterPost = null; // the closing POST, waiting for the one in flight
    this._paused = false; // an upgrade: wind down, then call _onPaused
    this._onPaused = null;
    // The answers to this session's GETs we got, sent as `n` in each GET: a browser re-sends a GET by
    // itself when a reused connection drops before its answer arrives, and the server, seeing the same
    // n again, answers with what it had sent rather than what came since (else that would be lost).
    this._answers = 0;
  }

  PollingTransport.decodePayload = function (text) {
    if (text === '') return [];
    return text.split(SEPARATOR).map(function (p) {
      return p.charAt(0) === 'b' ? fromBase64(p.slice(1)) : p;
    });
  };

  PollingTransport.encodeForPolling = function (packet) {
    return typeof packet === 'string' ? packet : 'b' + toBase64(packet);
  };

  inherit(PollingTransport, Transport, {
    /** The handshake GET; its packets go out as "packet" events, the first is the open packet. */
    open: function () {
      this._get();
    },

    _get: function () {
      var self = this;
      var counted = !!this.sid; // the handshake's answer is not counted
      var url = this.url(counted ? { t: cacheBuster(), n: this._answers } : { t: cacheBuster() });
      this._polling = true;
      this._request('GET', url, null, function (err, text) {
        self._polling = false;
        if (self.stopped) return;
        if (err) {
          self._lost('transport error', err);
          return;
        }
        if (counted) self._answers++;
        var packets;
        try {
          packets = PollingTransport.decodePayload(text);
        } catch (e) {
          self._lost('parse error', { description: e.message });
          return;
        }
        for (var i = 0; i < packets.length && !self.stopped; i++) self.emitReserved('packet', packets[i]);
        self._poll();
      });
    },

    _poll: function () {
      if (this.stopped || !this.sid) return;
      if (this._paused) this._checkPaused();
      else this._get();
    },

    /** POSTs as many packets as fit in maxPayload (at least one); returns how many it took. */
    send: function (packets, maxPayload) {
      if (!this.writable || !packets.length) return 0;
      var self = this;
      var body = '';
      var n = 0;
      while (n < packets.length) {
        var add;
        try {
          add = PollingTransport.encodeForPolling(packets[n]);
        } catch (e) {
          report(e); // binary without btoa: that packet cannot go, the others can
          add = null;
        }
        if (add !== null && body && body.length + 1 + add.length > maxPayload) break;
        if (add !== null) body += (body ? SEPARATOR : '') + add;
        n++;
      }
      if (!body) return n;
      this.writable = false;
      this._posting = true;
      this._postXhr = this._request('POST', this.url({ t: cacheBuster() }), body, function (err) {
        self._posting = false;
        self._postXhr = null;
        var then = self._afterPost; // close() waiting for this POST
        self._afterPost = null;
        if (then) then();
        if (self.stopped) return;
        if (err) {
          self._lost('transport error', err);
          return;
        }
        if (self._paused) {
          self._checkPaused();
        } else {
          self.writable = true;
          self.emitReserved('drain');
        }
      });
      return n;
    },

    /** For an upgrade: no new GET or POST; onPaused() once the ones in flight have ended. */
    pause: function (onPaused) {
      this._paused = true;
      this.writable = false;
      this._onPaused = onPaused;
      this._checkPaused();
    },

    _checkPaused: function () {
      if (!this._paused || this._polling || this._posting || this.stopped || !this._onPaused) return;
      var fn = this._onPaused;
      this._onPaused = null;
      fn();
    },

    /** The upgrade failed: carry the session again. */
    resume: function () {
      if (!this._paused || this.stopped) return;
      this._paused = false;
      this._onPaused = null;
      if (!this._polling) this._poll();
      if (!this._posting) {
        this.writable = true;
        this.emitReserved('drain');
      }
    },

    _request: function (method, url, body, callback, untracked) {
      var self = this;
      var xhr = new global.XMLHttpRequest();
      var done = false;
      function finish(err, text) {
        if (done) return;
        done = true;
        var i = self._xhrs.indexOf(xhr);
        if (i !== -1) self._xhrs.splice(i, 1);
        callback(err, text);
      }
      try {
        xhr.open(method, url, true);
        if (this.opts.withCredentials) xhr.withCredentials = true;
        if (body !== null) xhr.setRequestHeader('Content-Type', 'text/plain;charset=UTF-8');
        var headers = this.opts.extraHeaders || {};
        Object.keys(headers).forEach(function (k) { xhr.setRequestHeader(k, headers[k]); });
        xhr.onreadystatechange = function () {
          if (xhr.readyState !== 4) return;
          var status = 0;
          try {
            status = xhr.status; // IE9 can throw here on a network error
          } catch (e) {
            /* status 0 */
          }
          if (status === 200) {
            finish(null, xhr.responseText);
          } else {
            var err = new Error('xhr poll error');
            err.type = 'TransportError';
            err.description = status;
            try {
              err.context = xhr.responseText;
            } catch (e) {
              /* no body */
            }
            finish(err);
          }
        };
        xhr.send(body);
      } catch (e) {
        setTimeout(function () { finish(new Error('xhr poll error')); }, 0);
        return null;
      }
      if (!untracked) this._xhrs.push(xhr);
      return xhr;
    },

    stop: function () {
      this.stopped = true;
      this.writable = false;
      this._paused = false;
      this._onPaused = null;
      var xhrs = this._xhrs;
      this._xhrs = [];
      for (var i = 0; i < xhrs.length; i++) {
        xhrs[i].onreadystatechange = null;
        try {
          xhrs[i].abort();
        } catch (e) {
          /* ignore */
        }
      }
    },

    /** Our side closes: `pending` packets and a close packet go out in a last POST. */
    close: function (pending) {
      if (this.stopped) return;
      if (this.sid) {
        var body = (pending || []).map(PollingTransport.encodeForPolling).concat(['1']).join(SEPARATOR);
        var url = this.url({ t: cacheBuster() });
        var self = this;
        var last = function () { self._request('POST', url, body, function () {}, true); };
        if (this._posting && this._postXhr) {
          // One POST at a time (the server closes a session on overlapping POSTs, as engine.io
          // does): let the one in flight finish, it may carry a DISCONNECT, then send ours.
          var i = this._xhrs.indexOf(this._postXhr);
          if (i !== -1) this._xhrs.splice(i, 1);
          this._afterPost = last;
        } else {
          last();
        }
      }
      this.stop();
    },

    /** The page is going away: tell the server now instead of letting it time out. */
    beacon: function () {
      if (this.stopped || !this.sid) return;
      try {
        if (global.navigator && global.navigator.sendBeacon) {
          global.navigator.sendBeacon(this.url({ t: cacheBuster() }),
            new global.Blob(['1'], { type: 'text/plain;charset=UTF-8' }));
        }
      } catch (e) {
        /* best effort */
      }
    }
  });

  // ------------------------------------------------------------------------------------------------
  // Engine: one Engine.IO v4 session, on one transport at a time
  // ------------------------------------------------------------------------------------------------
  //
  // Events: "open" (handshake done), "message" (string | ArrayBuffer), "close" (reason, details) once
  // after "open", "error" (Error) when it could not open, "upgrade" (transport) after a move to
  // WebSocket, "ping". Strings given to write() are Engine.IO message payloads, ArrayBuffers binary
  // messages. `transport.name` is "websocket" or "polling".

  function Engine(opts) {
    Emitter.call(this);
    // origin, path, query, transports, wsTimeout, withCredentials, extraHeaders,
    // probeInterval, probeIntervalMax, randomizationFactor
    this.opts = opts;
    this.readyState = 'opening';
    this.transport = null; // the transport carrying (or opening) the session
    this.id = null;
    this.pingInterval = 25000;
    this.pingTimeout = 20000;
    this.maxPayload = 1000000;
    this.upgrades = [];
    this._buffer = []; // packets waiting for the transport to be writable
    this._wsTimer = null;
    this._wsFailed = false;
    this._pingTimer = null;
    this._probe = null; // the WebSocket transport trying to take the session over from polling
    this._probeTimer = null;
    this._upgrading = false; // the probe succeeded: polling winds down, then the WebSocket takes over
  }

  inherit(Engine, Emitter, {
    start: function () {
      var o = this.opts;
      var useWs = !!global.WebSocket && contains(o.transports, 'websocket') &&
        !(contains(o.transports, 'polling') && wsRememberedFailed(o.origin, o.path));
      if (useWs) this._use(new WebSocketTransport(o));
      else if (contains(o.transports, 'polling')) this._use(new PollingTransport(o));
      else this._fail(new Error('websocket error'));
    },

    _use: function (transport) {
      var self = this;
      this.transport = transport;
      this._listen(transport);
      if (transport.name === 'websocket') {
        this._wsTimer = setTimeout(function () { self._webSocketFailed(); }, this.opts.wsTimeout);
      }
      transport.open();
    },

    _listen: function (transport) {
      var self = this;
      transport.on('packet', function (data) {
        if (self.transport === transport) self._onData(data);
      });
      transport.on('lost', function (reason, details) {
        if (self.transport === transport) self._onLost(reason, details);
      });
      transport.on('drain', function () {
        if (self.transport === transport) self._flush();
      });
    },

    _onData: function (data) {
      if (this.readyState === 'opening') {
        clearTimeout(this._wsTimer);
        this._wsTimer = null;
        try {
          this._handshake(data);
        } catch (e) {
          this._fail(new Error('parse error'));
          return;
        }
        if (this.transport.name === 'polling' && this._wsFailed) rememberWsFailed(this.opts.origin, this.opts.path);
        this._opened();
        return;
      }
      if (this.readyState === 'open') this._onPacket(data);
    },

    _onLost: function (reason, details) {
      if (this.readyState === 'opening') {
        if (this.transport.name === 'websocket') this._webSocketFailed();
        else this._fail(details instanceof Error ? details : new Error(reason));
      } else {
        this._onClose(reason, details);
      }
    },

    /** The WebSocket did not get us an open packet: fall back to polling on the same endpoint. */
    _webSocketFailed: function () {
      clearTimeout(this._wsTimer);
      this._wsTimer = null;
      if (this.transport) this.transport.stop();
      if (this.readyState !== 'opening') return;
      this._wsFailed = true;
      if (contains(this.opts.transports, 'polling')) this._use(new PollingTransport(this.opts));
      else this._fail(new Error('websocket error'));
    },

    _handshake: function (data) {
      if (typeof data !== 'string' || data.charAt(0) !== '0') throw new Error('no open packet');
      var h = JSON.parse(data.slice(1));
      if (!h || typeof h.sid !== 'string') throw new Error('bad open packet');
      this.id = h.sid;
      if (h.pingInterval > 0) this.pingInterval = +h.pingInterval;
      if (h.pingTimeout > 0) this.pingTimeout = +h.pingTimeout;
      if (h.maxPayload > 0) this.maxPayload = +h.maxPayload;
      this.upgrades = Array.isArray(h.upgrades) ? h.upgrades : [];
    },

    _opened: function () {
      this.readyState = 'open';
      this.transport.opened(this.id);
      this._resetPingTimer();
      this.emitReserved('open');
      this._scheduleProbe();
    },

    _resetPingTimer: function () {
      var self = this;
      clearTimeout(this._pingTimer);
      this._pingTimer = setTimeout(function () { self._onClose('ping timeout'); }, this.pingInterval + this.pingTimeout);
    },

    _onPacket: function (data) {
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
    },

    _send: function (packet) {
      if (this.readyState !== 'open') return;
      this._buffer.push(packet);
      this._flush();
    },

    _flush: function () {
      if (this._upgrading || !this._buffer.length || this.readyState !== 'open' || !this.transport.writable) return;
      var buffer = this._buffer;
      var n = this.transport.send(buffer, this.maxPayload);
      buffer.splice(0, n); // (if the send closed us, this is the old buffer: nothing is left to send)
    },

    /** items: array of strings (Engine.IO message payloads) and ArrayBuffers (binary messages). */
    write: function (items) {
      for (var i = 0; i < items.length; i++) {
        if (this.readyState !== 'open') return;
        this._send(typeof items[i] === 'string' ? '4' + items[i] : items[i]);
      }
    },

    // ---- the upgrade: back from polling to WebSocket on the same session ----
    //
    // As engine.io-client does: a WebSocket opened with our sid sends "2probe"; on "3probe", polling
    // pauses (the GET in flight returns, the server answers it with a noop; the POST in flight ends),
    // then "5" on the WebSocket makes it the session's transport and what was buffered meanwhile goes
    // out on it, in order. A probe that fails leaves polling as it was; the next one comes later each time.

    _canProbe: function () {
      var o = this.opts;
      return this.readyState === 'open' && this.transport.name === 'polling' && !!global.WebSocket &&
        contains(o.transports, 'websocket') && contains(this.upgrades, 'websocket') &&
        o.probeInterval !== false && o.probeInterval >= 0;
    },

    _scheduleProbe: function () {
      var self = this;
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      if (!this._canProbe()) return;
      var o = this.opts;
      var failures = probeFailures[o.origin + o.path] || 0;
      var ms = Math.min(o.probeIntervalMax, o.probeInterval * Math.pow(2, Math.min(failures, 30)));
      var jitter = Math.min(1, Math.max(0, o.randomizationFactor || 0));
      ms = Math.floor(ms * (1 - jitter / 2 + jitter * Math.random()));
      this._probeTimer = setTimeout(function () { self._startProbe(); }, ms);
    },

    _startProbe: function () {
      var self = this;
      this._probeTimer = null;
      if (!this._canProbe()) return;
      var probe = new WebSocketTransport(this.opts);
      probe.sid = this.id;
      this._probe = probe;
      // Covers the whole upgrade, the pause included.
      this._probeTimer = setTimeout(function () { self._probeFailed(); }, this.opts.wsTimeout);
      probe.on('open', function () {
        probe.send(['2probe']);
      });
      probe.on('packet', function (data) {
        if (self._probe !== probe) return;
        if (data === '3probe' && !self._upgrading) {
          self._upgrading = true;
          self.transport.pause(function () { self._upgrade(); });
        } else {
          self._probeFailed();
        }
      });
      probe.on('lost', function () {
        if (self._probe === probe) self._probeFailed();
      });
      probe.open();
    },

    _dropProbe: function () {
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      var probe = this._probe;
      this._probe = null;
      if (probe) probe.stop();
    },

    _probeFailed: function () {
      if (!this._probe) return;
      this._dropProbe();
      var key = this.opts.origin + this.opts.path;
      probeFailures[key] = (probeFailures[key] || 0) + 1;
      if (this._upgrading) {
        // The server never got "5": polling still carries the session.
        this._upgrading = false;
        this.transport.resume();
      }
      this._scheduleProbe();
    },

    /** Polling is paused and idle: confirm on the WebSocket and move the session to it. */
    _upgrade: function () {
      var ws = this._probe;
      if (!this._upgrading || !ws || this.readyState !== 'open') return;
      ws.send(['5']);
      if (this._probe !== ws) return; // the send failed: _probeFailed resumed polling
      this._probe = null;
      clearTimeout(this._probeTimer);
      this._probeTimer = null;
      this._upgrading = false;
      this.transport.stop();
      ws.off();
      this.transport = ws;
      this._listen(ws);
      ws.opened(this.id);
      delete probeFailures[this.opts.origin + this.opts.path];
      forgetWsFailed(this.opts.origin, this.opts.path);
      this._flush();
      this.emitReserved('upgrade', this.transport);
    },

    // ---- the end ----

    _cleanup: function () {
      clearTimeout(this._pingTimer);
      this._pingTimer = null;
      clearTimeout(this._wsTimer);
      this._wsTimer = null;
      this._dropProbe();
      this._upgrading = false;
      if (this.transport) this.transport.stop();
      this._buffer = [];
    },

    _onClose: function (reason, details) {
      if (this.readyState !== 'open') return;
      this.readyState = 'closed';
      this._cleanup();
      this.emitReserved('close', reason, details);
    },

    _fail: function (err) {
      if (this.readyState !== 'opening') return;
      this.readyState = 'closed';
      this._cleanup();
      if (!err.type) err.type = 'TransportError';
      this.emitReserved('error', err);
    },

    /** Give up opening (no "error" event). */
    abort: function () {
      if (this.readyState !== 'opening') return;
      this.readyState = 'closed';
      this._cleanup();
    },

    /** Close from our side; on polling, what is buffered and a close packet go out in a last POST. */
    close: function () {
      if (this.readyState === 'opening') {
        this.abort();
        return;
      }
      if (this.readyState !== 'open') return;
      var pending = this._buffer;
      this._buffer = [];
      this.transport.close(pending);
      this._onClose('forced close');
    },

    /** The page is going away: tell a polling server now instead of letting it time out. */
    _beacon: function () {
      if (this.readyState === 'open' && this.transport.name === 'polling') this.transport.beacon();
    }
  });

  // ------------------------------------------------------------------------------------------------
  // Socket.IO v5 packets
  // ------------------------------------------------------------------------------------------------

  var CONNECT = 0;
  var DISCONNECT = 1;
  var EVENT = 2;
  var ACK = 3;
  var CONNECT_ERROR = 4;
  var BINARY_EVENT = 5;
  var BINARY_ACK = 6;

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
    var out = {};
    Object.keys(x).forEach(function (k) { out[k] = deconstruct(x[k], buffers); });
    return out;
  }

  function reconstruct(x, buffers) {
    if (!x || typeof x !== 'object') return x;
    if (Array.isArray(x)) {
      for (var i = 0; i < x.length; i++) x[i] = reconstruct(x[i], buffers);
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

  /** An ArrayBuffer of an ArrayBuffer or a view (copied: IE10 has no ArrayBuffer.slice); a Blob is left as it is. */
  function toArrayBuffer(x) {
    if (x instanceof ArrayBuffer) return x;
    if (isView(x)) {
      var copy = new Uint8Array(x.byteLength);
      copy.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
      return copy.buffer;
    }
    return x;
  }

  /** Encode a packet into [string, ...binary]: ArrayBuffers, and Blobs still to be read. */
  function encodePacket(packet) {
    // A decoded binary packet (the worker passes them on) is encoded again from its plain type.
    var type = packet.type === BINARY_EVENT ? EVENT : packet.type === BINARY_ACK ? ACK : packet.type;
    var data = packet.data;
    var buffers = [];
    if ((type === EVENT || type === ACK) && hasBinary(data)) {
      data = deconstruct(data, buffers);
      type = type === EVENT ? BINARY_EVENT : BINARY_ACK;
    }
    var s = String(type);
    if (type === BINARY_EVENT || type === BINARY_ACK) s += buffers.length + '-';
    if (packet.nsp && packet.nsp !== '/') s += packet.nsp + ',';
    if (packet.id !== undefined && packet.id !== null) s += packet.id;
    if (data !== undefined) s += JSON.stringify(data);
    return [s].concat(buffers.map(toArrayBuffer));
  }

  /** Calls done(err, parts) once every Blob of `parts` is read into an ArrayBuffer (FileReader, IE10+). */
  function readBlobs(parts, done) {
    var left = 0;
    var failed = false;
    parts.forEach(function (part, i) {
      if (!isBlob(part)) return;
      left++;
      var reader = new global.FileReader();
      reader.onload = function () {
        parts[i] = reader.result;
        if (--left === 0 && !failed) done(null, parts);
      };
      reader.onerror = function () {
        if (failed) return;
        failed = true;
        done(reader.error || new Error('could not read a Blob'));
      };
      reader.readAsArrayBuffer(part);
    });
    if (!left) done(null, parts);
  }

  function isObject(x) {
    return !!x && typeof x === 'object' && !Array.isArray(x);
  }

  /** Decode the string part of a packet; throws on anything malformed. fromClient: a tab's packet, in the worker. */
  function decodePacket(str, fromClient) {
    var i;
    var start;
    var type = str.charCodeAt(0) - 48;
    if (!(type >= CONNECT && type <= BINARY_ACK)) throw new Error('unknown packet type');
    var packet = { type: type, nsp: '/', attachments: 0 };
    i = 1;
    if (type === BINARY_EVENT || type === BINARY_ACK) {
      start = i;
      while (i < str.length && str.charAt(i) !== '-') i++;
      var count = str.slice(start, i);
      if (i >= str.length || !/^\d+$/.test(count)) throw new Error('illegal attachments');
      packet.attachments = Number(count);
      i++;
    }
    if (str.charAt(i) === '/') {
      start = i;
      while (i < str.length && str.charAt(i) !== ',') i++;
      packet.nsp = str.slice(start, i);
      i++; // the comma (or the end)
    }
    start = i;
    while (i < str.length && str.charCodeAt(i) >= 48 && str.charCodeAt(i) <= 57) i++;
    if (i > start) packet.id = Number(str.slice(start, i));
    if (i < str.length) packet.data = JSON.parse(str.slice(i));

    var d = packet.data;
    var ok;
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
  function Decoder(fromClient) {
    this.fromClient = !!fromClient;
    this.pending = null; // a BINARY_EVENT/ACK waiting for its attachments
  }

  /** The packet `data` completes, or null; throws on anything malformed. */
  Decoder.prototype.add = function (data) {
    if (typeof data === 'string') {
      if (this.pending) throw new Error('attachment expected');
      var p = decodePacket(data, this.fromClient);
      if (p.attachments > 0) {
        this.pending = { packet: p, buffers: [] };
        return null;
      }
      return p;
    }
    var pending = this.pending;
    if (!pending) throw new Error('unexpected binary message');
    pending.buffers.push(data);
    if (pending.buffers.length < pending.packet.attachments) return null;
    this.pending = null;
    pending.packet.data = reconstruct(pending.packet.data, pending.buffers);
    return pending.packet;
  };

  Decoder.prototype.reset = function () {
    this.pending = null;
  };

  // ------------------------------------------------------------------------------------------------
  // Manager: one Engine.IO connection, its reconnection, and the namespace sockets on it
  // ------------------------------------------------------------------------------------------------

  var managers = new ObjectSet(); // for the pagehide beacon

  function Manager(uri, opts) {
    Emitter.call(this);
    var self = this;
    if (uri && typeof uri === 'object') {
      opts = uri;
      uri = undefined;
    }
    opts = extend({}, opts);
    var parsed = parseUri(uri);
    this.uri = parsed.origin;
    this.opts = extend({
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
    this.opts.query = extend({}, parsed.query, opts.query);
    this.nsps = Object.create(null);
    this.engine = null;
    this.backoff = new Backoff(function () {
      return { min: self.opts.reconnectionDelay, max: self.opts.reconnectionDelayMax, jitter: self.opts.randomizationFactor };
    });
    this.skipReconnect = false;
    this._readyState = 'closed';
    this._reconnecting = false;
    this._reconnectTimer = null;
    this._active = new ObjectSet(); // sockets that want to be connected
    this._outQueue = []; // encoded packets, in emit order (Blob reads are asynchronous)
    this._decoder = new Decoder();
    if (this.opts.autoConnect) this.open();
  }

  /** Option getters/setters, like the official client: m.timeout() reads, m.timeout(ms) sets. */
  function option(name, set) {
    return function (v) {
      if (v === undefined) return this.opts[name];
      if (set) set.call(this, v);
      else this.opts[name] = v;
      return this;
    };
  }

  inherit(Manager, Emitter, {
    reconnection: option('reconnection', function (v) {
      this.opts.reconnection = !!v;
      if (!v) this.skipReconnect = true;
    }),
    reconnectionAttempts: option('reconnectionAttempts'),
    reconnectionDelay: option('reconnectionDelay'),
    reconnectionDelayMax: option('reconnectionDelayMax'),
    randomizationFactor: option('randomizationFactor'),
    timeout: option('timeout'),

    socket: function (nsp, opts) {
      nsp = nsp || '/';
      if (nsp.charAt(0) !== '/') nsp = '/' + nsp;
      var socket = this.nsps[nsp];
      if (!socket) {
        socket = new Socket(this, nsp, opts);
        this.nsps[nsp] = socket;
      } else if (this.opts.autoConnect && !(opts && opts.autoConnect === false) && !socket.active) {
        socket.connect();
      }
      return socket;
    },

    open: function (fn) {
      var self = this;
      if (this._readyState !== 'closed') {
        if (fn && this._readyState === 'open') fn();
        return this;
      }
      this.skipReconnect = !this.opts.reconnection;
      this._readyState = 'opening';
      managers.add(this);
      var engineOpts = {
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
      var port = this.opts.shared ? sharedLink() : null;
      var engine = port ? new PortEngine(engineOpts, port) : new Engine(engineOpts);
      this.engine = engine;
      this._decoder.reset();
      this._outQueue = [];
      var timer = null;
      engine.on('open', function () {
        clearTimeout(timer);
        if (self.engine !== engine) return;
        self._onopen();
        if (fn) fn();
      });
      engine.on('error', function (err) {
        clearTimeout(timer);
        if (self.engine !== engine) return;
        self._readyState = 'closed';
        self.emitReserved('error', err);
        self._active.list().forEach(function (s) { s._onManagerError(err); });
        if (fn) fn(err);
        else self._maybeReconnectOnOpen();
      });
      engine.on('close', function (reason, details) {
        if (self.engine === engine) self._onclose(reason, details);
      });
      engine.on('message', function (data) {
        if (self.engine === engine) self._ondata(data);
      });
      engine.on('ping', function () { self.emitReserved('ping'); });
      engine.on('upgrade', function (transport) {
        if (self.engine === engine && self._readyState === 'open') self.emitReserved('transport', transport.name);
      });
      var t = this.opts.timeout;
      if (t !== false && t !== Infinity && t >= 0) {
        timer = setTimeout(function () {
          if (self.engine !== engine || engine.readyState !== 'opening') return;
          engine._fail(new Error('timeout'));
        }, t);
      }
      engine.start();
      return this;
    },

    connect: function (fn) {
      return this.open(fn);
    },

    _maybeReconnectOnOpen: function () {
      if (!this._reconnecting && this.opts.reconnection && this.backoff.attempts === 0) this._reconnect();
    },

    _onopen: function () {
      this._readyState = 'open';
      this.emitReserved('open');
      this.emitReserved('transport', this.engine.transport.name);
      this._active.list().forEach(function (s) { s._onopen(); });
    },

    _ondata: function (data) {
      var packet = null;
      try {
        packet = this._decoder.add(data);
      } catch (e) {
        this._decoder.reset();
        if (this.engine) this.engine._onClose('parse error', { description: e.message });
        return;
      }
      if (!packet) return;
      var socket = this.nsps[packet.nsp];
      if (socket && this._active.has(socket)) socket._onpacket(packet);
    },

    /** Encode and write a packet, keeping emit order even when Blobs are read first. */
    _packet: function (packet) {
      var self = this;
      var parts = encodePacket(packet); // throws (e.g. circular data) into the caller of emit
      var item = { parts: null };
      this._outQueue.push(item);
      readBlobs(parts, function (err, read) {
        if (err) report(err);
        item.parts = err ? [] : read;
        self._drainOutQueue();
      });
    },

    _drainOutQueue: function () {
      while (this._outQueue.length && this._outQueue[0].parts) {
        var item = this._outQueue.shift();
        if (this._readyState === 'open' && this.engine && item.parts.length) this.engine.write(item.parts);
      }
    },

    _onclose: function (reason, details) {
      this._readyState = 'closed';
      this._decoder.reset();
      this._outQueue = [];
      this.backoff.reset();
      this.emitReserved('transport', null);
      this.emitReserved('close', reason, details);
      this._active.list().forEach(function (s) { s._onclose(reason, details); });
      if (this.opts.reconnection && !this.skipReconnect) this._reconnect();
    },

    _reconnect: function () {
      var self = this;
      if (this._reconnecting || this.skipReconnect) return;
      if (this.backoff.attempts >= this.opts.reconnectionAttempts) {
        this.backoff.reset();
        this.emitReserved('reconnect_failed');
        return;
      }
      var delay = this.backoff.duration();
      this._reconnecting = true;
      this._reconnectTimer = setTimeout(function () {
        self._reconnectTimer = null;
        if (self.skipReconnect) return;
        self.emitReserved('reconnect_attempt', self.backoff.attempts);
        if (self.skipReconnect) return;
        self.open(function (err) {
          if (err) {
            self._reconnecting = false;
            self._reconnect();
            self.emitReserved('reconnect_error', err);
          } else {
            var attempts = self.backoff.attempts;
            self._reconnecting = false;
            self.backoff.reset();
            self.emitReserved('reconnect', attempts);
          }
        });
      }, delay);
    },

    /** A socket no longer wants to be connected; close when none does. */
    _destroy: function (socket) {
      this._active.remove(socket);
      if (!this._active.size) this._close();
    },

    _close: function () {
      managers.remove(this);
      this.skipReconnect = true;
      this._reconnecting = false;
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      this.backoff.reset();
      var wasOpen = this._readyState === 'open';
      this._readyState = 'closed';
      var engine = this.engine;
      if (engine) {
        engine.off();
        engine.close();
      }
      this._decoder.reset();
      this._outQueue = [];
      if (wasOpen) {
        this.emitReserved('transport', null);
        this.emitReserved('close', 'forced close');
        this._active.list().forEach(function (s) { s._onclose('forced close'); });
      }
    },

    disconnect: function () {
      this._close();
      return this;
    },

    close: function () {
      return this.disconnect();
    }
  });

  getter(Manager, 'readyState', function () {
    return this._readyState;
  });

  /** True when this Manager's connection is the one the browser's tabs share (io({shared: true})). */
  getter(Manager, 'shared', function () {
    return this.engine instanceof PortEngine;
  });

  /** "websocket", "polling", or null while no connection is open. */
  getter(Manager, 'transport', function () {
    return this._readyState === 'open' && this.engine ? this.engine.transport.name : null;
  });

  // ------------------------------------------------------------------------------------------------
  // Socket: one namespace
  // ------------------------------------------------------------------------------------------------

  var RESERVED = {
    connect: 1, connect_error: 1, disconnect: 1, disconnecting: 1, newListener: 1, removeListener: 1
  };

  var nextAckId = 0;

  function Socket(io, nsp, opts) {
    Emitter.call(this);
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
    this._queue = []; // with opts.retries: emits waiting for their ack, the first one in flight
    this._any = [];
    this._anyOutgoing = [];
    this._connectAttempt = 0; // which CONNECT we are waiting for (0: none)
    this._retryTimer = null;
    this._backoff = new Backoff(function () {
      return { min: io.opts.reconnectionDelay, max: io.opts.reconnectionDelayMax, jitter: io.opts.randomizationFactor };
    });
    if (io.opts.autoConnect && opts.autoConnect !== false) this.connect();
  }

  /** Calls each of `fns` with `args`; one that throws does not stop the others. */
  function callEach(fns, self, args) {
    for (var i = 0; i < fns.length; i++) {
      try {
        fns[i].apply(self, args);
      } catch (e) {
        report(e);
      }
    }
  }

  inherit(Socket, Emitter, {
    compress: function () {
      return this;
    },

    timeout: function (ms) {
      this.flags.timeout = ms;
      return this;
    },

    connect: function () {
      if (this.connected) return this;
      this.io._active.add(this);
      if (this.io._readyState === 'open') this._onopen();
      else if (this.io._readyState === 'closed' && !this.io._reconnecting) this.io.open();
      return this;
    },

    open: function () {
      return this.connect();
    },

    disconnect: function () {
      var wasConnected = this.connected;
      if (wasConnected) this._send({ type: DISCONNECT, nsp: this.nsp });
      this._destroy();
      if (wasConnected) this._onclose('io client disconnect');
      return this;
    },

    close: function () {
      return this.disconnect();
    },

    _destroy: function () {
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      this._connectAttempt = 0;
      if (this.io._active.has(this)) this.io._destroy(this);
    },

    send: function () {
      var args = Array.prototype.slice.call(arguments);
      return this.emit.apply(this, ['message'].concat(args));
    },

    emit: function (event) {
      if (RESERVED[event] === 1) throw new Error('"' + String(event) + '" is a reserved event name');
      var data = Array.prototype.slice.call(arguments);
      if (this._opts.retries && !this.flags.volatile) return this._addToQueue(data);
      var packet = { type: EVENT, nsp: this.nsp, data: data };
      if (typeof data[data.length - 1] === 'function') {
        var id = this._nextId();
        this._registerAck(id, data.pop());
        packet.id = id;
      }
      var flags = this.flags;
      this.flags = {};
      if (this.connected && this.io._readyState === 'open') {
        this._notifyOutgoing(packet);
        this._send(packet);
      } else if (!flags.volatile) {
        if (this.sendBuffer.length >= this.io.opts.maxBufferedPackets) this._dropOldestBuffered();
        this.sendBuffer.push(packet);
      }
      return this;
    },

    /** Ack ids are unique in the page, not only in the socket: the shared worker tells tabs' emits apart by them. */
    _nextId: function () {
      this.ids = nextAckId + 1;
      return nextAckId++;
    },

    /** A Promise of the ack (ES2015): where the browser has none, this throws; use emit with a callback. */
    emitWithAck: function (event) {
      var self = this;
      if (typeof global.Promise !== 'function') {
        this.flags = {};
        throw new Error('emitWithAck needs Promise, which this browser lacks: pass a callback to emit() instead');
      }
      var args = Array.prototype.slice.call(arguments, 1);
      var withErr = this.flags.timeout !== undefined || this._opts.ackTimeout !== undefined || !!this._opts.retries;
      return new global.Promise(function (resolve, reject) {
        args.push(function (a, b) {
          if (!withErr) resolve(a);
          else if (a) reject(a);
          else resolve(b);
        });
        self.emit.apply(self, [event].concat(args));
      });
    },

    /** `withError`: the callback takes an error first even without a timeout (the retries' own). */
    _registerAck: function (id, fn, withError) {
      var self = this;
      var ms = this.flags.timeout !== undefined ? this.flags.timeout : this._opts.ackTimeout;
      if (ms === undefined && !withError) {
        this.acks[id] = fn;
        return;
      }
      var timer = ms === undefined ? null : setTimeout(function () {
        delete self.acks[id];
        self.sendBuffer = self.sendBuffer.filter(function (p) { return p.id !== id; });
        fn.call(self, new Error('operation has timed out'));
      }, ms);
      var wrapped = function () {
        clearTimeout(timer);
        fn.apply(self, arguments);
      };
      wrapped.withError = true;
      wrapped.timer = timer;
      this.acks[id] = wrapped;
    },

    // ---- retries (opts.retries): one emit in flight at a time, resent until acked ----
    //
    // As socket.io-client: each emit waits in a queue; the first is sent, and sent again when its ack
    // does not come within the timeout (ackTimeout, or timeout()) or the connection drops, up to
    // `retries` more times; then its callback gets the error. The next one goes when it is settled,
    // so they arrive in order. Unlike socket.io-client (since 4.6.1), every try of an emit carries the
    // same ack id: a server (or our hub, `once=True`) can tell a retry from a new emit.

    _addToQueue: function (data) {
      var self = this;
      var fn = typeof data[data.length - 1] === 'function' ? data.pop() : null;
      var entry = { id: this._nextId(), data: data, flags: this.flags, tries: 0, pending: false };
      this.flags = {};
      entry.fn = fn;
      entry.settle = function (err) {
        if (self._queue[0] !== entry) return; // a late ack of an emit already settled
        var args = Array.prototype.slice.call(arguments, 1);
        entry.pending = false;
        if (err && entry.tries <= self._opts.retries) {
          self._drainQueue();
          return;
        }
        self._queue.shift();
        if (fn) {
          try {
            fn.apply(self, err ? [err] : [null].concat(args));
          } catch (e) {
            report(e);
          }
        }
        self._drainQueue();
      };
      if (this._queue.length >= this.io.opts.maxBufferedPackets) {
        // Bounded as the send buffer: the oldest emit still waiting (not the one in flight) gives up.
        var dropped = this._queue.splice(this._queue[0].pending ? 1 : 0, 1)[0];
        if (dropped && dropped.fn) {
          try {
            dropped.fn.call(this, new Error('send buffer overflow'));
          } catch (e) {
            report(e);
          }
        }
      }
      this._queue.push(entry);
      this._drainQueue();
      return this;
    },

    /** Sends the first emit of the queue, unless it is in flight already (or `force`: the connection is new). */
    _drainQueue: function (force) {
      var entry = this._queue[0];
      if (!entry || !this.connected || this.io._readyState !== 'open' || (entry.pending && !force)) return;
      entry.pending = true;
      entry.tries++;
      var previous = this.acks[entry.id];
      if (previous) clearTimeout(previous.timer);
      this.flags = entry.flags;
      this._registerAck(entry.id, entry.settle, true);
      this.flags = {};
      var packet = { type: EVENT, nsp: this.nsp, data: entry.data.slice(), id: entry.id };
      this._notifyOutgoing(packet);
      this._send(packet);
    },

    _dropOldestBuffered: function () {
      var dropped = this.sendBuffer.shift();
      if (dropped && dropped.id !== undefined) {
        var ack = this.acks[dropped.id];
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
    },

    _send: function (packet) {
      if (this.io._readyState === 'open') this.io._packet(packet);
    },

    _notifyOutgoing: function (packet) {
      if (this._anyOutgoing.length) callEach(this._anyOutgoing.slice(), this, packet.data);
    },

    // ---- called by the Manager ----

    _onopen: function () {
      var self = this;
      if (this.connected || this._connectAttempt) return;
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      var attempt = this._connectAttempt = Date.now() + Math.random();
      var sendConnect = function (data) {
        if (self._connectAttempt !== attempt || self.io._readyState !== 'open') return;
        if (data === null) data = undefined;
        // Coming back: ask for our state and whatever we missed since the last offset.
        if (self._pid) data = extend({ pid: self._pid, offset: self._lastOffset }, data);
        self._send({ type: CONNECT, nsp: self.nsp, data: data });
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
    },

    _onManagerError: function (err) {
      if (!this.connected) this.emitReserved('connect_error', err);
    },

    _onpacket: function (packet) {
      switch (packet.type) {
        case CONNECT:
          if (packet.data && typeof packet.data.sid === 'string') {
            // Through the worker, recovery is the worker's: it says whether the server socket recovered.
            var viaWorker = this.io.engine instanceof PortEngine;
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
        case CONNECT_ERROR:
          // Refused (e.g. by a middleware): stay down until connect() is called again.
          this._destroy();
          var d = packet.data;
          var err = new Error(isObject(d) ? String(d.message) : String(d));
          if (isObject(d)) err.data = d.data;
          this.emitReserved('connect_error', err);
          break;
      }
    },

    _onconnect: function (id, pid, recovered) {
      this._connectAttempt = 0;
      this.id = id;
      this.recovered = !!recovered || (typeof pid === 'string' && pid === this._pid);
      this._pid = typeof pid === 'string' ? pid : undefined;
      this.connected = true;
      this._backoff.reset();
      var received = this.receiveBuffer.splice(0);
      for (var i = 0; i < received.length; i++) this._dispatch(received[i]);
      var toSend = this.sendBuffer.splice(0);
      for (var j = 0; j < toSend.length; j++) {
        this._notifyOutgoing(toSend[j]);
        this._send(toSend[j]);
      }
      this._drainQueue(true);
      this.emitReserved('connect');
    },

    _onevent: function (packet) {
      var args = packet.data.slice();
      // With recovery on, an event without an ack id carries its offset last: ours, not the page's.
      if (this._pid && packet.id === undefined && args.length > 1 && typeof args[args.length - 1] === 'string') {
        this._lastOffset = args.pop();
      }
      if (packet.id !== undefined) args.push(this._ackCallback(packet.id));
      if (this.connected) this._dispatch(args);
      else this.receiveBuffer.push(args);
    },

    _dispatch: function (args) {
      callEach(this._any.slice(), this, args);
      this.emitReserved.apply(this, args);
    },

    _ackCallback: function (id) {
      var self = this;
      var sent = false;
      return function () {
        if (sent) return;
        sent = true;
        self._send({ type: ACK, nsp: self.nsp, id: id, data: Array.prototype.slice.call(arguments) });
      };
    },

    _onack: function (packet) {
      var ack = this.acks[packet.id];
      if (typeof ack !== 'function') return;
      delete this.acks[packet.id];
      var args = packet.data.slice();
      if (ack.withError) args.unshift(null);
      try {
        ack.apply(this, args);
      } catch (e) {
        report(e);
      }
    },

    _ondisconnect: function () {
      // The server let this socket go on purpose: like the official client,
      // stay down until the page calls connect() again.
      this._onclose('io server disconnect');
      this._destroy();
    },

    _onclose: function (reason, details) {
      this._connectAttempt = 0;
      var wasConnected = this.connected;
      this.connected = false;
      this.id = undefined;
      this._clearAcks();
      if (wasConnected) this.emitReserved('disconnect', reason, details);
    },

    /** Acks with a timeout fail at once on disconnection unless their packet is still buffered. */
    _clearAcks: function () {
      var self = this;
      Object.keys(this.acks).forEach(function (key) {
        var id = Number(key);
        if (self.sendBuffer.some(function (p) { return p.id === id; })) return;
        var ack = self.acks[key];
        if (!ack.withError) return;
        delete self.acks[key];
        clearTimeout(ack.timer);
        try {
          ack.call(self, new Error('socket has been disconnected'));
        } catch (e) {
          report(e);
        }
      });
    },

    // ---- catch-all listeners ----

    onAny: function (fn) { this._any.push(fn); return this; },
    prependAny: function (fn) { this._any.unshift(fn); return this; },
    offAny: function (fn) {
      if (!fn) this._any = [];
      else this._any = this._any.filter(function (f) { return f !== fn; });
      return this;
    },
    listenersAny: function () { return this._any.slice(); },
    onAnyOutgoing: function (fn) { this._anyOutgoing.push(fn); return this; },
    prependAnyOutgoing: function (fn) { this._anyOutgoing.unshift(fn); return this; },
    offAnyOutgoing: function (fn) {
      if (!fn) this._anyOutgoing = [];
      else this._anyOutgoing = this._anyOutgoing.filter(function (f) { return f !== fn; });
      return this;
    },
    listenersAnyOutgoing: function () { return this._anyOutgoing.slice(); }
  });

  getter(Socket, 'disconnected', function () {
    return !this.connected;
  });

  getter(Socket, 'active', function () {
    return this.io._active.has(this);
  });

  /** "websocket" or "polling" while the connection is up, else null. */
  getter(Socket, 'transport', function () {
    return this.io.transport;
  });

  getter(Socket, 'volatile', function () {
    this.flags.volatile = true;
    return this;
  });

  // ------------------------------------------------------------------------------------------------
  // One connection for all the tabs of an origin: io({shared: true}), the tab's side
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
  // Browsers without SharedWorker (IE, old WebViews, Chrome for Android) never reach this code.

  var IN_WORKER = typeof global.SharedWorkerGlobalScope !== 'undefined' && global instanceof global.SharedWorkerGlobalScope;
  var SCRIPT_URL = !IN_WORKER && global.document && global.document.currentScript ? global.document.currentScript.src : null;
  var link; // the tab's port to the worker: undefined until tried, null when sharing is not possible

  /** The port to the worker, made once per page; null where there is no SharedWorker (then each tab connects itself). */
  function sharedLink() {
    if (link !== undefined) return link;
    link = null;
    if (IN_WORKER || !SCRIPT_URL || typeof global.SharedWorker !== 'function') return null;
    var worker;
    try {
      worker = new global.SharedWorker(SCRIPT_URL, { name: 'socket.io' });
    } catch (e) {
      return null; // e.g. the script is on another origin, or workers are blocked
    }
    var port = worker.port;
    var engines = Object.create(null);
    var next = 1;
    link = {
      post: function (msg) {
        try {
          port.postMessage(msg);
        } catch (e) {
          report(e); // data that cannot be cloned: dropped, as JSON would drop a function
        }
      },
      add: function (engine) {
        engines[next] = engine;
        return next++;
      },
      remove: function (id) {
        delete engines[id];
      }
    };
    port.onmessage = function (ev) {
      var msg = ev.data;
      var engine = msg && engines[msg.c];
      if (engine) engine._onWorker(msg);
    };
    worker.onerror = function () {
      // The worker could not start or died: later connections of this page are its own.
      link = null;
      Object.keys(engines).forEach(function (c) {
        if (engines[c]) engines[c]._onWorker({ t: 'close', reason: 'transport error' });
      });
    };
    // The worker must learn when this tab is gone: at pagehide, and through a Web Lock held for the
    // page's life, which the browser releases however the page ends (crash, kill, closed tab).
    // "hello" names the lock once the tab holds it, so the worker's request can only come after.
    var tab = Date.now().toString(36) + Math.random().toString(36).slice(2);
    try {
      global.navigator.locks.request('socket.io-tab:' + tab, function () {
        if (link) link.post({ t: 'hello', tab: tab });
        return new global.Promise(function () {}); // held until the page ends
      });
    } catch (e) {
      /* no locks: pagehide alone */
    }
    global.addEventListener('pagehide', function () {
      if (link) link.post({ t: 'bye' });
    });
    return link;
  }

  /** A tab's end of the shared connection, with the Engine's interface that the Manager uses. */
  function PortEngine(opts, port) {
    Emitter.call(this);
    this.opts = opts;
    this.readyState = 'opening';
    this.transport = null;
    this.id = null;
    this._link = port;
    this._c = port.add(this);
  }

  inherit(PortEngine, Emitter, {
    start: function () {
      this._link.post({ t: 'open', c: this._c, opts: this.opts });
    },

    _onWorker: function (msg) {
      switch (msg.t) {
        case 'open':
          if (this.readyState !== 'opening') return;
          this.readyState = 'open';
          this.id = msg.sid;
          this.transport = { name: msg.transport };
          this.emitReserved('open');
          break;
        case 'data':
          for (var i = 0; i < msg.items.length; i++) {
            if (this.readyState !== 'open') return;
            this.emitReserved('message', msg.items[i]);
          }
          break;
        case 'upgrade':
          if (this.readyState !== 'open') return;
          this.transport = { name: msg.transport };
          this.emitReserved('upgrade', this.transport);
          break;
        case 'close':
        case 'error':
          var was = this.readyState;
          this._gone();
          if (was === 'open') {
            this.emitReserved('close', msg.reason, msg.details);
          } else if (was === 'opening') {
            var err = new Error(msg.reason);
            err.type = 'TransportError';
            this.emitReserved('error', err);
          }
          break;
      }
    },

    _gone: function () {
      this.readyState = 'closed';
      this._link.remove(this._c);
    },

    write: function (items) {
      if (this.readyState === 'open') this._link.post({ t: 'data', c: this._c, items: items });
    },

    close: function () {
      if (this.readyState === 'closed') return;
      var was = this.readyState;
      this._link.post({ t: 'close', c: this._c });
      this._gone();
      if (was === 'open') this.emitReserved('close', 'forced close');
    },

    abort: function () {
      if (this.readyState === 'opening') this.close();
    },

    _fail: function (err) {
      if (this.readyState !== 'opening') return;
      this.close();
      this.emitReserved('error', err);
    },

    _onClose: function (reason, details) {
      // The tab could not parse what the worker passed on: this tab's connection ends, not the others'.
      if (this.readyState !== 'open') return;
      this._link.post({ t: 'close', c: this._c });
      this._gone();
      this.emitReserved('close', reason, details);
    },

    _beacon: function () {
      /* the worker's connection outlives this tab */
    }
  });

  // ------------------------------------------------------------------------------------------------
  // The shared connection, the worker's side (runs only inside the SharedWorker)
  // ------------------------------------------------------------------------------------------------

  var MAX_EMITS = 1000;

  /** One namespace's server socket in the worker, shared by the tabs' sockets of that namespace. */
  function Mux(upstream, nsp) {
    this.upstream = upstream;
    this.io = upstream.manager;
    this.nsp = nsp;
    this.asking = []; // [{conn, data}]: tabs' CONNECTs waiting for the server's answer
    this.ready = new ObjectSet(); // conns whose socket is connected
    this.connected = false;
    this.sent = false; // our CONNECT is on its way
    this.sid = undefined;
    this.pid = undefined; // recovery: the server socket's private id and the last offset seen
    this.lastOffset = undefined;
    this.ids = 0;
    this.acks = Object.create(null); // our ack id -> {conn, id, emit}: the tab that emitted and its own id
    // A tab's emit ("tab id:its ack id") -> our ack id, until acked: a retry of the tab's (the same
    // ack id, maybe over a new connection) goes with the same id, so the server can tell it is one.
    this.emits = Object.create(null);
    this.emitOrder = []; // bounded: the oldest are forgotten past MAX_EMITS
    this.serverAcks = Object.create(null); // ack ids of server events no tab has answered yet
    // Tabs that were connected when the connection dropped and have not connected again yet: what
    // the server sends (a recovery's missed packets first) waits here for them, so a tab that comes
    // back later than another misses nothing.
    this.away = Object.create(null); // tab id -> [encoded packets]
  }

  extend(Mux.prototype, {
    _asked: function (conn) {
      for (var i = 0; i < this.asking.length; i++) if (this.asking[i].conn === conn) return i;
      return -1;
    },

    has: function (conn) {
      return this.ready.has(conn) || this._asked(conn) !== -1;
    },

    // ---- from a tab ----

    fromTab: function (conn, packet) {
      switch (packet.type) {
        case CONNECT:
          if (this.connected) {
            var missed = this.away[conn.tab.id];
            delete this.away[conn.tab.id];
            this.ready.add(conn);
            conn.send(encodePacket({ type: CONNECT, nsp: this.nsp, data: { sid: this.sid, recovered: !!missed } }));
            if (missed) missed.forEach(function (parts) { conn.send(parts); });
          } else {
            var asked = this._asked(conn);
            if (asked === -1) this.asking.push({ conn: conn, data: packet.data });
            else this.asking[asked].data = packet.data;
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
            var emit = conn.tab.id + ':' + packet.id;
            var id = this.emits[emit];
            if (id === undefined) {
              id = this.emits[emit] = this.ids++;
              this.emitOrder.push(emit);
              if (this.emitOrder.length > MAX_EMITS) delete this.emits[this.emitOrder.shift()];
            }
            this.acks[id] = { conn: conn, id: packet.id, emit: emit };
            packet.id = id;
          }
          this.io._packet(packet);
          break;
        case ACK:
        case BINARY_ACK:
          if (this.connected && this.serverAcks[packet.id]) {
            delete this.serverAcks[packet.id];
            this.io._packet(packet);
          }
          break;
      }
    },

    leave: function (conn) {
      var self = this;
      if (!this.has(conn)) return;
      this.ready.remove(conn);
      var i = this._asked(conn);
      if (i !== -1) this.asking.splice(i, 1);
      Object.keys(this.acks).forEach(function (id) {
        if (self.acks[id].conn === conn) delete self.acks[id];
      });
      if (this.ready.size || this.asking.length) return;
      // The last tab of the namespace left: so does the server socket.
      if (this.connected || this.sent) this.io._packet({ type: DISCONNECT, nsp: this.nsp });
      this._reset();
      this.io._destroy(this);
    },

    _connect: function () {
      if (this.sent || !this.asking.length) return;
      this.io._active.add(this);
      this.io.nsps[this.nsp] = this;
      if (this.io._readyState !== 'open') {
        if (this.io._readyState === 'closed' && !this.io._reconnecting) this.io.open();
        return;
      }
      var data = this.asking[0].data; // the first tab's auth speaks for the browser
      if (data === null) data = undefined;
      if (this.pid) data = extend({}, data, { pid: this.pid, offset: this.lastOffset });
      this.sent = true;
      this.io._packet({ type: CONNECT, nsp: this.nsp, data: data });
    },

    _reset: function () {
      this.connected = this.sent = false;
      this.ready.clear();
      this.asking = [];
      this.acks = Object.create(null);
      this.serverAcks = Object.create(null);
    },

    _toReady: function (packet) {
      var away = this.away;
      var tabs = Object.keys(away);
      if (!this.ready.size && !tabs.length) return;
      var parts = encodePacket(packet); // ArrayBuffers only here: never a Blob
      this.ready.list().forEach(function (conn) { conn.send(parts); });
      tabs.forEach(function (tab) {
        if (away[tab].length < 1000) away[tab].push(parts);
        else delete away[tab]; // too far behind: it will connect as not recovered, and resync
      });
    },

    /** The connection dropped: the tabs connected now will be back. */
    _wentAway: function () {
      var away = this.away;
      this.ready.list().forEach(function (conn) { away[conn.tab.id] = []; });
    },

    // ---- what the Manager calls (a Socket's interface) ----

    _onopen: function () {
      this.sent = false;
      this._connect();
    },

    _onpacket: function (packet) {
      var self = this;
      switch (packet.type) {
        case CONNECT:
          if (!packet.data || typeof packet.data.sid !== 'string') return;
          var pid = typeof packet.data.pid === 'string' ? packet.data.pid : undefined;
          var recovered = pid !== undefined && pid === this.pid;
          this.pid = pid;
          this.sid = packet.data.sid;
          this.connected = true;
          this.sent = false;
          if (!recovered) this.away = Object.create(null); // a new server socket: nothing to wait for
          this.asking.forEach(function (entry) {
            var back = recovered && entry.conn.tab.id in self.away;
            delete self.away[entry.conn.tab.id];
            self.ready.add(entry.conn);
            entry.conn.send(encodePacket({ type: CONNECT, nsp: self.nsp, data: { sid: self.sid, recovered: back } }));
          });
          this.asking = [];
          break;
        case EVENT:
        case BINARY_EVENT:
          var args = packet.data;
          // The offset is ours (the worker's socket recovers), not the tabs'.
          if (this.pid && packet.id === undefined && args.length > 1 && typeof args[args.length - 1] === 'string') {
            this.lastOffset = args.pop();
          }
          if (packet.id !== undefined) this.serverAcks[packet.id] = true;
          this._toReady(packet);
          break;
        case ACK:
        case BINARY_ACK:
          var ack = this.acks[packet.id];
          if (!ack) return;
          delete this.acks[packet.id];
          if (this.emits[ack.emit] === packet.id) delete this.emits[ack.emit];
          if (this.ready.has(ack.conn)) ack.conn.send(encodePacket(extend({}, packet, { id: ack.id })));
          break;
        case DISCONNECT:
          // The server let the socket go: every tab's socket stays down until it connects again.
          this.away = Object.create(null);
          this._toReady(packet);
          this._reset();
          this.io._destroy(this);
          break;
        case CONNECT_ERROR:
          var refused = encodePacket(packet);
          this.asking.forEach(function (entry) { entry.conn.send(refused); });
          this.asking = [];
          this.sent = false;
          if (!this.ready.size) this.io._destroy(this);
          break;
      }
    },

    _onclose: function () {
      // The Upstream drops every tab's connection: their Managers reconnect and CONNECT again.
      this._reset();
    },

    _onManagerError: function () {}
  });

  /** One endpoint in the worker: its Manager, the tabs' connections (Conns) on it, a Mux per namespace. */
  function Upstream(key, opts) {
    var self = this;
    this.key = key;
    this.conns = new ObjectSet();
    this.muxes = Object.create(null);
    var m = this.manager = new Manager(opts.origin, extend({}, opts, {
      // The tabs reconnect (each its own Manager, with its backoff); the worker follows them.
      autoConnect: false, reconnection: false, shared: false
    }));
    m.on('open', function () {
      self.conns.list().forEach(function (conn) { conn.opened(); });
    });
    m.on('transport', function (name) {
      if (!name) return;
      self.conns.list().forEach(function (conn) { conn.upgraded(name); });
    });
    m.on('close', function (reason, details) {
      Object.keys(self.muxes).forEach(function (nsp) { self.muxes[nsp]._wentAway(); });
      var described = details && { description: String(details.description || details.message || details) };
      self.conns.list().forEach(function (conn) { conn.drop('close', reason, described); });
    });
    m.on('error', function (err) {
      self.conns.list().forEach(function (conn) {
        if (!conn.open) conn.drop('error', err && err.message);
      });
    });
  }

  extend(Upstream.prototype, {
    attach: function (conn) {
      this.conns.add(conn);
      var m = this.manager;
      if (m._readyState === 'open') conn.opened();
      else if (m._readyState === 'closed' && !m._reconnecting) m.open();
    },

    fromTab: function (conn, packet) {
      var mux = this.muxes[packet.nsp];
      if (!mux) mux = this.muxes[packet.nsp] = new Mux(this, packet.nsp);
      mux.fromTab(conn, packet);
    },

    detach: function (conn) {
      var self = this;
      if (!this.conns.remove(conn)) return;
      Object.keys(this.muxes).forEach(function (nsp) { self.muxes[nsp].leave(conn); });
      if (!this.conns.size && this.manager._readyState !== 'closed' && !this.manager._active.size) this.manager._close();
    }
  });

  /** A tab Manager's connection in the worker (the far end of its PortEngine). */
  function Conn(tab, c, upstream) {
    this.tab = tab;
    this.c = c;
    this.upstream = upstream;
    this.open = false;
    this.transport = null;
    this.decoder = new Decoder(true);
  }

  extend(Conn.prototype, {
    post: function (msg) {
      msg.c = this.c;
      this.tab.port.postMessage(msg);
    },

    opened: function () {
      if (this.open) return;
      var engine = this.upstream.manager.engine;
      this.open = true;
      this.transport = engine.transport.name;
      this.post({ t: 'open', sid: engine.id, transport: this.transport });
    },

    upgraded: function (name) {
      if (!this.open || name === this.transport) return;
      this.transport = name;
      this.post({ t: 'upgrade', transport: name });
    },

    send: function (parts) {
      if (this.open) this.post({ t: 'data', items: parts });
    },

    fromTab: function (items) {
      for (var i = 0; i < items.length && this.open; i++) {
        var packet;
        try {
          packet = this.decoder.add(items[i]);
        } catch (e) {
          this.drop('close', 'parse error'); // this tab's connection only
          return;
        }
        if (packet) this.upstream.fromTab(this, packet);
      }
    },

    /** The worker ends this connection ('close' or 'error' to the tab), leaving the namespaces. */
    drop: function (kind, reason, details) {
      delete this.tab.conns[this.c];
      this.upstream.detach(this);
      this.open = false;
      this.post({ t: kind, reason: reason, details: details });
    }
  });

  var nextTab = 1;

  /** One tab (one port) in the worker. */
  function Tab(port, upstreams) {
    var self = this;
    this.id = nextTab++;
    this.port = port;
    this.upstreams = upstreams; // endpoint key -> Upstream, shared by every tab
    this.conns = Object.create(null); // c -> Conn
    port.onmessage = function (ev) { self._onmessage(ev.data); };
  }

  extend(Tab.prototype, {
    _onmessage: function (msg) {
      var self = this;
      if (!msg || typeof msg !== 'object') return;
      var conn = this.conns[msg.c];
      switch (msg.t) {
        case 'hello':
          try {
            // Granted once the tab holding it is gone, however it went.
            global.navigator.locks.request('socket.io-tab:' + msg.tab, function () { self.gone(); });
          } catch (e) {
            /* no locks: pagehide alone */
          }
          break;
        case 'open':
          if (conn || !msg.opts) return;
          var o = msg.opts;
          var key = JSON.stringify([o.origin, o.path, o.query, o.transports]);
          var upstream = this.upstreams[key];
          if (!upstream) upstream = this.upstreams[key] = new Upstream(key, o);
          var created = this.conns[msg.c] = new Conn(this, msg.c, upstream);
          upstream.attach(created);
          break;
        case 'data':
          if (conn && Array.isArray(msg.items)) conn.fromTab(msg.items);
          break;
        case 'close':
          if (!conn) return;
          delete this.conns[msg.c];
          conn.upstream.detach(conn);
          break;
        case 'bye':
          this.gone();
          break;
      }
    },

    gone: function () {
      var self = this;
      Object.keys(this.conns).forEach(function (c) {
        if (self.conns[c]) self.conns[c].drop('close', 'transport close');
      });
      Object.keys(this.upstreams).forEach(function (key) {
        var muxes = self.upstreams[key].muxes;
        Object.keys(muxes).forEach(function (nsp) { delete muxes[nsp].away[self.id]; });
      });
    }
  });

  if (IN_WORKER) {
    var upstreams = Object.create(null);
    global.addEventListener('connect', function (ev) {
      new Tab(ev.ports[0], upstreams); // eslint-disable-line no-new
    });
  }

  // ------------------------------------------------------------------------------------------------
  // io()
  // ------------------------------------------------------------------------------------------------

  var cache = Object.create(null);

  function lookup(uri, opts) {
    if (uri && typeof uri === 'object') {
      opts = uri;
      uri = undefined;
    }
    opts = extend({}, opts);
    var parsed = parseUri(uri);
    opts.path = normalizePath(opts.path);
    var id = parsed.origin + opts.path;
    var sameNamespace = !!cache[id] && parsed.nsp in cache[id].nsps;
    var newConnection = opts.forceNew || opts['force new connection'] || opts.multiplex === false || sameNamespace;
    var managerUri = parsed.origin + (parsed.query ? '/?' + queryString(parsed.query) : '');
    var manager;
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
      managers.list().forEach(function (m) {
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
