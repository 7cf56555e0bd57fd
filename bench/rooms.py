#!/usr/bin/env python3
"""What room-targeted traffic costs the processes of a cluster that have no member in the room.

    python bench/rooms.py                          # 8 processes, 1,000 and 4,000 emits/s, 3 rounds
    python bench/rooms.py --processes 8 --rates 2000 --rounds 1 --duration 4

Every process of a cluster reads every entry of the Redis stream (handlers/cluster/redis_adapter.py),
even an emit to a room it has no member in. Here: a fresh redis-server and P Board processes on it
(bench/board_app.py --redis), one client in its own room on each process (the official python-socketio
client, over WebSocket); the client of process 1 asks it to emit `tick` to its room only, at a fixed rate
(`room_ticks`). CPU time of every process and of redis-server (psutil) over a quiet window and over the
traffic window of the same length: the difference, per emit, is what an entry costs a process that
delivers it to nobody (processes 2..P) and the one that makes and delivers it (process 1). The machine's
other load is reported (its CPUs' busy time not ours). Loopback only, bounded in time.
"""
import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import free_port, stop, wait_port  # noqa: E402

HERE = Path(__file__).resolve().parent


def cpu_seconds(procs: dict) -> dict:
    out = {}
    for name, proc in procs.items():
        t = psutil.Process(proc.pid).cpu_times()
        out[name] = t.user + t.system
    return out


def machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


async def one_run(a: argparse.Namespace, rate: int) -> dict:
    procs: dict[str, subprocess.Popen] = {}
    tmp = tempfile.mkdtemp(prefix="board-rooms-")
    clients = []
    try:
        rport = free_port()
        procs["redis"] = subprocess.Popen(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(rport), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        wait_port(rport)
        ports = [free_port() for _ in range(a.processes)]
        for i, port in enumerate(ports):
            procs[f"p{i + 1}"] = subprocess.Popen(
                [sys.executable, str(HERE / "board_app.py"), str(port), f"--redis=redis://127.0.0.1:{rport}/0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for port in ports:
            wait_port(port)
        for i, port in enumerate(ports):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=10)
            await client.call("join", f"room-{i + 1}", timeout=10)
            clients.append(client)
        got = asyncio.Event()
        ticks = [0]

        def tick(n: int, *offset: str) -> None:
            ticks[0] += 1

        clients[0].on("tick", tick)
        await asyncio.sleep(1.0)  # the joins reach Redis, start-up work settles
        count = int(rate * a.duration)
        window = {}
        for phase in ("quiet", "traffic"):
            before, busy0, began = cpu_seconds(procs), machine_busy(), time.monotonic()
            if phase == "quiet":
                await asyncio.sleep(a.duration)
            else:
                await clients[0].call("room_ticks", ("room-1", count, rate), timeout=a.duration * 4 + 10)
            took = time.monotonic() - began
            after, busy1 = cpu_seconds(procs), machine_busy()
            ours = sum(after[k] - before[k] for k in procs)
            window[phase] = {"took": took, "cpu": {k: after[k] - before[k] for k in procs},
                             "other_pct": 100 * max(0.0, (busy1 - busy0) - ours) / took / psutil.cpu_count()}
        quiet, traffic = window["quiet"], window["traffic"]
        scale = quiet["took"] and traffic["took"] / quiet["took"]

        def extra(name: str) -> float:  # CPU seconds the traffic added, the quiet window's pace taken off
            return traffic["cpu"][name] - quiet["cpu"][name] * scale

        bystanders = [extra(f"p{i}") for i in range(2, a.processes + 1)]
        return {
            "rate": rate, "emits": count, "received": ticks[0], "took_s": traffic["took"],
            "bystander_us_per_entry": statistics.median(bystanders) / count * 1e6,
            "bystander_share_of_core_pct": statistics.median(bystanders) / traffic["took"] * 100,
            "bystanders_all_pct": sum(bystanders) / traffic["took"] * 100,
            "sender_us_per_entry": extra("p1") / count * 1e6,
            "redis_us_per_entry": extra("redis") / count * 1e6,
            "other_pct": (quiet["other_pct"] + traffic["other_pct"]) / 2,
        }
    finally:
        for client in clients:
            try:
                await asyncio.wait_for(client.disconnect(), 5)
            except Exception:
                pass
        for proc in procs.values():
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", type=int, default=8)
    p.add_argument("--rates", default="1000,4000", help="emits per second to one room, comma list")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of each window")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    results: dict[int, list[dict]] = {r: [] for r in rates}
    for round_ in range(a.rounds):
        for rate in rates:
            r = asyncio.run(one_run(a, rate))
            results[rate].append(r)
            print(f"round {round_ + 1} rate {rate}/s: " + ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
    print(f"\n{a.processes} processes on one Redis, one client in its own room on each; process 1 emits to its "
          f"room only; medians over {a.rounds} round(s) (min-max)\n")
    print("| emits/s to one room | CPU per entry, a process with no member in the room (µs) | its share of a "
          "core | all bystanders together, % of a core | CPU per entry, the sending process (µs) | "
          "Redis CPU per entry (µs) | other load on the machine % |")
    print("|---|---|---|---|---|---|---|")
    for rate, rs in results.items():
        def cell(key: str) -> str:
            vals = [r[key] for r in rs]
            return f"{statistics.median(vals):.3g} ({min(vals):.3g}–{max(vals):.3g})"
        print(f"| {rate:,} | {cell('bystander_us_per_entry')} | {cell('bystander_share_of_core_pct')} % | "
              f"{cell('bystanders_all_pct')} | {cell('sender_us_per_entry')} | {cell('redis_us_per_entry')} | "
              f"{cell('other_pct')} |")


if __name__ == "__main__":
    main()
