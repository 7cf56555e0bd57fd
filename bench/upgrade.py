#!/usr/bin/env python3
"""What an upgrade to WebSocket costs when it reaches another process: the session moves there.

    python bench/upgrade.py                       # 300 clients, 20 at a time, 3 rounds
    python bench/upgrade.py --clients 100 --rounds 1

Two Board processes on one redis-server (bench/board_app.py --redis). Each client opens a
long-polling session on the first process, joins the namespace, then upgrades as Engine.IO
clients do: a WebSocket with its sid, `2probe`, `3probe`, `5`, and one `echo` with an ack
over the WebSocket. Interleaved in each round:
  local   the WebSocket reaches the session's own process (what sticky sessions give)
  moved   it reaches the other process: the session moves there (handlers/cluster/handoff.py)
Timed per client: probe (2probe -> 3probe), then upgrade (5 -> the echo's ack, the first
round trip on the WebSocket, after the move). Loopback only; bounded in count and time.
"""
import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cluster import free_port, stop, wait_port  # noqa: E402


async def one(http: AsyncHTTPClient, own: int, ws_port: int) -> tuple[float, float]:
    base = f"http://127.0.0.1:{own}/socket.io/?EIO=4&transport=polling"
    sid = json.loads((await http.fetch(base)).body[1:])["sid"]
    url = f"{base}&sid={sid}"
    await http.fetch(url, method="POST", body="40")
    assert (await http.fetch(url)).body.startswith(b"40")
    held = asyncio.ensure_future(http.fetch(url, request_timeout=60))  # the GET a client keeps open
    ws = await websocket_connect(f"ws://127.0.0.1:{ws_port}/socket.io/?EIO=4&transport=websocket&sid={sid}")
    ws.protocol.stream.set_nodelay(True)  # as browsers' WebSockets: no Nagle delay between "5" and the echo
    began = time.perf_counter()
    await ws.write_message("2probe")
    assert await ws.read_message() == "3probe"
    probed = time.perf_counter()
    await held
    await ws.write_message("5")
    await ws.write_message('421["echo","x"]')
    while (message := await ws.read_message()) != '431["x"]':
        assert message is not None, "closed"
    done = time.perf_counter()
    ws.close()
    return (probed - began) * 1000, (done - probed) * 1000


async def batch(ports: list[int], mode: str, clients: int, concurrency: int) -> list[tuple[float, float]]:
    http = AsyncHTTPClient(max_clients=concurrency * 2)
    gate = asyncio.Semaphore(concurrency)
    ws_port = ports[0] if mode == "local" else ports[1]

    async def bounded() -> tuple[float, float]:
        async with gate:
            return await asyncio.wait_for(one(http, ports[0], ws_port), 30)
    return await asyncio.gather(*(bounded() for _ in range(clients)))


def run(mode: str, a: argparse.Namespace) -> dict:
    procs: list[subprocess.Popen] = []
    tmp = tempfile.mkdtemp(prefix="board-bench-")
    try:
        rport = free_port()
        procs.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(rport), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL))
        wait_port(rport)
        ports = [free_port(), free_port()]
        for port in ports:
            procs.append(subprocess.Popen([sys.executable, str(HERE / "board_app.py"), str(port),
                                           f"--redis=redis://127.0.0.1:{rport}/0"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            wait_port(port)
        began = time.perf_counter()
        times = asyncio.run(batch(ports, mode, a.clients, a.concurrency))
        took = time.perf_counter() - began
        probes, upgrades = sorted(t[0] for t in times), sorted(t[1] for t in times)
        return {"probe_p50": statistics.median(probes), "probe_p99": probes[int(len(probes) * 0.99) - 1],
                "upgrade_p50": statistics.median(upgrades), "upgrade_p99": upgrades[int(len(upgrades) * 0.99) - 1],
                "clients_s": a.clients / took}
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    runs: dict[str, list] = {"local": [], "moved": []}
    for r in range(a.rounds):
        for mode in runs:
            res = run(mode, a)
            runs[mode].append(res)
            print(f"round {r + 1} {mode}: {json.dumps({k: round(v, 2) for k, v in res.items()})}", flush=True)
    print(f"\n{a.clients} clients, {a.concurrency} at a time, {a.rounds} round(s); medians over rounds")
    print("| WebSocket reaches | probe p50 ms | probe p99 ms | upgrade p50 ms | upgrade p99 ms | sessions upgraded/s |")
    print("|---|---|---|---|---|---|")
    for mode, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"| {'the session’s process' if mode == 'local' else 'another process (moved)'} | "
              f"{med['probe_p50']:.2f} | {med['probe_p99']:.2f} | {med['upgrade_p50']:.2f} | "
              f"{med['upgrade_p99']:.2f} | {med['clients_s']:,.0f} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
