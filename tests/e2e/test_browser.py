"""Two real browsers (headless Chromium) on the real board: presence, posts, transports."""

import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_support import (  # noqa: E402,F401
    board,
    browser,
    expect,
    expect_acked,
    expect_post,
    pages,
    post,
    post_item,
    screenshot,
    submit,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]


def test_two_browsers_see_each_other_and_each_others_posts(board, pages):
    alice = pages.open(board.url, "alice")
    expect(alice.locator("#transport")).to_have_text("websocket")
    expect(alice.locator("#count")).to_have_text("1")
    expect(alice.locator("#private li").first).to_contain_text("Welcome, you are person number")

    bob = pages.open(board.url, "bob")
    expect(bob.locator("#transport")).to_have_text("websocket")
    # Each sees the other: the count goes up on the page that was there first,
    # and the newcomer counts both of them.
    expect(alice.locator("#count")).to_have_text("2", timeout=2000)
    expect(bob.locator("#count")).to_have_text("2")
    expect(alice.locator("#news li")).to_have_text(["One more person is online"] * 2)

    # A post typed in one page shows up in the other within 1 s of pressing the button.
    text = f"hello from alice {uuid.uuid4().hex[:8]}"
    submit(alice, "Alice", text)
    post_id = expect_post(bob, "Alice", text, timeout=1000)
    expect_acked(alice)
    assert expect_post(alice, "Alice", text, timeout=1000) == post_id

    reply = f"hi alice, bob here {uuid.uuid4().hex[:8]}"
    submit(bob, "Bob", reply)
    expect_post(alice, "Bob", reply, timeout=1000)
    expect_acked(bob)
    screenshot(alice, "websocket")

    bob.close()
    expect(alice.locator("#news li").last).to_have_text("Someone went home", timeout=5000)
    expect(alice.locator("#count")).to_have_text("1")


def test_old_browser_without_websocket_uses_polling(board, pages):
    modern = pages.open(board.url, "modern")
    old = pages.open(board.url, "old", websocket=False)
    assert old.evaluate("typeof window.WebSocket") == "undefined"
    expect(old.locator("#transport")).to_have_text("polling")
    expect(modern.locator("#transport")).to_have_text("websocket")
    expect(modern.locator("#count")).to_have_text("2")

    text = f"sent over long-polling {uuid.uuid4().hex[:8]}"
    post(old, "Old", text)
    expect_post(modern, "Old", text, timeout=2000)

    reply = f"sent over websocket {uuid.uuid4().hex[:8]}"
    post(modern, "Modern", reply)
    expect_post(old, "Modern", reply, timeout=2000)
    expect(old.locator("#transport")).to_have_text("polling")
    screenshot(old, "polling")


def test_posts_are_text_not_html_and_bad_posts_are_refused(board, pages):
    alice = pages.open(board.url, "alice")
    bob = pages.open(board.url, "bob")

    html = f'<img src="x" onerror="window.pwned = 1"><b>bold {uuid.uuid4().hex[:8]}</b>'
    post(alice, "<i>Alice</i>", html)
    expect_post(bob, "<i>Alice</i>", html, timeout=2000)
    assert bob.locator("#posts img, #posts b, #posts i").count() == 0
    assert bob.evaluate("window.pwned") is None

    # An empty name is refused: the ack's error is shown, the text stays, nothing is broadcast.
    before = bob.locator("#posts li.post").count()
    alice.fill("#name", "   ")
    alice.fill("#text", "nobody wrote this")
    alice.click("#post-form button[type=submit]")
    expect(alice.locator("#post-error")).not_to_have_text("", timeout=5000)
    expect(alice.locator("#text")).to_have_value("nobody wrote this")

    # The next valid post shows the broadcast order is intact and the refused one never came.
    text = f"after the refusal {uuid.uuid4().hex[:8]}"
    post(alice, "Alice", text)
    expect(alice.locator("#post-error")).to_have_text("")
    expect_post(bob, "Alice", text, timeout=2000)
    expect(bob.locator("#posts li.post")).to_have_count(before + 1)
    assert post_item(bob, "nobody wrote this").count() == 0


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
def test_the_page_works_under_its_content_security_policy(board, pages, websocket):
    """The page's own CSP (scripts and connections from its origin only) breaks nothing, on either transport."""
    violations = []
    alice = pages.open(board.url, "alice", websocket=websocket)
    alice.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    bob = pages.open(board.url, "bob", websocket=websocket)
    csp = alice.evaluate("fetch('/').then(r => r.headers.get('content-security-policy'))")
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    expect(alice.locator("#transport")).to_have_text("websocket" if websocket else "polling")
    text = f"under the policy {uuid.uuid4().hex[:8]}"
    post(alice, "Alice", text)
    expect_post(bob, "Alice", text, timeout=2000)
    assert violations == []  # nothing the page itself needs was refused
    # An injected inline script would not run under this policy.
    assert alice.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.inlineRan = true'; document.body.appendChild(s); return !!window.inlineRan; }""") is False
    screenshot(alice, f"csp-{'websocket' if websocket else 'polling'}")
