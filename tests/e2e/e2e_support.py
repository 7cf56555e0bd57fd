"""Shared pieces of the end-to-end tests: the real board process, nginx, Chromium, Node.

A plain module (not a conftest): the e2e test modules import the helpers and the
fixtures they use from here.  Every component is started by the test on a free
127.0.0.1 port and stopped by its PID afterwards.  A missing component fails
the test (never skips it) with a message naming what to install: see require().
"""

import os
import getpass
import glob
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from handlers import Hub, RedisAdapter

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout
ARTIFACTS = ROOT / "test-artifacts"
NODE_DIR = ROOT / "tests" / "node"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]

# How long we wait for things the user would wait for, in ms (playwright) or s.
CONNECT_MS = 10_000
START_S = 20.0
STOP_S = 5.0


# --------------------------------------------------------------------------- components


def _chromium():
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def _nginx():
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _node():
    return shutil.which("node") or shutil.which("nodejs")


def _playwright():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    return "playwright"


def _node_modules():
    found = NODE_DIR / "node_modules" / "socket.io-client" / "package.json"
    return str(found) if found.is_file() else None


# name -> (how to find it, what to do when it is missing)
COMPONENTS = {
    "chromium": (_chromium, "install Debian package chromium (sudo apt-get install chromium)"),
    "playwright": (_playwright, "install the Python package playwright (.venv/bin/pip install -e '.[test]')"),
    "nginx": (_nginx, "install Debian package nginx-light (sudo apt-get install nginx-light)"),
    "node": (_node, "install Debian packages nodejs and npm (sudo apt-get install nodejs npm)"),
    "node_modules": (_node_modules, "install the npm packages of the tests (cd tests/node && npm ci)"),
}


def require(*names):
    """Returns {name: path} for the components; FAILS the test if any is missing.

    The e2e tests never skip: a machine without the components must not look green.
    `make test` installs them (tests/install-system.sh, npm ci in tests/node).
    """
    found, missing = {}, []
    for name in names:
        locate, hint = COMPONENTS[name]
        where = locate()
        if where:
            found[name] = where
        else:
            missing.append(f"{name} is missing: {hint}")
    if missing:
        pytest.fail("; ".join(missing) + " (or run `make test`, which installs them)", pytrace=False)
    return found


# --------------------------------------------------------------------------- small helpers


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def artifact(name):
    """A path in test-artifacts/ (created when missing) for a screenshot or a log."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def safe_name(text):
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")


def screenshot(page, name):
    path = artifact(f"{name}.png")
    page.screenshot(path=str(path), full_page=True)
    return path


def _tail(path, lines=40):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until(predicate, timeout, what, interval=0.1):
    """Polls `predicate` until it returns a true value; fails the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}", pytrace=False)
        time.sleep(interval)


def http_status(url, timeout=1.0):
    """The HTTP status of GET url, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


def stop_process(proc, timeout=STOP_S):
    """Terminates a process we started (by its PID), then kills it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


# --------------------------------------------------------------------------- the board


class Board:
    """The real board: `python board.py --port=N --db=PATH` as a subprocess."""

    def __init__(self, db, port=None, name="board", ping_interval=None, ping_timeout=None, args=()):
        self.db = str(db)
        self.args = list(args)  # more options of board.py
        self.port = port or free_port()
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.log_path = artifact(f"{safe_name(name)}.board.log")
        self.proc = None
        self.cwd = ROOT  # where it runs (an installed board runs anywhere)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    def command(self):
        cmd = [sys.executable, "board.py", f"--port={self.port}", "--address=127.0.0.1", f"--db={self.db}"]
        if self.ping_interval is not None:
            cmd.append(f"--ping_interval={self.ping_interval}")
        if self.ping_timeout is not None:
            cmd.append(f"--ping_timeout={self.ping_timeout}")
        if not any(a.startswith("--drain_seconds") for a in self.args):
            cmd.append("--drain_seconds=0.2")  # stopping a test's board need not spread its clients over 10 s
        return cmd + self.args

    def start(self, timeout=START_S):
        with open(self.log_path, "ab") as log:
            log.write(f"--- {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while http_status(self.url) != 200:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"the board exited with {self.proc.returncode} before answering GET /; "
                    f"its log ({self.log_path}):\n{_tail(self.log_path)}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"the board did not answer GET {self.url} with 200 within {timeout} s; "
                    f"its log ({self.log_path}):\n{_tail(self.log_path)}",
                    pytrace=False,
                )
            time.sleep(0.1)
        return self

    def stop(self):
        stop_process(self.proc)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return Path(self.log_path).read_text(errors="replace")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture
def board(request, tmp_path):
    """A fresh board (own SQLite file) for one test."""
    with Board(tmp_path / "board.db", name=request.node.name) as running:
        yield running


# --------------------------------------------------------------------------- nginx


NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {prefix}/access.log;
    log_format timing '$msec $request_time $status "$request"';
    access_log {prefix}/timing.log timing;
    log_format upstreams '$upstream_addr "$request"';
    access_log {prefix}/upstreams.log upstreams;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream board {{
{servers}{keepalive}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://board;
            proxy_next_upstream error timeout http_503;
            proxy_http_version 1.1;
            proxy_buffering off;
            # The board only accepts its own page's origin: it must see the Host the browser used.
            proxy_set_header Host $http_host;
            proxy_read_timeout {read_timeout};
{upgrade}        }}
    }}
}}
"""

UPGRADE_HEADERS = """\
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
"""

KEEPALIVE_HEADERS = """\
            proxy_set_header Connection "";
"""


class Nginx:
    """nginx in front of the board, started with its own config/pid/logs/temp dirs.

    upgrade=False: nginx does not forward the Upgrade/Connection headers (like many
    proxies), so WebSocket handshakes through it cannot succeed. `upstream_port` may be
    a list of ports: plain round robin over them (no ip_hash, no stickiness).
    keepalive=True (without upgrade): nginx keeps its connections to the board open and
    sends every client's requests over them, as a proxy with an upstream pool does.
    """

    def __init__(self, upstream_port, prefix, name="nginx", upgrade=False, read_timeout="60s", keepalive=False):
        self.nginx = require("nginx")["nginx"]
        self.upstream_port = upstream_port
        self.prefix = Path(prefix)
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.name = safe_name(name)
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(
            NGINX_CONF.format(
                prefix=self.prefix,
                port=self.port,
                servers="".join(f"        server 127.0.0.1:{p};\n"
                                for p in (upstream_port if isinstance(upstream_port, list) else [upstream_port])),
                read_timeout=read_timeout,
                upgrade=UPGRADE_HEADERS if upgrade else (KEEPALIVE_HEADERS if keepalive else ""),
                keepalive="        keepalive 8;\n" if keepalive else "",
            )
        )
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"

    @property
    def access_log(self):
        return self.prefix / "access.log"

    def access_lines(self):
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def start(self, timeout=START_S):
        self.stderr_path = self.prefix / "stderr.log"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [self.nginx, "-c", str(self.conf), "-p", str(self.prefix), "-g", "daemon off;"],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while http_status(self.url) != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"nginx did not proxy GET {self.url} to the board within {timeout} s; "
                    f"{_tail(self.stderr_path)}\n{_tail(self.prefix / 'error.log')}",
                    pytrace=False,
                )
            time.sleep(0.1)
        return self

    def stop(self):
        stop_process(self.proc)
        for log in ("error.log", "access.log"):
            if (self.prefix / log).is_file():
                shutil.copyfile(self.prefix / log, artifact(f"{self.name}.nginx-{log}"))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------------------------- Chromium


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium (Debian's) per test module, driven by playwright."""
    found = require("playwright", "chromium")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=found["chromium"], args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()


class Pages:
    """Board pages, each in its own browser context (like separate browsers)."""

    def __init__(self, browser, name):
        self.browser = browser
        self.name = safe_name(name)
        self.contexts = []
        self.console = open(artifact(f"{self.name}.console.log"), "w", encoding="utf-8")

    def open(self, url, label, websocket=True, wait_connected=True, init="", context=None):
        """Opens the board; websocket=False plays an old browser without WebSocket.

        init: a script run before the page's own; context: open the page in this context (tabs of
        one browser, which share a SharedWorker) instead of a new one.
        """
        if context is None:
            context = self.new_context(websocket, init)
        page = context.new_page()
        page.set_default_timeout(CONNECT_MS)
        page.on("console", lambda msg: self._log(label, f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda error: self._log(label, f"page error: {error}"))
        page.on("requestfailed", lambda req: self._log(label, f"request failed: {req.url} {req.failure}"))
        page.goto(url)
        if wait_connected:
            expect(page.locator("#state")).to_have_text("connected", timeout=CONNECT_MS)
        return page

    def new_context(self, websocket=True, init=""):
        """A new browser context (like a separate browser), closed with the others."""
        context = self.browser.new_context(viewport={"width": 1000, "height": 760})
        self.contexts.append(context)
        if not websocket:
            # A browser that old has no SharedWorker either (the worker would have WebSocket).
            context.add_init_script("delete window.WebSocket; delete window.SharedWorker;")
        if init:
            context.add_init_script(init)
        return context

    def _log(self, label, line):
        if not self.console.closed:
            self.console.write(f"{time.strftime('%H:%M:%S')} [{label}] {line}\n")
            self.console.flush()

    def close(self):
        for context in self.contexts:
            try:
                context.close()
            except Exception:  # the browser may already be gone
                pass
        self.contexts.clear()
        self.console.close()


@pytest.fixture
def pages(browser, request):
    opened = Pages(browser, request.node.name)
    yield opened
    opened.close()


def expect(target, message=None):
    """playwright's expect (imported late, so a missing playwright fails via require())."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target, message)


def submit(page, name, text):
    """Types a post in the page's form and submits it (does not wait for the ack)."""
    page.fill("#name", name)
    page.fill("#text", text)
    page.click("#post-form button[type=submit]")


def expect_acked(page):
    """The board acknowledged the page's post: the text field is cleared, no error shown."""
    expect(page.locator("#text")).to_have_value("", timeout=CONNECT_MS)
    expect(page.locator("#post-error")).to_have_text("")


def post(page, name, text):
    """Posts through the page's form and waits for the ack (the text field is cleared)."""
    submit(page, name, text)
    expect(page.locator("#text")).to_have_value("", timeout=CONNECT_MS)
    expect(page.locator("#post-error")).to_have_text("")


def post_item(page, text):
    """The page's post <li> whose .text is exactly `text`."""
    return page.locator("#posts li.post").filter(
        has=page.locator("span.text", has_text=text)
    )


def expect_post(page, name, text, timeout):
    """Waits until the page lists exactly one post (name, text); returns its data-id."""
    item = post_item(page, text)
    expect(item).to_have_count(1, timeout=timeout)
    expect(item.locator("span.name")).to_have_text(name)
    expect(item.locator("span.text")).to_have_text(text)
    expect(item.locator("time")).to_have_count(1)
    return item.get_attribute("data-id")


# --------------------------------------------------------------------------- Node


def run_node(scenario, url, timeout=40):
    """Runs tests/node/client.js <scenario> <url> with the official socket.io-client; returns what it saw.

    A nonzero exit, a timeout or output that is not one JSON object fails the test (see run_node_script).
    """
    return run_node_script("client.js", [scenario, url], timeout=timeout)


# --------------------------------------------------------------------------- the feature app


class FeatureApp(Board):
    """tests/e2e/feature_app.py (Board's Hub with the whole Socket.IO feature set) as a subprocess."""

    def __init__(self, name="feature-app", port=None):
        super().__init__(db=":memory:", port=port, name=name)

    def command(self):
        return [sys.executable, str(ROOT / "tests" / "e2e" / "feature_app.py"), f"--port={self.port}", "--address=127.0.0.1"]


def run_node_script(script, args, timeout=40):
    """Runs tests/node/<script> <args...> with the official socket.io-client; returns what it saw.

    The script prints one JSON object as its last line and exits 0 when all went well.
    A nonzero exit, a timeout or output that is not one JSON object fails the test.
    """
    import json

    node = require("node", "node_modules")["node"]
    label = " ".join([script, *map(str, args)])
    try:
        done = subprocess.run(
            [node, str(NODE_DIR / script), *map(str, args)],
            cwd=NODE_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        pytest.fail(f"node {label} did not finish within {timeout} s: {expired.stdout!r}", pytrace=False)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    try:
        seen = json.loads(lines[-1])
        assert isinstance(seen, dict)
    except (IndexError, ValueError, AssertionError):
        pytest.fail(
            f"node {label} (exit {done.returncode}) did not print a JSON object; "
            f"stdout: {done.stdout[-2000:]!r} stderr: {done.stderr[-2000:]!r}",
            pytrace=False,
        )
    if done.returncode != 0:
        pytest.fail(
            f"node {label} exited {done.returncode}: {seen.get('error')}\n"
            f"it saw: {json.dumps({k: v for k, v in seen.items() if k != 'error'})}\n"
            f"stderr: {done.stderr[-2000:]}",
            pytrace=False,
        )
    return seen


# --------------------------------------------------------------------------- Redis


def _redis():
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)


COMPONENTS["redis"] = (_redis, "install Debian package redis-server (sudo apt-get install redis-server)")


class RedisServer:
    """Debian's redis-server on a free loopback port, no files outside its temp dir; stopped by its PID.

    `restart()` is the same command again on the same port (an empty Redis: nothing is saved).
    """

    def __init__(self, tmp_path, port=None):
        self.binary = require("redis")["redis"]
        Path(tmp_path).mkdir(parents=True, exist_ok=True)
        self.dir = str(tmp_path)
        self.port = port or free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=START_S):
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(lambda: _accepts(self.port) or self.proc.poll() is not None, timeout,
                   f"redis-server on port {self.port}")
        if self.proc.poll() is not None:
            pytest.fail(f"redis-server exited with {self.proc.returncode}", pytrace=False)
        return self

    def stop(self):
        stop_process(self.proc)

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _accepts(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return os.path.dirname(found[-1]) if found else None


COMPONENTS["postgresql"] = (_pg_bin, "install Debian package postgresql (sudo apt-get install postgresql)")


class PostgresServer:
    """Debian's PostgreSQL in a temporary folder on a free loopback port, stopped by `pg_ctl stop`.

    PostgreSQL refuses to run as root: as root, the cluster is the `postgres` user's. `stop()` then
    `start()` is a restart on the same port with the same data.
    """

    def __init__(self, port=None):
        self.bin = require("postgresql")["postgresql"]
        # Its own folder under the system's temp dir: pytest's are the test user's alone (mode 700).
        self.home = tempfile.mkdtemp(prefix="board-pg-")
        self.dir = os.path.join(self.home, "data")
        self.port = port or free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.user = "postgres" if os.geteuid() == 0 else getpass.getuser()
        self.running = False

    @property
    def url(self):
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args, timeout=60):
        done = subprocess.run(self.as_user + list(args), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            pytest.fail(f"{os.path.basename(args[0])} failed: {done.stdout[-1500:]} {done.stderr[-1500:]}",
                        pytrace=False)

    def start(self):
        if not os.path.exists(self.dir):
            os.makedirs(self.dir)
            if self.as_user:
                shutil.chown(self.home, "postgres", "postgres")
                shutil.chown(self.dir, "postgres", "postgres")
            self._run(f"{self.bin}/initdb", "-D", self.dir, "-A", "trust", "-U", self.user, "--no-sync")
        self._run(f"{self.bin}/pg_ctl", "-D", self.dir, "-w", "-l", os.path.join(self.dir, "log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self.running = True
        return self

    def stop(self):
        if self.running:
            self.running = False
            self._run(f"{self.bin}/pg_ctl", "-D", self.dir, "-w", "-m", "fast", "stop")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


# --------------------------------------------------------------------------- client options, nginx reload


def io_options_script(options):
    """An init script that merges `options` into every io(...) call of the page (and its worker).

    For the board page, whose io() call the test cannot edit: e.g. a short probe interval.
    """
    import json

    return """
(() => {
  const extra = %s;
  let wrapped;
  Object.defineProperty(window, "io", {
    configurable: true,
    get() { return wrapped; },
    set(real) {
      wrapped = function (uri, opts) {
        if (uri && typeof uri === "object") { opts = uri; uri = undefined; }
        return real(uri, Object.assign({}, extra, opts));
      };
      Object.assign(wrapped, real);
    },
  });
})();
""" % json.dumps(options)


def nginx_reload(nginx, upgrade):
    """Rewrites the config of a running Nginx (forwarding Upgrade or not) and reloads it (SIGHUP to its PID)."""
    text = nginx.conf.read_text()
    if upgrade and UPGRADE_HEADERS not in text:
        text = text.replace("proxy_read_timeout", UPGRADE_HEADERS + "            proxy_read_timeout", 1)
    elif not upgrade:
        text = text.replace(UPGRADE_HEADERS, "")
    nginx.conf.write_text(text)
    nginx.proc.send_signal(signal.SIGHUP)


def websocket_handshake_status(port, path="/socket.io/?EIO=4&transport=websocket"):
    """The HTTP status a WebSocket handshake to 127.0.0.1:port gets (101 when it goes through), or None."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(request.encode())
            line = conn.recv(200).split(b"\r\n", 1)[0]
        return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None


def pending_polls(nginx):
    """(distinct polling sessions, most polling GETs pending at once) in nginx's timing log."""
    spans, sids = [], set()
    try:
        lines = (nginx.prefix / "timing.log").read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        end, took, _status, request = line.split(" ", 3)
        if not request.startswith('"GET ') or "transport=polling" not in request or "sid=" not in request:
            continue
        sids.add(request.split("sid=", 1)[1].split("&", 1)[0].split(" ", 1)[0])
        spans.append((float(end) - float(took), float(end)))
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = pending = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start
        pending += step
        most = max(most, pending)
    return len(sids), most


# --------------------------------------------------------------------------- a cluster in one process


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server of the test's own, on a free port."""
    with RedisServer(tmp_path / "redis") as server:
        yield server


class Node:
    """One process of the cluster: a hub on its own port with a Redis adapter."""

    def __init__(self, url: str, prefix: str = "test", ping: int = 300, **options):
        self.hub = Hub(ping_interval=ping, ping_timeout=ping, adapter=RedisAdapter(url, prefix=prefix, **options))
        hub = self.hub

        @hub.on("join")
        def join(socket, room):
            socket.join(room)

        @hub.on("shout")
        def shout(socket, n):
            hub.emit("shout", n)

        self.server = None
        self.url = ""

    async def start(self) -> "Node":
        await self.hub.start()
        sock, port = bind_unused_port()
        self.server = HTTPServer(tornado.web.Application(self.hub.routes() + self.hub.ops.routes()))
        self.server.add_sockets([sock])
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self.server.stop()
        self.hub.close()
        await self.hub.stop()


@pytest.fixture
def cluster(io_loop, redis_server):
    """Two processes of a cluster in this one: two hubs, each on its own port, one Redis."""
    nodes = [Node(redis_server.url), Node(redis_server.url)]
    for node in nodes:
        io_loop.run_sync(node.start)
    yield nodes
    for node in nodes:
        io_loop.run_sync(node.stop)
