#!/usr/bin/env python3
"""A SIGKILL and a rolling restart under posts, behind a round-robin balancer, with every kind of client.

    python bench/rolling.py                        # 3 processes, 20 clients of each kind, 10 posts/s, 60 s
    python bench/rolling.py --clients 4 --seconds 24

Three `board.py --redis` processes behind nginx (round robin, no stickiness, WebSocket upgrades passed),
a fourth one, not behind nginx, that a python-socketio client posts through at `--rate` posts a second.
The clients, all through nginx, `--clients` of each kind:
  js-websocket, js-polling, js-default   the official socket.io-client 4.8 (tests/node/recovery.js), which
                                         recovers its connection state
  py-websocket, py-polling               the official python-socketio client, which does not
  py-recovering                          python-socketio with recovery added, as the README shows (it says
                                         so in its CONNECT auth), on WebSocket
At a quarter of the posts the first process is SIGKILLed (and started again a second later); at half
of them every process in turn gets SIGTERM (drains over `--drain` s), exits and starts again.

Prints, per client kind, what reached the clients: every post once and in order, what was missed through
the kill and through the rolling restart (and by how many clients), duplicates, out of order, reconnections,
the longest time a client was disconnected and its longest silence between two posts. `run()` is what
tests/e2e/test_cluster_rolling.py runs, smaller. Loopback only; every process started here is stopped by
its PID; bounded in time.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import socketio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RECOVERY_JS = ROOT / "tests" / "node" / "recovery.js"
KINDS = ("js-websocket", "js-polling", "js-default", "py-websocket", "py-polling", "py-recovering")

NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream board {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://board;
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_set_header Host $http_host;
            proxy_read_timeout 60s;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def answers(url: str, timeout: float = 20.0) -> None:
    """Wait until `url` answers 200 (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ok = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=1).status == 200)
            if ok:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class Process:
    """A board process on a port of its own; start() again after it stopped: the same port."""

    def __init__(self, name: str, tmp: Path, redis_url: str, drain: float, ping: int):
        self.name, self.port, self.proc = name, free_port(), None
        self.log = open(tmp / f"{name}.log", "ab")
        self.command = [sys.executable, "board.py", f"--port={self.port}", "--address=127.0.0.1",
                        f"--db={tmp / name}.db", f"--redis={redis_url}", "--redis_prefix=rolling",
                        "--post_limit=0", "--post_limit_per_address=0", f"--drain_seconds={drain}",
                        f"--ping_interval={ping}", f"--ping_timeout={ping}"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(*self.command, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
                                                         stdout=self.log, stderr=self.log)
        await answers(self.url)

    async def tag(self) -> str:
        """The tag that starts the ids of this process's sessions."""
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(
            self.url + "socket.io/?EIO=4&transport=polling", timeout=2).read().decode())
        return json.loads(text[1:])["sid"][:8]

    async def signal(self, sig: int, timeout: float = 30.0) -> int:
        self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                await self.signal(signal.SIGTERM, 10)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class PyClient:
    """An official python-socketio client counting the posts it receives; `recovering`: with recovery added."""

    def __init__(self, kind: str):
        self.kind = kind
        self.received: list[int] = []
        self.connects = self.recovered = 0
        self.down: list[list[float]] = []   # [since, until] of each time it was disconnected
        self.gap = 0.0
        self.last_at = 0.0
        self.sids: list[str] = []
        self.notes: list[list] = []          # [time, what]: disconnections and the engine.io client's warnings
        self.pid = self.offset = None
        owner = self

        class Notes(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                owner.notes.append([time.monotonic(), record.getMessage()[:200]])

        logger = logging.getLogger(f"rolling.client.{id(self)}")
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        logger.addHandler(Notes())

        class Client(socketio.AsyncClient):
            async def _handle_connect(self, namespace, data):
                if isinstance(data, dict) and data.get("pid"):
                    owner.recovered += owner.pid == data["pid"]
                    owner.pid = data["pid"]
                await super()._handle_connect(namespace, data)

        self.sio = Client(reconnection_attempts=0, engineio_logger=logger)
        self.sio.on("connect", self._connected)
        self.sio.on("disconnect", self._disconnected)
        self.sio.on("message", self._message)

    def auth(self) -> dict | None:
        if self.kind != "py-recovering":
            return None
        return {"recovery": True, **({"pid": self.pid, "offset": self.offset} if self.pid else {})}

    async def connect(self, url: str) -> None:
        transports = ["polling"] if self.kind == "py-polling" else ["websocket"]
        await self.sio.connect(url, transports=transports, auth=self.auth, wait_timeout=10)

    def _connected(self) -> None:
        self.connects += 1
        self.sids.append(self.sio.eio.sid or "")
        if self.down and self.down[-1][1] == 0:
            self.down[-1][1] = time.monotonic()

    def _disconnected(self, *reason) -> None:
        self.down.append([time.monotonic(), 0])
        self.notes.append([time.monotonic(), f"disconnected: {reason[0] if reason else '?'}"])

    def _message(self, data, *offset) -> None:
        if offset:
            self.offset = offset[-1]
        now = time.monotonic()
        if self.last_at:
            self.gap = max(self.gap, now - self.last_at)
        self.last_at = now
        self.received.append(data["id"])

    def summary(self, posts: int) -> dict:
        seen = set(self.received)
        order = [n for n in self.received]
        return {"kind": self.kind, "received": len(self.received), "duplicates": len(order) - len(seen),
                "outOfOrder": sum(1 for a, b in zip(order, order[1:]) if b < a),
                "missingIds": [n for n in range(1, posts + 1) if n not in seen], "connects": self.connects,
                "recovered": self.recovered, "maxDownMs": round(1000 * max(
                    ((u or time.monotonic()) - s for s, u in self.down), default=0)),
                "maxGapMs": round(1000 * self.gap), "sids": self.sids,
                "downs": [[s, u] for s, u in self.down], "notes": self.notes}


async def run(clients: int = 20, posts: int = 600, rate: float = 10.0, drain: float = 5.0, ping: int = 5000,
              kinds: tuple[str, ...] = KINDS, settle: float = 15.0, keep: bool | str = "failure",
              max_fails: int | None = 0) -> dict:
    """The whole scenario; what every client received, the posts' times and the phases. The
    processes' logs are kept (their folder is the result's "logs") if `keep`, or with "failure"
    if the run broke the bar (`broken`) or did not finish."""
    tmp = Path(tempfile.mkdtemp(prefix="board-rolling-"))
    started: list = []
    result: dict | None = None
    try:
        rport = free_port()
        redis = await asyncio.create_subprocess_exec(
            shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(rport), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(tmp), stdout=asyncio.subprocess.DEVNULL)
        started.append(redis)
        redis_url = f"redis://127.0.0.1:{rport}/0"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", rport), 0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        members = [Process(f"p{i}", tmp, redis_url, drain, ping) for i in range(3)]
        poster_process = Process("poster", tmp, redis_url, drain, ping)
        for p in (*members, poster_process):
            await p.start()
        nginx_port = free_port()
        (tmp / "nginx").mkdir()
        conf = tmp / "nginx" / "nginx.conf"
        # max_fails=0: a process that refuses or is restarting is skipped per request (proxy_next_upstream),
        # not written off for 10 s: in a rolling restart that would soon be every process (README).
        conf.write_text(NGINX_CONF.format(prefix=tmp / "nginx", port=nginx_port, servers="".join(
            f"        server 127.0.0.1:{p.port}{'' if max_fails is None else f' max_fails={max_fails}'};\n"
            for p in members)))
        nginx = await asyncio.create_subprocess_exec(
            shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p", str(tmp / "nginx"), "-g", "daemon off;",
            stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        started.append(nginx)
        url = f"http://127.0.0.1:{nginx_port}/"
        await answers(url)

        # The clients, through nginx.
        node = shutil.which("node") or "node"
        js = {}
        for kind in kinds:
            if kind.startswith("js-"):
                proc = await asyncio.create_subprocess_exec(
                    node, str(RECOVERY_JS), url.rstrip("/"), kind[3:], str(clients), str(posts),
                    str(int((posts / rate + 120) * 1000)), "message", stdout=asyncio.subprocess.PIPE,
                    limit=2 ** 24)
                started.append(proc)
                js[kind] = proc
        py = [PyClient(kind) for kind in kinds if kind.startswith("py-") for _ in range(clients)]
        for i in range(0, len(py), 10):
            await asyncio.gather(*(c.connect(url) for c in py[i:i + 10]))
        for kind, proc in js.items():
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert json.loads(line) == {"ready": True}, (kind, line)

        # The posts, and the faults on their way.
        poster = socketio.AsyncClient(reconnection=False)
        await poster.connect(poster_process.url, transports=["websocket"], wait_timeout=10)
        kill_at, roll_at = posts // 4, posts // 2
        killed_tag = await members[0].tag()
        times: dict[int, float] = {}
        events: list = []

        async def kill():
            events.append(["kill", time.monotonic()])
            await members[0].signal(signal.SIGKILL)
            await asyncio.sleep(1)
            await members[0].start()
            events.append(["killed process back", time.monotonic()])

        async def roll():
            events.append(["roll", time.monotonic()])
            for p in members:
                events.append([f"SIGTERM {p.name}", time.monotonic()])
                code = await p.signal(signal.SIGTERM)
                events.append([f"{p.name} exited {code}", time.monotonic()])
                await p.start()
            events.append(["rolled", time.monotonic()])

        faults = []
        began = time.monotonic()
        for n in range(1, posts + 1):
            if n == kill_at:
                faults.append(asyncio.ensure_future(kill()))
            elif n == roll_at:
                faults.append(asyncio.ensure_future(roll()))
            ack = await poster.call("post", {"name": "P", "text": f"post {n}"}, timeout=10)
            assert ack["id"] == n, ack
            times[n] = time.monotonic()
            await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
        await asyncio.gather(*faults)
        await poster.disconnect()

        # Wait for the last post everywhere (bounded), then collect.
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and not all(c.received and c.received[-1] == posts for c in py):
            await asyncio.sleep(0.1)
        summaries = [c.summary(posts) for c in py]
        for kind, proc in js.items():
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), max(1.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                proc.send_signal(signal.SIGINT)
                line = b""
            if not line:
                proc.kill()
                continue
            for c in json.loads(line)["clients"]:
                summaries.append({**c, "kind": kind, "downs": []})
        for c in py:
            await c.sio.disconnect()
        result = {"posts": posts, "kill_at": kill_at, "roll_at": roll_at, "times": times, "events": events,
                  "killed_tag": killed_tag, "clients": summaries}
        return result
    finally:
        for p in locals().get("members", []) + [locals().get("poster_process")]:
            if p is not None:
                await p.stop()
        for proc in reversed(started):
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
        if keep is True or (keep == "failure" and (result is None or broken(result))):
            print(f"logs kept in {tmp}", file=sys.stderr)
            if result is not None:
                result["logs"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def phases(result: dict, client: dict) -> tuple[list[int], list[int]]:
    """The posts a client missed through the kill (posts before the rolling restart) and through the roll."""
    roll = result["roll_at"]
    missing = client["missingIds"]
    return [n for n in missing if n < roll], [n for n in missing if n >= roll]


def was_on(client: dict, tag: str) -> bool:
    """Whether the client's session at the kill was one of the killed process (by its sid's tag)."""
    return bool(client["sids"]) and client["sids"][0][:len(tag)] == tag


SLACK = 0.5  # s: a post acked this close to a disconnection may have been sent just before it


def missed_only_while_away(result: dict, client: dict) -> bool:
    """Every post the client missed was posted while it was disconnected (Python clients say when);
    one whose session died with the killed process was away from the kill on."""
    times = result["times"]
    downs = client["downs"]
    if was_on(client, result["killed_tag"]):
        kill = next(t for what, t in result["events"] if what == "kill")
        downs = [[kill if kill <= since <= kill + 5 else since, until] for since, until in downs]
    return all(any(since - SLACK <= times[n] <= (until or float("inf")) + SLACK for since, until in downs)
               for n in client["missingIds"])


def broken(result: dict) -> list[str]:
    """What broke the bar, one line per client: through the rolling restart every client but a
    WebSocket one without recovery gets every post, once, in order (a polling one without even
    reconnecting); through the kill every recovering client and every client whose session lived
    elsewhere does; the rest miss only what was posted while they were away; nobody is stranded 5 s."""
    wrong = []
    for c in result["clients"]:
        kind = c["kind"]
        through_kill, through_roll = phases(result, c)
        on_killed = was_on(c, result["killed_tag"])
        why = []
        if c["duplicates"] or c["outOfOrder"]:
            why.append(f"{c['duplicates']} twice, {c['outOfOrder']} out of order")
        if c["maxDownMs"] >= 5000:
            why.append(f"disconnected {c['maxDownMs']} ms")
        if kind.startswith("js-") or kind == "py-recovering":
            if c["missingIds"]:
                why.append(f"missed {c['missingIds']}")
        elif kind == "py-polling":
            if through_roll:
                why.append(f"missed {through_roll} through the rolling restart")
            if c["connects"] != 1 + on_killed:
                why.append(f"connected {c['connects']} times (on the killed process: {on_killed})")
        if not kind.startswith("js-") and kind != "py-recovering":
            if through_kill and not on_killed:
                why.append(f"missed {through_kill} through the kill, its session elsewhere")
            if not missed_only_while_away(result, c):
                why.append(f"missed {c['missingIds']} while connected")
        if why:
            wrong.append(f"{kind} {c['sids']}: " + "; ".join(why))
    return wrong


def table(result: dict) -> str:
    rows = ["| client kind | clients | every post once, in order | missed through the kill (clients) "
            "| missed through the rolling restart (clients) | duplicates | out of order | reconnections "
            "| longest disconnected, s | longest silence, s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for kind in KINDS:
        cs = [c for c in result["clients"] if c["kind"] == kind]
        if not cs:
            continue
        kill = [phases(result, c)[0] for c in cs]
        roll = [phases(result, c)[1] for c in cs]
        whole = sum(1 for c in cs if not c["missingIds"] and not c["duplicates"] and not c["outOfOrder"])
        rows.append(
            f"| {kind} | {len(cs)} | {whole} | {sum(map(len, kill))} ({sum(1 for k in kill if k)}) "
            f"| {sum(map(len, roll))} ({sum(1 for r in roll if r)}) | {sum(c['duplicates'] for c in cs)} "
            f"| {sum(c['outOfOrder'] for c in cs)} | {sum(c['connects'] - 1 for c in cs)} "
            f"| {max(c['maxDownMs'] for c in cs) / 1000:.1f} | {max(c['maxGapMs'] for c in cs) / 1000:.1f} |")
    return "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=20, help="clients of each kind")
    p.add_argument("--seconds", type=float, default=60, help="how long the posts go on")
    p.add_argument("--rate", type=float, default=10, help="posts a second")
    p.add_argument("--drain", type=float, default=5, help="each process's drain window, s")
    p.add_argument("--json", help="also write the whole result there")
    p.add_argument("--max-fails", type=int, default=0, help="nginx's max_fails for each process (-1: nginx's "
                   "default, 1 in 10 s)")
    p.add_argument("--keep", action="store_true", help="keep the processes' logs (they are kept anyway if the "
                   "run broke the bar)")
    a = p.parse_args()
    result = asyncio.run(run(a.clients, int(a.seconds * a.rate), a.rate, a.drain, keep=a.keep or "failure",
                             max_fails=None if a.max_fails < 0 else a.max_fails))
    if a.json:
        Path(a.json).write_text(json.dumps(result))
    print(f"{a.clients} clients of each kind, {result['posts']} posts at {a.rate:g}/s; SIGKILL of one process "
          f"at post {result['kill_at']}, rolling restart (drain {a.drain:g} s each) from post {result['roll_at']}")
    print(table(result))
    for line in broken(result):
        print("bar broken:", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
