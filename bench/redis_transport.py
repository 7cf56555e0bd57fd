#!/usr/bin/env python3
"""Pub/sub or streams: what each Redis transport costs a cluster's fan-out, measured side by side.

    python bench/redis_transport.py                      # 3 rounds, 2 and 8 subscribers, 100k x 120 B, ~5 min
    python bench/redis_transport.py --size 1024 --messages 50000 --rounds 2
    python bench/redis_transport.py --designs pubsub streams --subscribers 4 --rate 2000

Starts its own redis-server (free 127.0.0.1 port, no persistence, temporary directory, stopped by
its PID at the end). Each trial is 1 publisher process and K subscriber processes (fork, asyncio on
uvloop as Board runs, redis.asyncio with hiredis, as handlers/cluster/redis_adapter.py), fresh processes and
FLUSHALL before each. Designs:

  pubsub      PUBLISH to one channel; subscribers SUBSCRIBE and read with `pubsub.listen()` as
              handlers/cluster/subscriber.py does. No log: nothing to recover from.
  streams     Board's design: XADD PREFIX:emits MAXLEN ~ 10000, pipelined by one writer in batches of
              up to 512; every reader XREAD BLOCK 2000 COUNT 1000 from its last id. The stream is the log.
  pubsub+log  PUBLISH plus an XADD (MAXLEN ~ 10000) per message, a writer batch in one MULTI/EXEC: what a
              pub/sub design needs to also keep a recovery log (log and channel in the same order).
  pubsub+lua  the same in one Lua script per message, Centrifugo's way (centrifuge's
              broker_history_add_stream.lua: XADD to the history stream, then PUBLISH the payload with the
              offset the XADD gave, so a subscriber knows where to resume in the log).

Per trial:
  throughput  --messages of --size bytes, as fast as a bounded window allows: the publisher keeps at most
              --window messages not yet received by the slowest subscriber (shared memory counters), so a
              slow reader is never overrun (the window is below MAXLEN and far below pub/sub's output
              buffer limit). Delivered msg/s = messages / (first publish -> last subscriber has all).
              Subscribers check sequence numbers: lost and duplicated messages are counted.
  latency     --rate msg/s offered open-loop for --latency-seconds (timestamp in the payload, taken when the
              app "emits", so queueing in the writer counts); p50/p99 of publish -> receipt over every
              message at every subscriber (CLOCK_MONOTONIC is system-wide).
  Redis CPU   redis-server's user+system CPU seconds over the trial (from the publisher's first message
              to every process's report), per 100k messages published (each delivered to K subscribers):
              INFO cpu (getrusage, µs resolution); psutil on the PID (10 ms ticks) is printed alongside
              in the progress lines as a check.
  loss        (once per design, one subscriber) disconnected while 5,000 messages are published, then
              back; stalled (connected, not reading) during 5,000 x 120 B; stalled during 40,000 x 1 KB
              (more than pub/sub's default output buffer hard limit of 32 MB and more than MAXLEN ~ 10000).
              A subscriber that loses its connection reconnects; the log designs then read what they missed
              from the log (XRANGE after the last offset they saw).

Designs are interleaved in each round (the order rotates), each K in turn. Cells: median over rounds
(min-max). This machine has 2 cores for redis-server, the publisher and K subscribers, and other work may
run concurrently: "other CPU" is the machine's busy time during the trial not charged to our processes.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque

import psutil

DESIGNS = ("pubsub", "streams", "pubsub+log", "pubsub+lua")
PREFIX = "bench"
STREAM = f"{PREFIX}:emits"
CHANNEL = f"{PREFIX}:channel"
MAXLEN = 10_000
BATCH = 512
HEAD = 31  # b"%010d %019d " : sequence number, monotonic ns

# Centrifugo-style: the log entry and the publication in one script; the payload carries the offset.
PUBLISH_WITH_LOG = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'd', ARGV[1])
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[1])
return id
"""


# -- helpers ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_loop_policy(loop: str) -> None:
    if loop == "uvloop":
        try:
            import uvloop
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass


def client(port: int, **kw):
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    # As the adapter: no retries inside the client, a lost connection is seen.
    return redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0), **kw)


def payload(seq: int, pad: bytes) -> bytes:
    return b"%010d %019d " % (seq, time.monotonic_ns()) + pad


def body(design: str, data: bytes) -> bytes:
    """The message as the subscriber sees it: pubsub+lua prefixes the stream id."""
    if design == "pubsub+lua":
        return data.partition(b" ")[2]
    return data


def queue_ops(pipe, design: str, batch: list[bytes], sha: str) -> None:
    for data in batch:
        if design == "pubsub":
            pipe.publish(CHANNEL, data)
        elif design == "streams":
            pipe.xadd(STREAM, {"d": data}, maxlen=MAXLEN, approximate=True)
        elif design == "pubsub+log":
            pipe.xadd(STREAM, {"d": data}, maxlen=MAXLEN, approximate=True)
            pipe.publish(CHANNEL, data)
        else:
            pipe.evalsha(sha, 2, STREAM, CHANNEL, data, MAXLEN)


async def send(r, design: str, batch: list[bytes], sha: str) -> None:
    pipe = r.pipeline(transaction=(design == "pubsub+log"))
    queue_ops(pipe, design, batch, sha)
    await pipe.execute()


# -- subscriber process ----------------------------------------------------------------------

class Tally:
    def __init__(self, latency: bool):
        self.count = self.lost = self.dups = self.first = self.last = 0
        self.expect = 0
        self.latency = latency
        self.lat: list[int] = []


async def subscribe_loop(design: str, r, t: Tally, n: int, progress, idx: int, ready) -> None:
    lat = t.lat if t.latency else None
    if design == "streams":
        last = "0-0"
        with ready.get_lock():
            ready.value += 1
        while t.count < n:
            found = await r.xread({STREAM: last}, count=1000, block=2000)
            now = time.monotonic_ns()
            if not t.first and found:
                t.first = now
            for _, entries in found or ():
                for entry_id, fields in entries:
                    data = fields[b"d"]
                    seq = int(data[:10])
                    if seq != t.expect:
                        if seq > t.expect:
                            t.lost += seq - t.expect
                        else:
                            t.dups += 1
                    t.expect = seq + 1
                    t.count += 1
                    if lat is not None:
                        lat.append(now - int(data[11:30]))
                last = entry_id
            t.last = now
            progress[idx] = t.count
        return
    ps = r.pubsub()
    await ps.subscribe(CHANNEL)
    while (await ps.get_message(timeout=5)) is None:  # the subscription is confirmed
        pass
    with ready.get_lock():
        ready.value += 1
    async for item in ps.listen():
        if item["type"] != "message":
            continue
        now = time.monotonic_ns()
        data = body(design, item["data"])
        seq = int(data[:10])
        if seq != t.expect:
            if seq > t.expect:
                t.lost += seq - t.expect
            else:
                t.dups += 1
        t.expect = seq + 1
        t.count += 1
        if not t.first:
            t.first = now
        t.last = now
        if lat is not None:
            lat.append(now - int(data[11:30]))
        progress[idx] = t.count
        if t.count >= n:
            break


async def subscriber(cfg: dict, idx: int, progress, ready, out) -> None:
    r = client(cfg["port"])
    t = Tally(cfg["mode"] == "latency")
    cpu0 = None
    task = asyncio.ensure_future(subscribe_loop(cfg["design"], r, t, cfg["n"], progress, idx, ready))
    while ready.value < cfg["k"] and not task.done():
        await asyncio.sleep(0.005)
    cpu0 = time.process_time()
    try:
        await asyncio.wait_for(task, cfg["deadline"] - time.monotonic())
    except asyncio.TimeoutError:
        pass
    except Exception as exc:  # a lost connection: report what arrived
        print(f"subscriber {idx}: {exc!r}", file=sys.stderr)
    cpu = time.process_time() - cpu0
    t.lost += max(0, cfg["n"] - t.expect)  # never arrived at all
    out.put({"role": "sub", "count": t.count, "lost": t.lost, "dups": t.dups, "first": t.first,
             "last": t.last, "cpu": cpu, "lat": t.lat[len(t.lat) // 10:] if t.latency else []})
    await r.aclose()


# -- publisher process -----------------------------------------------------------------------

async def publisher(cfg: dict, progress, out) -> None:
    r = client(cfg["port"])
    design, n, k = cfg["design"], cfg["n"], cfg["k"]
    sha = await r.script_load(PUBLISH_WITH_LOG)
    pad = b"x" * max(0, cfg["size"] - HEAD)
    cpu0 = time.process_time()
    start = time.monotonic_ns()
    sent = 0
    if cfg["mode"] == "throughput":
        window = cfg["window"]
        while sent < n and time.monotonic() < cfg["deadline"]:
            room = window - (sent - min(progress[:k])) if k else window
            if room <= 0:
                await asyncio.sleep(0.0002)
                continue
            b = min(BATCH, room, n - sent)
            await send(r, design, [payload(s, pad) for s in range(sent, sent + b)], sha)
            sent += b
    else:  # open loop at `rate`: the app emits into a queue, one writer task sends it (as the adapter)
        queue: deque[bytes] = deque()
        wake = asyncio.Event()
        done = False

        async def writer():
            while True:
                await wake.wait()
                wake.clear()
                while queue:
                    await send(r, design, [queue.popleft() for _ in range(min(len(queue), BATCH))], sha)
                if done:
                    return

        task = asyncio.ensure_future(writer())
        rate = cfg["rate"]
        t0 = time.monotonic()
        while sent < n and time.monotonic() < cfg["deadline"]:
            due = min(n, int((time.monotonic() - t0) * rate) + 1)
            while sent < due:
                queue.append(payload(sent, pad))
                sent += 1
            wake.set()
            await asyncio.sleep(0.001)
        done = True
        wake.set()
        await asyncio.wait_for(task, max(0.1, cfg["deadline"] - time.monotonic()))
    end = time.monotonic_ns()
    out.put({"role": "pub", "sent": sent, "start": start, "end": end, "cpu": time.process_time() - cpu0})
    await r.aclose()


def run_child(fn, *args) -> None:
    new_loop_policy(args[0]["loop"])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        asyncio.run(fn(*args))
    except Exception as exc:
        print(f"{fn.__name__}: {exc!r}", file=sys.stderr)
        args[-1].put({"role": "error", "error": repr(exc)})


# -- one trial -------------------------------------------------------------------------------

def info_cpu(r) -> float:
    """redis-server's own CPU seconds (getrusage, µs resolution; psutil's /proc reading is in 10 ms ticks)."""
    cpu = r.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def trial(a, redis_proc, design: str, k: int, mode: str, size: int) -> dict:
    import redis as sync_redis
    r = sync_redis.Redis(host="127.0.0.1", port=a.port)
    r.flushall()
    n = a.messages if mode == "throughput" else int(a.rate * a.latency_seconds)
    ctx = mp.get_context("fork")
    progress = ctx.Array("q", max(k, 1), lock=False)
    ready = ctx.Value("i", 0)
    out = ctx.Queue()
    deadline = time.monotonic() + a.trial_timeout
    cfg = {"port": a.port, "design": design, "k": k, "n": n, "mode": mode, "size": size, "rate": a.rate,
           "window": a.window, "deadline": deadline, "loop": a.loop}
    subs = [ctx.Process(target=run_child, args=(subscriber, cfg, i, progress, ready, out)) for i in range(k)]
    sys0, own0, wall0, rall0 = psutil.cpu_times(), os.times(), time.monotonic(), sum(redis_proc.cpu_times()[:2])
    for p in subs:
        p.start()
    while ready.value < k and time.monotonic() < deadline:
        time.sleep(0.005)
    rcpu0, icpu0 = sum(redis_proc.cpu_times()[:2]), info_cpu(r)
    pub = ctx.Process(target=run_child, args=(publisher, cfg, progress, out))
    pub.start()
    results = []
    while len(results) < k + 1:
        try:
            results.append(out.get(timeout=max(0.1, deadline + 5 - time.monotonic())))
        except Exception:
            break
    rcpu, icpu = sum(redis_proc.cpu_times()[:2]) - rcpu0, info_cpu(r) - icpu0
    memory = r.memory_usage(STREAM, samples=0) if design != "pubsub" else 0
    for p in subs + [pub]:
        p.join(2)
        if p.is_alive():
            p.terminate()  # our own child, by its PID
            p.join(2)
    r.close()
    # Other CPU: the machine's busy time over the whole trial (processes started to reaped) less what our
    # processes used (redis-server, this script and its reaped children), over the machine's capacity.
    sys1, own1 = psutil.cpu_times(), os.times()
    ours = (sum(redis_proc.cpu_times()[:2]) - rall0 + (own1.user + own1.system + own1.children_user + own1.children_system)
            - (own0.user + own0.system + own0.children_user + own0.children_system))
    busy = (sum(sys1) - sys1.idle - getattr(sys1, "iowait", 0)) - (sum(sys0) - sys0.idle - getattr(sys0, "iowait", 0))
    other = max(0.0, busy - ours) / max(1e-9, time.monotonic() - wall0) / psutil.cpu_count() * 100
    pubs = [x for x in results if x["role"] == "pub"]
    sres = [x for x in results if x["role"] == "sub"]
    if not pubs or len(sres) < k:
        return {"error": [x for x in results if x["role"] == "error"] or "a process did not report"}
    p = pubs[0]
    last = max(x["last"] for x in sres) if sres else p["end"]
    elapsed = max(1e-9, (max(last, p["end"]) - p["start"]) / 1e9)
    delivered = min(x["count"] for x in sres) if sres else p["sent"]
    res = {"design": design, "k": k, "mode": mode, "size": size, "sent": p["sent"], "n": n,
           "rate": delivered / elapsed, "complete": delivered >= n,
           "lost": sum(x["lost"] for x in sres), "dups": sum(x["dups"] for x in sres),
           "redis_cpu": icpu / max(1, p["sent"]) * 1e5, "redis_share": icpu / elapsed,
           "redis_cpu_psutil": rcpu / max(1, p["sent"]) * 1e5,
           "sub_us": sum(x["cpu"] for x in sres) / max(1, sum(x["count"] for x in sres)) * 1e6,
           "pub_us": p["cpu"] / max(1, p["sent"]) * 1e6,
           "other": other, "memory": memory}
    if mode == "latency":
        lat = sorted(v for x in sres for v in x["lat"])
        if lat:
            res["p50"] = lat[len(lat) // 2] / 1e6
            res["p99"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1e6
    return res


# -- loss ------------------------------------------------------------------------------------

class Victim:
    """One subscriber that can be disconnected or stalled; the log designs recover from the log."""

    def __init__(self, design: str, port: int):
        self.design, self.port = design, port
        self.seen: set[int] = set()
        self.last_id = "0-0"       # streams and pubsub+lua: the last offset seen
        self.disconnects = 0       # by the server
        self.r = self.ps = None

    async def connect(self) -> None:
        self.r = client(self.port)
        if self.design == "streams":
            return
        self.ps = self.r.pubsub()
        await self.ps.subscribe(CHANNEL)
        while (await self.ps.get_message(timeout=5)) is None:
            pass
        if self.design in ("pubsub+log", "pubsub+lua") and self.seen:
            await self.recover()

    async def recover(self) -> None:
        """Read what was missed from the log (after subscribing, so nothing falls in between)."""
        low = "(" + self.last_id if self.design == "pubsub+lua" else "-"
        top = max(self.seen)
        for entry_id, fields in await self.r.xrange(STREAM, low, "+"):
            seq = int(fields[b"d"][:10])
            if self.design == "pubsub+lua" or seq > top:
                self.seen.add(seq)
                self.last_id = entry_id.decode()

    async def disconnect(self) -> None:
        if self.ps is not None:
            await self.ps.aclose()
        await self.r.aclose()
        self.r = self.ps = None

    async def read_until(self, seq: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while seq not in self.seen and time.monotonic() < deadline:
            try:
                if self.design == "streams":
                    found = await self.r.xread({STREAM: self.last_id}, count=1000, block=200)
                    for _, entries in found or ():
                        for entry_id, fields in entries:
                            self.seen.add(int(fields[b"d"][:10]))
                            self.last_id = entry_id.decode()
                    continue
                item = await self.ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
                if item is not None and item["type"] == "message":
                    data = item["data"]
                    if self.design == "pubsub+lua":
                        self.last_id = data.partition(b" ")[0].decode()
                    self.seen.add(int(body(self.design, data)[:10]))
            except Exception:  # the server closed the connection: subscribe again (and recover)
                self.disconnects += 1
                try:
                    await self.disconnect()
                except Exception:
                    pass
                await self.connect()


async def loss(cfg: dict, out) -> None:
    design = cfg["design"]
    pub = client(cfg["port"])
    await pub.config_set("client-output-buffer-limit", "pubsub 33554432 8388608 60")  # the default, said
    sha = await pub.script_load(PUBLISH_WITH_LOG)
    v = Victim(design, cfg["port"])
    await v.connect()
    seq = 0

    async def publish(count: int, size: int) -> range:
        nonlocal seq
        pad = b"x" * (size - HEAD)
        sent = range(seq, seq + count)
        for lo in range(seq, seq + count, BATCH):
            await send(pub, design, [payload(s, pad) for s in range(lo, min(lo + BATCH, seq + count))], sha)
        seq += count
        return sent

    rows = []
    await publish(1000, 120)
    await v.read_until(seq - 1, 5)
    for name in ("disconnected during 5,000 x 120 B", "stalled during 5,000 x 120 B",
                 "stalled during 40,000 x 1 KB"):
        drops = v.disconnects
        if name.startswith("disconnected"):
            await v.disconnect()
            gap = await publish(5000, 120)
            await v.connect()
        else:
            gap = await publish(5000 if "5,000" in name else 40000, 120 if "5,000" in name else 1024)
        await v.read_until(gap[-1], 5)
        tail = await publish(100, 120)  # live again?
        await v.read_until(tail[-1], 5)
        missing = sum(1 for s in gap if s not in v.seen)
        rows.append({"scenario": name, "lost": missing, "of": len(gap), "tail_ok": tail[-1] in v.seen,
                     "server_closed": v.disconnects - drops})
    await v.disconnect()
    await pub.aclose()
    out.put({"role": "loss", "rows": rows})


def loss_test(a, design: str) -> list[dict]:
    import redis as sync_redis
    sync_redis.Redis(host="127.0.0.1", port=a.port).flushall()
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    p = ctx.Process(target=run_child, args=(loss, {"port": a.port, "design": design, "loop": a.loop}, out))
    p.start()
    try:
        res = out.get(timeout=60)
    except Exception:
        res = {"rows": []}
    p.join(5)
    if p.is_alive():
        p.terminate()
        p.join(2)
    return res.get("rows", [])


# -- report ----------------------------------------------------------------------------------

def cell(values: list[float], fmt: str = "{:.3g}") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def report(a, results: list[dict], losses: dict, wall: float) -> str:
    lines = []
    for size in a.size:
        lines.append(f"\n### {size}-byte messages: {a.messages:,} for throughput, {a.rate:,} msg/s for "
                     f"{a.latency_seconds:g} s for latency; median over {a.rounds} round(s) (min–max)\n")
        lines.append("| design | K | delivered msg/s to every subscriber ↑ | lost / dup | "
                     "Redis CPU s per 100k msgs, flat out ↓ | Redis CPU, share of a core, flat out | "
                     f"p50 ms at {a.rate:,}/s ↓ | p99 ms at {a.rate:,}/s ↓ | "
                     f"Redis CPU s per 100k msgs at {a.rate:,}/s ↓ | subscriber CPU µs/msg | "
                     "publisher CPU µs/msg | other CPU % (tput / lat) |")
        lines.append("|" + "---|" * 12)
        for k in a.subscribers:
            for design in a.designs:
                tp = [r for r in results if r.get("design") == design and r["k"] == k
                      and r["size"] == size and r["mode"] == "throughput"]
                lt = [r for r in results if r.get("design") == design and r["k"] == k
                      and r["size"] == size and r["mode"] == "latency"]
                incomplete = sum(1 for r in tp + lt if not r["complete"])
                lost = sum(r["lost"] for r in tp + lt)
                dups = sum(r["dups"] for r in tp + lt)
                rates = [r["rate"] for r in tp]
                rate = (f"{num(statistics.median(rates))} ({num(min(rates))}–{num(max(rates))})"
                        if rates else "-")
                if incomplete:
                    rate += f" ({incomplete} run(s) hit the time limit)"
                lines.append(
                    f"| {design} | {k} | {rate} | {lost} / {dups} | {cell([r['redis_cpu'] for r in tp])} | "
                    f"{cell([r['redis_share'] for r in tp], '{:.2f}')} | "
                    f"{cell([r.get('p50') for r in lt])} | {cell([r.get('p99') for r in lt])} | "
                    f"{cell([r['redis_cpu'] for r in lt])} | {cell([r['sub_us'] for r in tp])} | "
                    f"{cell([r['pub_us'] for r in tp])} | "
                    f"{cell([r['other'] for r in tp], '{:.0f}')} / {cell([r['other'] for r in lt], '{:.0f}')} |")
        mem = [r for r in results if r["size"] == size and r["memory"] and r["mode"] == "throughput"]
        if mem:
            lines.append(f"\nThe log after a throughput run (MAXLEN ~ {MAXLEN:,}; MEMORY USAGE): "
                         + ", ".join(f"{d} {statistics.median(r['memory'] for r in mem if r['design'] == d) / 2**20:.1f} MiB"
                                     for d in a.designs if any(r["design"] == d for r in mem)) + ".")
        if len(set(a.subscribers)) >= 2:
            k1, k2 = min(a.subscribers), max(a.subscribers)
            lines.append(f"\nRedis CPU per message as a + b·K, fitted through K = {k1} and K = {k2} (medians), carried "
                         "to 10 and 100 subscribing processes: µs of Redis CPU per message, and the messages/s "
                         "that would fill one Redis core (a straight line through two noisy points: an order of "
                         "magnitude, not a prediction)\n")
            lines.append("| design | flat out: a + b·K µs | K=10 | K=100 | one core at K=100, msg/s | "
                         f"at {a.rate:,}/s: a + b·K µs | K=10 | K=100 | one core at K=100, msg/s |")
            lines.append("|" + "---|" * 9)
            for design in a.designs:
                row = [design]
                for mode in ("throughput", "latency"):
                    c = {}
                    for k in (k1, k2):
                        v = [r["redis_cpu"] for r in results if r.get("design") == design and r["k"] == k
                             and r["size"] == size and r["mode"] == mode]
                        c[k] = statistics.median(v) * 10 if v else None  # s per 100k -> µs per message
                    if None in c.values():
                        row += ["-"] * 4
                        continue
                    b = (c[k2] - c[k1]) / (k2 - k1)
                    base = c[k1] - b * k1
                    at = {k: base + b * k for k in (10, 100)}
                    row += [f"{base:.2f} + {b:.2f}·K", f"{at[10]:.1f}", f"{at[100]:.0f}",
                            f"{1e6 / at[100]:,.0f}" if at[100] > 0 else "-"]
                lines.append("| " + " | ".join(row) + " |")
    if losses:
        lines.append("\n### A subscriber that disconnects or falls behind (one subscriber, messages lost / published)\n")
        names = [row["scenario"] for row in next(iter(losses.values()))]
        lines.append("| scenario | " + " | ".join(losses) + " |")
        lines.append("|---|" + "---|" * len(losses))
        for i, name in enumerate(names):
            cells = []
            for d, rows in losses.items():
                if i >= len(rows):
                    cells.append("-")
                    continue
                row = rows[i]
                c = f"{row['lost']:,} / {row['of']:,}"
                if row["server_closed"]:
                    c += " (Redis closed the connection)"
                if not row["tail_ok"]:
                    c += " (not live again)"
                cells.append(c)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(f"\nWhole run: {wall:.0f} s. CPUs: {psutil.cpu_count()}; load average at the end: "
                 + " ".join(f"{x:.2f}" for x in os.getloadavg()) + ".")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subscribers", type=int, nargs="+", default=[2, 8], help="K values")
    ap.add_argument("--messages", type=int, default=100_000, help="messages per throughput trial")
    ap.add_argument("--size", type=int, nargs="+", default=[120], help="message bytes (one or more)")
    ap.add_argument("--rate", type=int, default=5000, help="offered msg/s for latency")
    ap.add_argument("--latency-seconds", type=float, default=3.0)
    ap.add_argument("--window", type=int, default=4000, help="messages in flight, throughput trials")
    ap.add_argument("--trial-timeout", type=float, default=30.0, help="seconds, each trial")
    ap.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=DESIGNS)
    ap.add_argument("--no-loss", action="store_true", help="skip the disconnect/stall test")
    ap.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    a = ap.parse_args()
    if min(a.size) < HEAD + 1:
        ap.error(f"--size must be at least {HEAD + 1}")
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    tmp = tempfile.mkdtemp(prefix="redis-transport-")
    a.port = free_port()
    log = open(os.path.join(tmp, "redis.log"), "w")
    proc = subprocess.Popen([server, "--port", str(a.port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp, "--protected-mode", "yes"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    wall0 = time.monotonic()
    results: list[dict] = []
    losses: dict[str, list] = {}
    try:
        import redis as sync_redis
        r = sync_redis.Redis(host="127.0.0.1", port=a.port)
        for _ in range(100):
            try:
                r.ping()
                break
            except sync_redis.ConnectionError:
                time.sleep(0.05)
        version = r.info("server")["redis_version"]
        r.close()
        redis_proc = psutil.Process(proc.pid)
        print(f"redis-server {version} on 127.0.0.1:{a.port} (pid {proc.pid}); {psutil.cpu_count()} CPUs; "
              f"designs {', '.join(a.designs)}; K {a.subscribers}; {a.rounds} round(s)", file=sys.stderr)
        for rnd in range(a.rounds):
            order = a.designs[rnd % len(a.designs):] + a.designs[:rnd % len(a.designs)]
            for size in a.size:
                for k in a.subscribers:
                    for mode in ("throughput", "latency"):
                        for design in order:
                            res = trial(a, redis_proc, design, k, mode, size)
                            if "error" in res:
                                print(f"round {rnd + 1} {design} K={k} {mode}: {res['error']}", file=sys.stderr)
                                continue
                            results.append(res)
                            extra = (f"p50 {res.get('p50', 0):.2f} ms p99 {res.get('p99', 0):.2f} ms"
                                     if mode == "latency" else f"{res['rate']:,.0f} msg/s")
                            print(f"round {rnd + 1} {size} B K={k} {mode:10} {design:10} {extra}, lost {res['lost']}, "
                                  f"Redis {res['redis_cpu']:.3f} s/100k (psutil {res['redis_cpu_psutil']:.3f}), other {res['other']:.0f} %"
                                  + ("" if res["complete"] else " (time limit)"), file=sys.stderr)
        if not a.no_loss:
            for design in a.designs:
                losses[design] = loss_test(a, design)
                print(f"loss {design}: {[(x['lost'], x['of']) for x in losses[design]]}", file=sys.stderr)
    finally:
        if proc.poll() is None:
            proc.terminate()  # the redis-server this script started, by its PID
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(a, results, losses, time.monotonic() - wall0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
