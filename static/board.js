/* Board: the page. Uses window.io from /socket.io/socket.io.js. All text goes in with textContent. */
(function () {
  'use strict';

  const NAME_KEY = 'board.name';
  const MAX_LINES = 200; // news and private panes keep the newest lines
  const MAX_POSTS = 1000;
  const ACK_TIMEOUT = 10000;

  const $ = function (id) { return document.getElementById(id); };
  const stateEl = $('state');
  const transportEl = $('transport');
  const countEl = $('count');
  const newsEl = $('news');
  const privateEl = $('private');
  const postsEl = $('posts');
  const form = $('post-form');
  const nameEl = $('name');
  const textEl = $('text');
  const errorEl = $('post-error');
  const button = form.querySelector('button[type=submit]');

  // The newest post shown: after a drop whose state the server could not recover,
  // the server sends the posts after it (not the whole history again).
  let lastId = null;
  // shared: one connection for all the board's tabs of this browser (a SharedWorker), where there is one.
  const socket = io({ shared: true, auth: function (cb) { cb(lastId === null ? {} : { after: lastId }); } });
  window.boardSocket = socket;

  // ---- connection state ----

  function setState(state) {
    stateEl.textContent = state;
    document.body.setAttribute('data-state', state);
  }

  function showTransport() {
    transportEl.textContent = socket.connected && socket.transport ? socket.transport : '';
  }

  let everConnected = false;

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
    const li = document.createElement('li');
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

  const timeFormat = { hour: '2-digit', minute: '2-digit' };
  const dateFormat = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };

  function renderPost(post) {
    const li = document.createElement('li');
    li.className = 'post';
    li.setAttribute('data-id', String(post.id));

    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = String(post.name);

    const time = document.createElement('time');
    const when = new Date(Number(post.ts));
    if (!isNaN(when.getTime())) {
      time.setAttribute('datetime', when.toISOString());
      time.title = when.toLocaleString();
      const today = new Date().toDateString() === when.toDateString();
      time.textContent = when.toLocaleString([], today ? timeFormat : dateFormat);
    }

    const text = document.createElement('span');
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

  const shown = new Set(); // ids of the posts on the page: each is shown once

  // Puts a post in id order (nearly always at the end); false if it is already shown.
  function addPost(post) {
    if (!isValidPost(post)) return false;
    const key = String(post.id);
    if (shown.has(key)) return false;
    shown.add(key);
    const id = Number(post.id);
    let before = null;
    for (let li = postsEl.lastElementChild; li && Number(li.getAttribute('data-id')) > id; li = li.previousElementSibling) {
      before = li;
    }
    postsEl.insertBefore(renderPost(post), before);
    if (lastId === null || id > lastId) lastId = id;
    while (postsEl.children.length > MAX_POSTS) {
      shown.delete(postsEl.firstElementChild.getAttribute('data-id'));
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
    socket.timeout(ACK_TIMEOUT).emit('sync', { after: lastId }, function (err, data) {
      if (err || !data) return;
      addPosts(data.posts);
      setCount(data.count);
    });
  });

  let myLastId = null;

  socket.on('message', function (post) {
    const follow = nearBottom() || (isValidPost(post) && String(post.id) === myLastId);
    if (addPost(post) && follow) scrollToNewest();
  });

  // ---- the form ----

  try {
    const saved = window.localStorage.getItem(NAME_KEY);
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

  let sending = false;

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (sending) return;
    const name = nameEl.value.trim();
    const text = textEl.value;
    saveName(name);
    sending = true;
    button.disabled = true;
    socket.timeout(ACK_TIMEOUT).emit('post', { name: name, text: text }, function (err, ack) {
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
      if (ack && ack.id !== undefined) {
        myLastId = String(ack.id);
        scrollToNewest();
      }
      errorEl.textContent = '';
      textEl.value = '';
      textEl.focus();
    });
  });

  // Enter posts, Shift+Enter starts a new line.
  textEl.addEventListener('keydown', function (ev) {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      if (form.requestSubmit) form.requestSubmit();
      else form.dispatchEvent(new Event('submit', { cancelable: true }));
    }
  });

  if (!nameEl.value) nameEl.focus();
  else textEl.focus();
})();
