/*
 * An old browser around an ES5-only JavaScript engine (Duktape, through dukpy < 0.6), for
 * tests/e2e/oldbrowser.py: what IE9 gives a page and nothing more. No WebSocket, Promise, Map, Set, URL,
 * fetch, TextEncoder; the ES2015 built-ins Duktape has are removed (Object.assign, Symbol, Proxy...),
 * and in IE9 mode the typed arrays too. Timers and XMLHttpRequest are real but driven from Python:
 * timers wait here until Python's loop calls __env.runTimers(); an XHR's send() hands the request to
 * Python (call_python), which performs it against the live board and later calls __env.xhrDone().
 * The DOM is the served page, built from the tree Python parsed (__env.build), with what the board's
 * page script uses of it.
 */
var window = this;

(function (g) {
  'use strict';

  var env = g.__env = { errors: [], log: [] };

  // ---- what IE lacks goes: the client must not lean on it unguarded ----

  env.strip = function (ie9) {
    var gone = ['Promise', 'Map', 'Set', 'WeakMap', 'WeakSet', 'Symbol', 'Proxy', 'Reflect', 'URL',
      'URLSearchParams', 'fetch', 'TextEncoder', 'TextDecoder', 'WebSocket', 'SharedWorker', 'Blob',
      'btoa', 'atob'];
    if (ie9) gone = gone.concat(['ArrayBuffer', 'DataView', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray',
      'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array']);
    gone.forEach(function (name) { delete g[name]; });
    delete Object.assign;
    delete Object.setPrototypeOf;
    delete Object.getOwnPropertySymbols;
    delete Number.isFinite;
    delete Number.isInteger;
    delete Math.trunc;
    delete Math.sign;
    delete String.fromCodePoint;
    ['startsWith', 'endsWith', 'includes', 'repeat', 'codePointAt', 'normalize'].forEach(function (name) {
      delete String.prototype[name];
    });
    if (!ie9) {
      g.btoa = btoa; // IE10 has typed arrays and base64, Duktape has no base64 functions
      g.atob = atob;
      delete ArrayBuffer.isView; // but neither of these (IE11 has them)
      delete ArrayBuffer.prototype.slice;
    }
    return gone.filter(function (name) { return typeof g[name] !== 'undefined' && !(!ie9 && /^(btoa|atob)$/.test(name)); });
  };

  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

  function btoa(s) {
    var out = '';
    for (var i = 0; i < s.length; i += 3) {
      var a = s.charCodeAt(i);
      var b = s.charCodeAt(i + 1);
      var c = s.charCodeAt(i + 2);
      if (a > 255 || b > 255 || c > 255) throw new Error('InvalidCharacterError');
      out += B64.charAt(a >> 2) + B64.charAt(((a & 3) << 4) | (isNaN(b) ? 0 : b >> 4)) +
        (isNaN(b) ? '=' : B64.charAt(((b & 15) << 2) | (isNaN(c) ? 0 : c >> 6))) + (isNaN(c) ? '=' : B64.charAt(c & 63));
    }
    return out;
  }

  function atob(text) {
    var s = String(text).replace(/=+$/, '');
    if (/[^A-Za-z0-9+\/]/.test(s) || s.length % 4 === 1) throw new Error('InvalidCharacterError');
    var out = '';
    var bits = 0;
    var n = 0;
    for (var i = 0; i < s.length; i++) {
      bits = (bits << 6) | B64.indexOf(s.charAt(i));
      n += 6;
      if (n >= 8) {
        n -= 8;
        out += String.fromCharCode((bits >> n) & 255);
      }
    }
    return out;
  }

  // ---- timers, run by Python's loop ----

  var timers = {};
  var nextTimer = 1;

  g.setTimeout = function (fn, ms) {
    var id = nextTimer++;
    timers[id] = { fn: fn, due: Date.now() + (+ms || 0), seq: id };
    return id;
  };
  g.clearTimeout = function (id) {
    delete timers[id];
  };

  function earliest() {
    var best = null;
    Object.keys(timers).forEach(function (id) {
      var t = timers[id];
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    });
    return best;
  }

  function call(fn, what) {
    try {
      fn();
    } catch (e) {
      env.errors.push(what + ': ' + (e && e.stack ? e.stack : String(e)));
    }
  }

  /** Runs the timers that are due (in order, at most 1000); the ms until the next one, or -1. */
  env.runTimers = function () {
    for (var n = 0; n < 1000; n++) {
      var t = earliest();
      if (!t || t.due > Date.now()) break;
      delete timers[t.seq];
      call(t.fn, 'timer');
    }
    var next = earliest();
    return next ? Math.max(0, next.due - Date.now()) : -1;
  };

  // ---- XMLHttpRequest, performed by Python ----

  var xhrs = {};
  var nextXhr = 1;

  function XMLHttpRequest() {
    this.readyState = 0;
    this.status = 0;
    this.responseText = '';
    this.onreadystatechange = null;
    this._headers = {};
    this._id = 0;
  }
  XMLHttpRequest.prototype.open = function (method, url, async) {
    if (async === false) throw new Error('synchronous XHR is not supported here');
    this._method = method;
    this._url = url;
    this.readyState = 1;
  };
  XMLHttpRequest.prototype.setRequestHeader = function (k, v) {
    if (this.readyState !== 1) throw new Error('InvalidStateError');
    this._headers[k] = String(v);
  };
  XMLHttpRequest.prototype.send = function (body) {
    if (this.readyState !== 1) throw new Error('InvalidStateError');
    this._id = nextXhr++;
    xhrs[this._id] = this;
    call_python('xhr', this._id, this._method, this._url, this._headers, body === undefined ? null : body);
  };
  XMLHttpRequest.prototype.abort = function () {
    delete xhrs[this._id];
    this.readyState = 0;
  };
  g.XMLHttpRequest = XMLHttpRequest;

  env.xhrDone = function (id, status, text) {
    var xhr = xhrs[id];
    if (!xhr) return; // aborted
    delete xhrs[id];
    xhr.readyState = 4;
    xhr.status = status;
    xhr.responseText = text;
    if (xhr.onreadystatechange) call(function () { xhr.onreadystatechange(); }, 'xhr ' + xhr._method);
  };

  env.pendingXhrs = function () {
    return Object.keys(xhrs).length;
  };

  // ---- storage, location, navigator ----

  function Storage() {
    this._items = {};
  }
  Storage.prototype.getItem = function (k) {
    return Object.prototype.hasOwnProperty.call(this._items, k) ? this._items[k] : null;
  };
  Storage.prototype.setItem = function (k, v) { this._items[k] = String(v); };
  Storage.prototype.removeItem = function (k) { delete this._items[k]; };
  g.localStorage = new Storage();
  g.sessionStorage = new Storage();
  g.navigator = { userAgent: 'Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)' };

  env.setLocation = function (href) {
    var m = /^(https?:)\/\/([^\/]+)/.exec(href);
    g.location = { href: href, protocol: m[1], host: m[2] };
  };

  // ---- events ----

  function Target() {}
  Target.prototype.addEventListener = function (type, fn) {
    var all = this._listeners || (this._listeners = {});
    (all[type] || (all[type] = [])).push(fn);
  };
  Target.prototype.removeEventListener = function (type, fn) {
    var list = this._listeners && this._listeners[type];
    if (list && list.indexOf(fn) !== -1) list.splice(list.indexOf(fn), 1);
  };
  Target.prototype._fire = function (type, props) {
    var self = this;
    var ev = { type: type, target: this, defaultPrevented: false };
    ev.preventDefault = function () { ev.defaultPrevented = true; };
    Object.keys(props || {}).forEach(function (k) { ev[k] = props[k]; });
    var list = ((this._listeners && this._listeners[type]) || []).slice();
    list.forEach(function (fn) { call(function () { fn.call(self, ev); }, type + ' listener'); });
    return ev;
  };

  g.addEventListener = Target.prototype.addEventListener;
  g.removeEventListener = Target.prototype.removeEventListener;
  env.pagehide = function () { Target.prototype._fire.call(g, 'pagehide'); };

  // ---- a DOM: the elements of the served page, with what the page script uses ----

  function Text(text) {
    this.nodeType = 3;
    this.textContent = text;
    this.parentNode = null;
  }

  function Element(tag) {
    this.nodeType = 1;
    this.tagName = tag.toUpperCase();
    this.attributes = {};
    this.childNodes = [];
    this.parentNode = null;
    this.value = '';
    this.disabled = false;
    this.scrollTop = 0;
    this.clientHeight = 200;
    this.title = '';
  }
  Element.prototype = new Target();
  Element.prototype.constructor = Element;

  function elementsOf(node) {
    return node.childNodes.filter(function (c) { return c.nodeType === 1; });
  }

  Object.defineProperty(Element.prototype, 'textContent', {
    get: function () {
      return this.childNodes.map(function (c) { return c.textContent; }).join('');
    },
    set: function (v) {
      this.childNodes.forEach(function (c) { c.parentNode = null; });
      this.childNodes = [];
      var text = String(v);
      if (text) this.appendChild(new Text(text));
    }
  });
  Object.defineProperty(Element.prototype, 'children', { get: function () { return elementsOf(this); } });
  Object.defineProperty(Element.prototype, 'firstElementChild', {
    get: function () { return elementsOf(this)[0] || null; }
  });
  Object.defineProperty(Element.prototype, 'lastElementChild', {
    get: function () { var all = elementsOf(this); return all[all.length - 1] || null; }
  });
  Object.defineProperty(Element.prototype, 'previousElementSibling', {
    get: function () {
      if (!this.parentNode) return null;
      var all = elementsOf(this.parentNode);
      return all[all.indexOf(this) - 1] || null;
    }
  });
  Object.defineProperty(Element.prototype, 'scrollHeight', {
    get: function () { return 20 * this.childNodes.length; } // a line per child: enough layout for scrolling
  });
  Object.defineProperty(Element.prototype, 'id', { get: function () { return this.attributes.id || ''; } });
  Object.defineProperty(Element.prototype, 'className', {
    get: function () { return this.attributes['class'] || ''; },
    set: function (v) { this.attributes['class'] = String(v); }
  });

  Element.prototype.setAttribute = function (k, v) { this.attributes[k] = String(v); };
  Element.prototype.getAttribute = function (k) {
    return Object.prototype.hasOwnProperty.call(this.attributes, k) ? this.attributes[k] : null;
  };
  Element.prototype.appendChild = function (child) {
    return this.insertBefore(child, null);
  };
  Element.prototype.insertBefore = function (child, before) {
    if (child.parentNode) child.parentNode.removeChild(child);
    var i = before ? this.childNodes.indexOf(before) : -1;
    if (before && i === -1) throw new Error('NotFoundError');
    if (before) this.childNodes.splice(i, 0, child);
    else this.childNodes.push(child);
    child.parentNode = this;
    return child;
  };
  Element.prototype.removeChild = function (child) {
    var i = this.childNodes.indexOf(child);
    if (i === -1) throw new Error('NotFoundError');
    this.childNodes.splice(i, 1);
    child.parentNode = null;
    return child;
  };
  Element.prototype.focus = function () { g.document.activeElement = this; };

  /** Selectors of one compound part: tag, #id, .class, [attr=value]. */
  function matches(el, selector) {
    var m = /^([a-z0-9]*)((?:#[\w-]+|\.[\w-]+|\[[\w-]+=[\w-]+\])*)$/i.exec(selector);
    if (!m) throw new Error('selector not supported here: ' + selector);
    if (m[1] && el.tagName !== m[1].toUpperCase()) return false;
    var parts = m[2].match(/#[\w-]+|\.[\w-]+|\[[\w-]+=[\w-]+\]/g) || [];
    return parts.every(function (p) {
      if (p.charAt(0) === '#') return el.id === p.slice(1);
      if (p.charAt(0) === '.') return (' ' + el.className + ' ').indexOf(' ' + p.slice(1) + ' ') !== -1;
      var kv = p.slice(1, -1).split('=');
      return el.getAttribute(kv[0]) === kv[1];
    });
  }

  function find(root, test) {
    var kids = elementsOf(root);
    for (var i = 0; i < kids.length; i++) {
      if (test(kids[i])) return kids[i];
      var deeper = find(kids[i], test);
      if (deeper) return deeper;
    }
    return null;
  }

  Element.prototype.querySelector = function (selector) {
    return find(this, function (el) { return matches(el, selector); });
  };

  function build(node) {
    if (typeof node === 'string') return new Text(node);
    var el = new Element(node.tag);
    Object.keys(node.attrs).forEach(function (k) { el.setAttribute(k, node.attrs[k]); });
    if (node.attrs.value !== undefined) el.value = node.attrs.value;
    node.children.forEach(function (c) { el.appendChild(build(c)); });
    if (el.tagName === 'TEXTAREA') el.value = el.textContent;
    return el;
  }

  /** The page: `tree` is the body element as Python's HTML parser saw it. */
  env.build = function (tree) {
    var body = build(tree);
    var html = new Element('html');
    html.appendChild(body);
    g.document = {
      documentElement: html,
      body: body,
      activeElement: body,
      currentScript: null, // IE has none
      createElement: function (tag) { return new Element(tag); },
      getElementById: function (id) { return find(html, function (el) { return el.id === id; }); },
      querySelector: function (selector) { return html.querySelector(selector); }
    };
  };

  // ---- what the person sees and does ----

  function byId(id) {
    var el = g.document.getElementById(id);
    if (!el) throw new Error('no element #' + id);
    return el;
  }

  /** Everything a person reads off the page, at once. */
  env.screen = function () {
    function lines(id) {
      return byId(id).children.map(function (li) { return li.textContent; });
    }
    return {
      state: byId('state').textContent,
      bodyState: g.document.body.getAttribute('data-state'),
      transport: byId('transport').textContent,
      count: byId('count').textContent,
      news: lines('news'),
      'private': lines('private'),
      posts: byId('posts').children.map(function (li) {
        return {
          name: li.querySelector('.name').textContent,
          text: li.querySelector('.text').textContent,
          time: li.querySelector('time').textContent
        };
      }),
      error: byId('post-error').textContent,
      text: byId('text').value,
      button: byId('post-form').querySelector('button[type=submit]').disabled ? 'disabled' : 'enabled'
    };
  };

  env.type = function (id, value) {
    byId(id).value = value;
  };

  env.submit = function () {
    return byId('post-form')._fire('submit').defaultPrevented;
  };

  env.pressEnter = function (id) {
    return byId(id)._fire('keydown', { keyCode: 13, shiftKey: false }).defaultPrevented;
  };
})(this);
