"""Every post a page meant is stored once, shown once on every page, and acked: board pages in Chromium
post through our fault proxy (tests/faultproxy.py, its own process) while it resets their connections,
or while it loses some of the acks the board sends. The page resends a post until it is acked (our
client's `retries`), with the post's key, which the board stores once.
"""

import os
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import (  # noqa: E402,F401
    Board, Nginx, RedisServer, browser, expect, pages, post, run_node_script, screenshot, stop_process, submit,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

SETTLE_MS = 40_000  # a post through the faults: a few reconnections or lost acks (5 s each) at most

# Counts the page's tries of each post (every send, first and resent), for the test to read.
# Every page and client here comes from 127.0.0.1: the per-address post limit would meter them as one.
ONE_ADDRESS = ["--post_limit_per_address=0"]

COUNT_TRIES = "() => { window.postTries = 0; boardSocket.onAnyOutgoing((e) => { if (e === 'post') postTries++; }); }"


def start_proxy(port, *args):
    proxy = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "faultproxy.py"),
                              str(port), *map(str, args)], stdout=subprocess.PIPE, text=True)
    return proxy, int(proxy.stdout.readline())


def proxy_counts(proxy):
    """Stops the proxy; what it did: {"resets": n, "dropped_acks": n}."""
    stop_process(proxy)
    return {key: int(value) for key, value in (line.split() for line in proxy.stdout.read().splitlines())}


def texts_of(page):
    return page.eval_on_selector_all("#posts li.post span.text", "els => els.map(e => e.textContent)")


def stored(db):
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return Counter(dict(conn.execute("SELECT text, count(*) FROM posts GROUP BY text").fetchall()))


def metric(board, name):
    """A counter of the board's /metrics."""
    with urllib.request.urlopen(board.url + "metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def replayed(board):
    """Retries the board answered with a stored ack."""
    return metric(board, "board_once_replayed_total")


def post_everywhere(posters, rounds):
    """Each page posts `rounds` posts, the pages at once; each post must be acked. Returns the texts meant."""
    meant = []
    for n in range(rounds):
        for label, page in posters:
            text = f"{label} says {n}"
            meant.append(text)
            submit(page, label, text)
        for label, page in posters:
            expect(page.locator("#text")).to_have_value("", timeout=SETTLE_MS)  # acked
            expect(page.locator("#post-error")).to_have_text("")
    return meant


def check_once(board, pages_, meant):
    for label, page in pages_:
        try:
            expect(page.locator("#posts li.post")).to_have_count(len(meant), timeout=SETTLE_MS)
        except AssertionError:
            missing = sorted(set(meant) - set(texts_of(page)))
            state = page.evaluate("[document.body.dataset.state, window.boardSocket.recovered]")
            raise AssertionError(f"page {label} misses {missing} (state, recovered: {state})") from None
        shown = Counter(texts_of(page))
        assert shown == Counter(meant), (label, shown)  # each shown once
    if board is not None:  # None: a cluster's posts, not in one file
        assert stored(board.db) == Counter(meant)  # each stored once


def test_posts_through_connection_resets_are_stored_and_shown_once(pages, tmp_path):
    with Board(tmp_path / "board.db", name="once-resets", args=ONE_ADDRESS) as board:
        # Half the connections reset every 1.5 s, and one ACK in three never arrives: its connection
        # is reset right before it (the board stored the post; the page did not hear so). The pages
        # reconnect and resend what was not acked.
        proxy, port = start_proxy(board.port, 1.5, 0.5, 0, 3)
        try:
            url = f"http://127.0.0.1:{port}/"
            posters = [("A", pages.open(url, "A", wait_connected=False)),
                       ("B", pages.open(url, "B", wait_connected=False)),
                       ("C", pages.open(url, "C (polling)", websocket=False, wait_connected=False))]
            watcher = pages.open(board.url, "watcher (direct)")
            for _, page in posters:  # the faults are on already: connecting may take a few tries
                expect(page.locator("#state")).to_have_text("connected", timeout=SETTLE_MS)
                page.evaluate(COUNT_TRIES)
            meant = post_everywhere(posters, rounds=3)
            check_once(board, posters + [("watcher", watcher)], meant)
            tries = sum(page.evaluate("window.postTries") for _, page in posters)
            assert tries > len(meant), "no post was sent again"
            screenshot(posters[0][1], "once-resets")
        finally:
            counts = proxy_counts(proxy)
        assert counts["cuts_at_acks"] > 0, counts


def test_posts_whose_acks_are_lost_are_stored_and_shown_once(pages, tmp_path):
    with Board(tmp_path / "board.db", name="once-lost-acks", args=ONE_ADDRESS) as board:
        # Every third ACK of each WebSocket is lost (the connection stays up): the page hears nothing
        # within its ack timeout and sends the post again, with its key.
        proxy, port = start_proxy(board.port, 0, 0, 3)
        try:
            url = f"http://127.0.0.1:{port}/"
            posters = [(label, pages.open(url, label)) for label in ("A", "B", "C")]
            for _, page in posters:
                page.evaluate(COUNT_TRIES)
            meant = post_everywhere(posters, rounds=2)
            check_once(board, posters, meant)
            tries = sum(page.evaluate("window.postTries") for _, page in posters)
            assert tries > len(meant), "no post was sent again: no post's ack was lost"
            # The retries came with their first try's ack id (through each browser's shared worker):
            # the hub answered them from its `once` store, without running the handler again.
            assert replayed(board) > 0
        finally:
            counts = proxy_counts(proxy)
        assert counts["dropped_acks"] > 0, counts


@pytest.mark.node
def test_the_official_client_with_retries_and_keys_posts_once_through_faults(tmp_path):
    with Board(tmp_path / "board.db", name="once-node", args=ONE_ADDRESS) as board:
        # Connections reset at random, and before one ACK in three (polling and WebSocket alike).
        proxy, port = start_proxy(board.port, 1.0, 0.3, 0, 3)
        try:
            seen = run_node_script("posts.js", [f"http://127.0.0.1:{port}/", board.url, 6, 5, 40000], timeout=60)
        finally:
            counts = proxy_counts(proxy)
        assert seen["done"] == "all acked and seen", seen
        assert seen["meant"] == seen["acked"] == seen["ackedIds"] == 30 and not seen["ackErrors"], seen
        assert seen["tries"] > seen["meant"], seen  # some posts went again: their first ack was lost
        for client in seen["clients"]:  # the watcher and every poster: each post once
            assert client["distinct"] == 30 and client["missing"] == 0 and client["twice"] == 0, client
        texts = stored(board.db)
        assert len(texts) == 30 and set(texts.values()) == {1}, texts
        assert counts["cuts_at_acks"] > 0, counts


def shown_once_though_answers_are_lost(pages, boards, url, poster_url):
    """Page A, on long-polling, through the fault proxy in front of `url`, and page B posting at
    `poster_url`: every second long-polling answer that carries a message on a reused connection is
    swallowed whole and the connection reset, so Chromium sends the same GET again by itself, on another
    connection, and the page never hears of it. The board must answer that GET with what was lost."""
    proxy, port = start_proxy(url.rsplit(":", 1)[1].rstrip("/"), 0, 0, 0, 0, 2)
    try:
        a = pages.open(f"http://127.0.0.1:{port}/", "A (polling, answers lost)", websocket=False)
        b = pages.open(poster_url, "B")
        session = a.evaluate("boardSocket.io.engine.id")
        meant = []
        for n in range(8):
            meant.append(f"B says {n}")
            post(b, "B", meant[-1])
        check_once(boards[0] if len(boards) == 1 else None, [("A", a), ("B", b)], meant)
        assert a.evaluate("boardSocket.io.engine.id") == session  # no reconnection: the same session
        assert sum(metric(board, "board_polls_answered_again_total") for board in boards) > 0
        screenshot(a, "once-poll-retries")
    finally:
        counts = proxy_counts(proxy)
    assert counts["swallowed_polls"] > 0, counts


def test_poll_answers_lost_on_a_reused_connection_are_shown_once(pages, tmp_path):
    with Board(tmp_path / "board.db", name="once-poll-retries", args=ONE_ADDRESS) as board:
        shown_once_though_answers_are_lost(pages, [board], board.url, board.url)


@pytest.mark.nginx
def test_poll_answers_lost_are_shown_once_when_the_retry_reaches_another_process(pages, tmp_path):
    """Two processes on Redis behind nginx round robin: the GET sent again may land on the process that
    does not own the session, which relays it to the owner; the owner's rule is the same."""
    with RedisServer(tmp_path / "redis") as redis_server:
        args = [f"--redis={redis_server.url}", "--redis_prefix=once-polls", *ONE_ADDRESS]
        with Board(tmp_path / "a.db", name="once-poll-retries-a", args=args) as a, \
                Board(tmp_path / "b.db", name="once-poll-retries-b", args=args) as b, \
                Nginx([a.port, b.port], tmp_path / "nginx", name="once-poll-retries") as nginx:
            shown_once_though_answers_are_lost(pages, [a, b], nginx.url, a.url)
            served = {}  # each poll's URL -> the processes that served it (twice: the browser's retry)
            for line in (nginx.prefix / "upstreams.log").read_text().splitlines():
                upstream, _, request = line.partition(" ")
                if "transport=polling" in request and "sid=" in request:
                    served.setdefault(request, set()).add(upstream)
            assert any(len(upstreams) == 2 for upstreams in served.values()), served  # a retry went elsewhere
