"""An old browser in a test: the served page's scripts in an ES5-only engine, over long-polling.

Duktape (dukpy below 0.6; dukpy 0.6 embeds QuickJS, which runs ES2015+) is the engine;
tests/e2e/es5/oldbrowser.js gives it what IE9 gives a page (XMLHttpRequest, timers, a DOM, storage)
and takes away what IE lacks. Python is the browser's event loop: `pump()` runs the due timers
and hands each finished XMLHttpRequest back to the page, and the requests themselves are
performed by Python threads against the live board, one thread per request (a long-poll GET
waits on its own). Every JavaScript call happens on the test's thread.
"""

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

ENV_JS = Path(__file__).resolve().parent / "es5" / "oldbrowser.js"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
REQUEST_TIMEOUT_S = 60
# Sent with every request, as a browser does (the hub gives recovery offsets to browsers, not to Python's urllib).
USER_AGENT = "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)"


def duktape():
    """dukpy's interpreter, once it is clear it runs ES5 and refuses ES2015 syntax."""
    import dukpy

    interpreter = dukpy.JSInterpreter()
    try:
        interpreter.evaljs("var f = (a) => a + 1; f(1)")
    except dukpy.JSRuntimeError as e:
        assert "SyntaxError" in str(e), e
    else:
        raise AssertionError("this JavaScript engine runs arrow functions: it is not ES5-only (dukpy >= 0.6?)")
    return interpreter


class Page(HTMLParser):
    """The body of an HTML page as a tree of {tag, attrs, children} and strings, and its scripts."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.body = None
        self.scripts: list[str] = []
        self._stack: list[dict] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = {k: ("" if v is None else v) for k, v in attrs}
        if tag == "script" and "src" in attrs:
            self.scripts.append(attrs["src"])
        node = {"tag": tag, "attrs": attrs, "children": []}
        if tag == "body":
            self.body = node
        elif self._stack:
            self._stack[-1]["children"].append(node)
        if tag not in VOID:
            self._stack.append(node)

    def handle_endtag(self, tag):
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i]["tag"] == tag:
                del self._stack[i:]
                return

    def handle_data(self, data):
        if self._stack and data.strip():
            self._stack[-1]["children"].append(data.strip())


def fetch(url: str) -> str:
    """GET as the old browser: its page, scripts and style."""
    with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": USER_AGENT}), timeout=10) as response:
        assert response.status == 200, (url, response.status)
        return response.read().decode("utf-8")


class OldBrowser:
    """One old browser with the board's page open (IE9 by default: no typed arrays, no btoa)."""

    def __init__(self, url: str, name: str, loop: "Loop", ie9: bool = True):
        self.url = url
        self.name = name
        self.loop = loop
        self.js = duktape()
        self.js.export_function("xhr", self._xhr)
        self.js.evaljs(ENV_JS.read_text())
        still_there = self.js.evaljs("__env.strip(dukpy.ie9)", ie9=ie9)
        assert not still_there, f"could not take {still_there} away from the engine"
        self.requests: list[tuple[str, str]] = []  # (method, url) of every XHR, in order
        self.offline = False  # a dropped network: requests fail, answers in flight are lost
        loop.browsers.append(self)

    def open_page(self) -> list[str]:
        """Loads the page as a browser does: its HTML, then each of its scripts in order."""
        page = Page(fetch(self.url))
        assert page.body is not None, "the page has no body"
        self.js.evaljs("__env.setLocation(dukpy.href); __env.build(dukpy.body)", href=self.url, body=page.body)
        sources = [urljoin(self.url, src) for src in page.scripts]
        for src in sources:
            self.js.evaljs(fetch(src))
        return sources

    def eval(self, code: str, **values):
        return self.js.evaljs(code, **values)

    def screen(self) -> dict:
        return self.js.evaljs("__env.screen()")

    def errors(self) -> list[str]:
        return self.js.evaljs("__env.errors")

    # -- the event loop's side

    def _xhr(self, xhr_id, method, url, headers, body):
        url = urljoin(self.url, url)
        self.requests.append((method, url))
        threading.Thread(target=self._perform, args=(xhr_id, method, url, headers, body), daemon=True).start()

    def _perform(self, xhr_id, method, url, headers, body):
        if self.offline:
            self.loop.done.put((self, xhr_id, 0, ""))
            return
        data = None if body is None else body.encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method, headers={"User-Agent": USER_AGENT, **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                status, text = response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode("utf-8", "replace")
        except OSError:
            status, text = 0, ""
        if self.offline:
            status, text = 0, ""  # what the server answered never reached the browser
        self.loop.done.put((self, xhr_id, status, text))


class Loop:
    """The event loop of the old browsers: timers and finished requests, dispatched on this thread."""

    def __init__(self):
        self.browsers: list[OldBrowser] = []
        self.done: queue.Queue = queue.Queue()

    def _turn(self, wait_s: float) -> None:
        next_ms = [b.js.evaljs("__env.runTimers()") for b in self.browsers]
        due = [ms for ms in next_ms if ms >= 0]
        wait = min([wait_s] + [ms / 1000 for ms in due])
        try:
            item = self.done.get(timeout=max(wait, 0.001))
        except queue.Empty:
            return
        while True:
            browser, xhr_id, status, text = item
            browser.js.evaljs("__env.xhrDone(dukpy.id, dukpy.status, dukpy.text)", id=xhr_id, status=status, text=text)
            try:
                item = self.done.get_nowait()
            except queue.Empty:
                return

    def run_until(self, predicate, what: str, timeout: float = 10.0):
        """Runs the loop until predicate() is truthy (its value is returned); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                screens = {b.name: b.screen() for b in self.browsers}
                errors = {b.name: b.errors() for b in self.browsers}
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                     f"screens: {json.dumps(screens, indent=1)}\nerrors: {errors}")
            self._turn(0.05)
