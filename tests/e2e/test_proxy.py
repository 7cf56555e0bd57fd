"""The board behind a real nginx: a proxy that strips Upgrade, one that forwards it,
and one that cuts long-polls (proxy_read_timeout below the ping interval)."""

import os
import re
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import (  # noqa: E402,F401
    Board,
    Nginx,
    board,
    browser,
    expect,
    expect_post,
    pages,
    post,
    require,
    screenshot,
    wait_until,
)

pytestmark = [pytest.mark.browser, pytest.mark.nginx, pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def _nginx_installed():
    require("nginx")


def exchange(first, second, timeout):
    """A post from each page shows up on the other one."""
    tag = uuid.uuid4().hex[:8]
    post(first, "First", f"from the first page {tag}")
    expect_post(second, "First", f"from the first page {tag}", timeout=timeout)
    post(second, "Second", f"from the second page {tag}")
    expect_post(first, "Second", f"from the second page {tag}", timeout=timeout)


def test_proxy_without_upgrade_falls_back_to_polling(board, pages, tmp_path, request):
    with Nginx(board.port, tmp_path / "nginx", name=request.node.name, upgrade=False) as nginx:
        direct = pages.open(board.url, "direct")
        expect(direct.locator("#transport")).to_have_text("websocket")

        proxied = pages.open(nginx.url, "proxied")
        # By itself, within a few seconds, the page settles on long-polling.
        expect(proxied.locator("#transport")).to_have_text("polling", timeout=8000)
        expect(direct.locator("#count")).to_have_text("2")
        exchange(proxied, direct, timeout=3000)
        exchange(direct, proxied, timeout=3000)
        expect(proxied.locator("#transport")).to_have_text("polling")
        expect(proxied.locator("#state")).to_have_text("connected")
        screenshot(proxied, "proxy-polling")

        # The traffic really went through nginx, and on long-polling.
        lines = nginx.access_lines()
        assert any("transport=polling" in line and '" 200 ' in line for line in lines), lines


def test_proxy_keeping_upstream_connections_alive_serves_polls_of_many_pages(board, pages, tmp_path, request):
    """nginx's upstream pool: the page, its scripts, handshakes and two pages' polls share a few kept-alive
    connections, each handed to the lean HTTP path at a poll and back to Tornado at anything else."""
    with Nginx(board.port, tmp_path / "nginx", name=request.node.name, keepalive=True) as nginx:
        first = pages.open(nginx.url, "first")
        second = pages.open(nginx.url, "second")
        for page in (first, second):
            expect(page.locator("#transport")).to_have_text("polling", timeout=8000)
        expect(first.locator("#count")).to_have_text("2")
        for _ in range(3):
            exchange(first, second, timeout=3000)
        second.reload()  # the page and a new session again, on connections that carried polls
        expect(second.locator("#transport")).to_have_text("polling", timeout=8000)
        exchange(second, first, timeout=3000)
        expect(first.locator("#state")).to_have_text("connected")
        screenshot(second, "proxy-keepalive-polling")
        lines = nginx.access_lines()
        assert sum("transport=polling" in line and '" 200 ' in line for line in lines) > 10, lines


def test_proxy_forwarding_upgrade_gives_websocket(board, pages, tmp_path, request):
    with Nginx(board.port, tmp_path / "nginx", name=request.node.name, upgrade=True) as nginx:
        direct = pages.open(board.url, "direct")
        proxied = pages.open(nginx.url, "proxied")
        expect(proxied.locator("#transport")).to_have_text("websocket", timeout=8000)
        exchange(proxied, direct, timeout=2000)
        expect(proxied.locator("#transport")).to_have_text("websocket")
        # nginx logs the WebSocket request (101) when it ends: close the page.
        proxied.close()
        expect(direct.locator("#news li").last).to_have_text("Someone went home", timeout=5000)
        wait_until(
            lambda: any("transport=websocket" in line and '" 101 ' in line for line in nginx.access_lines()),
            5,
            "nginx's access log to show the WebSocket upgrade (101)",
        )


def test_proxy_cutting_long_polls_keeps_the_page_working(pages, tmp_path, request):
    # The board holds a long-poll up to the ping interval (3 s); nginx gives up on the
    # upstream after 1 s without a byte and answers 504, so every idle poll is cut.
    with Board(tmp_path / "board.db", name=request.node.name, ping_interval=3000, ping_timeout=5000) as board, Nginx(
        board.port, tmp_path / "nginx", name=request.node.name, upgrade=False, read_timeout="1s"
    ) as nginx:
        direct = pages.open(board.url, "direct")
        proxied = pages.open(nginx.url, "proxied")
        expect(proxied.locator("#transport")).to_have_text("polling", timeout=8000)

        def cut_polls():
            return [line for line in nginx.access_lines() if re.search(r'" 504 ', line)]

        for round_ in range(2):
            seen = len(cut_polls())
            wait_until(lambda: len(cut_polls()) > seen, 10, "nginx to cut a long-poll (a 504 in its access log)")
            # The page re-polls (or reconnects) by itself: posts still flow both ways.
            exchange(direct, proxied, timeout=8000)
            exchange(proxied, direct, timeout=8000)
        expect(proxied.locator("#state")).to_have_text("connected", timeout=8000)
        expect(proxied.locator("#transport")).to_have_text("polling")
        assert len(cut_polls()) >= 2
