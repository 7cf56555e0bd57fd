"""One connection for all the tabs of an origin: io({shared: true}) through a SharedWorker, in Chromium.

Tabs are pages of ONE browser context (what shares a SharedWorker). Against the feature app: the
server sees one Engine.IO session and one socket per namespace for the browser; each tab's emits
and acks stay its own; server events reach every tab; a tab that closes affects no other. Against
the board behind nginx that strips Upgrade (polling): 8 tabs, all live and posting, one pending
polling GET for the browser instead of 8; the online count counts browsers; recovery still works.
"""

import asyncio
import os
import sys
import threading
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import (  # noqa: E402,F401
    Board,
    FeatureApp,
    Nginx,
    browser,
    expect,
    expect_acked,
    expect_post,
    pages,
    pending_polls,
    post,
    screenshot,
    submit,
)
from test_socketio_js import PRELUDE  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def app():
    with FeatureApp(name="shared-worker") as running:
        yield running


def open_tab(context, app, pages, label):
    page = context.new_page()
    page.on("console", lambda msg: pages._log(label, f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda error: pages._log(label, f"page error: {error}"))
    page.goto(app.url)
    page.wait_for_function("typeof window.io === 'function'")
    page.add_script_tag(content=PRELUDE)
    return page


def run(page, body, arg=None):
    """Runs `body` (JS, an async function body of `arg`, with `s` the tab's socket) in the tab."""
    seen = page.evaluate("async (arg) => { const seen = {}; const s = window.s; try {\n" + body +
                         "\n} catch (e) { seen.error = String(e && e.stack || e); } return seen; }", arg)
    assert "error" not in seen, f"the tab failed: {seen['error']}\nit saw: {seen}"
    return seen


CONNECT = """
    window.s = io({ shared: true, reconnectionDelay: 100, reconnectionDelayMax: 300, auth: { tag: arg } });
    window.got = { ticks: [], disconnects: [], connects: 0, questions: 0 };
    window.s.on("tick", (n) => got.ticks.push(n));
    window.s.on("disconnect", (r) => got.disconnects.push(r));
    window.s.on("connect", () => got.connects++);
    await T.connected(window.s, "shared /");
    seen.who = await T.ask(window.s, "whoami");
    seen.id = window.s.id;
    seen.engine = window.s.io.engine.constructor.name;
"""


def test_tabs_share_one_session_and_keep_their_own_acks(pages, app):
    context = pages.new_context()
    first, second = open_tab(context, app, pages, "first"), open_tab(context, app, pages, "second")
    a = run(first, CONNECT, "shared-a")
    b = run(second, CONNECT, "shared-b")
    # One Engine.IO session and one socket for the browser, reached through the worker.
    assert a["engine"] == b["engine"] == "PortEngine"
    assert a["who"]["engine"] == b["who"]["engine"]
    assert a["id"] == b["id"] == a["who"]["id"] == b["who"]["id"]
    assert a["who"]["namespaces"] == ["/"]

    # Each tab's acks come back to it alone, even interleaved.
    emit_many = """
        const replies = await Promise.all(Array.from({ length: 30 }, (_, i) => T.ask(s, "echo", arg + i)));
        seen.ok = replies.every((r, i) => r === arg + i);
        seen.n = replies.length;
    """
    first.evaluate("(body) => { window.many = (async () => { const s = window.s; const replies = await Promise.all("
                   "Array.from({ length: 30 }, (_, i) => T.ask(s, 'echo', 'a' + i))); return replies.every((r, i) => r === 'a' + i); })(); }",
                   None)
    b_many = run(second, emit_many, "b")
    assert b_many == {"ok": True, "n": 30}
    assert first.evaluate("() => window.many") is True

    # An event from the server reaches every tab; binary through the worker both ways.
    run(first, 'seen.done = await T.ask(s, "emit-twice", "tick");')
    second.wait_for_function("window.got.ticks.length === 2")
    assert first.evaluate("() => window.got.ticks") == [1, 2] == second.evaluate("() => window.got.ticks")
    binary = run(second, """
        const reply = await T.ask(s, "reverse", { u8: new Uint8Array([1, 2, 3]), blob: new Blob([new Uint8Array([4, 5])]) });
        seen.reply = await T.plain(reply);
        seen.kind = T.kind(reply.u8);
    """)
    assert binary == {"reply": {"u8": {"bytes": [3, 2, 1]}, "blob": {"bytes": [5, 4]}}, "kind": "ArrayBuffer"}

    # The server asks with an ack: the first tab that answers answers for the browser, once.
    asked = """
        s.on("question", (p, ack) => { got.questions++; ack({ from: arg, answer: p.n * 2 }); });
    """
    run(first, asked, "first")
    run(second, asked, "second")
    call = run(second, 'seen.reply = await T.ask(s, "call-me", { n: 21 }, 3);')
    assert call["reply"]["reply"]["answer"] == 42
    first.wait_for_function("window.got.questions === 1")
    second.wait_for_function("window.got.questions === 1")

    # Another namespace from one tab only: the same session, a second socket.
    admin = run(second, """
        const admin = io("/admin", { shared: true });
        await T.connected(admin, "/admin");
        seen.who = await T.ask(admin, "whoami");
        seen.sameManager = admin.io === s.io;
    """)
    assert admin["who"]["engine"] == a["who"]["engine"] and admin["sameManager"] is True
    assert sorted(admin["who"]["namespaces"]) == ["/", "/admin"]

    # The tab that started the worker closes: the other one carries on, on the same session.
    first.close()
    after = run(second, """
        seen.who = await T.ask(s, "whoami");
        seen.echo = await T.ask(s, "echo", "still here");
        seen.got = got;
    """)
    assert after["who"]["engine"] == a["who"]["engine"] and after["who"]["id"] == a["id"]
    assert after["echo"] == "still here"
    assert after["got"]["disconnects"] == [] and after["got"]["connects"] == 1


def test_a_tab_leaving_a_namespace_keeps_the_socket_for_the_others(pages, app):
    context = pages.new_context()
    first, second = open_tab(context, app, pages, "first"), open_tab(context, app, pages, "second")
    a = run(first, CONNECT, "leave-a")
    run(second, CONNECT, "leave-b")
    run(first, "s.disconnect(); seen.ok = true;")
    after = run(second, 'seen.who = await T.ask(s, "whoami"); seen.history = await T.ask(s, "history", "leave-a");')
    # The server socket is still the same one: nobody left as far as the server can tell.
    assert after["who"]["id"] == a["id"]
    assert after["history"] == [["/", "connect"]]
    # The last tab leaves: now the server socket goes.
    run(second, "s.disconnect(); seen.ok = true;")
    third = open_tab(context, app, pages, "third")
    back = run(third, CONNECT + 'seen.history = await T.ask(window.s, "history", "leave-a");', "leave-c")
    assert back["history"] == [["/", "connect"], ["/", "client namespace disconnect"]], back
    assert back["id"] != a["id"]


# --------------------------------------------------------------------------- the board, 8 tabs


TABS = 8

WATCH = """() => {
  window.watch = { disconnects: [], connects: 0 };
  boardSocket.on("disconnect", (r) => window.watch.disconnects.push(r));
  boardSocket.on("connect", () => window.watch.connects++);
}"""


@pytest.mark.nginx
@pytest.mark.timeout(120)
def test_eight_board_tabs_share_one_polling_connection(pages, tmp_path, request):
    with Board(tmp_path / "board.db", name=request.node.name, ping_interval=2000, ping_timeout=2000) as board, \
            Nginx(board.port, tmp_path / "nginx", name=request.node.name, upgrade=False) as nginx:
        observer = pages.open(board.url, "observer")            # another browser
        context = pages.new_context()
        tabs = [pages.open(nginx.url, f"tab{i}", context=context) for i in range(TABS)]
        for tab in tabs:
            expect(tab.locator("#transport")).to_have_text("polling")
            assert tab.evaluate("() => boardSocket.io.shared") is True
            tab.evaluate(WATCH)
        # People, not tabs: the browser of 8 tabs is one person, the observer the other.
        for page in [observer] + tabs:
            expect(page.locator("#count")).to_have_text("2")

        tag = uuid.uuid4().hex[:8]
        for i, tab in enumerate(tabs):
            submit(tab, f"Tab{i}", f"{tag} from tab {i}")
        for tab in tabs:
            expect_acked(tab)
        for page in [observer] + tabs:
            for i in range(TABS):
                expect_post(page, f"Tab{i}", f"{tag} from tab {i}", timeout=5000)

        # One Engine.IO session for the browser, so one pending polling GET at a time.
        sessions, most_pending = pending_polls(nginx)
        assert (sessions, most_pending) == (1, 1), (sessions, most_pending)

        # The tab that started the worker closes: the others carry on, nobody left.
        tabs[0].close()
        post(tabs[-1], "Last", f"{tag} after the first tab closed")
        for page in [observer] + tabs[1:]:
            expect_post(page, "Last", f"{tag} after the first tab closed", timeout=5000)
        for tab in tabs[1:]:
            assert tab.evaluate("() => window.watch") == {"disconnects": [], "connects": 0}
            expect(tab.locator("#state")).to_have_text("connected")
        expect(observer.locator("#count")).to_have_text("2")
        assert pending_polls(nginx) == (1, 1)
        screenshot(tabs[-1], "shared-board-tab")

        # The last tab closes: now the person has gone.
        for tab in tabs[1:]:
            tab.close()
        expect(observer.locator("#count")).to_have_text("1", timeout=8000)
        expect(observer.locator("#news li").last).to_have_text("Someone went home")


# --------------------------------------------------------------------------- fall back, recovery


def test_without_shared_worker_each_tab_connects_itself(pages, app):
    # A browser without SharedWorker (Chrome for Android, Safari before 16): io({shared: true}) still works.
    context = pages.new_context(init="delete window.SharedWorker;")
    first, second = open_tab(context, app, pages, "first"), open_tab(context, app, pages, "second")
    a, b = run(first, CONNECT, "alone-a"), run(second, CONNECT, "alone-b")
    assert a["engine"] == b["engine"] == "Engine"
    assert a["who"]["engine"] != b["who"]["engine"] and a["id"] != b["id"]
    assert run(second, 'seen.echo = await T.ask(s, "echo", 1);') == {"echo": 1}


class ThreadedFaultProxy:
    """tests/e2e/faultproxy.py's proxy on a loop of its own thread (the browser tests are synchronous)."""

    def __init__(self, port):
        from faultproxy import FaultProxy

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = self._call(FaultProxy(port).start())

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.proxy.port}/"

    def reset(self):
        async def reset():
            return self.proxy.reset(1.0)

        return self._call(reset())

    def stop(self):
        self._call(self.proxy.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


RECOVERY_WATCH = """() => {
  window.watch = { disconnects: [], recovered: [] };
  boardSocket.on("disconnect", (r) => window.watch.disconnects.push(r));
  boardSocket.on("connect", () => window.watch.recovered.push(boardSocket.recovered));
}"""


@pytest.mark.parametrize("init", ["", "delete window.SharedWorker;"], ids=["shared", "per-tab"])
def test_the_shared_connection_recovers_after_a_network_cut(pages, tmp_path, request, init):
    with Board(tmp_path / "board.db", name=request.node.name) as board:
        proxy = ThreadedFaultProxy(board.port)
        try:
            observer = pages.open(board.url, "observer")
            context = pages.new_context(init=init)
            tabs = [pages.open(proxy.url, f"tab{i}", context=context) for i in range(2)]
            for tab in tabs:
                tab.evaluate(RECOVERY_WATCH)
            tag = uuid.uuid4().hex[:8]
            post(observer, "Observer", f"{tag} before")
            for tab in tabs:
                expect_post(tab, "Observer", f"{tag} before", timeout=5000)
            # The network drops the browser's one connection (an RST, no close): posts made meanwhile
            # reach every tab once, in order, through the worker's recovered socket.
            assert proxy.reset() >= 1
            for n in range(5):
                post(observer, "Observer", f"{tag} during {n}")
            want = [f"{tag} before"] + [f"{tag} during {n}" for n in range(5)]
            for tab in tabs:
                expect(tab.locator("#state")).to_have_text("connected", timeout=10000)
                expect_post(tab, "Observer", want[-1], timeout=10000)
                shown = tab.evaluate("(tag) => Array.from(document.querySelectorAll('#posts li.post .text'))"
                                     ".map((el) => el.textContent).filter((t) => t.startsWith(tag))", tag)
                assert shown == want
                watch = tab.evaluate("() => window.watch")
                assert len(watch["disconnects"]) == 1 and watch["recovered"] == [True], watch
        finally:
            proxy.stop()
