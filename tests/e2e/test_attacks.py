"""One hostile client cannot hurt anyone else (issue 18), proved from a bystander's seat.

Each test starts the real board (`board.py` as a subprocess, and for the cluster a redis-server and
two boards), connects a few bystanders and a poster (tests/e2e/bystanders.py: python-socketio, on
WebSocket and long-polling), runs one attack from raw sockets (tests/e2e/attackers.py), and asserts
what the bystanders saw: still connected, every post of the poster received within 2 s; and that
the attacker alone was dropped or refused, with the server's memory and log bounded.
`bench/abuse.py` runs the same attacks with more bystanders.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import attackers as a
import bystanders as by
from e2e_support import Board, RedisServer

BYSTANDERS = 5      # and the poster
LATENCY = 2.0       # s: the bar for a bystander's post during an attack
LOG_BYTES = 5_000_000
# The poster posts every 0.5 s; the boards of these tests let it (the post-reset test counts the attacker's).
ROOMY_POSTS = "--post_limit=100/10"


def board(tmp_path, request, *args: str, name: str = "") -> Board:
    """The board, to start with `with`; `since` is where this run's lines begin in its log file."""
    label = f"{request.node.name}{name}"
    made = Board(tmp_path / f"{label}.db", name=label, args=["--trusted_proxies=127.0.0.1", *args])
    made.since = by.file_size(made.log_path)
    return made


def log_of(b: Board) -> str:
    return Path(b.log_path).read_bytes()[b.since:].decode(errors="replace")


def target(*boards: Board, post_limit=(10, 10.0)) -> a.Target:
    return a.Target([b.port for b in boards], [b.proc.pid for b in boards], [b.log_path for b in boards],
                    post_limit)


def attacked(name: str, tgt: a.Target, attack: by.Attack, **options) -> by.Result:
    options = {"bystanders": BYSTANDERS, "interval": 0.5, "lead": 0.3, "settle": 0.5, "wait": LATENCY,
               "limit": 20.0, **options}
    return asyncio.run(by.measure(name, tgt, attack, **options))


def assert_unharmed(result: by.Result, *boards: Board) -> None:
    """What the bystanders must see: no one dropped, every post within LATENCY, /healthz answering."""
    late = f"p99 {result.p99}, worst {result.worst}" if result.p99 is not None else "nothing delivered"
    assert result.dropped == 0, f"{result.dropped} of {result.bystanders} bystanders dropped ({result.outcome})"
    assert result.delivered == result.expected, (
        f"{result.expected - result.delivered} of {result.expected} deliveries of the poster's posts lost "
        f"({late}; {result.outcome})")
    assert result.p99 is not None and result.p99 < LATENCY, f"bystanders' posts late: {late}"
    assert result.poster_acked == result.poster_sent, (
        f"the poster's posts: {result.poster_acked} of {result.poster_sent} acked; the others got "
        f"{result.extra.get('poster_refused')} ({result.outcome})")
    assert result.healthz_failed == 0 and (result.healthz_worst or 0) < 1.0, (
        f"/healthz: {result.healthz_failed} of {result.healthz_probes} unanswered, worst {result.healthz_worst}")
    assert result.log_bytes < LOG_BYTES, f"the log grew {result.log_bytes} bytes"
    for b in boards:
        assert b.running(), f"the board exited: {log_of(b)[-2000:]}"
        text = log_of(b)
        at = text.find("Traceback")
        assert at < 0, f"{text.count('Traceback')} traceback(s) in the board's log:\n{text[max(0, at - 200):at + 2500]}"


def test_a_churn_burst_over_websocket_drops_the_attacker_alone(tmp_path, request):
    with board(tmp_path, request, ROOMY_POSTS) as running:
        result = attacked("churn-ws", target(running), lambda t: a.churn_websocket(t, bursts=1))
        assert_unharmed(result, running)
        assert result.extra["closed"] == 1, f"the attacker was not closed: {result.outcome}"


def test_a_churn_burst_in_one_polling_post_drops_the_attacker_alone(tmp_path, request):
    with board(tmp_path, request, ROOMY_POSTS) as running:
        result = attacked("churn-polling", target(running), lambda t: a.churn_polling(t, posts=1))
        assert_unharmed(result, running)
        assert result.extra["after"] == ["closed"], f"the attacker's session: {result.outcome}"


def test_the_post_limit_survives_namespace_reconnects(tmp_path, request):
    """`40`, ten posts, `41`, again: the limit holds per session, and per address across new sessions."""
    with board(tmp_path, request, "--post_limit=10/10", "--post_limit_per_address=20/10") as running:
        result = attacked("post-reset", target(running), lambda t: a.post_reset(t, seconds=3.0),
                          interval=1.0)
        assert_unharmed(result, running)
        assert result.extra["cycles"] >= 10, result.outcome  # it did try: 100 posts and more
        assert result.attacker_session_most <= 10 + 2, (
            f"{result.attacker_session_most} posts stored from one session of the attacker in {result.seconds:.1f}"
            f" s against a limit of 10 per 10 s ({result.outcome})")
        assert result.attacker_posts <= 20 + 2, (
            f"{result.attacker_posts} posts stored from the attacker's address in {result.seconds:.1f} s against "
            f"a limit of 20 per 10 s ({result.outcome})")


def test_huge_auths_are_refused_and_hold_no_memory(tmp_path, request):
    with board(tmp_path, request, ROOMY_POSTS) as running:
        result = attacked("huge-auth", target(running), lambda t: a.huge_auths(t, sessions=10, hold=1.0))
        assert_unharmed(result, running)
        assert result.extra["answers"] == {"CONNECT_ERROR": 10}, f"990 KB auths: {result.outcome}"
        assert result.rss_growth_kb < 20 * 1024, f"RSS grew {result.rss_growth_kb / 1024:.1f} MB"


async def bad_recoveries(tgt: a.Target) -> dict:
    """Every malformed offset (with a real lost pid) and every malformed pid: the answer each got."""
    port, answers = tgt.ports[0], {}
    for offset in a.BAD_OFFSETS:
        pid = await a.pid_of_lost_socket(port)
        assert pid, "no pid for a browser-like client: recovery is off?"
        answers[f"offset {offset!r}"] = await a.recovering_connect(port, {"pid": pid, "offset": offset}, 2.0)
    for pid in a.BAD_PIDS:
        answers[f"pid {pid!r}"] = await a.recovering_connect(port, {"pid": pid, "offset": "1"}, 2.0)
    unanswered = [k for k, v in answers.items() if v is None]
    refused = [k for k, v in answers.items() if v is not None and not v.startswith("40")]
    return {"summary": f"unanswered: {unanswered}; refused: {refused}", "unanswered": unanswered,
            "refused": refused, "answers": answers}


def test_malformed_recovery_offsets_and_pids_connect_as_new(tmp_path, request):
    with board(tmp_path, request, ROOMY_POSTS) as running:
        result = attacked("bad-recovery", target(running), bad_recoveries)
        assert result.extra["unanswered"] == [], f"CONNECTs never answered: {result.extra['unanswered']}"
        assert result.extra["refused"] == [], f"refused instead of connected as new: {result.extra['refused']}"
        for what, answer in result.extra["answers"].items():
            ack = json.loads(answer[2:])
            assert "sid" in ack, (what, answer)  # a new socket: "not recovered"
        assert_unharmed(result, running)


def test_churn_at_one_process_of_a_cluster_hurts_no_one(tmp_path, request):
    with RedisServer(tmp_path / "redis") as redis:
        cluster = [f"--redis={redis.url}", ROOMY_POSTS]
        with board(tmp_path, request, *cluster, name="-a") as one, board(tmp_path, request, *cluster, name="-b") as two:
            result = attacked("cluster-churn", target(one, two),
                              lambda t: a.churn_websocket(t, bursts=1, concurrent=4))
            for b in (one, two):  # one client's churn must not exhaust the Redis connection pool
                exhausted = [line for line in log_of(b).splitlines() if "MaxConnectionsError" in line]
                assert not exhausted, f"the Redis pool ran out in {b.log_path}: {exhausted[:3]}"
            assert_unharmed(result, one, two)
            assert result.extra["closed"] == 4, f"the attackers were not all closed: {result.outcome}"
