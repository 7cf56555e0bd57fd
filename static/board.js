/* Board: the page. Uses window.io from /socket.io/socket.io.js. All text goes in with textContent.
 * ECMAScript 5 and the DOM of IE9 (no build step): it runs in old browsers too, over long-polling. */
(function () {
  'use strict';

  var NAME_KEY = 'board.name';
  var MAX_LINES = 200; // news and private panes keep the newest lines
  var MAX_POSTS = 1000;
  // Every emit is resent until acked (one at a time, in order): a try whose ack does not come within
  // TRY_TIMEOUT, or whose connection drops, goes again, up to RETRIES more times.
  var TRY_TIMEOUT = 5000;
  var RETRIES = 30;

  var $ = function (id) { return document.getElementById(id); };
  var stateEl = $('state');
  var transportEl = $('transport');
  var countEl = $('count');
  var newsEl = $('news');
  var privateEl = $('private');
  var postsEl = $('posts');
  var form = $('post-form');
  var nameEl = $('name');
  var textEl = $('text');
  var errorEl = $('post-error');
  var button = form.querySelector('button[type=submit]');

  // The newest post shown: after a drop whose state the server could not recover,
  // the server sends the posts after it (not the whole history again).
  var lastId = null;
  // shared: one connection for all the board's tabs of this browser (a SharedWorker), where there is one.
  var socket = io({
    shared: true,
    retries: RETRIES,
    ackTimeout: TRY_TIMEOUT,
    auth: function (cb) { cb(lastId === null ? {} : { after: lastId }); }
  });
  window.boardSocket = socket;

  // ---- connection state ----

  function setState(state) {
    stateEl.textContent = state;
    document.body.setAttribute('data-state', state);
  }

  function showTransport() {
    transportEl.textContent = socket.connected && socket.transport ? socket.transport : '';
  }

  var everConnected = false;

  socket.on('connect', function () {
    everConnected = true;
    setState('connected');
    showTransport();
  });

  socket.on('disconnect', function () {
    setState(socket.active ? 'reconnecting' : 'disconnected');
    showTransport();
  });

  socket.on('connect_error', function () {
    if (socket.connected) return;
    if (!socket.active) setState('disconnected');
    else setState(everConnected ? 'reconnecting' : 'connecting');
  });

  socket.io.on('transport', showTransport);

  // ---- panes ----

  function appendLine(list, text) {
    var li = document.createElement('li');
    li.textContent = String(text);
    list.appendChild(li);
    while (list.children.length > MAX_LINES) list.removeChild(list.firstElementChild);
    list.scrollTop = list.scrollHeight;
  }

  function setCount(count) {
    if (typeof count === 'number' && isFinite(count)) countEl.textContent = String(count);
  }

  socket.on('news', function (data) {
    if (!data) return;
    if (data.msg !== undefined) appendLine(newsEl, data.msg);
    setCount(data.count);
  });

  socket.on('private', function (data) {
    if (data && data.msg !== undefined) appendLine(privateEl, data.msg);
    socket.emit('private', { msg: 'Thank you for your message' });
  });

  // ---- posts ----

  var timeFormat = { hour: '2-digit', minute: '2-digit' };
  var dateFormat = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };

  function renderPost(post) {
    var li = document.createElement('li');
    li.className = 'post';
    li.setAttribute('data-id', String(post.id));

    var name = document.createElement('span');
    name.className = 'name';
    name.textContent = String(post.name);

    var time = document.createElement('time');
    var when = new Date(Number(post.ts));
    if (!isNaN(when.getTime())) {
      time.setAttribute('datetime', when.toISOString());
      time.title = when.toLocaleString();
      var today = new Date().toDateString() === when.toDateString();
      time.textContent = when.toLocaleString([], today ? timeFormat : dateFormat);
    }

    var text = document.createElement('span');
    text.className = 'text';
    text.textContent = String(post.text);

    li.appendChild(name);
    li.appendChild(time);
    li.appendChild(text);
    return li;
  }

  function isValidPost(post) {
    return post && typeof post === 'object' && post.id !== undefined && post.id !== null;
  }

  function nearBottom() {
    return postsEl.scrollHeight - postsEl.scrollTop - postsEl.clientHeight < 80;
  }

  function scrollToNewest() {
    postsEl.scrollTop = postsEl.scrollHeight;
  }

  var shown = Object.create(null); // ids of the posts on the page ("id" -> true): each is shown once

  // Puts a post in id order (nearly always at the end); false if it is already shown.
  function addPost(post) {
    if (!isValidPost(post)) return false;
    var key = String(post.id);
    if (shown[key] === true) return false;
    shown[key] = true;
    var id = Number(post.id);
    var before = null;
    for (var li = postsEl.lastElementChild; li && Number(li.getAttribute('data-id')) > id; li = li.previousElementSibling) {
      before = li;
    }
    postsEl.insertBefore(renderPost(post), before);
    if (lastId === null || id > lastId) lastId = id;
    while (postsEl.children.length > MAX_POSTS) {
      delete shown[postsEl.firstElementChild.getAttribute('data-id')];
      postsEl.removeChild(postsEl.firstElementChild);
    }
    return true;
  }

  function addPosts(posts) {
    if (!Array.isArray(posts)) return;
    posts.forEach(addPost);
    scrollToNewest();
  }

  // The newest posts on arrival; after a drop, the ones missed since lastId.
  socket.on('history', addPosts);

  // On a shared connection this tab may join a socket that is already connected: what the server
  // sent at its arrival (posts, count) went to the tabs open then, so ask. Posts are shown once each.
  socket.on('connect', function () {
    if (!socket.io.shared) return;
    socket.emit('sync', { after: lastId }, function (err, data) {
      if (err || !data) return;
      addPosts(data.posts);
      setCount(data.count);
    });
  });

  var myLastId = null;

  socket.on('message', function (post) {
    var follow = nearBottom() || (isValidPost(post) && String(post.id) === myLastId);
    if (addPost(post) && follow) scrollToNewest();
  });

  // ---- the form ----

  try {
    var saved = window.localStorage.getItem(NAME_KEY);
    if (saved) nameEl.value = saved;
  } catch (e) {
    /* storage not available */
  }

  function saveName(name) {
    try {
      window.localStorage.setItem(NAME_KEY, name);
    } catch (e) {
      /* storage not available */
    }
  }

  // Each post carries a key of its own: this page's random id and a counter. A resent post (its ack
  // was lost) has the same key, and the board stores a key once, so a post is stored and shown once.
  var pageId = randomId();
  var posted = 0;
  var unsent = null; // {name, text, key}: the post being sent, or the one that failed (sent again as is, same key)

  function randomId() {
    var words = [];
    var crypto = window.crypto || window.msCrypto;
    if (crypto && crypto.getRandomValues && typeof Uint32Array === 'function') {
      words = Array.prototype.slice.call(crypto.getRandomValues(new Uint32Array(4)));
    } else {
      for (var i = 0; i < 4; i++) words.push(Math.floor(Math.random() * 4294967296));
    }
    return words.map(function (w) { return w.toString(36); }).join('') + Date.now().toString(36);
  }

  function keyOf(name, text) {
    if (!unsent || unsent.name !== name || unsent.text !== text) {
      posted += 1;
      unsent = { name: name, text: text, key: pageId + '.' + posted.toString(36) };
    }
    return unsent.key;
  }

  var sending = false;

  function send() {
    if (sending) return;
    var name = nameEl.value.trim();
    var text = textEl.value;
    saveName(name);
    sending = true;
    button.disabled = true;
    socket.emit('post', { name: name, text: text, key: keyOf(name, text) }, function (err, ack) {
      sending = false;
      button.disabled = false;
      if (err) {
        errorEl.textContent = 'The server did not answer, please try again.';
        return;
      }
      if (ack && ack.error) {
        errorEl.textContent = String(ack.error);
        return;
      }
      unsent = null;
      if (ack && ack.id !== undefined) {
        myLastId = String(ack.id);
        scrollToNewest();
      }
      errorEl.textContent = '';
      textEl.value = '';
      textEl.focus();
    });
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    send();
  });

  // Enter posts, Shift+Enter starts a new line (keyCode: browsers without KeyboardEvent.key).
  textEl.addEventListener('keydown', function (ev) {
    var enter = ev.key === 'Enter' || (ev.key === undefined && ev.keyCode === 13);
    if (enter && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });

  if (!nameEl.value) nameEl.focus();
  else textEl.focus();
})();
