#!/usr/bin/env python3
"""Board's benchmark: Board's hub against python-socketio on Tornado and Node socket.io, interleaved.

    python bench/run.py                   # full run: 3 rounds, 10,000 clients in (a)
    python bench/run.py --quick           # smoke run, about a minute
    python bench/run.py --write-results   # also rewrite bench/RESULTS.md with this run
    python bench/run.py --help            # rounds, scale, servers, scenarios, profiling

Each (round, scenario, server) gets a fresh server process pinned on CPU 0 and a fresh load generator
(bench/loadgen.js, raw Engine.IO v4 / Socket.IO v5 over ws + http) pinned on CPU 1, when the machine has
at least 2 CPUs. The load generator prints marks around its measurement window; at each mark this runner
samples the server's and the load generator's CPU time and the server's RSS (psutil), then lets it go on.
Raw results go to bench/out/ (ignored by git).
"""
import argparse
import datetime
import json
import os
import platform
import queue
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS_MD = HERE / "RESULTS.md"

SERVERS = {
    # key: (label, argv builder)
    "board": ("Board", lambda port: [sys.executable, str(HERE / "board_app.py"), str(port)]),
    # Board with connection state recovery off: `--servers board,board-norec` measures what recovery costs.
    "board-norec": ("Board, recovery off", lambda port: [sys.executable, str(HERE / "board_app.py"), str(port),
                                                         "--recover_within=0"]),
    # Board on asyncio's own loop: `--servers board,board-asyncio` measures uvloop (what the board ships
    # with, and what "board" runs on) as a lever.
    "board-asyncio": ("Board on asyncio's loop", lambda port: [sys.executable, str(HERE / "board_app.py"),
                                                               str(port), "--loop=asyncio"]),
    # Board with every WebSocket through Tornado's handler: `--servers board,board-tornadows` measures the
    # lean WebSocket path (handlers/transports/websocket_connection.py) as a lever.
    "board-tornadows": ("Board, WebSockets via Tornado", lambda port: [sys.executable, str(HERE / "board_app.py"),
                                                                     str(port), "--lean_ws=0"]),
    # Board with Tornado's header timer per request: `--servers board,board-timer` measures the front's sweep.
    "board-timer": ("Board, Tornado's header timer", lambda port: [sys.executable, str(HERE / "board_app.py"),
                                                                  str(port), "--header_timer=1"]),
    # Board with polls kept on Tornado's HTTP/1 connection: `--servers board,board-tornadopoll` measures the
    # lean HTTP path of long-polling (handlers/transports/polling_protocol.py).
    "board-tornadopoll": ("Board, polls via Tornado's HTTP/1", lambda port: [
        sys.executable, str(HERE / "board_app.py"), str(port), "--handover=0"]),
    "psio": ("python-socketio/Tornado", lambda port: [sys.executable, str(HERE / "peers" / "psio_tornado.py"),
                                                      str(port)]),
    "node": ("Node socket.io", lambda port: ["node", str(HERE / "peers" / "node_sio.js"), str(port)]),
}

SCENARIOS = {
    "a": ("open", "(a) open {conns:,} WebSocket clients"),
    "b": ("fanout", "(b) fan-out to {fanout:,} clients, window {window}"),
    "c": ("echo-ws", "(c) echo with ack, {echo} WebSocket clients"),
    "d": ("echo-polling", "(d) echo with ack, {echo} long-polling clients"),
    "e": ("slow", "(e) fan-out to {fanout:,} clients, {slow} slow readers, {payload} B padding"),
}


def _lat(key):
    return lambda r: (r["result"].get("latency") or {}).get(key)


# Per scenario: (metric key, label, better, extractor(run) -> number or None)
METRICS = {
    "a": [
        ("open_s", "seconds to open all", "lower", lambda r: r["result"]["open_s"]),
        ("conn_per_s", "connections/s", "higher", lambda r: r["result"]["conn_per_s"]),
        ("rss_per_conn_kib", "server RSS per idle connection (KiB)", "lower",
         lambda r: (r["samples"]["idle"]["server_rss"] - r["samples"]["start"]["server_rss"])
         / max(1, r["result"]["still_open"]) / 1024),
    ],
    "b": [
        ("deliveries_per_s", "deliveries/s", "higher", lambda r: r["result"]["deliveries_per_s"]),
        ("p50_ms", "delivery latency p50 (ms)", "lower", _lat("p50_ms")),
        ("p99_ms", "delivery latency p99 (ms)", "lower", _lat("p99_ms")),
    ],
    "c": [
        ("rt_per_s", "round trips/s", "higher", lambda r: r["result"]["rt_per_s"]),
        ("p50_ms", "round trip p50 (ms)", "lower", _lat("p50_ms")),
        ("p99_ms", "round trip p99 (ms)", "lower", _lat("p99_ms")),
        # What the server spends per round trip: steady when other work on the machine takes CPU time away.
        ("cpu_us_per_rt", "server CPU per round trip (µs)", "lower",
         lambda r: r["samples"]["server_cpu"] * 1e4 / r["result"]["rt_per_s"]),
    ],
    "e": [
        ("deliveries_per_s", "fast clients: deliveries/s", "higher", lambda r: r["result"]["deliveries_per_s"]),
        ("p99_ms", "fast clients: latency p99 (ms)", "lower", _lat("p99_ms")),
        ("rss_growth_mb", "server RSS growth since all connected, peak (MB)", "lower",
         lambda r: (r["samples"]["peak_rss"] - r["samples"]["ready"]["server_rss"]) / 1e6),
        ("slow_backlog_mb", "owed to slow readers: sent - read (MB)", "info", lambda r: r["result"]["slow_backlog_mb"]),
        ("kernel_mb", "of which in kernel socket buffers (MB)", "info",
         lambda r: r["samples"]["end"]["kernel_queued"] / 1e6),
        ("server_closed", "connections the server closed or is closing", "info",
         lambda r: r["result"]["clients"] - r["samples"]["end"]["established"]),
    ],
}
METRICS["d"] = METRICS["c"]
COMMON = [
    ("server_cpu", "server CPU %", "info", lambda r: r["samples"]["server_cpu"]),
    ("loadgen_cpu", "load generator CPU %", "info", lambda r: r["samples"]["loadgen_cpu"]),
    ("other_cpu0", "other busy time on the server's CPU %", "info", lambda r: r["samples"].get("other_cpu0")),
    ("other_cpu1", "other busy time on the load generator's CPU %", "info",
     lambda r: r["samples"].get("other_cpu1")),
]
LIMIT_CPU = 85.0  # a process at or above this share of one CPU in the window is taken as the limit


# -------------------------------------------------------------------------------------------- helpers
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(need, soft)
    if want > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root may raise the hard limit
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def cpu_seconds(proc):
    try:
        t = proc.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return None


def rss(proc):
    try:
        return proc.memory_info().rss
    except psutil.Error:
        return None


def cpu_busy():
    """Busy seconds per CPU (everything but idle and iowait), from /proc/stat via psutil."""
    return [t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
            for t in psutil.cpu_times(percpu=True)]


def tcp_state(port):
    """The loopback TCP connections of the server on `port` (/proc/net/tcp, IPv4): bytes the kernel holds
    (the server's unacknowledged send queues plus the clients' unread receive queues) and how many of the
    server's sockets are established or closing (the server closed them; slow readers do not see it yet)."""
    queued = established = closing = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                local, remote, state, queues = parts[1], parts[2], parts[3], parts[4]
                tx, _, rx = queues.partition(":")
                if int(local.rpartition(":")[2], 16) == port:
                    if state == "0A":  # LISTEN
                        continue
                    queued += int(tx, 16)
                    if state == "01":
                        established += 1
                    elif state in ("04", "05", "07", "08", "09", "0B"):  # FIN_WAIT1/2, CLOSE, CLOSE_WAIT...
                        closing += 1
                elif int(remote.rpartition(":")[2], 16) == port:
                    queued += int(rx, 16)
    except (OSError, ValueError, IndexError):
        return None
    return {"kernel_queued": queued, "established": established, "closing": closing}


def pct(a, b, key, dt):
    if a.get(key) is None or b.get(key) is None or dt <= 0:
        return None
    return 100.0 * (b[key] - a[key]) / dt


class Pinning:
    def __init__(self, enabled):
        self.enabled = enabled and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
        if self.enabled:
            try:  # this runner shares the load generator's CPU, never the server's
                os.sched_setaffinity(0, {1})
            except OSError:
                pass

    def server(self, argv):
        return ["taskset", "-c", "0"] + argv if self.enabled else argv

    def loadgen(self, argv):
        return ["taskset", "-c", "1"] + argv if self.enabled else argv


# ------------------------------------------------------------------------------------------ one run
class ServerProc:
    def __init__(self, key, pin, log_path):
        self.key = key
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "wb")
        argv = pin.server(SERVERS[key][1](self.port))
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        self.popen = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=str(ROOT), env=env)
        self.proc = psutil.Process(self.popen.pid)

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.key} exited with {self.popen.returncode}: {self.tail()}")
            if b"listening" in self.log_path.read_bytes():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.key} not listening after {timeout:.0f} s: {self.tail()}")

    def tail(self, n=800):
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace").strip()
        except OSError:
            return ""

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log.close()


def py_spy():
    """py-spy next to this interpreter (a venv's bin/) or on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class Profiler:
    """py-spy record (raw collapsed stacks) of the server during the measurement window."""

    def __init__(self, pid, duration, out_path, pin):
        self.out_path = out_path
        argv = pin.loadgen([py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, int(duration))),
                            "--rate", "200", "--format", "raw", "--nonblocking", "-o", str(out_path)])
        self.popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self, timeout=30):
        try:
            _, err = self.popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            _, err = self.popen.communicate(timeout=5)
        if self.popen.returncode != 0:
            return f"py-spy failed ({self.popen.returncode}): {err.decode(errors='replace')[-400:]}"
        return None


def loadgen_argv(scenario, port, a):
    name = SCENARIOS[scenario][0]
    argv = ["node", str(HERE / "loadgen.js"), f"--scenario={name}", f"--port={port}",
            f"--warmup={a.warmup}", f"--concurrency={a.concurrency}"]
    if scenario == "a":
        argv += [f"--clients={a.conns}", f"--settle={a.settle}"]
    elif scenario in ("b", "e"):
        argv += [f"--clients={a.fanout}", f"--window={a.window}",
                 f"--duration={a.slow_duration if scenario == 'e' else a.duration}"]
        if scenario == "e":
            argv += [f"--slow={a.slow}", f"--payload={a.payload}", f"--slow-interval={a.slow_interval}"]
    else:
        argv += [f"--clients={a.echo}", f"--duration={a.duration}"]
    return argv


def run_one(server_key, scenario, a, pin, tag, profile=False):
    """Fresh server + one load generator run. Returns a dict (result, samples) or (error)."""
    run = {"server": server_key, "scenario": scenario, "tag": tag}
    server = ServerProc(server_key, pin, OUT / "logs" / f"{tag}-{scenario}-{server_key}.log")
    lg = None
    sampler_stop = threading.Event()
    sampler = None
    profiler = None
    try:
        server.wait_ready()
        argv = pin.loadgen(loadgen_argv(scenario, server.port, a))
        run["loadgen_argv"] = argv
        lg_err = open(OUT / "logs" / f"{tag}-{scenario}-{server_key}.loadgen.log", "wb")
        lg = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=lg_err, cwd=str(HERE),
                              text=True, bufsize=1)
        lg_proc = psutil.Process(lg.pid)
        lines = queue.Queue()

        def reader():
            for line in lg.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=reader, daemon=True).start()
        samples = {}
        peak = {"rss": 0}

        def sample_rss():
            while not sampler_stop.wait(0.1):
                v = rss(server.proc)
                if v and v > peak["rss"]:
                    peak["rss"] = v

        limit = 120 + max(a.duration, a.slow_duration) * 3 + a.warmup + a.settle + (a.conns if scenario == "a" else a.fanout) * 0.05
        deadline = time.monotonic() + limit
        result = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"load generator gave no result within {limit:.0f} s")
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                lg.wait(10)
                raise RuntimeError(f"load generator exited ({lg.returncode}) without a result")
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "mark" in msg:
                name = msg["mark"]
                samples[name] = {"t": time.monotonic(), "server_cpu_s": cpu_seconds(server.proc),
                                 "loadgen_cpu_s": cpu_seconds(lg_proc), "server_rss": rss(server.proc),
                                 "busy": cpu_busy(),
                                 **{k: v for k, v in msg.items() if k != "mark"}}
                if name in ("ready", "start") and sampler is None:
                    peak["rss"] = samples[name]["server_rss"] or 0
                    sampler = threading.Thread(target=sample_rss, daemon=True)
                    sampler.start()
                if name == "start":
                    if profile:
                        profiler = Profiler(server.popen.pid, a.duration,
                                            OUT / f"profile-{tag}-{scenario}-{server_key}.txt", pin)
                elif name == "end":
                    sampler_stop.set()
                    if scenario == "e":
                        samples[name].update(tcp_state(server.port) or {})
                    v = samples[name]["server_rss"]
                    if v and v > peak["rss"]:
                        peak["rss"] = v
                lg.stdin.write("ok\n")
                lg.stdin.flush()
            elif "error" in msg:
                raise RuntimeError(f"load generator: {msg['error'][:600]}")
            elif "result" in msg:
                result = msg["result"]
                break
        lg.wait(30)
        s0, s1 = samples["start"], samples["end"]
        dt = s1["t"] - s0["t"]
        samples["server_cpu"] = pct(s0, s1, "server_cpu_s", dt)
        samples["loadgen_cpu"] = pct(s0, s1, "loadgen_cpu_s", dt)
        samples["window_s"] = dt
        if pin.enabled:
            # CPU 0 time not spent by the server: other processes, interrupts (the noise on the server's CPU)
            busy0 = 100.0 * (s1["busy"][0] - s0["busy"][0]) / dt
            busy1 = 100.0 * (s1["busy"][1] - s0["busy"][1]) / dt
            samples["other_cpu0"] = max(0.0, busy0 - (samples["server_cpu"] or 0.0))
            samples["other_cpu1"] = max(0.0, busy1 - (samples["loadgen_cpu"] or 0.0))
        samples["peak_rss"] = peak["rss"]
        run.update(result=result, samples=samples)
        if server.popen.poll() is not None:
            run["warning"] = f"server exited ({server.popen.returncode}) during the run: {server.tail()}"
    except Exception as e:  # one failed run is reported, the others go on
        run["error"] = str(e)
        tail = server.tail()
        if tail:
            run["server_log_tail"] = tail
    finally:
        sampler_stop.set()
        if lg is not None and lg.poll() is None:
            lg.kill()
            lg.wait(5)
        if profiler is not None:
            err = profiler.finish()
            run["profile"] = err or str(profiler.out_path)
        server.stop()
    return run


# ------------------------------------------------------------------------------------------ report
def fmt(v):
    if v is None:
        return "-"
    av = abs(v)
    if v == int(v) and av < 1000:
        return str(int(v))
    if av >= 1000:
        return f"{v:,.0f}"
    if av >= 100:
        return f"{v:.0f}"
    if av >= 10:
        return f"{v:.1f}"
    if av >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def aggregate(runs, scenario, server_key):
    """{metric: [values]} and the errors for one (scenario, server)."""
    vals, errors = {}, []
    for r in runs:
        if r["scenario"] != scenario or r["server"] != server_key:
            continue
        if "error" in r:
            errors.append(r["error"])
            continue
        for key, _, _, fn in METRICS[scenario] + COMMON:
            try:
                v = fn(r)
            except (KeyError, TypeError, ZeroDivisionError):
                v = None
            if v is not None:
                vals.setdefault(key, []).append(v)
    return vals, errors


def cell(values):
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})"


def limit_of(vals):
    """Which pinned CPU limited a (scenario, server), from the medians of the CPU shares: CPU 0 is the
    server's, CPU 1 the load generator's; "other" is CPU time on them not charged to our process (other
    processes, and kernel network work done in softirq)."""
    def med(key):
        return statistics.median(vals[key]) if vals.get(key) else None

    srv, lg, o0, o1 = med("server_cpu"), med("loadgen_cpu"), med("other_cpu0"), med("other_cpu1")
    if srv is None or lg is None:
        return "-"
    o0, o1 = o0 or 0.0, o1 or 0.0
    sat0, sat1 = srv + o0 >= LIMIT_CPU, lg + o1 >= LIMIT_CPU
    names = []
    if sat0:
        names.append("server CPU" + (" (+ other)" if o0 >= 15 else ""))
    if sat1:
        names.append("load generator CPU" + (" (+ other)" if o1 >= 15 else ""))
    return " and ".join(names) if names else "neither (latency/window)"


def render_table(data):
    a = argparse.Namespace(**data["settings"])
    runs = data["runs"]
    servers = data["settings"]["servers"]
    peers = [s for s in servers if s != "board"]
    has_board = "board" in servers
    head = ["scenario / metric"] + [SERVERS[s][0] for s in servers]
    if has_board:
        head += [f"Board / {SERVERS[p][0]}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for sc in data["settings"]["scenarios"]:
        title = SCENARIOS[sc][1].format(**vars(a))
        lines.append("| **" + title + "** |" + " |" * (len(head) - 1))
        agg = {s: aggregate(runs, sc, s) for s in servers}
        for key, label, better, _ in METRICS[sc] + COMMON:
            arrow = {"higher": " ↑", "lower": " ↓"}.get(better, "")
            row = [label + arrow] + [cell(agg[s][0].get(key)) for s in servers]
            if has_board:
                for p in peers:
                    b, q = agg["board"][0].get(key), agg[p][0].get(key)
                    if better in ("higher", "lower") and b and q and statistics.median(q):
                        row.append(f"{statistics.median(b) / statistics.median(q):.2f}×")
                    else:
                        row.append("")
            lines.append("| " + " | ".join(row) + " |")
        limits = []
        for s in servers:
            vals, errors = agg[s]
            if errors:
                notes.append(f"{SCENARIOS[sc][1].format(**vars(a))}, {SERVERS[s][0]}: {len(errors)} failed run(s): "
                             + "; ".join(sorted(set(e[:300] for e in errors))))
            limits.append(limit_of(vals))
        lines.append("| limited by (CPU ≥ %d %% busy) | " % LIMIT_CPU + " | ".join(limits) + " |"
                     + " |" * (len(head) - 1 - len(limits)))
    return "\n".join(lines), notes


def machine_info():
    info = {"cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Hypervisor vendor"):
                info[k.strip()] = v.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except psutil.Error:
        pass
    return info


def versions():
    v = {"python": platform.python_version()}
    for dist in ("tornado", "uvloop", "python-socketio", "python-engineio", "psutil"):
        try:
            v[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            v[dist] = None
    try:
        v["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        v["node"] = None
    for pkg in ("socket.io", "ws"):
        try:
            v[pkg] = json.loads((HERE / "node_modules" / pkg / "package.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            v[pkg] = None
    try:
        v["board"] = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cs", "--", "handlers"],
                                    capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        v["board"] = None
    return v


README = """\
## How to run

```
make bench                                   # full run, prints the table
.venv/bin/python bench/run.py --quick        # smoke run, about a minute
.venv/bin/python bench/run.py --write-results   # full run, rewrites this file
.venv/bin/python bench/run.py --help         # rounds, scale, servers, scenarios
```

`make bench` installs python-socketio and psutil (`pip install -e '.[bench]'`) and the load generator's npm
packages (`cd bench && npm ci`), then runs `bench/run.py`. The benchmark is separate from the tests.

What runs: for each round, for each scenario, Board (bench/board_app.py, Board's `Hub`, served as board.py
serves it: on uvloop, polls and new WebSockets picked in front of the application, fewer garbage collections),
python-socketio's `AsyncServer` on Tornado (bench/peers/psio_tornado.py) and Node socket.io 4
(bench/peers/node_sio.js) in turn (each round starting at the next server of the list),
each a fresh process with the same behaviour: `bcast` (data) makes the server emit `bcast` (data) to everyone,
`echo` (data) with an ack answers (data); ping interval 25 s. With 2 or more CPUs the server is pinned on CPU 0
(`taskset`) and the load generator (bench/loadgen.js: raw Engine.IO v4 / Socket.IO v5 over Node's `ws` and
`http`, loopback only) on CPU 1. The runner samples both processes' CPU time and the server's RSS (psutil) at
the edges of the measurement window, and each CPU's busy time (/proc/stat): "other busy time" is time on
that CPU not charged to our process (other processes, and kernel network work run as softirq). Cells are the
median over rounds with (min–max); ↑ higher is better, ↓ lower is better; ratios are Board's median over the
peer's. "limited by" names the pinned CPU that was ≥ 85 % busy during the window ("+ other" when ≥ 15 % of
it was not our process): when it says "load generator CPU", the server was faster than measured.

Scenarios:
- (a) open N WebSocket clients (`EIO=4&transport=websocket`, `40`, wait for `40{...}`), at most
  `--concurrency` handshakes in flight: seconds to open all; server RSS per connection =
  (RSS once idle after opening - RSS before) / N. The runner raises the open-file limit.
- (b) fan-out: one of the clients emits `bcast` [seq, timestamp] as fast as the window allows (`--window`
  broadcasts not yet received by every client); deliveries/s and send-to-receive latency.
- (c) `echo` with ack round trips in a loop, one outstanding per client, over WebSocket.
- (d) the same over long-polling (a GET loop per client, POSTs for packets).
- (e) as (b) with `--payload` bytes of padding and `--slow-duration` seconds, but `--slow` of the clients read
  slowly (their socket is paused; one socket read every `--slow-interval` ms). The window counts only the fast
  clients. Reported: the fast clients' rate and p99; the server's peak RSS growth since all clients connected;
  what the slow readers were owed at the end (broadcast to them minus read), how much of it sat in the kernel's
  socket buffers (/proc/net/tcp; the rest is the server's to hold, drop or refuse), and how many connections
  the server closed or was closing at the end of the window (from its side: a paused reader cannot see it).
  The run is long enough for the kernel's buffers to fill at Board's rate.

Profiling Board in the fan-out scenario (py-spy, separate from measured runs since py-spy shares the load
generator's CPU): `.venv/bin/python bench/run.py --servers board --scenarios b --rounds 1 --profile`.
"""


def render_markdown(data):
    table, notes = render_table(data)
    s = data["settings"]
    m, v = data["machine"], data["versions"]
    out = ["# Board benchmark", "", README, "## Last full run", "",
           f"- Date: {data['date']}; wall time {data['elapsed_s'] / 60:.1f} min",
           f"- Command: `{data['command'].strip()}` (what `make bench` runs)",
           f"- Machine: {m.get('Model name', '?')}, {m.get('CPU(s)', m.get('cpus'))} CPUs "
           f"({m.get('Core(s) per socket', '?')} cores per socket, {m.get('Thread(s) per core', '?')} thread(s) per "
           f"core{', ' + m['Hypervisor vendor'] + ' guest' if m.get('Hypervisor vendor') else ''}), "
           f"{m.get('memory_gb', '?')} GiB, {m.get('platform', '')}",
           f"- Pinning: {'server on CPU 0, load generator on CPU 1 (taskset)' if s['pinned'] else 'none'}",
           f"- Versions: Python {v.get('python')}, tornado {v.get('tornado')}, uvloop {v.get('uvloop')} (Board's "
           f"loop), python-socketio "
           f"{v.get('python-socketio')} (python-engineio {v.get('python-engineio')}), Node {v.get('node')}, "
           f"socket.io {v.get('socket.io')}, ws {v.get('ws')} (load generator); Board handlers/ at {v.get('board')}",
           f"- Settings: {s['rounds']} rounds, {s['duration']} s measured per run ({s['slow_duration']} s in (e)) "
           f"after {s['warmup']} s warm-up, "
           f"open concurrency {s['concurrency']}, fan-out window {s['window']}, slow read every "
           f"{s['slow_interval']} ms",
           "", table, ""]
    if notes:
        out += ["Failures:", ""] + [f"- {n}" for n in notes] + [""]
    if data.get("remarks"):
        out += ["Remarks:", ""] + [f"- {r}" for r in data["remarks"]] + [""]
    return "\n".join(out)


READING_HEADING = "## Reading this run against the targets"


def write_results(data):
    """Rewrite RESULTS.md with this run, keeping the hand-written reading of the previous one (from its heading)."""
    kept = ""
    if RESULTS_MD.exists():
        old = RESULTS_MD.read_text()
        if READING_HEADING in old:
            kept = "\n" + old[old.index(READING_HEADING):]
    RESULTS_MD.write_text(render_markdown(data) + kept)
    print(f"wrote {RESULTS_MD}" + (" (the reading of the run below the table kept: update it by hand)" if kept else ""))


def summarize_profile(path, top=15):
    """Top functions by own (leaf) samples and by inclusive samples from py-spy's raw collapsed stacks."""
    own, own_fn, incl, total = {}, {}, {}, 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        total += n
        frames = [f.strip() for f in stack.split(";")]
        frames = [f for f in frames if f and not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        fn = re.sub(r":\d+\)$", ")", frames[-1])
        own_fn[fn] = own_fn.get(fn, 0) + n
        for f in set(re.sub(r":\d+\)$", ")", f) for f in frames):
            incl[f] = incl.get(f, 0) + n
    lines = [f"{total} samples", "", "own time by function:"]
    for f, n in sorted(own_fn.items(), key=lambda x: -x[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f} %  {f}")
    lines += ["", "own time by line:"]
    for f, n in sorted(own.items(), key=lambda x: -x[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f} %  {f}")
    lines += ["", "inclusive time:"]
    for f, n in sorted(incl.items(), key=lambda x: -x[1])[:top]:
        lines.append(f"  {100 * n / total:5.1f} %  {f}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- main
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds over all servers (default 3)")
    p.add_argument("--servers", default="board,psio,node", help="comma list of board, psio, node, board-norec, board-asyncio, board-tornadows, board-timer, board-tornadopoll (this order)")
    p.add_argument("--scenarios", default="abcde", help="subset of abcde (default all)")
    p.add_argument("--conns", type=int, default=10000, help="(a) clients to open (default 10000)")
    p.add_argument("--fanout", type=int, default=1000, help="(b, e) clients (default 1000)")
    p.add_argument("--slow", type=int, default=100, help="(e) slow readers among them (default 100)")
    p.add_argument("--payload", type=int, default=4096, help="(e) padding bytes per broadcast (default 4096)")
    p.add_argument("--slow-duration", type=float, default=20,
                   help="(e) measured seconds, long enough to fill the kernel's socket buffers (default 20)")
    p.add_argument("--slow-interval", type=int, default=2000, help="(e) ms between a slow reader's reads")
    p.add_argument("--echo", type=int, default=50, help="(c, d) clients (default 50)")
    p.add_argument("--window", type=int, default=8, help="(b, e) broadcasts in flight (default 8)")
    p.add_argument("--duration", type=float, default=8, help="measured seconds per run (default 8)")
    p.add_argument("--warmup", type=float, default=1, help="unmeasured seconds before measuring (default 1)")
    p.add_argument("--settle", type=float, default=2, help="(a) idle seconds before the RSS sample (default 2)")
    p.add_argument("--concurrency", type=int, default=100, help="handshakes in flight while opening (default 100)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run (~1 min): 1 round, 1000 clients in (a), 200 in (b, e), 2 s runs")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and load generator with taskset")
    p.add_argument("--profile", action="store_true",
                   help="record py-spy profiles of the Python servers (raw stacks in bench/out/)")
    p.add_argument("--write-results", action="store_true", help="rewrite bench/RESULTS.md with this run")
    p.add_argument("--render", metavar="JSON", help="only render a saved bench/out/*.json (with --write-results: "
                                                    "write it to RESULTS.md)")
    p.add_argument("--remark", action="append", default=[], help="a line for the Remarks section of RESULTS.md")
    a = p.parse_args(argv)
    if a.quick:
        a.rounds, a.conns, a.fanout, a.slow, a.duration, a.warmup, a.settle = 1, 1000, 200, 20, 2, 0.5, 0.5
        a.slow_duration = 3
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    for s in a.servers:
        if s not in SERVERS:
            p.error(f"unknown server {s}")
    a.scenarios = [c for c in a.scenarios if c in SCENARIOS]
    if not a.scenarios or a.rounds < 1 or a.slow >= a.fanout:
        p.error("need at least one scenario, one round, and fewer slow readers than clients")
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    if a.render:
        data = json.loads(Path(a.render).read_text())
        data.setdefault("remarks", [])
        data["remarks"] += a.remark
        table, notes = render_table(data)
        print(table)
        for n in notes:
            print("FAILED:", n)
        if a.write_results:
            write_results(data)
        return 0

    for tool in ("node",):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    if not (HERE / "node_modules" / "ws").is_dir():
        sys.exit("bench/node_modules missing: run `cd bench && npm ci`")
    if a.profile and not py_spy():
        sys.exit("--profile needs py-spy (pip install py-spy)")
    fds = raise_fd_limit(max(a.conns, a.fanout) + 1024)
    if fds < a.conns + 256:
        print(f"open-file limit is {fds}: scaling (a) down from {a.conns} to {fds - 256}", file=sys.stderr)
        a.conns = fds - 256
    pin = Pinning(not a.no_pin)
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    for old in (OUT / "logs").glob("*.log"):
        old.unlink()

    start = time.monotonic()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    data = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python bench/run.py"] + [shlex.quote(x) for x in argv]),
        "machine": machine_info(), "versions": versions(),
        "settings": {k: getattr(a, k) for k in ("rounds", "servers", "scenarios", "conns", "fanout", "slow",
                                                "payload", "slow_interval", "slow_duration", "echo", "window", "duration",
                                                "warmup", "settle", "concurrency")},
        "runs": [], "remarks": list(a.remark),
    }
    data["settings"]["pinned"] = pin.enabled
    print(f"servers {', '.join(a.servers)}; scenarios {''.join(a.scenarios)}; {a.rounds} round(s); "
          f"pinning {'on' if pin.enabled else 'off'}; open-file limit {fds}", flush=True)
    json_path = OUT / f"results-{stamp}.json"
    for rnd in range(1, a.rounds + 1):
        # Each round starts the servers at another place in their order: no server always runs first
        # (after another scenario's load) or last.
        shift = (rnd - 1) % len(a.servers)
        order = a.servers[shift:] + a.servers[:shift]
        for sc in a.scenarios:
            for srv in order:
                t0 = time.monotonic()
                profile = a.profile and srv != "node"
                run = run_one(srv, sc, a, pin, f"r{rnd}", profile=profile)
                data["runs"].append(run)
                took = time.monotonic() - t0
                if "error" in run:
                    print(f"round {rnd} {sc} {srv:6s} FAILED ({took:.0f} s): {run['error'][:400]}", flush=True)
                else:
                    vals = [f"{label}={fmt(fn(run))}" for _, label, _, fn in METRICS[sc][:3] + COMMON]
                    print(f"round {rnd} {sc} {srv:6s} ({took:.0f} s): " + ", ".join(vals), flush=True)
                if run.get("profile") and Path(run["profile"]).exists():
                    print(summarize_profile(run["profile"]), flush=True)
                elif run.get("profile"):
                    print(run["profile"], flush=True)
                json_path.write_text(json.dumps(data, indent=1))
    data["elapsed_s"] = time.monotonic() - start
    json_path.write_text(json.dumps(data, indent=1))
    (OUT / "last.json").write_text(json.dumps(data, indent=1))
    table, notes = render_table(data)
    print()
    print(table)
    for n in notes:
        print("FAILED:", n)
    print(f"\nraw results: {json_path} ({data['elapsed_s'] / 60:.1f} min)")
    if a.write_results:
        write_results(data)
    return 1 if notes else 0


if __name__ == "__main__":
    sys.exit(main())
