"""Old browsers: the page's client and script, as the board serves them, are ECMAScript 5 and run in one.

Two checks. A strict parse of both files with acorn (`ecmaVersion: 5`, from npm, run by Node),
because Duktape accepts a few ES2015 bits (`const`, shorthand methods). And the board's story in
Duktape, an ES5-only engine, with what IE9 has around it (tests/e2e/oldbrowser.py): no WebSocket, no
Promise, Map, Set, URL, typed arrays or btoa; two such browsers on the live board over
long-polling, each with the served page's DOM, driven as a person would (typing, submitting,
pressing Enter), checked by what the page shows.
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import NODE_DIR, Board, FeatureApp, require  # noqa: E402
from oldbrowser import ENV_JS, Loop, OldBrowser, Page, duktape, fetch  # noqa: E402

pytestmark = pytest.mark.timeout(60)

CLIENT = Path(__file__).resolve().parent.parent.parent / "static" / "socket.io.js"
PING_MS = 400  # the story then runs through several heartbeats, each answered over long-polling


@pytest.fixture
def board(request, tmp_path):
    with Board(tmp_path / "board.db", name=request.node.name, ping_interval=PING_MS, ping_timeout=2000) as running:
        yield running


def served_scripts(board):
    """The page's scripts, by the URLs the page names (the client's is versioned)."""
    html = fetch(board.url)
    # IE shows intranet sites in its IE7 mode (no JSON, no addEventListener) unless the page asks otherwise.
    assert '<meta http-equiv="X-UA-Compatible" content="IE=edge">' in html
    page = Page(html)
    urls = [urllib.request.urljoin(board.url, src) for src in page.scripts]
    assert [re.sub(r"\?.*", "", u.rsplit("/", 1)[-1]) for u in urls] == ["socket.io.js", "board.js"]
    return {u: fetch(u) for u in urls}


def test_the_engine_is_es5_only():
    import dukpy

    js = duktape()  # fails if it runs an arrow function
    for modern in ("class A {}", "let a = 1", "for (var x of [1]) {}", "var s = `t`", "function f(...a) {}",
                   "var {a} = {}", "function* g() {}"):
        with pytest.raises(dukpy.JSRuntimeError, match="SyntaxError"):
            js.evaljs(modern)


def test_both_scripts_parse_as_es5(board):
    """acorn, ecmaVersion 5: the strict check (Duktape lets `const` through)."""
    require("node")
    acorn = NODE_DIR / "node_modules" / "acorn"
    if not acorn.is_dir():
        pytest.fail("the npm package acorn is missing: cd tests/node && npm ci (or run `make test`)", pytrace=False)
    check = """
        const acorn = require('acorn');
        const files = JSON.parse(require('fs').readFileSync(0, 'utf8'));
        const out = {};
        for (const [url, text] of Object.entries(files)) {
          try { acorn.parse(text, { ecmaVersion: 5 }); out[url] = 'ok'; }
          catch (e) { out[url] = e.message; }
        }
        // The check itself refuses ES2015.
        try { acorn.parse('const a = () => 1;', { ecmaVersion: 5 }); out.selfcheck = 'accepted ES2015'; }
        catch (e) { out.selfcheck = 'ok'; }
        console.log(JSON.stringify(out));
    """
    scripts = served_scripts(board)
    result = subprocess.run(["node", "-e", check], cwd=NODE_DIR, input=json.dumps(scripts), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict == {**{u: "ok" for u in scripts}, "selfcheck": "ok"}


def metric(board, name, label):
    text = fetch(board.url + "metrics")
    found = re.search(r"^" + re.escape(name) + r"\{" + re.escape(label) + r"\} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_the_board_story_in_an_es5_engine_over_long_polling(board):
    loop = Loop()
    ann = OldBrowser(board.url, "ann", loop)
    scripts = ann.open_page()
    assert ann.eval("typeof io + ' ' + typeof boardSocket + ' ' + typeof WebSocket + ' ' + typeof Promise") == \
        "function object undefined undefined"

    # Connect: the welcome and the news, over long-polling (there is no WebSocket to try).
    screen = loop.run_until(lambda: (s := ann.screen())["state"] == "connected" and s["private"] and s, "ann connected")
    assert screen["transport"] == "polling" and screen["bodyState"] == "connected"
    screen = loop.run_until(lambda: (s := ann.screen())["news"] and s, "ann's news")
    assert screen["news"] == ["One more person is online"] and screen["count"] == "1"
    assert screen["private"] == ["Welcome, you are person number 1 here"]
    assert screen["posts"] == []

    # A post with its ack: typed, submitted; the box empties and the broadcast shows the post.
    ann.eval("__env.type('name', 'Ann'); __env.type('text', 'Hello from an old browser')")
    assert ann.eval("__env.submit()") is True  # the page kept the form from leaving
    assert ann.screen()["button"] == "disabled"  # until the ack
    screen = loop.run_until(lambda: (s := ann.screen())["posts"] and s["text"] == "" and s, "ann's post and its ack")
    assert [(p["name"], p["text"]) for p in screen["posts"]] == [("Ann", "Hello from an old browser")]
    assert screen["posts"][0]["time"], "the post shows its time"
    assert screen["error"] == "" and screen["button"] == "enabled"
    assert ann.eval("localStorage.getItem('board.name')") == "Ann"

    # A second browser sees the first one's post (the history), and both see each other.
    bob = OldBrowser(board.url, "bob", loop)
    assert bob.open_page() == scripts
    screen = loop.run_until(lambda: (s := bob.screen())["state"] == "connected" and s["posts"] and s["news"] and s,
                            "bob connected with the history")
    assert [(p["name"], p["text"]) for p in screen["posts"]] == [("Ann", "Hello from an old browser")]
    assert screen["private"] == ["Welcome, you are person number 2 here"] and screen["count"] == "2"
    loop.run_until(lambda: ann.screen()["count"] == "2", "ann sees two online")
    assert ann.screen()["news"] == ["One more person is online"] * 2

    # Bob posts with the form; Ann posts with Enter (an old browser's keyCode): each sees the other's post.
    bob.eval("__env.type('name', 'Bob'); __env.type('text', 'Hi Ann, from a kiosk')")
    bob.eval("__env.submit()")
    loop.run_until(lambda: len(ann.screen()["posts"]) == 2, "bob's post at ann's")
    ann.eval("__env.type('text', 'Hi Bob')")
    assert ann.eval("__env.pressEnter('text')") is True
    for person in (ann, bob):
        screen = loop.run_until(lambda p=person: len((s := p.screen())["posts"]) == 3 and s, f"3 posts at {person.name}")
        assert [(p["name"], p["text"]) for p in screen["posts"]] == [
            ("Ann", "Hello from an old browser"), ("Bob", "Hi Ann, from a kiosk"), ("Ann", "Hi Bob")]
    loop.run_until(lambda: ann.screen()["text"] == "" and bob.screen()["text"] == "", "both acks")

    # The heartbeat: pings answered over long-polling keep both sessions up.
    ann.eval("window.pings = 0; boardSocket.io.on('ping', function () { pings++; }); null")
    loop.run_until(lambda: ann.eval("pings") >= 3, "three pings answered", timeout=PING_MS * 10 / 1000)
    assert ann.eval("boardSocket.connected && boardSocket.id") == ann.eval("boardSocket.id")

    # emitWithAck needs Promise: a clear error, and the connection carries on.
    error = ann.eval("try { boardSocket.emitWithAck('sync', {}); 'no error' } catch (e) { e.message }")
    assert error.startswith("emitWithAck needs Promise")

    # A disconnect: Bob leaves, Ann's page says so.
    bob.eval("boardSocket.disconnect(); null")
    assert bob.screen()["state"] == "disconnected"
    screen = loop.run_until(lambda: (s := ann.screen())["count"] == "1" and s, "ann sees bob go")
    assert screen["news"][-1] == "Someone went home" and screen["state"] == "connected"

    # All of it over long-polling: no WebSocket asked for, no error in either page.
    for person in (ann, bob):
        assert person.errors() == []
        assert {m for m, _ in person.requests} == {"GET", "POST"}
        assert all("transport=polling" in u for _, u in person.requests)
    assert metric(board, "board_handshakes_total", 'transport="polling"') == 2
    assert metric(board, "board_handshakes_total", 'transport="websocket"') == 0
    ann.eval("boardSocket.disconnect(); null")


@pytest.fixture(scope="module")
def features():
    with FeatureApp(name="es5-features") as running:
        yield running


def test_binary_over_long_polling_in_old_browsers(features):
    """IE10 (typed arrays, base64) sends and gets bytes over polling; IE9 gets them as base64, as with the official client."""
    loop = Loop()
    ie10 = OldBrowser(features.url, "ie10", loop, ie9=False)
    ie9 = OldBrowser(features.url, "ie9", loop)
    for browser in (ie10, ie9):
        browser.open_page()
        browser.eval("window.s = io({ forceNew: true }); window.got = {}; null")
    loop.run_until(lambda: ie10.eval("s.connected") and ie9.eval("s.connected"), "both connected")

    # IE10: bytes both ways, base64 in the polling payloads, ArrayBuffers in the page.
    ie10.eval("""s.emit('reverse', { b: new Uint8Array([1, 2, 250]), n: 1 }, function (r) {
        got.reversed = { arrayBuffer: r.b instanceof ArrayBuffer, bytes: Array.prototype.slice.call(new Uint8Array(r.b)), n: r.n };
    }); null""")
    assert loop.run_until(lambda: ie10.eval("got.reversed"), "the reversed bytes") == {
        "arrayBuffer": True, "bytes": [250, 2, 1], "n": 1}

    # IE9 has no typed arrays: bytes sent to it arrive as {base64, data}, and its connection goes on.
    ie9.eval("s.on('room-msg', function (d) { got.msg = d; }); s.emit('join', 'old', function (r) { got.rooms = r; }); null")
    assert loop.run_until(lambda: ie9.eval("got.rooms"), "ie9 in the room") == ["old"]
    ie10.eval("s.emit('to-room', 'old', { b: new Uint8Array([1, 2, 3]) }, 'fence'); null")
    assert loop.run_until(lambda: ie9.eval("got.msg"), "the bytes at ie9") == {"b": {"base64": True, "data": "AQID"}}
    ie9.eval("s.emit('echo', 'still here', function (a) { got.echo = a; }); null")
    assert loop.run_until(lambda: ie9.eval("got.echo"), "ie9's echo") == "still here"

    for browser in (ie10, ie9):
        assert browser.errors() == []
        assert all("transport=polling" in u for _, u in browser.requests)
        browser.eval("s.disconnect(); null")


def test_an_old_browser_comes_back_after_a_restart(board):
    """Reconnection with backoff over long-polling: the page says so, then shows what it missed, once."""
    loop = Loop()
    ann = OldBrowser(board.url, "ann", loop)
    ann.open_page()
    loop.run_until(lambda: ann.screen()["state"] == "connected", "ann connected")
    ann.eval("__env.type('name', 'Ann'); __env.type('text', 'before the restart'); __env.submit()")
    loop.run_until(lambda: ann.screen()["posts"], "ann's post")

    board.stop()
    loop.run_until(lambda: ann.screen()["state"] == "reconnecting", "ann's page says it is reconnecting")
    board.start()
    screen = loop.run_until(lambda: (s := ann.screen())["state"] == "connected" and s, "ann back", timeout=15)
    assert screen["transport"] == "polling"

    bob = OldBrowser(board.url, "bob", loop)
    bob.open_page()
    loop.run_until(lambda: bob.screen()["state"] == "connected", "bob connected")
    bob.eval("__env.type('name', 'Bob'); __env.type('text', 'after the restart'); __env.submit()")
    screen = loop.run_until(lambda: len((s := ann.screen())["posts"]) == 2 and s, "bob's post at ann's")
    assert [p["text"] for p in screen["posts"]] == ["before the restart", "after the restart"]
    assert ann.errors() == [] and bob.errors() == []
    for person in (ann, bob):
        person.eval("boardSocket.disconnect(); null")


def test_uris_are_read_as_the_official_client_reads_them():
    """parseUri without URL (IE has none): origins, namespaces and queries, in the ES5 engine."""
    js = duktape()
    js.evaljs(ENV_JS.read_text())
    js.evaljs("__env.strip(true); __env.setLocation('https://board.example:8443/some/page?x=1')")
    js.evaljs(CLIENT.read_text())
    seen = js.evaljs("""
        function read(uri, opts) {
          var s = io(uri, { autoConnect: false, forceNew: true, path: opts });
          return [s.io.uri, s.nsp, s.io.opts.path, s.io.opts.query];
        }
        [read(), read('/admin'), read('//other.example/chat?room=a+b&x=%C3%A9'), read('ws://Other.Example:80/'),
         read('wss://other.example:443/nsp'), read('http://[::1]:3000/ns?k'), read('localhost:3000/admin'),
         read('/', 'custom')]
    """)
    assert seen == [
        ["https://board.example:8443", "/", "/socket.io/", {}],
        ["https://board.example:8443", "/admin", "/socket.io/", {}],
        ["https://other.example", "/chat", "/socket.io/", {"room": "a b", "x": "é"}],
        ["http://other.example", "/", "/socket.io/", {}],
        ["https://other.example", "/nsp", "/socket.io/", {}],
        ["http://[::1]:3000", "/ns", "/socket.io/", {"k": ""}],
        ["https://localhost:3000", "/admin", "/socket.io/", {}],
        ["https://board.example:8443", "/", "/custom/", {}],
    ]


def test_the_style_needs_nothing_old_browsers_lack(board):
    """The served style: no custom properties, no grid, no gap (IE has none of them); @supports only undoes a fallback."""
    css = fetch(board.url + "static/board.css")
    rules = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    assert "var(" not in rules and "--" not in rules
    assert not re.search(r"\bgrid\b", rules)
    assert not re.search(r"(^|[;{\s])(row-|column-)?gap\s*:", rules)
    for block in re.findall(r"@supports[^{]*\{((?:[^{}]*\{[^{}]*\})*)\s*\}", rules):
        assert re.fullmatch(r"(\s*\.[\w-]+\s*\{\s*max-height:\s*none;\s*\})+\s*", block), block


def test_an_old_browser_recovers_after_a_dropped_network(board):
    """Connection state recovery over long-polling: back within the window, the page gets what it missed."""
    loop = Loop()
    ann = OldBrowser(board.url, "ann", loop)
    bob = OldBrowser(board.url, "bob", loop)
    for person in (ann, bob):
        person.open_page()
        loop.run_until(lambda p=person: p.screen()["state"] == "connected", f"{person.name} connected")
    loop.run_until(lambda: ann.screen()["count"] == "2" and bob.screen()["count"] == "2", "two online")
    first_id = ann.eval("boardSocket.id")

    ann.offline = True
    loop.run_until(lambda: ann.screen()["state"] == "reconnecting", "ann's page says it is reconnecting")
    loop.run_until(lambda: bob.screen()["count"] == "1", "the server lets ann's session go (ping timeout)")
    bob.eval("__env.type('name', 'Bob'); __env.type('text', 'while ann was away'); __env.submit()")
    loop.run_until(lambda: bob.screen()["posts"], "bob's post")

    ann.offline = False
    screen = loop.run_until(lambda: (s := ann.screen())["state"] == "connected" and s["posts"] and s, "ann back", timeout=15)
    assert ann.eval("boardSocket.recovered") is True and ann.eval("boardSocket.id") == first_id
    assert [(p["name"], p["text"]) for p in screen["posts"]] == [("Bob", "while ann was away")]
    assert ann.errors() == [] and bob.errors() == []
    for person in (ann, bob):
        person.eval("boardSocket.disconnect(); null")
