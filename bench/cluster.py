#!/usr/bin/env python3
"""What Redis costs a broadcast: fan-out to the same clients, one process alone against a cluster.

    python bench/cluster.py                     # 1,000 clients, 3 rounds, 8 s each
    python bench/cluster.py --clients 200 --rounds 1 --duration 4

Configurations, interleaved in each round, each with fresh processes and a fresh redis-server:
  alone        one Board process, in memory (no Redis)
  redis-1      one Board process on Redis (every broadcast goes through the stream and back)
  redis-2      two Board processes on Redis, the clients split between them
Before and after a change, in one run: `--base ../base --configs alone,redis-1@base,redis-1` runs the
Board of the checkout ../base for the configurations marked @base (the load generator is this one's).

With --scenario echo-polling: long-polling clients doing emit-with-ack round trips, each HTTP request
sent to the next process in turn (no stickiness), so in redis-2 every other request is relayed to the
process that owns its session: the cost of needing no sticky sessions.

The load generator (bench/loadgen.js, raw Engine.IO over ws) keeps `window` broadcasts in flight
and measures deliveries/s and the latency of each delivery. CPU shares are sampled with psutil
over the measured window for every process: the Board processes, redis-server, the generator;
the Board processes' CPU time per delivery is steadier than throughput when the machine is shared.
`--profile CONFIG` records that configuration's first Board process with py-spy and prints a summary;
`--counts` says how the fan-out was batched: packets per WebSocket write, entries per stream read
and emits per Redis pipeline, averaged over the run (bench/counted_app.py).
This machine has 2 cores for all of them, so the cluster cannot show more throughput here; what
it shows is the cost Redis adds per broadcast and where the CPU goes. Loopback only.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import OUT, Profiler, summarize_profile  # noqa: E402


class NoPin:
    """The profiler unpinned: this benchmark pins nothing."""

    @staticmethod
    def loadgen(argv: list) -> list:
        return argv

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cpu(procs: dict) -> dict:
    out = {}
    for name, proc in procs.items():
        try:
            t = psutil.Process(proc.pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            out[name] = 0.0
    return out


def run(config: str, a: argparse.Namespace) -> dict:
    config, _, base = config.partition("@")  # "redis-1@base": the Board of the --base checkout
    apps = Path(a.base).resolve() / "bench" if base else HERE
    procs: dict[str, subprocess.Popen] = {}
    tmp = tempfile.mkdtemp(prefix="board-bench-")
    try:
        args = []
        if config != "alone":
            rport = free_port()
            procs["redis"] = subprocess.Popen(
                [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
            wait_port(rport)
            args = [f"--redis=redis://127.0.0.1:{rport}/0"]
        ports = [free_port() for _ in range(2 if config == "redis-2" else 1)]
        for i, port in enumerate(ports):
            app = [str(apps / "board_app.py")]
            if a.counts:  # the counters of this checkout, around the Board of either
                app = [str(HERE / "counted_app.py"), os.path.join(tmp, f"counts{i + 1}.json"), str(apps)]
            procs[f"board{i + 1}"] = subprocess.Popen([sys.executable, *app, str(port), *args],
                                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports:
            wait_port(port)
        gen = subprocess.Popen(
            ["node", str(HERE / "loadgen.js"), f"--scenario={a.scenario}", f"--port={ports[0]}",
             f"--ports={','.join(map(str, ports))}", f"--clients={a.clients}", f"--duration={a.duration}",
             *([f"--window={a.window}"] if a.scenario == "fanout" else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs["loadgen"] = gen
        result, before, began, profiler = None, None, 0.0, None
        for line in gen.stdout:
            msg = json.loads(line)
            if msg.get("mark") == "start":
                before, began = cpu(procs), time.monotonic()
                if a.profile and config + ("@base" if base else "") == a.profile:
                    OUT.mkdir(exist_ok=True)
                    profiler = Profiler(procs["board1"].pid, a.duration, OUT / f"profile-cluster-{config}.txt", NoPin())
            elif msg.get("mark") == "end":
                after, took = cpu(procs), time.monotonic() - began
                shares = {k: round(100 * (after[k] - before[k]) / took, 1) for k in procs}
            if "mark" in msg:
                gen.stdin.write("\n")
                gen.stdin.flush()
            if "result" in msg:
                result = msg["result"]
                break
        gen.wait(30)
        if profiler is not None:
            print(profiler.finish() or summarize_profile(profiler.out_path), flush=True)
        if result is None:
            raise RuntimeError(f"{config}: the load generator gave no result")
        latency = result.get("latency") or {}
        out = {"deliveries_s": result.get("deliveries_per_s") or result.get("rt_per_s"),
               "p50_ms": latency.get("p50_ms"), "p99_ms": latency.get("p99_ms"), "cpu_pct": shares}
        for proc in procs.values():
            stop(proc)
        if a.counts:
            out["counts"] = {f"board{i + 1}": summarize_counts(Path(tmp) / f"counts{i + 1}.json")
                             for i in range(len(ports))}
        return out
    finally:
        for proc in procs.values():
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def summarize_counts(path: Path) -> dict:
    """bench/counted_app.py's counts as averages: packets per write, entries per read, emits per pipeline."""
    if not path.exists():
        return {}
    out = {}
    for key, pairs in json.loads(path.read_text()).items():
        calls = sum(n for _, n in pairs)
        out[key] = round(sum(k * n for k, n in pairs) / calls, 2) if calls else None
    return out


def board_cpu_per(run: dict) -> float:
    """CPU µs the Board processes spent per delivery: steadier than throughput on a shared machine."""
    busy = sum(v for k, v in run["cpu_pct"].items() if k.startswith("board"))
    return busy / 100 / run["deliveries_s"] * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="fanout", choices=["fanout", "echo-polling"])
    p.add_argument("--clients", type=int, default=0, help="default: 1000 for fanout, 50 for echo-polling")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--configs", default="alone,redis-1,redis-2")
    p.add_argument("--base", default="", help="another checkout (e.g. `git worktree add ../base main`): "
                   "configurations named with @base (redis-1@base) run its Board, interleaved with this one's")
    p.add_argument("--counts", action="store_true",
                   help="run the Board processes with counters (bench/counted_app.py); CPU figures then include them")
    p.add_argument("--profile", default="", help="a configuration whose first process py-spy records (summary printed)")
    a = p.parse_args()
    a.clients = a.clients or (1000 if a.scenario == "fanout" else 50)
    if "@base" in a.configs and not a.base:
        p.error("a configuration @base needs --base")
    configs = a.configs.split(",")
    runs: dict[str, list] = {c: [] for c in configs}
    for r in range(a.rounds):
        for c in configs:
            res = run(c, a)
            runs[c].append(res)
            print(f"round {r + 1} {c}: {json.dumps(res)}", flush=True)
    print(f"\n{a.scenario}, {a.clients} clients, {a.rounds} round(s) of {a.duration} s; medians")
    unit = "deliveries/s" if a.scenario == "fanout" else "round trips/s"
    print(f"| configuration | {unit} | ÷ alone | p50 ms | p99 ms | Board CPU µs per delivery | CPU % per process |")
    print("|---|---|---|---|---|---|---|")
    base = statistics.median(x["deliveries_s"] for x in runs[configs[0]])
    for c in configs:
        d = statistics.median(x["deliveries_s"] for x in runs[c])
        p50 = statistics.median(x["p50_ms"] for x in runs[c])
        p99 = statistics.median(x["p99_ms"] for x in runs[c])
        names = runs[c][0]["cpu_pct"].keys()
        shares = ", ".join(f"{n} {statistics.median(x['cpu_pct'][n] for x in runs[c]):.0f}" for n in names)
        per = statistics.median(board_cpu_per(x) for x in runs[c])
        print(f"| {c} | {d:,.0f} | {d / base:.2f}× | {p50:.1f} | {p99:.1f} | {per:.2f} | {shares} |")
    if a.counts:
        print("\nbatching (averages per run, medians over the rounds):")
        for c in configs:
            for board, numbers in runs[c][0]["counts"].items():
                said = ", ".join(f"{k} {statistics.median(x['counts'][board][k] or 0 for x in runs[c]):.2f}"
                                 for k in numbers)
                print(f"  {c} {board}: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
