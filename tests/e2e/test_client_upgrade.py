"""Our browser client climbs back from long-polling to WebSocket (the Engine.IO upgrade), in Chromium.

After a fall back to polling the client probes WebSocket in the background on the same session
(`2probe`/`3probe`/`5`), every `probeInterval` ms, doubling on each failure up to `probeIntervalMax`;
a successful probe moves the session to WebSocket with no reconnection and no message lost or
reordered. First against the feature app (polling forced by the remembered "WebSocket failed"),
then the board behind a real nginx that strips `Upgrade` and is then reloaded to let it through.
"""

import os
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import (  # noqa: E402,F401
    Board,
    FeatureApp,
    Nginx,
    browser,
    expect,
    expect_post,
    io_options_script,
    nginx_reload,
    pages,
    post,
    screenshot,
    wait_until,
    websocket_handshake_status,
)
from test_socketio_js import PRELUDE, scenario  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

# The remembered WebSocket failure of the page's origin: the client starts on polling.
REMEMBER_FAILURE = """
sessionStorage.setItem("io:websocket-failed:" + location.origin + "/socket.io/", "1");
"""

# Probes (WebSockets opened with a sid) fail while window.blockProbes is true, and are counted.
PROBE_SPY = """
(() => {
  const Real = window.WebSocket;
  window.blockProbes = false;
  window.probes = [];
  window.WebSocket = function (url, protocols) {
    if (String(url).includes("sid=")) {
      window.probes.push({ at: performance.now(), blocked: window.blockProbes });
      if (window.blockProbes) url = "ws://127.0.0.1:9/blocked";   // nothing listens there
    }
    return new Real(url, protocols);
  };
  window.WebSocket.prototype = Real.prototype;
  for (const k of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) window.WebSocket[k] = Real[k];
})();
"""


@pytest.fixture(scope="module")
def app():
    with FeatureApp(name="client-upgrade") as running:
        yield running


def open_feature_page(pages, app, label, init=""):
    context = pages.browser.new_context()
    pages.contexts.append(context)
    if init:
        context.add_init_script(init)
    page = context.new_page()
    page.on("console", lambda msg: pages._log(label, f"{msg.type}: {msg.text}"))
    page.goto(app.url)
    page.wait_for_function("typeof window.io === 'function'")
    page.add_script_tag(content=PRELUDE)
    return page


def test_upgrade_moves_the_session_to_websocket_with_every_message_once(pages, app):
    page = open_feature_page(pages, app, "upgrade", REMEMBER_FAILURE)
    seen = scenario(page, """
        const key = "io:websocket-failed:" + location.origin + "/socket.io/";
        const s = open("/", { forceNew: true, probeInterval: 300, probeIntervalMax: 600, randomizationFactor: 0 });
        const reasons = [];
        s.on("disconnect", (r) => reasons.push(r));
        const ticks = [];
        s.on("tick", (n) => ticks.push(n));
        const upgraded = T.waitFor(s.io, "transport", "the upgrade", (name) => name === "websocket");
        const started = performance.now();
        await T.connected(s, "/");
        seen.before = await T.ask(s, "whoami");
        seen.idBefore = s.id;
        // Traffic both ways while the upgrade happens: records in, ticks out, acks both ways.
        let n = 0, asks = [];
        let done = false;
        upgraded.then(() => { seen.upgradeMs = performance.now() - started; });
        const pump = (async () => {
          while (!done) {
            s.emit("record", arg.tag, n++);
            asks.push(T.ask(s, "emit-twice", "tick"));
            await T.delay(5);
          }
        })();
        await upgraded;
        seen.transportEvent = s.io.transport;
        await T.delay(150);   // a little more traffic on the WebSocket
        done = true;
        await pump;
        seen.acks = (await Promise.all(asks)).filter((a) => a === "done").length;
        seen.sent = n;
        seen.records = await T.ask(s, "records", arg.tag);
        seen.ticks = ticks;
        seen.after = await T.ask(s, "whoami");
        seen.idAfter = s.id;
        seen.reasons = reasons.slice();
        seen.remembered = sessionStorage.getItem(key);
    """, {"tag": uuid.uuid4().hex[:12]})
    # Started on polling (remembered failure), moved to WebSocket on the same sessions.
    assert seen["before"]["transport"] == "polling"
    assert seen["after"]["transport"] == "websocket" == seen["transportEvent"]
    assert seen["after"]["engine"] == seen["before"]["engine"]
    assert seen["idAfter"] == seen["idBefore"] == seen["after"]["id"]
    assert seen["reasons"] == []
    # Every record once, in order; every emit-twice acked and its two ticks delivered in order.
    assert seen["sent"] > 10
    assert seen["records"] == list(range(seen["sent"]))
    assert seen["acks"] == seen["sent"]
    assert seen["ticks"] == [1, 2] * seen["sent"]
    # The first probe comes after probeInterval (no jitter here), the upgrade soon after it.
    assert 300 <= seen["upgradeMs"] < 3000, seen["upgradeMs"]
    assert seen["remembered"] is None


def test_failed_probes_back_off_then_the_upgrade_succeeds(pages, app):
    page = open_feature_page(pages, app, "probes", REMEMBER_FAILURE + PROBE_SPY)
    seen = scenario(page, """
        window.blockProbes = true;
        const s = open("/", { forceNew: true, probeInterval: 100, probeIntervalMax: 400, randomizationFactor: 0 });
        const reasons = [];
        s.on("disconnect", (r) => reasons.push(r));
        await T.connected(s, "/");
        const engine = s.io.engine.id;
        await T.delay(2200);
        seen.blocked = window.probes.map((p) => p.at);
        seen.whileBlocked = { transport: s.transport, connected: s.connected, engine: s.io.engine.id === engine };
        // WebSocket gets through again: the next probe upgrades the same session.
        window.blockProbes = false;
        const unblocked = performance.now();
        await T.waitFor(s.io, "transport", "the upgrade", (name) => name === "websocket", 2000);
        seen.upgradeMs = performance.now() - unblocked;
        seen.after = await T.ask(s, "whoami");
        seen.sameEngine = seen.after.engine === engine;
        seen.reasons = reasons.slice();
    """)
    times = seen["blocked"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # The first probe 100 ms after the connection, then 200, 400, 400, ... ms apart (plus the few ms
    # a refused connection takes): it backs off, and it is capped, one probe per probeIntervalMax.
    assert 4 <= len(times) <= 7, gaps
    assert 190 <= gaps[0] < 300, gaps
    assert all(390 <= g < 600 for g in gaps[1:]), gaps
    assert seen["whileBlocked"] == {"transport": "polling", "connected": True, "engine": True}
    assert seen["upgradeMs"] < 400 + 500, seen["upgradeMs"]
    assert seen["after"]["transport"] == "websocket" and seen["sameEngine"] is True
    assert seen["reasons"] == []


# --------------------------------------------------------------------------- the board behind nginx


@pytest.fixture
def board(request, tmp_path):
    """The board without its post limit: the test floods posts across the switch."""
    with Board(tmp_path / "board.db", name=request.node.name, args=["--post_limit=0"]) as running:
        yield running

FAST_PROBES = {"probeInterval": 250, "probeIntervalMax": 1000}   # jitter: 0.5 (the default)

# What the page's socket goes through, recorded from now on.
WATCH = """() => {
  const s = window.boardSocket;
  window.watch = { disconnects: [], connects: 0, transports: [] };
  s.on("disconnect", (r) => window.watch.disconnects.push(r));
  s.on("connect", () => window.watch.connects++);
  s.io.on("transport", (name) => window.watch.transports.push(name));
}"""

# Posts `count` messages one after the other (each waits for its ack), in the background.
FLOOD = """([who, tag, count]) => {
  window.flooded = (async () => {
    const acks = [];
    for (let i = 0; i < count; i++) {
      acks.push(await window.boardSocket.timeout(8000).emitWithAck("post", { name: who, text: tag + "-" + i }));
      await new Promise((r) => setTimeout(r, 40));
    }
    return acks;
  })();
}"""

SHOWN = """(tag) => Array.from(document.querySelectorAll("#posts li.post .text"))
  .map((el) => el.textContent).filter((t) => t.startsWith(tag))"""


IDS = "() => ({ id: boardSocket.id, engine: boardSocket.io.engine.id })"


def wait_for_every_post(shown_on, prefixes, count):
    """Posts `<prefix>-0` .. `<prefix>-<count-1>` shown once each, in order, on every page ({label: page})."""
    for prefix in prefixes:
        want = [f"{prefix}-{i}" for i in range(count)]
        for label, page in shown_on.items():
            wait_until(lambda: page.evaluate(SHOWN, prefix) == want, 5, f"{prefix} posts on the {label} page")


def probes_seen(nginx):
    return sum("transport=websocket&sid=" in line for line in nginx.access_lines())


@pytest.mark.nginx
@pytest.mark.timeout(90)
def test_board_behind_nginx_climbs_back_to_websocket_when_the_proxy_lets_it_through(board, pages, tmp_path, request):
    with Nginx(board.port, tmp_path / "nginx", name=request.node.name, upgrade=False) as nginx:
        direct = pages.open(board.url, "direct")
        proxied = pages.open(nginx.url, "proxied", init=io_options_script(FAST_PROBES))
        expect(proxied.locator("#transport")).to_have_text("polling", timeout=8000)
        proxied.evaluate(WATCH)
        before = proxied.evaluate(IDS)
        # Through the stripping proxy the probes fail (the board answers 400), polling carries on.
        wait_until(lambda: probes_seen(nginx) >= 2, 10, "two failed probes in nginx's access log")
        expect(proxied.locator("#transport")).to_have_text("polling")

        # Posts both ways all along the switch.
        tag = uuid.uuid4().hex[:8]
        direct.evaluate(FLOOD, ["Direct", f"d{tag}", 25])
        proxied.evaluate(FLOOD, ["Proxied", f"p{tag}", 25])
        nginx_reload(nginx, upgrade=True)
        wait_until(lambda: websocket_handshake_status(nginx.port) == 101, 10, "nginx to forward Upgrade after the reload")
        reloaded = time.monotonic()
        expect(proxied.locator("#transport")).to_have_text("websocket", timeout=8000)
        climbed = time.monotonic() - reloaded
        # Within the probe interval (its cap, plus the jitter), and a little for the probe itself.
        assert climbed < FAST_PROBES["probeIntervalMax"] * 1.25 / 1000 + 1.0, climbed

        for page in (direct, proxied):
            acks = page.evaluate("() => window.flooded")
            assert len(acks) == 25 and all(a.get("ok") for a in acks), acks
        wait_for_every_post({"proxied": proxied, "direct": direct}, (f"d{tag}", f"p{tag}"), 25)

        watch = proxied.evaluate("() => window.watch")
        after = proxied.evaluate(IDS)
        # The same session and socket, no reconnection: the upgrade, not a new connection.
        assert watch == {"disconnects": [], "connects": 0, "transports": ["websocket"]}, watch
        assert after == before
        expect(proxied.locator("#state")).to_have_text("connected")
        expect(direct.locator("#count")).to_have_text("2")
        # The remembered failure is forgotten: a reload of the page goes straight to WebSocket.
        assert proxied.evaluate("() => Object.keys(sessionStorage).filter((k) => k.startsWith('io:'))") == []
        screenshot(proxied, "upgrade-after-nginx-reload")
