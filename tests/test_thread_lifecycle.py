"""thread/fork, thread/delete, thread/revert, thread/metadata/update, thread/inject_items
over real transports (memory, stdio, websocket), several clients on one server, and real
SQLite files across restarts."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import trio
from threads_support import (
    Message,
    Recorder,
    collect_turn,
    new_thread,
    of_thread,
    rpc_error,
    run_turn,
    start_turn,
    stored_thread,
    unload,
)

from appserver.client import Client, spawn_stdio
from appserver.server import Server

from conftest import ConnectFactory

TIMEOUT = 20
MISSING = "019a0000-0000-7000-8000-000000000000"
NOT_LOADED = {"type": "notLoaded"}
MESSAGE = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}


async def turns_of(client: Client, thread_id: str) -> list[Message]:
    return list((await stored_thread(client, thread_id))["turns"])


def kinds(error: Any) -> tuple[int, str]:
    return error.code, error.data["kind"]


def no_traffic_of(recorder: Recorder, thread_id: str) -> bool:
    """Nothing but broadcasts (thread/started, status changes) of `thread_id` arrived."""
    broadcasts = {"thread/started", "thread/status/changed", "thread/deleted"}
    return all(
        m["method"] in broadcasts
        for m, _ in recorder.messages
        if "method" in m and "id" not in m and _thread_of(m) == thread_id
    )


def _thread_of(message: Message) -> str | None:
    params = message.get("params") or {}
    return params.get("threadId") or (params.get("thread") or {}).get("id")


# --- thread/fork -------------------------------------------------------------------------


async def test_fork_copies_turns_and_items_with_their_ids(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("lifecycle")
            source = await new_thread(client)
            first, _ = await run_turn(client, source, "/say one")
            await run_turn(client, source, "/say two")
            history = await turns_of(client, source)
            fork = await client.request("thread/fork", {"threadId": source})
            thread = fork["thread"]
            assert thread["id"] != source and thread["forkedFromId"] == source
            assert thread["turns"] == history  # turns and items with their ids
            assert thread["preview"] == "/say one"
            assert fork["model"] == "script" and fork["modelProvider"] == "builtin"
            started = await client.next_notification(
                "thread/started", where=lambda p: p["thread"]["id"] == thread["id"]
            )
            assert started["params"]["thread"]["turns"] == []
            # Through an earlier turn (inclusive), without turns, with settings overrides.
            other = tmp_path / "other"
            other.mkdir()
            cut = await client.request(
                "thread/fork",
                {
                    "threadId": source,
                    "lastTurnId": first,
                    "cwd": str(other),
                    "sandbox": "read-only",
                },
            )
            assert [t["id"] for t in cut["thread"]["turns"]] == [first]
            assert cut["cwd"] == str(other) and cut["sandbox"] == {"type": "readOnly"}
            bare = await client.request("thread/fork", {"threadId": source, "excludeTurns": True})
            assert bare["thread"]["turns"] == []
            assert await turns_of(client, bare["thread"]["id"]) == history
            # A fork of a fork; the fork is read, listed and resumed like any thread.
            again = await client.request("thread/fork", {"threadId": thread["id"]})
            assert again["thread"]["forkedFromId"] == thread["id"]
            assert again["thread"]["turns"] == history
            read = await stored_thread(client, thread["id"])
            assert read["forkedFromId"] == source and read["turns"] == history
            listed = await client.request("thread/list", {})
            assert {t["id"] for t in listed["data"]} >= {
                source,
                thread["id"],
                again["thread"]["id"],
            }
            # The caller is subscribed to the fork: its turns stream to it.
            turn_id, events = await run_turn(client, thread["id"], "/say forked")
            assert events[-2]["params"]["turn"]["status"] == "completed"
            assert [t["id"] for t in await turns_of(client, source)] == [h["id"] for h in history]
            assert [t["id"] for t in await turns_of(client, thread["id"])][-1] == turn_id


async def test_fork_refuses_bad_input(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("lifecycle")
            source = await new_thread(client)
            await run_turn(client, source, "/say one")
            err = await rpc_error(client, "thread/fork", {"threadId": source, "path": "/x.jsonl"})
            assert kinds(err) == (-32600, "invalidRequest") and "thread/fork.path" in err.message
            assert (await client.request("thread/fork", {"threadId": source, "path": ""}))["thread"]
            err = await rpc_error(client, "thread/fork", {"threadId": source, "ephemeral": True})
            assert err.message == "ephemeral thread/fork requires `excludeTurns: true`"
            err = await rpc_error(client, "thread/fork", {"threadId": MISSING})
            assert kinds(err) == (-32600, "threadNotFound") and MISSING in err.message
            err = await rpc_error(client, "thread/fork", {"threadId": "nope"})
            assert kinds(err) == (-32600, "invalidThreadId")
            err = await rpc_error(client, "thread/fork", {"threadId": source, "lastTurnId": "t"})
            assert (err.code, err.message) == (-32600, "turn not found: t")
            err = await rpc_error(client, "thread/fork", {"threadId": 5})
            assert err.code == -32602 and err.data["errors"][0]["path"] == "threadId"
            err = await rpc_error(
                client, "thread/fork", {"threadId": source, "excludeTurns": "yes"}
            )
            assert err.code == -32602 and err.data["errors"][0]["path"] == "excludeTurns"
            await client.request("thread/archive", {"threadId": source})
            err = await rpc_error(client, "thread/fork", {"threadId": source})
            assert kinds(err) == (-32600, "threadArchived")


async def test_fork_while_another_client_streams_the_source(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b:
            await a.initialize("forker")
            await b.initialize("streamer")
            source = await new_thread(b)
            watch = Recorder(b)
            turn_id = await start_turn(b, source, "/stream 3 4\n/sleep 1\n/say after")
            # Fork once the streamed message is complete and the turn sleeps.
            await b.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "agentMessage"
            )
            fork = await a.request("thread/fork", {"threadId": source})
            fork_id = fork["thread"]["id"]
            copied = fork["thread"]["turns"][-1]
            assert (copied["id"], copied["status"]) == (turn_id, "interrupted")
            assert [i["type"] for i in copied["items"]] == ["userMessage", "agentMessage"]
            assert len(copied["items"][1]["text"]) == 12  # 3 deltas of 4
            # The source's turn goes on for its streaming client, uninterrupted.
            events = await collect_turn(b, source, turn_id)
            done = events[-2]["params"]["turn"]
            assert done["status"] == "completed"
            assert [i["text"] for i in done["items"]] == ["after"]
            assert (await turns_of(a, fork_id))[-1]["status"] == "interrupted"
            # A turn on the fork reaches its caller only; the streamer sees broadcasts.
            await run_turn(a, fork_id, "/say forked")
            await b.request("thread/loaded/list", {})  # a round trip: b has seen it all
            assert no_traffic_of(watch, fork_id)
            started = [m for m, _ in watch.messages if m.get("method") == "thread/started"]
            assert [m["params"]["thread"]["id"] for m in started][-1:] == [fork_id]


async def test_fork_of_an_ephemeral_thread_and_an_ephemeral_fork(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("lifecycle")
            source = await new_thread(client, ephemeral=True)
            await run_turn(client, source, "/say one")
            fork = await client.request("thread/fork", {"threadId": source})
            assert fork["thread"]["ephemeral"] is False and len(fork["thread"]["turns"]) == 1
            eph = await client.request(
                "thread/fork",
                {"threadId": fork["thread"]["id"], "ephemeral": True, "excludeTurns": True},
            )
            eph_id = eph["thread"]["id"]
            assert eph["thread"]["ephemeral"] is True and eph["thread"]["turns"] == []
            assert len(await turns_of(client, eph_id)) == 1
            listed = {t["id"] for t in (await client.request("thread/list", {}))["data"]}
            assert fork["thread"]["id"] in listed and eph_id not in listed and source not in listed


# --- thread/delete -----------------------------------------------------------------------


async def test_delete_closes_a_subscribed_thread_and_tells_everyone(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b:
            await a.initialize("subscriber")
            await b.initialize("deleter")
            thread_id = await new_thread(a)
            await run_turn(a, thread_id, "/say one")
            seen = Recorder(a)
            turn_id = await start_turn(a, thread_id, "/sleep 30")
            await a.next_notification("turn/started")
            mine = Recorder(b)
            assert await b.request("thread/delete", {"threadId": thread_id}) == {}
            await b.next_notification("thread/deleted", where=of_thread(thread_id))
            # The subscriber: its turn interrupted, then notLoaded, then thread/deleted.
            done = await a.next_notification("turn/completed")
            assert (done["params"]["turn"]["id"], done["params"]["turn"]["status"]) == (
                turn_id,
                "interrupted",
            )
            await a.next_notification("thread/deleted", where=of_thread(thread_id))
            order = [m["method"] for m, _ in seen.messages if _thread_of(m) == thread_id]
            assert order[-3:] == ["turn/completed", "thread/status/changed", "thread/deleted"]
            assert "thread/closed" not in order
            answer = mine.answer_index("thread/delete")
            assert mine.notification_index("thread/deleted", threadId=thread_id) > answer
            assert mine.notification_index("thread/status/changed", threadId=thread_id) < answer
            # Nothing is left of it.
            for method in ("thread/read", "thread/resume", "thread/delete", "thread/fork"):
                err = await rpc_error(b, method, {"threadId": thread_id})
                assert kinds(err) == (-32600, "threadNotFound"), method
            assert (await b.request("thread/loaded/list", {}))["data"] == []
            assert (await b.request("thread/list", {}))["data"] == []
            err = await rpc_error(b, "thread/delete", {"threadId": "x"})
            assert kinds(err) == (-32600, "invalidThreadId")


async def test_delete_of_unloaded_and_ephemeral_threads(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("lifecycle")
            stored = await new_thread(client)
            await run_turn(client, stored, "/say one")
            await unload(client, stored)
            assert await client.request("thread/delete", {"threadId": stored}) == {}
            await client.next_notification("thread/deleted", where=of_thread(stored))
            eph = await new_thread(client, ephemeral=True)
            await run_turn(client, eph, "/say one")
            assert await client.request("thread/delete", {"threadId": eph}) == {}
            await client.next_notification("thread/deleted", where=of_thread(eph))
            for thread_id in (stored, eph):
                err = await rpc_error(client, "thread/read", {"threadId": thread_id})
                assert kinds(err) == (-32600, "threadNotFound")


# --- thread/revert -----------------------------------------------------------------------


async def test_revert_keeps_the_history_before_a_turn(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("lifecycle")
            thread_id = await new_thread(client)
            turns = [(await run_turn(client, thread_id, f"/say {n}"))[0] for n in range(3)]
            kept = (await turns_of(client, thread_id))[0]
            result = await client.request(
                "thread/revert", {"threadId": thread_id, "beforeTurnId": turns[1]}
            )
            assert result["thread"]["id"] == thread_id and result["thread"]["turns"] == []
            assert result["thread"]["status"] == {"type": "idle"}
            await client.next_notification("thread/reverted", where=of_thread(thread_id))
            assert await turns_of(client, thread_id) == [kept]
            page = await client.request(
                "thread/turns/list",
                {
                    "threadId": thread_id,
                    "cursor": result["turnsBackwardsCursor"],
                    "itemsView": "full",
                },
            )
            assert [t["id"] for t in page["data"]] == [turns[0]]
            items = await client.request(
                "thread/items/list",
                {
                    "threadId": thread_id,
                    "cursor": result["itemsBackwardsCursor"],
                    "sortDirection": "desc",
                },
            )
            assert [e["item"]["id"] for e in items["data"]] == [
                i["id"] for i in reversed(kept["items"])
            ]
            # Turns go on after the prefix; the reverted turn ids are gone for good.
            new_turn, _ = await run_turn(client, thread_id, "/say again")
            assert [t["id"] for t in await turns_of(client, thread_id)] == [turns[0], new_turn]
            err = await rpc_error(
                client, "thread/revert", {"threadId": thread_id, "beforeTurnId": turns[2]}
            )
            assert (err.code, err.message) == (-32600, f"turn not found: {turns[2]}")
            empty = await client.request(
                "thread/revert", {"threadId": thread_id, "beforeTurnId": turns[0]}
            )
            assert (empty["turnsBackwardsCursor"], empty["itemsBackwardsCursor"]) == (None, None)
            assert await turns_of(client, thread_id) == []


async def test_revert_refuses_bad_input(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("lifecycle")
            thread_id = await new_thread(client)
            turn_id, _ = await run_turn(client, thread_id, "/say one")
            err = await rpc_error(client, "thread/revert", {"threadId": thread_id})
            assert err.code == -32602 and err.data["errors"][0]["path"] == "beforeTurnId"
            err = await rpc_error(
                client, "thread/revert", {"threadId": MISSING, "beforeTurnId": turn_id}
            )
            assert kinds(err) == (-32600, "threadNotFound")
            await unload(client, thread_id)
            err = await rpc_error(
                client, "thread/revert", {"threadId": thread_id, "beforeTurnId": turn_id}
            )
            assert kinds(err) == (-32600, "threadNotLoaded")
            assert len(await turns_of(client, thread_id)) == 1


async def test_revert_interrupts_the_running_turn_and_second_subscriber_sees_it(
    connect_shared: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b:
            await a.initialize("reverter")
            await b.initialize("watcher")
            thread_id = await new_thread(a)
            first, _ = await run_turn(a, thread_id, "/say one")
            await b.request("thread/resume", {"threadId": thread_id})
            running = await start_turn(a, thread_id, "/sleep 30")
            await b.next_notification("turn/started")
            seen = Recorder(a)
            result = await a.request(
                "thread/revert", {"threadId": thread_id, "beforeTurnId": running}
            )
            assert result["thread"]["status"] == {"type": "idle"}
            done = seen.notification_index("turn/completed")
            assert done < seen.answer_index("thread/revert")
            ended = await b.next_notification("turn/completed")
            assert ended["params"]["turn"]["status"] == "interrupted"
            await b.next_notification("thread/reverted", where=of_thread(thread_id))
            assert [t["id"] for t in await turns_of(b, thread_id)] == [first]
            # The watcher stays subscribed: the next turn streams to it.
            turn_id = await start_turn(b, thread_id, "/say after")
            events = await collect_turn(b, thread_id, turn_id)
            assert events[-2]["params"]["turn"]["status"] == "completed"


# --- thread/metadata/update --------------------------------------------------------------


async def test_metadata_update_patches_git_info_everywhere(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("lifecycle")
            thread_id = await new_thread(client)

            async def update(git: Any) -> Message:
                params = {"threadId": thread_id, "gitInfo": git}
                thread: Message = (await client.request("thread/metadata/update", params))["thread"]
                return thread

            main = {"sha": None, "branch": "main", "originUrl": None}
            assert (await update({"branch": "main"}))["gitInfo"] == main
            full = {"sha": "abc", "branch": "main", "originUrl": "https://x/y.git"}
            assert (await update({"sha": "abc", "originUrl": "https://x/y.git"}))["gitInfo"] == full
            assert (await stored_thread(client, thread_id))["gitInfo"] == full
            listed = (await client.request("thread/list", {}))["data"]
            assert [t["gitInfo"] for t in listed] == [full]
            resumed = await client.request("thread/resume", {"threadId": thread_id})
            assert resumed["thread"]["gitInfo"] == full
            fork = await client.request("thread/fork", {"threadId": thread_id})
            assert fork["thread"]["gitInfo"] == full  # a fork keeps its source's
            assert (await update({"branch": None}))["gitInfo"] == {**full, "branch": None}
            assert (await update({"sha": None, "originUrl": None}))["gitInfo"] is None
            for git, message in (
                ({}, "gitInfo must include at least one field"),
                (None, "thread metadata update must include at least one field"),
                ({"branch": " "}, "gitInfo.branch must not be empty"),
            ):
                err = await rpc_error(
                    client, "thread/metadata/update", {"threadId": thread_id, "gitInfo": git}
                )
                assert (err.code, err.message) == (-32600, message)
            err = await rpc_error(
                client, "thread/metadata/update", {"threadId": thread_id, "gitInfo": {"sha": 5}}
            )
            assert err.code == -32602 and err.data["errors"][0]["path"] == "gitInfo.sha"
            err = await rpc_error(
                client, "thread/metadata/update", {"threadId": MISSING, "gitInfo": {"sha": "a"}}
            )
            assert kinds(err) == (-32600, "threadNotFound")
            # A stored thread that is not loaded is updated too.
            await unload(client, thread_id)
            assert (await update({"branch": "dev"}))["status"] == NOT_LOADED
            assert (await stored_thread(client, thread_id))["gitInfo"]["branch"] == "dev"
            eph = await new_thread(client, ephemeral=True)
            err = await rpc_error(
                client, "thread/metadata/update", {"threadId": eph, "gitInfo": {"sha": "a"}}
            )
            assert err.message == f"ephemeral thread does not support metadata updates: {eph}"


# --- thread/inject_items -----------------------------------------------------------------


async def test_inject_items_are_stored_and_invisible_to_clients(server: Server) -> None:
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            await client.initialize("lifecycle")
            thread_id = await new_thread(client)
            turn_id, _ = await run_turn(client, thread_id, "/say one")
            before = await stored_thread(client, thread_id)
            seen = Recorder(client)
            params = {"threadId": thread_id, "items": [MESSAGE, {"type": "function_call"}]}
            assert await client.request("thread/inject_items", params) == {}
            await client.request("thread/loaded/list", {})
            assert [m for m, _ in seen.messages if "method" in m] == []  # no notification
            assert await stored_thread(client, thread_id) == before
            injected = await server.store.get_injected_items(thread_id)
            assert [(i.after_turn_id, i.item) for i in injected] == [
                (turn_id, MESSAGE),
                (turn_id, {"type": "function_call"}),
            ]


async def test_inject_items_refuses_bad_input(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("lifecycle")
            thread_id = await new_thread(client)
            for items, path in (
                ([5], "items[0]"),
                ([{"foo": 1}], "items[0].type"),
                ([MESSAGE, {"type": "message"}], "items[1].role"),
                ([{"type": "message", "role": "user", "content": "x"}], "items[0].content"),
                ("x", "items"),
            ):
                err = await rpc_error(
                    client, "thread/inject_items", {"threadId": thread_id, "items": items}
                )
                assert err.code == -32602 and err.data["errors"][0]["path"] == path, items
            err = await rpc_error(
                client, "thread/inject_items", {"threadId": thread_id, "items": []}
            )
            assert (err.code, err.message) == (-32600, "items must not be empty")
            err = await rpc_error(client, "thread/inject_items", {"threadId": MISSING, "items": []})
            assert kinds(err) == (-32600, "threadNotFound")
            await unload(client, thread_id)
            err = await rpc_error(
                client, "thread/inject_items", {"threadId": thread_id, "items": [MESSAGE]}
            )
            assert kinds(err) == (-32600, "threadNotLoaded")


# --- persistence -------------------------------------------------------------------------


def rows_naming(db_file: Path, thread_id: str) -> dict[str, int]:
    """How many rows of each table mention `thread_id` (items: through their turn)."""
    with contextlib.closing(sqlite3.connect(db_file)) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        counts: dict[str, int] = {}
        for table in tables:
            columns = [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
            if "thread_id" in columns:
                sql = f'SELECT count(*) FROM "{table}" WHERE thread_id = ?'
            elif table == "threads":
                sql = "SELECT count(*) FROM threads WHERE id = ?"
            elif table == "items":
                sql = (
                    "SELECT count(*) FROM items WHERE turn_seq IN "
                    "(SELECT seq FROM turns WHERE thread_id = ?)"
                )
            else:
                continue
            counts[table] = db.execute(sql, (thread_id,)).fetchone()[0]
    return counts


async def test_fork_revert_and_delete_are_durable(tmp_path: Path) -> None:
    args = ["--data-dir", str(tmp_path / "data"), "--log-level", "warning"]
    db_file = tmp_path / "data" / "appserver.sqlite3"
    with trio.fail_after(TIMEOUT * 2):
        async with spawn_stdio(args) as client:
            await client.initialize("lifecycle")
            source = await new_thread(client)
            turns = [(await run_turn(client, source, f"/say {n}"))[0] for n in range(2)]
            fork = (await client.request("thread/fork", {"threadId": source}))["thread"]
            await client.request(
                "thread/inject_items", {"threadId": fork["id"], "items": [MESSAGE]}
            )
            await client.request("thread/revert", {"threadId": source, "beforeTurnId": turns[1]})
            gone = (await client.request("thread/fork", {"threadId": fork["id"]}))["thread"]["id"]
            await run_turn(client, gone, "/say doomed")
            await client.request(
                "thread/metadata/update", {"threadId": gone, "gitInfo": {"branch": "x"}}
            )
            await client.request("thread/inject_items", {"threadId": gone, "items": [MESSAGE]})
            assert rows_naming(db_file, gone)["injected_items"] == 1
            await client.request("thread/delete", {"threadId": gone})
        async with spawn_stdio(args) as client:
            await client.initialize("lifecycle")
            again = await stored_thread(client, fork["id"])
            assert again["forkedFromId"] == source and again["turns"] == fork["turns"]
            assert [t["id"] for t in await turns_of(client, source)] == turns[:1]
            err = await rpc_error(client, "thread/read", {"threadId": gone})
            assert kinds(err) == (-32600, "threadNotFound")
        counts = rows_naming(db_file, gone)
        assert {"threads", "thread_settings", "turns", "items", "injected_items"} <= set(counts)
        assert set(counts.values()) == {0}, counts
        assert rows_naming(db_file, fork["id"])["injected_items"] == 1
