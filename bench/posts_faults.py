#!/usr/bin/env python3
"""Every post once under faults, at scale: many posters through a network that keeps cutting them.

    python bench/posts_faults.py                     # 30 official clients x 25 posts, 4 board pages
                                                     # in Chromium x 15 posts, every 2 s 20% of the
                                                     # connections reset, and before 1 ACK in 4
    python bench/posts_faults.py --posters 10 --posts 10 --pages 2 --page_posts 5
    python bench/posts_faults.py --polling_pages 2 --swallow_polls 3   # two pages on long-polling, and
                                                     # 1 in 3 poll answers lost on a reused connection

The real board (board.py, SQLite, post limits off) behind our fault proxy (tests/e2e/faultproxy.py,
its own process): it resets a share of the live connections at intervals, and resets a
connection right before one Socket.IO ACK in N (the board stored the post; the poster did not
hear so). Posting through it: the official socket.io-client 4.8 (tests/node/posts.js, `retries`
and a key in each post) and board pages in Chromium (our client; the page's form, one post after
the other). A watcher client and a page connect directly. Prints the counts: posts meant, acked,
stored (and stored twice), and per page and client the posts shown (missing, shown twice).
Loopback only; bounded in time.
"""
import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Posts `count` posts through the page's form, one after the other; resolves with how many were acked
# and how many times the page sent a post (first tries and retries).
PAGE_POSTS = """
async ({label, count, prefix, deadline}) => {
  const name = document.getElementById('name'), text = document.getElementById('text');
  const form = document.getElementById('post-form'), error = document.getElementById('post-error');
  let acked = 0, sends = 0;
  window.boardSocket.onAnyOutgoing((event) => { if (event === 'post') sends += 1; });
  for (let n = 0; n < count; n++) {
    name.value = label;
    text.value = `${prefix} ${label} post ${n}`;
    form.dispatchEvent(new Event('submit', { cancelable: true }));
    while (text.value !== '' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (error.textContent && !document.querySelector('#post-form button').disabled) break;  // gave up
    }
    if (text.value === '') acked += 1;
  }
  return { acked, sends };
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(*argv: str, log: Path | None = None) -> asyncio.subprocess.Process:
    stderr = open(log, "ab") if log is not None else None
    try:
        return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=stderr, cwd=ROOT)
    finally:
        if stderr is not None:
            stderr.close()


async def stop(proc: asyncio.subprocess.Process) -> bytes:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    except asyncio.TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    return out or b""


async def until_up(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


async def run(a: argparse.Namespace) -> dict:
    from playwright.async_api import async_playwright

    db = Path(tempfile.mkdtemp(prefix="posts-faults-")) / "board.db"
    port = free_port()
    board = await start(sys.executable, "board.py", f"--port={port}", "--address=127.0.0.1", f"--db={db}",
                        "--post_limit=0", "--post_limit_per_address=0", "--drain_seconds=0.2",
                        log=db.with_name("board.log"))
    await until_up(port, time.monotonic() + 20)
    proxy = await start(sys.executable, str(ROOT / "tests" / "e2e" / "faultproxy.py"), str(port),
                        str(a.cut_every), str(a.cut_fraction), "0", str(a.cut_at_acks), str(a.swallow_polls))
    proxy_port = int(await proxy.stdout.readline())
    proxied, direct = f"http://127.0.0.1:{proxy_port}/", f"http://127.0.0.1:{port}/"
    prefix = f"run{int(time.time())}"
    started = time.monotonic()
    deadline_ms = a.deadline * 1000
    node = None
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=a.chromium, args=["--no-sandbox"])
            pages = []
            for i in range(a.pages + 1):  # the last one watches, directly
                context = await browser.new_context()
                if i < a.polling_pages:  # a browser without WebSocket (nor SharedWorker): long-polling only
                    await context.add_init_script("delete window.WebSocket; delete window.SharedWorker;")
                page = await context.new_page()
                await page.goto(proxied if i < a.pages else direct)
                await page.wait_for_selector("body[data-state=connected]", timeout=20_000)
                pages.append(page)
            # Every page is there before the first post (one that came later would get the posts as history).
            node = await start("node", str(ROOT / "tests" / "node" / "posts.js"), proxied, direct,
                               str(a.posters), str(a.posts), str(deadline_ms), "2000",
                               "nokeys" if a.without_keys else "keys")
            deadline = time.time() * 1000 + deadline_ms
            by_page = await asyncio.gather(*(
                page.evaluate(PAGE_POSTS, {"label": f"page{i}", "count": a.page_posts, "prefix": prefix,
                                           "deadline": deadline})
                for i, page in enumerate(pages[:-1])))
            summary = json.loads(await asyncio.wait_for(node.stdout.readline(), a.deadline + 30))
            page_meant = a.pages * a.page_posts
            meant = summary["meant"] + page_meant
            shown = []
            for page in pages:  # what each page shows of this run's posts, once every post has reached it
                settle = time.monotonic() + 30
                while True:
                    texts = await page.eval_on_selector_all(
                        "#posts li.post span.text", "els => els.map(e => e.textContent)")
                    ours = [t for t in texts if t.startswith(prefix) or t.startswith(summary["run"])]
                    if len(set(ours)) >= meant or time.monotonic() > settle:
                        break
                    await asyncio.sleep(0.2)
                shown.append(Counter(ours))
            await browser.close()
        elapsed = time.monotonic() - started
    finally:
        if node is not None:
            await stop(node)
        proxy_out = (await stop(proxy)).decode()
        await stop(board)
    with sqlite3.connect(db) as conn:
        rows = Counter(dict(conn.execute("SELECT text, count(*) FROM posts GROUP BY text").fetchall()))
    proxy_counts = dict(line.split() for line in proxy_out.splitlines() if line.strip())
    return {
        "meant": meant,
        "acked": summary["acked"] + sum(p["acked"] for p in by_page),
        "ack_errors": len(summary["ackErrors"]),
        "stored": sum(rows.values()),
        "stored_distinct": len(rows),
        "stored_twice": sum(n - 1 for n in rows.values()),
        "node_meant": summary["meant"],
        "node_sends": summary["tries"],
        "page_meant": page_meant,
        "page_sends": sum(p["sends"] for p in by_page),
        "pages": [{"page": ("watcher" if i == a.pages else f"page{i}"), "shown": sum(c.values()),
                   "distinct": len(c), "missing": meant - len(c), "twice": sum(n - 1 for n in c.values())}
                  for i, c in enumerate(shown)],
        "node_clients": summary["clients"],
        "proxy": proxy_counts,
        "seconds": round(elapsed, 1),
        "log": str(db.with_name("board.log")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posters", type=int, default=30, help="official clients posting")
    parser.add_argument("--posts", type=int, default=25, help="posts per official client")
    parser.add_argument("--pages", type=int, default=4, help="board pages posting (Chromium)")
    parser.add_argument("--page_posts", type=int, default=15, help="posts per page")
    parser.add_argument("--cut_every", type=float, default=2.0, help="seconds between resets")
    parser.add_argument("--cut_fraction", type=float, default=0.2, help="share of connections reset each time")
    parser.add_argument("--cut_at_acks", type=int, default=4, help="reset before 1 ACK in N (0: never)")
    parser.add_argument("--polling_pages", type=int, default=0,
                        help="how many of the proxied pages run on long-polling only (no WebSocket)")
    parser.add_argument("--swallow_polls", type=int, default=0,
                        help="swallow 1 in N long-polling answers carrying a message on a reused connection, "
                             "then reset it before any byte reaches the browser (it re-sends the GET by itself)")
    parser.add_argument("--without_keys", action="store_true",
                        help="the control run: the official clients post without a key (the pages keep theirs)")
    parser.add_argument("--deadline", type=int, default=240, help="seconds for the whole run")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    a = parser.parse_args()
    result = asyncio.run(run(a))
    print(f"posts meant {result['meant']}, acked {result['acked']} (errors {result['ack_errors']}), "
          f"stored {result['stored']} ({result['stored_distinct']} distinct, {result['stored_twice']} twice); "
          f"sends: official clients {result['node_sends']} for {result['node_meant']} posts, "
          f"pages {result['page_sends']} for {result['page_meant']}")
    for page in result["pages"]:
        print(f"  {page['page']:>8}: shown {page['shown']}, distinct {page['distinct']}, "
              f"missing {page['missing']}, twice {page['twice']}")
    clients = result["node_clients"]
    print(f"  official clients ({len(clients)}): missing {sum(c['missing'] for c in clients)}, "
          f"seen twice {sum(c['twice'] for c in clients)}, connects {sum(c['connects'] for c in clients)} "
          f"({sum(c['recovered'] for c in clients)} recovered)")
    print(f"  proxy: {result['proxy']}; {result['seconds']} s; the board's log: {result['log']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
