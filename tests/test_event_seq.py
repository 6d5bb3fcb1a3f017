"""Numbered thread events (PROTOCOL.md §13): seq on the wire, opt-in, afterSeq checks,
the log bound. Over memory and a real websocket (`connect_shared`)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from event_seq_support import (
    collect_until_completed,
    init_seq,
    rpc_error,
    seqs,
    start_turn,
    thread_events,
    without_seq,
)

from appserver.server import ServerConfig

from conftest import ConnectFactory

TIMEOUT = 20


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(data_dir=None, shutdown_timeout=0.5, event_log_events=40)


async def test_seq_is_contiguous_per_thread_and_only_for_opted_in_connections(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b, connect_shared() as plain:
            await init_seq(a)
            await init_seq(b)
            await init_seq(plain, seq=False)
            started = await a.request("thread/start")
            thread_id = started["thread"]["id"]
            assert "seq" not in started  # responses carry none
            await b.request("thread/resume", {"threadId": thread_id})
            await plain.request("thread/resume", {"threadId": thread_id})
            got: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "plain": []}
            turn1 = await start_turn(a, thread_id, "hello\n/stream 5")
            for name, client in (("a", a), ("b", b), ("plain", plain)):
                got[name] += await collect_until_completed(client, turn1)
            turn2 = await start_turn(b, thread_id, "/say two words")
            for name, client in (("a", a), ("b", b), ("plain", plain)):
                got[name] += await collect_until_completed(client, turn2)
    events_a = thread_events(got["a"], thread_id)
    events_b = thread_events(got["b"], thread_id)
    # One numbering per thread, from 1, the same for every subscriber.
    assert seqs(events_a) == list(range(1, len(events_a) + 1))
    assert events_a == events_b
    # Broadcasts carry no seq.
    broadcasts = [m for m in got["a"] if m["method"] == "thread/status/changed"]
    assert broadcasts and all("seq" not in m for m in broadcasts)
    # A connection that did not opt in gets exactly today's frames.
    assert all("seq" not in m for m in got["plain"])
    assert thread_events(got["plain"], thread_id) == [without_seq(m) for m in events_a]


async def test_seq_frames_put_seq_last_beside_method_and_params(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as a:
            await init_seq(a)
            thread_id = (await a.request("thread/start"))["thread"]["id"]
            turn = await start_turn(a, thread_id, "/say hi")
            got = await collect_until_completed(a, turn)
    first = thread_events(got, thread_id)[0]
    assert list(first) == ["jsonrpc", "method", "params", "seq"]
    assert first["method"] == "turn/started" and first["seq"] == 1


async def test_after_seq_is_checked(connect_shared: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as plain:
            await init_seq(a)
            await init_seq(plain, seq=False)
            thread_id = (await a.request("thread/start"))["thread"]["id"]
            error = await rpc_error(plain, "thread/resume", {"threadId": thread_id, "afterSeq": 0})
            assert error["code"] == -32600
            assert error["data"]["kind"] == "eventSeqNotEnabled"
            assert "appserverEventSeq" in error["message"]
            for bad in (-1, "3", 1.5, True):
                error = await rpc_error(
                    a, "thread/resume", {"threadId": thread_id, "afterSeq": bad}
                )
                assert error["code"] == -32602, bad
                assert "afterSeq" in str(error["data"]), bad


async def test_replay_of_the_log_and_snapshot_when_it_does_not_reach_back(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a:
            await init_seq(a)
            thread_id = (await a.request("thread/start"))["thread"]["id"]
            turn = await start_turn(a, thread_id, "/stream 60")  # > event_log_events
            events = thread_events(await collect_until_completed(a, turn), thread_id)
        last = events[-1]["seq"]
        assert last == len(events) > 40
        async with connect_shared() as b:
            await init_seq(b)
            # The last 40 are logged: a replay after last - 40 works...
            result = await b.request(
                "thread/resume", {"threadId": thread_id, "afterSeq": last - 40}
            )
            assert result["replay"] == {"fromSeq": last - 39, "toSeq": last}
            assert result["thread"]["turns"] == []
            replayed = [await b.next_notification() for _ in range(40)]
            assert replayed == events[-40:]
            # ... one further back is gone: the snapshot, replay null.
            result = await b.request(
                "thread/resume", {"threadId": thread_id, "afterSeq": last - 41}
            )
            assert result["replay"] is None
            assert [t["id"] for t in result["thread"]["turns"]] == [turn]
            # Nothing missed: an empty replay.
            result = await b.request("thread/resume", {"threadId": thread_id, "afterSeq": last})
            assert result["replay"] == {"fromSeq": last + 1, "toSeq": last}
            # Beyond the last seq (a seq this thread never gave): the snapshot.
            result = await b.request("thread/resume", {"threadId": thread_id, "afterSeq": last + 5})
            assert result["replay"] is None and result["thread"]["turns"]
            # The live stream follows, once, numbered on.
            turn2 = await start_turn(b, thread_id, "/say more")
            live = thread_events(await collect_until_completed(b, turn2), thread_id)
            assert seqs(live) == list(range(last + 1, last + 1 + len(live)))
