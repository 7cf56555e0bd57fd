"""Room groups without Redis: where an emit goes, what a read's streams merge into."""

import os
import subprocess
import sys
from pathlib import Path

from handlers.cluster.shards import GROUPS, Shards, group_of

ROOT = Path(__file__).resolve().parents[3]


class NoRedis:
    def register_script(self, script):
        return None


def shards() -> Shards:
    return Shards(NoRedis(), "p", "p:emits", "me")


def test_a_room_has_one_group_on_every_process_and_rooms_spread_over_them():
    other = subprocess.run([sys.executable, "-c", "from handlers.cluster.shards import group_of; "
                            "print(group_of('/', 'blue'))"], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}, cwd=ROOT)
    assert int(other.stdout) == group_of("/", "blue")   # another process, another str hash: the same group
    assert group_of("/", "blue") != group_of("/chat", "blue")  # the namespace counts
    assert len({group_of("/", f"room-{n}") for n in range(1000)}) == GROUPS


def test_emits_to_everyone_or_to_a_socket_id_stay_on_the_main_stream():
    s = shards()
    assert s.targets("/", set()) is None
    assert s.targets("/", {"blue", "AbCdEfGhIjKlMnOpQr_-"}) is None  # a socket's id among the rooms
    two = s.targets("/", {"room-1", "room-2"})
    assert two == sorted({s.stream(group_of("/", "room-1")), s.stream(group_of("/", "room-2"))})


def test_a_read_of_several_streams_is_one_order_each_entry_once_cut_where_a_stream_may_hold_more():
    s = shards()
    found = [
        (b"p:emits", [(b"5-0", {b"k": b"e5"}), (b"9-0", {b"k": b"e9"})]),
        (b"p:g:1", [(b"3-0", {b"k": b"r3"}), (b"6-0", {b"k": b"r6"}), (b"7-0", {b"k": b"r7"})]),
        (b"p:g:2", [(b"6-0", {b"k": b"r6"}), (b"7-0", {b"k": b"r7"})]),
    ]
    assert [i for i, _ in s.merge(found, 10)] == ["3-0", "5-0", "6-0", "7-0", "9-0"]
    # p:g:1 gave 3 (the count): what lies past its last (9-0) waits for the next read.
    assert [i for i, _ in s.merge(found, 3)] == ["3-0", "5-0", "6-0", "7-0"]
    assert s.read == 14


class Version(NoRedis):
    """What `INFO server` says, no more: the version check without an old Redis at hand."""

    def __init__(self, version: str):
        self.version = version
        self.loaded = False

    async def info(self, section):
        return {"redis_version": self.version}

    async def script_load(self, script):
        self.loaded = True


def test_on_by_default_from_redis_7_off_before_with_one_line_and_off_when_asked(caplog):
    import asyncio
    import logging

    import pytest

    with caplog.at_level(logging.WARNING, logger="board.redis"):
        assert asyncio.run(Shards.open(Version("6.2.14"), "p", "p:emits", "me", None)) is None
    assert caplog.text.count("every process reads every emit to a room") == 1
    new = Version("7.0.15")
    assert asyncio.run(Shards.open(new, "p", "p:emits", "me", None)) is not None and new.loaded
    assert asyncio.run(Shards.open(Version("7.2.4"), "p", "p:emits", "me", False)) is None
    with pytest.raises(RuntimeError, match="6.2.14"):
        asyncio.run(Shards.open(Version("6.2.14"), "p", "p:emits", "me", True))
