"""Subscriptions and the life of a loaded thread: unsubscribe, close, disconnect, idle
unload, racing close causes, generations, leaks (PROTOCOL.md §5.7, §8; ARCHITECTURE.md
invariants 4 and 6).

Timer tests run in virtual time (`autojump_clock`) against the in-process server, so
"after S seconds" is exact and costs nothing.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from multiclient_support import (
    WAITING_ON_APPROVAL,
    Message,
    Recorder,
    is_answer_with,
    is_notification,
    loaded_ids,
    open_peers,
    params_of,
    read_thread,
    start_thread,
    start_turn,
    status_change,
    turn_completed,
)

from appserver.client import Client, RpcError
from appserver.server import Server, ServerConfig

from support import SchemaChecker

TIMEOUT = 20
IDLE = 10.0  # --idle-unload-seconds of this module's server


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(data_dir=None, idle_unload_seconds=IDLE, shutdown_timeout=0.5)


async def connected(server: Server, stack: AsyncExitStack, name: str) -> Client:
    client = await stack.enter_async_context(server.connect())
    await client.initialize(name)
    return client


def closed_count(log: Recorder, thread_id: str) -> int:
    return len(log.indexes(is_notification("thread/closed", threadId=thread_id)))


# --- unsubscribe (§5.7, §8.4) --------------------------------------------------------------


@pytest.mark.parametrize("running", [True, False], ids=["running-turn", "idle"])
async def test_last_unsubscribe_closes_the_thread(
    running: bool, ws_url: str, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_peers(ws_url, schema_checker, "a", "b", "observer") as (a, b, o):
            thread_id = await start_thread(a.client)
            await b.client.request("thread/resume", {"threadId": thread_id})
            turn_id = None
            if running:
                turn_id = await start_turn(a.client, thread_id, "/sleep 60")
                await a.client.next_notification("turn/started")
            unsubscribe = {"threadId": thread_id}
            assert await o.client.request("thread/unsubscribe", unsubscribe) == {
                "status": "notSubscribed"
            }
            assert await b.client.request("thread/unsubscribe", unsubscribe) == {
                "status": "unsubscribed"
            }
            # Not the last subscriber: the thread stays, its turn goes on.
            assert thread_id in await loaded_ids(o.client)
            thread = await read_thread(o.client, thread_id)
            assert thread["status"]["type"] == ("active" if running else "idle")

            assert await a.client.request("thread/unsubscribe", unsubscribe) == {
                "status": "unsubscribed"
            }
            for peer in (a, o):
                await peer.client.next_notification("thread/closed")
            assert thread_id not in await loaded_ids(o.client)
            stored = await read_thread(o.client, thread_id)
            assert await a.client.request("thread/unsubscribe", unsubscribe) == {
                "status": "notLoaded"
            }

    assert stored["status"] == {"type": "notLoaded"}
    if running:
        assert [(t["id"], t["status"]) for t in stored["turns"]] == [(turn_id, "interrupted")]
    for peer in (a, o):
        events = peer.log.notifications(thread_id)
        assert closed_count(peer.log, thread_id) == 1
        # ... thread/status/changed notLoaded, then thread/closed, broadcast.
        assert [m["method"] for m in events[-2:]] == ["thread/status/changed", "thread/closed"]
        assert params_of(events[-2])["status"] == {"type": "notLoaded"}
    # The close follows a's response; a and b, no longer subscribed, get no turn traffic.
    unsubscribed_at = a.log.index(lambda m: m.get("result") == {"status": "unsubscribed"})
    assert unsubscribed_at < a.log.index(is_notification("thread/closed"))
    for peer in (a, b):
        assert not peer.log.indexes(is_notification("turn/completed"))


@pytest.mark.parametrize("running", [False, True], ids=["idle", "running-turn"])
async def test_resume_racing_the_last_unsubscribe_is_refused_or_gets_a_fresh_instance(
    running: bool, server: Server, schema_checker: SchemaChecker
) -> None:
    """§8.4: while a thread closes, `thread/resume` gets `threadClosing`; afterwards it
    gets a fresh instance. Never a successful resume of the instance being closed."""
    bad: list[str] = []
    with trio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            a = await connected(server, stack, "a")
            b = await connected(server, stack, "b")
            b_log = Recorder(b, schema_checker)
            for attempt in range(40):
                delay = attempt % 4  # scheduling points between the two requests
                thread_id = await start_thread(a)
                if running:
                    await start_turn(a, thread_id, "/sleep 60")
                    await a.next_notification("turn/started")
                outcome: dict[str, Any] = {}

                async def resume(thread_id: str = thread_id, out: dict[str, Any] = outcome) -> None:
                    try:
                        out["resume"] = await b.request("thread/resume", {"threadId": thread_id})
                    except RpcError as exc:
                        out["error"] = exc.kind

                async def unsubscribe(
                    thread_id: str = thread_id, out: dict[str, Any] = outcome, delay: int = delay
                ) -> None:
                    for _ in range(delay):
                        await trio.lowlevel.checkpoint()
                    result = await a.request("thread/unsubscribe", {"threadId": thread_id})
                    out["unsubscribe"] = result["status"]

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(resume)
                    nursery.start_soon(unsubscribe)
                await trio.testing.wait_all_tasks_blocked()
                loaded = thread_id in await loaded_ids(b)
                assert outcome["unsubscribe"] == "unsubscribed"
                if "error" in outcome:
                    assert outcome["error"] == "threadClosing"
                    assert not loaded
                else:
                    answer_at = b_log.index(is_answer_with(outcome["resume"]))
                    closes = b_log.indexes(is_notification("thread/closed", threadId=thread_id))
                    if any(i > answer_at for i in closes) or not loaded:
                        bad.append(f"attempt {attempt}: resume succeeded, then the thread closed")
                        continue
                    resumed = outcome["resume"]["thread"]
                    if closes:  # resumed after the close: a fresh instance from the store
                        assert resumed["status"] == {"type": "idle"}
                        if running:
                            assert resumed["turns"][-1]["status"] == "interrupted"
                    await b.request("thread/unsubscribe", {"threadId": thread_id})
                    await trio.testing.wait_all_tasks_blocked()
                a.drain_notifications()
                b.drain_notifications()
    assert bad == []


# --- disconnect (§8.2) -----------------------------------------------------------------------


async def test_disconnect_leaves_threads_loaded_and_turns_running(server: Server) -> None:
    with trio.fail_after(TIMEOUT):
        async with AsyncExitStack() as stack:
            o = await connected(server, stack, "observer")
            async with server.connect() as a:
                await a.initialize("a")
                busy = await start_thread(a, approvalPolicy="never")
                quiet = await start_thread(a)
                turn_id = await start_turn(a, busy, "/sleep 0.5\n/say still here")
                await a.next_notification("turn/started")
            await trio.testing.wait_all_tasks_blocked()
            stats = server.statistics()
            assert stats["connections"] == 1
            assert stats["subscriptions"] == 0 and stats["subscribers_indexed"] == 0
            assert stats["loaded"] == 2 and stats["running_turns"] == 1
            assert stats["idle_timers"] == 1  # only the thread with no running turn
            assert sorted(await loaded_ids(o)) == sorted([busy, quiet])
            thread = await read_thread(o, busy)
            assert thread["status"]["type"] == "active"
            assert thread["turns"][-1]["status"] == "inProgress"

            b = await connected(server, stack, "b")
            resumed = await b.request("thread/resume", {"threadId": busy})
            assert resumed["thread"]["turns"][-1]["status"] == "inProgress"
            assert (await turn_completed(b, busy, turn_id))["status"] == "completed"
            stored = await read_thread(o, busy)
    texts = [i.get("text") for i in stored["turns"][-1]["items"] if i["type"] == "agentMessage"]
    assert texts == ["still here"]


# --- idle unload (§8.3), virtual time ----------------------------------------------------------


async def test_idle_unload_after_the_delay_only_without_subscribers(
    server: Server, autojump_clock: trio.testing.MockClock, schema_checker: SchemaChecker
) -> None:
    async with AsyncExitStack() as stack:
        o = await connected(server, stack, "observer")
        o_log = Recorder(o, schema_checker)
        a = await connected(server, stack, "a")
        kept = await start_thread(a)
        async with server.connect() as b:
            await b.initialize("b")
            left = await start_thread(b)
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
        assert server.statistics()["idle_timers"] == 1

        await trio.sleep(IDLE - 0.01)
        assert sorted(await loaded_ids(o)) == sorted([kept, left])
        assert closed_count(o_log, left) == 0
        await o.next_notification("thread/closed", where=lambda p: p["threadId"] == left)
        assert IDLE <= trio.current_time() - t0 < IDLE + 0.01
        events = o_log.notifications(left)
        assert [m["method"] for m in events] == ["thread/status/changed", "thread/closed"]
        assert params_of(events[0])["status"] == {"type": "notLoaded"}

        await trio.sleep(10 * IDLE)  # a subscriber keeps its thread loaded
        assert await loaded_ids(o) == [kept]
        assert server.statistics()["idle_timers"] == 0


async def test_no_idle_unload_while_a_turn_runs(
    server: Server, autojump_clock: trio.testing.MockClock, schema_checker: SchemaChecker
) -> None:
    async with AsyncExitStack() as stack:
        o = await connected(server, stack, "observer")
        o_log = Recorder(o, schema_checker)
        async with server.connect() as a:
            await a.initialize("a")
            thread_id = await start_thread(a)
            await start_turn(a, thread_id, "/sleep 100")
            await a.next_notification("turn/started")
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
        assert server.statistics()["idle_timers"] == 0

        await status_change(o, thread_id, "idle")  # the turn ends at t0 + 100
        ended = trio.current_time()
        assert ended - t0 == pytest.approx(100, abs=0.01)
        assert closed_count(o_log, thread_id) == 0
        await o.next_notification("thread/closed")
        assert trio.current_time() - ended == pytest.approx(IDLE, abs=0.01)
        stored = await read_thread(o, thread_id)
    assert stored["turns"][-1]["status"] == "completed"


async def test_no_idle_unload_while_an_approval_is_pending(
    server: Server,
    autojump_clock: trio.testing.MockClock,
    schema_checker: SchemaChecker,
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        o = await connected(server, stack, "observer")
        o_log = Recorder(o, schema_checker)
        async with server.connect() as a:
            await a.initialize("a")
            thread_id = await start_thread(a, cwd=str(tmp_path))
            turn_id = await start_turn(a, thread_id, "/run touch ran")
            request = await a.next_server_request()
        await trio.sleep(50 * IDLE)
        assert await loaded_ids(o) == [thread_id]
        assert (await read_thread(o, thread_id))["status"] == WAITING_ON_APPROVAL
        assert closed_count(o_log, thread_id) == 0
        assert server.statistics()["pending_requests"] == 1

        async with server.connect() as b:
            await b.initialize("b")
            await b.request("thread/resume", {"threadId": thread_id})
            again = await b.next_server_request()
            assert (again.id, again.params) == (request.id, request.params)
            await b.respond(again.id, {"decision": "decline"})
            assert (await turn_completed(b, thread_id, turn_id))["status"] == "completed"
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()
        await o.next_notification("thread/closed")
        assert trio.current_time() - t0 == pytest.approx(IDLE, abs=0.01)
    assert not (tmp_path / "ran").exists()


# --- racing close causes, generations (§8.4, invariant 4) ------------------------------------


def check_lifecycle(events: list[Message], thread_id: str) -> int:
    """The observer's view of one thread (§8.4): each loaded instance is torn down once,
    announced by one `thread/status/changed` notLoaded followed by `thread/closed` (or, when
    archived, `thread/archived`); loads and teardowns alternate. Returns the number of
    instances."""
    state = "notLoaded"
    instances = 0
    for message in events:
        method, params = message["method"], params_of(message)
        if method == "thread/started":
            if params["thread"]["id"] == thread_id:
                assert state == "notLoaded", f"started while {state}"
                state, instances = "loaded", instances + 1
        elif params.get("threadId") != thread_id:
            continue
        elif method == "thread/status/changed" and params["status"] == {"type": "notLoaded"}:
            assert state == "loaded", f"notLoaded announced while {state}: torn down twice?"
            state = "closing"
        elif method == "thread/status/changed":
            assert state != "closing", "a status change between notLoaded and the close"
            if state == "notLoaded":  # loaded again from the store: a fresh instance
                state, instances = "loaded", instances + 1
        elif method == "thread/closed":
            assert state == "closing", f"thread/closed while {state}"
            state = "notLoaded"
        elif method == "thread/archived":
            assert state in ("closing", "notLoaded"), f"thread/archived while {state}"
            state = "notLoaded"
    assert state == "notLoaded", "the thread was never closed"
    return instances


@pytest.mark.parametrize("offset", [-0.001, 0.0, 0.001])
async def test_idle_timer_unsubscribe_and_disconnect_close_each_instance_once(
    offset: float,
    server: Server,
    autojump_clock: trio.testing.MockClock,
    schema_checker: SchemaChecker,
) -> None:
    async with AsyncExitStack() as stack:
        o = await connected(server, stack, "observer")
        o_log = Recorder(o, schema_checker)
        async with server.connect() as a:
            await a.initialize("a")
            thread_id = await start_thread(a)
        await trio.testing.wait_all_tasks_blocked()
        deadline = trio.current_time() + IDLE + offset  # the idle timer fires at +IDLE

        async def resume_then_unsubscribe() -> None:
            async with server.connect() as b:
                await b.initialize("b")
                await trio.sleep_until(deadline)
                try:
                    await b.request("thread/resume", {"threadId": thread_id})
                except RpcError as exc:
                    assert exc.kind == "threadClosing"
                    return
                await b.request("thread/unsubscribe", {"threadId": thread_id})

        async def resume_then_disconnect() -> None:
            async with server.connect() as c:
                await c.initialize("c")
                await trio.sleep_until(deadline)
                try:
                    await c.request("thread/resume", {"threadId": thread_id})
                except RpcError as exc:
                    assert exc.kind == "threadClosing"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(resume_then_unsubscribe)
            nursery.start_soon(resume_then_disconnect)
        await trio.sleep(3 * IDLE)
        await o.request("thread/loaded/list")  # barrier
        assert await loaded_ids(o) == []
        instances = check_lifecycle(o_log.notifications(), thread_id)
        assert closed_count(o_log, thread_id) == instances >= 1
        stats = server.statistics()
        assert (stats["loaded"], stats["subscriptions"], stats["idle_timers"]) == (0, 0, 0)


@pytest.mark.parametrize("cause", ["unsubscribe", "archive"])
async def test_old_instance_timers_never_close_a_reloaded_instance(
    cause: str,
    server: Server,
    autojump_clock: trio.testing.MockClock,
    schema_checker: SchemaChecker,
) -> None:
    async with AsyncExitStack() as stack:
        o = await connected(server, stack, "observer")
        o_log = Recorder(o, schema_checker)
        b = await connected(server, stack, "b")
        async with server.connect() as a:
            await a.initialize("a")
            thread_id = await start_thread(a)
        await trio.testing.wait_all_tasks_blocked()
        t0 = trio.current_time()  # instance 1 idles from here: its timer is due at t0 + 10

        await trio.sleep_until(t0 + 5)
        if cause == "unsubscribe":
            await b.request("thread/resume", {"threadId": thread_id})
            await b.request("thread/unsubscribe", {"threadId": thread_id})
            await o.next_notification("thread/closed")
        else:  # closes instance 1 with no subscription ever cancelling its timer
            await b.request("thread/archive", {"threadId": thread_id})
            await o.next_notification("thread/archived")
            await b.request("thread/unarchive", {"threadId": thread_id})

        await trio.sleep_until(t0 + 6)
        async with server.connect() as c:  # instance 2, idle from t0 + 7
            await c.initialize("c")
            await c.request("thread/resume", {"threadId": thread_id})
            await trio.sleep_until(t0 + 7)
        await trio.testing.wait_all_tasks_blocked()

        await trio.sleep_until(t0 + 7 + IDLE - 0.01)  # past every deadline of instance 1
        assert await loaded_ids(o) == [thread_id]
        assert closed_count(o_log, thread_id) == (1 if cause == "unsubscribe" else 0)
        await o.next_notification("thread/closed", where=lambda p: p["threadId"] == thread_id)
        assert trio.current_time() == pytest.approx(t0 + 7 + IDLE, abs=0.01)
        assert check_lifecycle(o_log.notifications(), thread_id) == 2


@pytest.mark.parametrize("delay", [0, 2, 4, 8])
@pytest.mark.parametrize("leave", [-0.5, 0.0], ids=["left-before", "leaves-together"])
async def test_unsubscribe_archive_and_disconnect_racing_tear_down_once(
    leave: float,
    delay: int,
    server: Server,
    autojump_clock: trio.testing.MockClock,
    schema_checker: SchemaChecker,
) -> None:
    """The last unsubscribe, an archive and a disconnect at the same instant, while a turn
    runs: one teardown (one notLoaded), the turn stored interrupted once, nothing left."""
    async with AsyncExitStack() as stack:
        o = await connected(server, stack, "observer")
        o_log = Recorder(o, schema_checker)
        a = await connected(server, stack, "a")
        archiver = await connected(server, stack, "archiver")
        thread_id = await start_thread(a)
        turn_id = await start_turn(a, thread_id, "/sleep 100")
        await a.next_notification("turn/started")
        at = trio.current_time() + 1
        results: dict[str, Any] = {}

        async def unsubscribe() -> None:
            await trio.sleep_until(at)
            answer = await a.request("thread/unsubscribe", {"threadId": thread_id})
            results["unsubscribe"] = answer["status"]

        async def disconnect(task_status: trio.TaskStatus[None]) -> None:
            async with server.connect() as c:
                await c.initialize("c")
                await c.request("thread/resume", {"threadId": thread_id})
                task_status.started()
                await trio.sleep_until(at + leave)

        async def archive() -> None:
            await trio.sleep_until(at)
            for _ in range(delay):  # scheduling points: during or after the other close
                await trio.lowlevel.checkpoint()
            results["archive"] = await archiver.request("thread/archive", {"threadId": thread_id})

        async with trio.open_nursery() as nursery:
            await nursery.start(disconnect)
            nursery.start_soon(unsubscribe)
            nursery.start_soon(archive)
        await trio.sleep(3 * IDLE)
        await o.request("thread/loaded/list")  # barrier
        stored = await read_thread(o, thread_id)

    assert results["archive"] == {}
    assert results["unsubscribe"] in ("unsubscribed", "notLoaded")
    assert check_lifecycle(o_log.notifications(), thread_id) == 1
    assert closed_count(o_log, thread_id) <= 1
    assert len(o_log.indexes(is_notification("thread/archived", threadId=thread_id))) == 1
    assert [(t["id"], t["status"]) for t in stored["turns"]] == [(turn_id, "interrupted")]
    stats = server.statistics()
    assert (stats["loaded"], stats["running_turns"], stats["subscriptions"]) == (0, 0, 0)
    assert (stats["idle_timers"], stats["pending_requests"]) == (0, 0)


# --- nothing leaks (invariant 6) ------------------------------------------------------------


async def test_departed_connections_leave_nothing_behind(
    server: Server, autojump_clock: trio.testing.MockClock
) -> None:
    cycles = 500
    for i in range(cycles):
        async with server.connect() as client:
            await client.initialize(f"c{i}")
            thread_id = await start_thread(client, approvalPolicy="never")
            if i % 5 == 0:
                await start_turn(client, thread_id, "/say bye")
            if i % 7 == 0:
                await client.request("thread/read", {"threadId": thread_id})
    await trio.testing.wait_all_tasks_blocked()
    stats = server.statistics()
    assert stats["connections"] == 0
    assert stats["inflight"] == 0
    assert stats["subscriptions"] == 0
    assert stats["subscribers_indexed"] == 0
    assert stats["pending_requests"] == 0
    assert stats["running_turns"] == 0
    # Threads stay loaded until idle unload (§8.2, §8.3) ...
    assert stats["loaded"] == cycles
    assert stats["idle_timers"] == cycles
    await trio.sleep(IDLE + 1)
    stats = server.statistics()
    # ... then go.
    assert (stats["loaded"], stats["idle_timers"], stats["connections"]) == (0, 0, 0)
