"""The relay: long-polling without sticky sessions, between two hubs that share a real Redis.

A session's id names its process; a request for it that reaches another
process is served there through the relay, and an upgrade probe from
elsewhere pauses its polling as one here would.
"""

from __future__ import annotations

import json

import pytest

from conftest import http, until
from e2e_support import Node, cluster, redis_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gen_test(timeout=30)


async def polling_session_on(node: Node) -> str:
    opened = await http(node.url)
    assert opened.code == 200 and opened.body.startswith(b"0{")
    return json.loads(opened.body[1:])["sid"]


async def test_a_session_is_served_by_whichever_process_a_request_reaches(cluster):
    a, b = cluster
    sid = await polling_session_on(a)
    assert b.hub.engine.relay.owner(sid) is not None and a.hub.engine.relay.owner(sid) is None
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    posted = await http(b.url, path, method="POST", body="40")  # through b, to a
    assert posted.code == 200 and posted.body == b"ok"
    joined = await http(b.url, path)
    assert joined.code == 200 and joined.body.startswith(b'40{"sid":')
    await until(lambda: a.hub.count == 1)
    assert b.hub.count == 0


async def test_a_session_gone_from_its_process_is_unknown_everywhere(cluster):
    a, b = cluster
    sid = await polling_session_on(a)
    a.hub.engine.sessions[sid].close("test")
    path = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    refused = await http(b.url, path, method="POST", body="40")
    assert refused.code == 400 and json.loads(refused.body)["message"] == "Session ID unknown"


async def test_a_probe_from_another_process_pauses_polling_once(cluster):
    a, b = cluster
    sid = await polling_session_on(a)
    session = a.hub.engine.sessions[sid]
    assert await b.hub.engine.relay.probe(sid)
    assert session.probed and session.upgrading
    assert not await b.hub.engine.relay.probe(sid)  # one upgrade at a time
    b.hub.engine.relay.unprobe(sid)                  # its WebSocket closed before the upgrade
    await until(lambda: not session.probed and not session.upgrading)
