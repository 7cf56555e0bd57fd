"""The board process stops and starts again (same port, same SQLite file) under two open pages."""

import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import Board, browser, expect, expect_post, pages, post, screenshot  # noqa: E402,F401

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

RECONNECT_MS = 20_000  # the client backs off up to a few seconds between attempts


def test_pages_reconnect_by_themselves_after_a_restart(pages, tmp_path, request):
    board = Board(tmp_path / "board.db", name=request.node.name)
    try:
        board.start()
        alice = pages.open(board.url, "alice")
        bob = pages.open(board.url, "bob")
        expect(alice.locator("#count")).to_have_text("2")

        tag = uuid.uuid4().hex[:8]
        before = [("Alice", f"before the restart {tag}"), ("Bob", f"also before {tag}")]
        post(alice, *before[0])
        post(bob, *before[1])
        ids = {}
        for name, text in before:
            ids[text] = expect_post(alice, name, text, timeout=2000)
            assert expect_post(bob, name, text, timeout=2000) == ids[text]

        for page in (alice, bob):  # survives only if the page is not reloaded
            page.evaluate("window.sameDocument = true")

        board.stop()
        for page in (alice, bob):
            expect(page.locator("#state")).to_have_text("reconnecting", timeout=10_000)
            expect(page.locator("#transport")).to_have_text("")
        screenshot(alice, "reconnecting")

        board.start()  # same port, same --db
        for page in (alice, bob):
            expect(page.locator("#state")).to_have_text("connected", timeout=RECONNECT_MS)
            expect(page.locator("#transport")).to_have_text("websocket", timeout=5000)
        expect(alice.locator("#count")).to_have_text("2", timeout=5000)
        expect(bob.locator("#count")).to_have_text("2", timeout=5000)

        # The posts made before the restart come back from SQLite (the history), same ids, once.
        for page in (alice, bob):
            for name, text in before:
                assert expect_post(page, name, text, timeout=5000) == ids[text]
            expect(page.locator("#posts li.post")).to_have_count(len(before))

        after = f"after the restart {uuid.uuid4().hex[:8]}"
        post(bob, "Bob", after)
        new_id = expect_post(alice, "Bob", after, timeout=2000)
        assert int(new_id) not in {int(i) for i in ids.values()}
        reply = f"welcome back {uuid.uuid4().hex[:8]}"
        post(alice, "Alice", reply)
        expect_post(bob, "Alice", reply, timeout=2000)
        # No reload: the same document, its own socket reconnected.
        for page in (alice, bob):
            assert page.evaluate("window.sameDocument") is True
            assert page.evaluate("!!(window.boardSocket && window.boardSocket.connected)") is True
        screenshot(alice, "restarted")
    finally:
        board.stop()
