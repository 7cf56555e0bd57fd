#!/usr/bin/env python3
"""Nothing lost at scale: official clients behind a network that keeps cutting them.

    python bench/recovery.py                       # 200 clients, 600 broadcasts every 50 ms,
                                                   # 10% of live connections reset every 2 s,
                                                   # websocket, polling and default transports
    python bench/recovery.py --clients 50 --ticks 200 --modes websocket

For each transport mode: Board's hub (bench/board_app.py, recovery on by default), our
fault proxy (tests/e2e/faultproxy.py, its own process, RSTs both ways), and the official
socket.io-client 4.8 (tests/node/recovery.js) with N sockets through the proxy. A
python-socketio client connected directly asks the hub for the ticks. Prints, per mode,
what every client received: delivered %, duplicates, out of order, the unluckiest client,
connections reset and how many comebacks recovered. Loopback only; bounded in time.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import socketio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, cwd=ROOT)


async def stop(proc: asyncio.subprocess.Process) -> bytes:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    except asyncio.TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    return out or b""


async def run_mode(mode: str, a: argparse.Namespace) -> dict:
    port = free_port()
    server = await start(sys.executable, str(HERE / "board_app.py"), str(port), f"--recover_within={a.recover_within}")
    await server.stdout.readline()  # "listening on PORT"
    proxy = await start(sys.executable, str(ROOT / "tests" / "e2e" / "faultproxy.py"), str(port),
                        str(a.cut_every), str(a.cut_fraction))
    proxy_port = int(await proxy.stdout.readline())
    deadline_ms = int((a.ticks * a.every / 1000 + 60) * 1000)
    node = await start("node", str(ROOT / "tests" / "node" / "recovery.js"), f"http://127.0.0.1:{proxy_port}",
                       mode, str(a.clients), str(a.ticks), str(deadline_ms))
    driver = socketio.AsyncClient()
    try:
        ready = json.loads(await asyncio.wait_for(node.stdout.readline(), 60))
        assert ready == {"ready": True}, ready
        await driver.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        started = time.monotonic()
        await driver.call("ticks", (a.ticks, a.every), timeout=a.ticks * a.every / 1000 + 60)
        summary = json.loads(await asyncio.wait_for(node.stdout.readline(), 90))
        elapsed = time.monotonic() - started
    finally:
        await driver.disconnect()
        await stop(node)
        proxy_out = (await stop(proxy)).decode()
        await stop(server)
    clients = summary["clients"]
    unique = [a.ticks - c["missing"] for c in clients]
    return {
        "mode": mode,
        "finished": summary["done"],
        "delivered_pct": 100.0 * sum(unique) / (a.ticks * len(clients)),
        "worst_client_pct": 100.0 * min(unique) / a.ticks,
        "duplicates": sum(c["duplicates"] for c in clients),
        "out_of_order": sum(c["outOfOrder"] for c in clients),
        "resets": int(proxy_out.split("resets", 1)[1]) if "resets" in proxy_out else None,
        "comebacks": sum(c["connects"] - 1 for c in clients),
        "recovered": sum(c["recovered"] for c in clients),
        "seconds": round(elapsed, 1),
    }


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--ticks", type=int, default=600, help="broadcasts (default 600)")
    p.add_argument("--every", type=int, default=50, help="ms between broadcasts (default 50)")
    p.add_argument("--cut-every", type=float, default=2.0, help="s between resets (default 2)")
    p.add_argument("--cut-fraction", type=float, default=0.1, help="share of live connections reset (default 0.1)")
    p.add_argument("--modes", default="websocket,polling,default")
    p.add_argument("--recover_within", type=int, default=120_000, help="the hub's window, ms (0: recovery off)")
    a = p.parse_args()
    ok = True
    print(f"{a.clients} clients, {a.ticks} broadcasts every {a.every} ms, "
          f"{a.cut_fraction:.0%} of live connections reset every {a.cut_every} s, recover_within={a.recover_within}")
    for mode in a.modes.split(","):
        r = await run_mode(mode, a)
        print(json.dumps(r))
        ok &= r["delivered_pct"] == 100.0 and r["duplicates"] == 0 and r["out_of_order"] == 0
    print("every broadcast once, in order, to every client" if ok else "LOSS, DUPLICATES OR DISORDER")
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(asyncio.run(main()))
