"""The board page through a network that goes away: every post once, in order, when it comes back.

Page A reaches the board through our fault proxy (tests/e2e/faultproxy.py, its own
process): SIGUSR1 resets every connection and refuses new ones, SIGUSR2 lets
them through again. Page B posts directly while A is cut off.
"""

import os
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import (  # noqa: E402,F401
    CONNECT_MS, Board, browser, expect, pages, post, screenshot, stop_process,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]


@pytest.fixture
def cut_board(request, tmp_path):
    """(board, proxy process, proxied URL); the board's options come from the test's parameter."""
    args = getattr(request, "param", ())
    with Board(tmp_path / "board.db", name=request.node.name, args=args) as board:
        proxy = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "faultproxy.py"),
                                  str(board.port)], stdout=subprocess.PIPE, text=True)
        try:
            port = int(proxy.stdout.readline())
            yield board, proxy, f"http://127.0.0.1:{port}/"
        finally:
            stop_process(proxy)


def posts_of(page):
    return page.eval_on_selector_all("#posts li.post span.text", "els => els.map(e => e.textContent)")


def cut_and_post_meanwhile(pages, board, proxy, url, transport, texts, break_websocket=False):
    # A page whose WebSocket the test breaks has its own connection: a SharedWorker would keep its own WebSocket.
    a = pages.open(url, "A (cut off)", websocket=transport == "websocket",
                   init="delete window.SharedWorker;" if break_websocket else "")
    b = pages.open(board.url, "B")
    post(b, "B", "before the cut")
    expect(a.locator("#posts li.post")).to_have_count(1, timeout=CONNECT_MS)
    if break_websocket:  # the network that comes back blocks WebSocket: the client must fall back
        a.evaluate("() => { window.WebSocket = function () { throw new Error('blocked by the network'); }; }")
    proxy.send_signal(signal.SIGUSR1)
    expect(a.locator("#state")).to_have_text("reconnecting", timeout=CONNECT_MS)
    for text in texts:
        post(b, "B", text)
    proxy.send_signal(signal.SIGUSR2)
    expect(a.locator("#state")).to_have_text("connected", timeout=CONNECT_MS)
    expect(a.locator("#posts li.post")).to_have_count(1 + len(texts), timeout=CONNECT_MS)
    return a, b


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_page_cut_off_gets_every_post_it_missed_once_in_order(pages, cut_board, transport):
    board, proxy, url = cut_board
    texts = [f"while A was away {i}" for i in range(5)]
    a, b = cut_and_post_meanwhile(pages, board, proxy, url, transport, texts)
    assert posts_of(a) == ["before the cut", *texts]
    assert a.evaluate("window.boardSocket.recovered") is True
    assert a.locator("#transport").text_content() == transport
    post(b, "B", "after")
    expect(a.locator("#posts li.post")).to_have_count(len(texts) + 2, timeout=CONNECT_MS)
    assert posts_of(a) == ["before the cut", *texts, "after"]
    screenshot(a, f"recovered-{transport}")


def test_a_page_that_falls_back_to_polling_mid_session_recovers_too(pages, cut_board):
    board, proxy, url = cut_board
    texts = ["missed over the fall back"]
    a, _ = cut_and_post_meanwhile(pages, board, proxy, url, "websocket", texts, break_websocket=True)
    assert posts_of(a) == ["before the cut", *texts]
    assert a.evaluate("window.boardSocket.recovered") is True
    assert a.locator("#transport").text_content() == "polling"


@pytest.mark.parametrize("cut_board", [("--recover_within=1",)], indirect=True)
def test_a_page_away_past_the_window_resyncs_from_its_last_post(pages, cut_board):
    board, proxy, url = cut_board
    texts = [f"missed {i}" for i in range(3)]
    a, _ = cut_and_post_meanwhile(pages, board, proxy, url, "websocket", texts)
    assert a.evaluate("window.boardSocket.recovered") is False
    assert posts_of(a) == ["before the cut", *texts]  # the posts after its last one, none twice
    screenshot(a, "resynced")
