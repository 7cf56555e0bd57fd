#!/usr/bin/env python3
"""One hostile client against a crowd: what each attack of issue 18 costs everyone else.

    .venv/bin/python bench/abuse.py                       # every attack, 20 bystanders
    .venv/bin/python bench/abuse.py churn-ws post-reset   # some of them
    .venv/bin/python bench/abuse.py --bystanders 10 --json results.json

For each attack: a fresh `board.py` (and for the cluster case a redis-server and two boards on it) on
free loopback ports, `--trusted_proxies=127.0.0.1` so that every client says its own address in
X-Forwarded-For; ~20 bystanders (python-socketio, half WebSocket, half long-polling) and a poster
posting every 1.25 s (tests/e2e/bystanders.py); then the attack, from raw sockets
(tests/e2e/attackers.py), and a table:

  dropped     bystanders disconnected (of all, the poster included)
  p99 / lost  latency of the poster's posts to every bystander, p99 of those delivered, and the
              deliveries that never came
  attacker    posts stored from the attacker (seen by the bystanders), the most from one of its
              sessions, and what the post limit per session allows over the attack (since issue 18 an
              address has a limit of its own too, `--post_limit_per_address`, 100/10 by default)
  RSS         growth of the attacked process's VmRSS (peak during the attack, /proc/PID/status)
  log         bytes the logs grew by (stdout and stderr of every board process of the attack, in
              test-artifacts/abuse-*.board.log), and the tracebacks in them
  healthz     slowest /healthz answer (polled every 0.25 s) and how many got none within 2 s
  poster      the poster's posts acked {ok: true} of those it made (the others' answers follow the table)

Needs the test dependencies (`make deps`: python-socketio, aiohttp, pytest for tests/e2e_support.py)
and redis-server and prlimit (util-linux) on the PATH. Bounded: each attack runs at most ~20 s.
The issue's bar: no bystander dropped, p99 under 2 s, at most the post limit (and a small margin)
from the attacker, RSS growth under 50 MB for the ping flood and 20 MB for ten huge auths,
/healthz within 1 s, logs under 5 MB per attack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import attackers as a  # noqa: E402
import bystanders as by  # noqa: E402
from e2e_support import Board, RedisServer  # noqa: E402


class LimitedBoard(Board):
    """The board with a low limit of open descriptors (prlimit execs it: same PID)."""

    def __init__(self, *args, nofile: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.nofile = nofile

    def command(self):
        return ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--", *super().command()]


def board_args(extra=()) -> list[str]:
    return ["--trusted_proxies=127.0.0.1", "--post_limit=10/10", *extra]


# name -> (what it is, attack(target), boards, options)
ATTACKS = {
    "churn-ws": ("1 MB of 40/41 over WebSocket, 3 bursts",
                 lambda t: a.churn_websocket(t, bursts=3), 1, {}),
    "churn-polling": ("950 KB of 40/41 in one polling POST, 3 times",
                      lambda t: a.churn_polling(t, posts=3), 1, {}),
    "post-reset": ("40, 10 posts, 41, again, for 4 s",
                   lambda t: a.post_reset(t, seconds=4.0), 1, {}),
    "cluster-churn": ("4 concurrent 1 MB bursts at one of 2 processes on Redis",
                      lambda t: a.churn_websocket(t, bursts=1, concurrent=4), 2, {}),
    "ping-flood": ("WebSocket pings from a client that never reads (150 MB or 10 s)",
                   lambda t: a.ping_flood(t), 1, {}),
    "huge-auth": ("10 CONNECTs with a 990 KB auth of tiny arrays",
                  lambda t: a.huge_auths(t, sessions=10), 1, {}),
    "half-open": ("300 connections that never finish their headers, descriptors limited to 256",
                  lambda t: a.half_open(t, count=300, hold=5.0), 1, {"nofile": 256}),
    "bad-offset": ("10 recovering CONNECTs with a superscript-digit offset (\"²\")",
                   lambda t: a.bad_recovery(t, rounds=10), 1, {}),
}


async def run_one(name: str, bystanders: int, tmp: Path) -> by.Result:
    what, attack, boards, options = ATTACKS[name]
    redis = None
    started: list[Board] = []
    try:
        extra = []
        if boards > 1:
            redis = RedisServer(tmp / f"redis-{name}").start()
            extra = [f"--redis={redis.url}"]
        for n in range(boards):
            label = f"abuse-{name}-{n}"
            if "nofile" in options:
                board = LimitedBoard(tmp / f"{label}.db", name=label, args=board_args(extra),
                                     nofile=options["nofile"])
            else:
                board = Board(tmp / f"{label}.db", name=label, args=board_args(extra))
            started.append(board.start())
        target = a.Target([b.port for b in started], [b.proc.pid for b in started],
                          [Path(b.log_path) for b in started])
        result = await by.measure(name, target, attack, bystanders=bystanders)
        result.extra["what"] = what
        result.extra["alive"] = all(b.running() for b in started)
        return result
    finally:
        for board in started:
            board.stop()
        if redis is not None:
            redis.stop()


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms" if value < 10 else f"{value:.0f} s"


def table(results: list[by.Result]) -> str:
    head = ("attack", "dropped", "p99", "lost", "attacker posts", "RSS", "log", "healthz", "poster")
    rows = [head]
    for r in results:
        allowed = f"{r.attacker_posts} ({r.attacker_session_most}/session)" if r.attacker_posts else "0"
        if r.attacker_posts and r.allowed_posts is not None:
            allowed += f", limit {r.allowed_posts}/session"
        health = seconds(r.healthz_worst) + (f", {r.healthz_failed}/{r.healthz_probes} none"
                                             if r.healthz_failed else "")
        lost = f"{r.expected - r.delivered}/{r.expected}"
        rows.append((r.attack, f"{r.dropped}/{r.bystanders}", seconds(r.p99), lost,
                     allowed, f"+{r.rss_growth_kb / 1024:.1f} MB",
                     (f"{r.log_bytes / 1e6:.2f} MB" if r.log_bytes >= 10_000 else f"{r.log_bytes} B")
                     + (f", {r.tracebacks} tracebacks" if r.tracebacks else ""),
                     health, f"{r.poster_acked}/{r.poster_sent}"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    for r in results:
        refused = r.extra.get("poster_refused")
        lines.append(f"{r.attack}: {r.extra.get('what')}; {r.outcome}"
                     + (f"; the poster's unacked posts got {refused}" if refused else "")
                     + ("" if r.extra.get("alive", True) else "; THE BOARD PROCESS DIED"))
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("attacks", nargs="*", help=f"some of {', '.join(ATTACKS)} (default: all)")
    parser.add_argument("--bystanders", type=int, default=20)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    names = args.attacks or list(ATTACKS)
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        parser.error(f"unknown attack {', '.join(unknown)}: choose among {', '.join(ATTACKS)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="board-abuse-") as tmp:
        for name in names:
            print(f"... {name}", file=sys.stderr, flush=True)
            results.append(await run_one(name, args.bystanders, Path(tmp)))
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
