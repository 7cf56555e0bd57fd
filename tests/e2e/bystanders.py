"""The bystanders of an attack, and what they saw: tests/test_attacks.py and bench/abuse.py.

python-socketio's `AsyncClient`s, half on WebSocket and half on long-polling, plus one poster whose
posts every bystander should receive. While an attack (tests/e2e/attackers.py) runs, what a bystander
would notice is measured (dropped, a post late or lost) and what the server holds (RSS from /proc,
bytes of log, /healthz answering). Each bystander says its own address in X-Forwarded-For.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import socketio

from attackers import Target, http


def bystander_address(n: int) -> str:
    return f"198.51.100.{n + 1}"


# --------------------------------------------------------------------------- the server's side


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` in kB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def file_size(path: Path | str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- bystanders


class Bystander:
    """An official client that keeps the time each of the poster's posts reached it."""

    def __init__(self, n: int, transport: str):
        self.n, self.transport = n, transport
        self.client = socketio.AsyncClient(reconnection=False)
        self.arrived: dict[int, float] = {}
        self.attacker_posts: dict[str, int] = {}  # per attacker connection (the post's text says which)
        self.dropped_at: float | None = None
        self.client.on("message", self._message)
        self.client.on("disconnect", self._gone)

    def _message(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if data.get("name") == "poster":
            try:
                self.arrived.setdefault(int(str(data.get("text")).split()[1]), time.monotonic())
            except (IndexError, ValueError):
                pass
        elif data.get("name") == "attacker":
            connection = str(data.get("text")).split()[1:2] or ["?"]
            self.attacker_posts[connection[0]] = self.attacker_posts.get(connection[0], 0) + 1

    def _gone(self, *args: Any) -> None:
        if self.dropped_at is None:
            self.dropped_at = time.monotonic()

    async def connect(self, port: int) -> "Bystander":
        await self.client.connect(f"http://127.0.0.1:{port}", transports=[self.transport], wait_timeout=10,
                                  headers={"X-Forwarded-For": bystander_address(self.n)})
        return self

    async def close(self) -> None:
        if self.client.connected:
            try:
                await asyncio.wait_for(self.client.disconnect(), 5)
            except (asyncio.TimeoutError, Exception):  # the client library's own errors: nothing to do
                pass


class Crowd:
    """`size` bystanders (half WebSocket, half polling, spread over `ports`) and one poster on `ports[0]`.

    The poster posts every `interval` s (under the board's post limit); `sent[n]` is when post n left.
    """

    def __init__(self, ports: list[int], size: int, interval: float = 1.25):
        self.ports, self.interval = ports, interval
        self.bystanders = [Bystander(n, "websocket" if n % 2 == 0 else "polling") for n in range(size)]
        self.poster = Bystander(size, "websocket")
        self.sent: dict[int, float] = {}
        self.acks: dict[int, Any] = {}
        self._task: asyncio.Task | None = None
        self._pending: set[asyncio.Task] = set()

    async def connect(self) -> None:
        await self.poster.connect(self.ports[0])
        for i, b in enumerate(self.bystanders):  # one after another: a crowd, not a handshake storm
            await b.connect(self.ports[i % len(self.ports)])

    async def post(self, n: int) -> None:
        self.sent[n] = time.monotonic()
        try:
            self.acks[n] = await self.poster.client.call("post", {"name": "poster", "text": f"post {n}"},
                                                         timeout=5)
        except Exception as exc:  # a timeout or a gone client: what the poster would see
            self.acks[n] = {"error": type(exc).__name__}

    def start_posting(self) -> None:
        async def loop() -> None:
            n = 0
            while self.poster.client.connected and n < 1000:
                task = asyncio.ensure_future(self.post(n))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
                n += 1
                await asyncio.sleep(self.interval)
        self._task = asyncio.ensure_future(loop())

    async def stop_posting(self, wait: float = 2.5) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=5)
        await asyncio.sleep(wait)  # the last post's deliveries

    def everyone(self) -> list[Bystander]:
        return [*self.bystanders, self.poster]

    def dropped(self) -> int:
        return sum(1 for b in self.everyone() if b.dropped_at is not None or not b.client.connected)

    def latencies(self) -> tuple[list[float], int]:
        """(latency of every delivery, deliveries missing), over every bystander and post sent."""
        got, lost = [], 0
        for b in self.everyone():
            for n, t0 in self.sent.items():
                if n in b.arrived:
                    got.append(b.arrived[n] - t0)
                else:
                    lost += 1
        return got, lost

    def attacker_posts(self) -> dict[str, int]:
        """The attacker's posts per connection, as the bystander who saw the most of them saw them."""
        return max((b.attacker_posts for b in self.everyone()), key=lambda seen: sum(seen.values()), default={})

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.everyone()))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --------------------------------------------------------------------------- one measured attack


@dataclass
class Result:
    attack: str
    bystanders: int
    dropped: int = 0
    delivered: int = 0
    expected: int = 0
    p99: float | None = None
    worst: float | None = None
    attacker_posts: int = 0
    attacker_session_most: int = 0     # the most stored from one of its connections (Engine.IO sessions)
    allowed_posts: int | None = None
    rss_growth_kb: int = 0
    log_bytes: int = 0
    tracebacks: int = 0
    healthz_worst: float | None = None
    healthz_failed: int = 0
    healthz_probes: int = 0
    poster_acked: int = 0
    poster_sent: int = 0
    outcome: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class Probe:
    """While the attack runs: the peak RSS of the attacked process and /healthz every 0.25 s."""

    def __init__(self, target: Target):
        self.target = target
        self.base_rss = rss_kb(target.pids[0])
        self.peak_rss = self.base_rss
        self.base_logs = [file_size(p) for p in target.logs]
        self.health: list[float | None] = []
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._rss()), asyncio.ensure_future(self._healthz())]

    async def _rss(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, rss_kb(self.target.pids[0]))
            await asyncio.sleep(0.05)

    async def _healthz(self) -> None:
        while len(self.health) < 2000:
            started = time.monotonic()
            answer = await http(self.target.ports[0], "GET", "/healthz", timeout=2.0)
            self.health.append(time.monotonic() - started if answer and answer[0] == 200 else None)
            await asyncio.sleep(0.25)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.peak_rss = max(self.peak_rss, rss_kb(self.target.pids[0]))

    def log_bytes(self) -> int:
        return sum(max(0, file_size(p) - base) for p, base in zip(self.target.logs, self.base_logs))

    def tracebacks(self) -> int:
        """Tracebacks the processes logged since the probe began."""
        count = 0
        for path, base in zip(self.target.logs, self.base_logs):
            with open(path, "rb") as log:
                log.seek(base)
                while chunk := log.read(2**20):  # the chunk edges may cut one: a count, not a proof
                    count += chunk.count(b"Traceback (most recent call last)")
        return count


# An attack returns what happened to the attacker: {"summary": text, ...figures}.
Attack = Callable[[Target], Awaitable[dict]]


async def measure(name: str, target: Target, attack: Attack, bystanders: int = 20, interval: float = 1.25,
                  lead: float = 1.0, settle: float = 1.5, limit: float = 60.0, wait: float = 2.5) -> Result:
    """Bystanders connect, the poster posts; `attack` runs (at most `limit` s); then what they saw.

    The poster starts `lead` s before the attack and goes on `settle` s after it.
    """
    crowd = Crowd(target.ports, bystanders, interval)
    result = Result(name, bystanders + 1)
    try:
        await crowd.connect()
        probe = Probe(target)
        probe.start()
        crowd.start_posting()
        await asyncio.sleep(lead)
        started = time.monotonic()
        try:
            result.extra = await asyncio.wait_for(attack(target), limit)
        except asyncio.TimeoutError:
            result.extra = {"summary": f"attack still running after {limit:g} s (stopped)"}
        result.outcome = result.extra["summary"]
        result.seconds = time.monotonic() - started
        await asyncio.sleep(settle)
        await crowd.stop_posting(wait)
        await probe.stop()
        got, lost = crowd.latencies()
        result.dropped = crowd.dropped()
        result.delivered, result.expected = len(got), len(got) + lost
        result.p99, result.worst = percentile(got, 0.99), max(got, default=None)
        seen = crowd.attacker_posts()
        result.attacker_posts, result.attacker_session_most = sum(seen.values()), max(seen.values(), default=0)
        most, window = target.post_limit
        if most:
            result.allowed_posts = most * math.ceil((result.seconds + settle) / window)
        result.rss_growth_kb = probe.peak_rss - probe.base_rss
        result.log_bytes, result.tracebacks = probe.log_bytes(), probe.tracebacks()
        answered = [h for h in probe.health if h is not None]
        result.healthz_probes = len(probe.health)
        result.healthz_failed = len(probe.health) - len(answered)
        result.healthz_worst = max(answered, default=None)
        result.poster_sent = len(crowd.sent)
        result.poster_acked = sum(1 for a in crowd.acks.values() if isinstance(a, dict) and a.get("ok"))
        result.extra["poster_refused"] = [a for a in crowd.acks.values() if not (isinstance(a, dict) and a.get("ok"))]
    finally:
        await crowd.close()
    return result
