"""thread/compact/start, thread/shellCommand and review/start (issue 14; the reference is
Codex 0.171, tests/codex_scenarios/special_turns.py) against a real server over each
transport (conftest `connect`), real SQLite files and the fake OpenAI endpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio
from fake_openai import DONE, FakeOpenAI, answer, chunk, stream_reply
from threads_support import (
    TIMEOUT,
    Message,
    Recorder,
    assert_well_ordered,
    collect_turn,
    completed_items,
    completed_turn,
    deltas,
    error_paths,
    methods,
    new_thread,
    rpc_error,
    run_turn,
    start_turn,
    stored_thread,
    unload,
)

from appserver.client import Client
from appserver.server import ServerConfig, open_server

from conftest import ConnectFactory

MISSING = "019a0000-0000-7000-8000-000000000000"


async def special(client: Client, method: str, params: Message) -> tuple[Message, list[Message]]:
    """Send a special-turn request and collect its turn (the one that starts next), from
    the `thread/status/changed` before its `turn/started` on."""
    thread_id = params["threadId"]
    result = await client.request(method, params)
    events: list[Message] = []
    while not events or events[-1]["method"] != "turn/started":
        events.append(
            await client.next_notification(where=lambda p: p.get("threadId") == thread_id)
        )
    turn_id = events[-1]["params"]["turn"]["id"]
    events += await collect_turn(client, thread_id, turn_id)
    assert_well_ordered(events)
    return result, events


def item_methods(events: list[Message]) -> list[tuple[str, str]]:
    return [
        (e["method"], e["params"]["item"]["type"])
        for e in events
        if e["method"] in ("item/started", "item/completed")
    ]


async def shell(client: Client, thread_id: str, command: str, **extra: Any) -> list[Message]:
    params = {"threadId": thread_id, "command": command, **extra}
    result, events = await special(client, "thread/shellCommand", params)
    assert result == {}
    return events


# --- thread/compact/start -------------------------------------------------------------


async def test_compaction_is_a_turn_of_one_context_compaction_item(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client)
            await run_turn(client, thread_id, "hello")
            result, events = await special(client, "thread/compact/start", {"threadId": thread_id})
            assert result == {}
            assert methods(events) == [
                "thread/status/changed",
                "turn/started",
                "item/started",
                "item/completed",
                "turn/completed",
                "thread/status/changed",
            ]
            started, completed = events[2]["params"]["item"], events[3]["params"]["item"]
            assert started == {
                "type": "contextCompaction",
                "id": started["id"],
                "startedAtMs": started["startedAtMs"],
                "completedAtMs": None,
            }
            assert set(completed) == {"type", "id", "startedAtMs", "completedAtMs"}  # no summary
            turn = completed_turn(events)
            assert (turn["status"], turn["items"], turn["itemsView"]) == (
                "completed",
                [],
                "notLoaded",
            )
            assert events[-1]["params"]["status"] == {"type": "idle"}
            stored = (await stored_thread(client, thread_id))["turns"]
            assert [t["status"] for t in stored] == ["completed", "completed"]
            assert stored[1]["items"] == [completed]
            # Every way of reading history shows the wire item, never the stored summary.
            paged = await client.request("thread/items/list", {"threadId": thread_id})
            assert [e["item"] for e in paged["data"]][-1] == completed
            full = {"threadId": thread_id, "itemsView": "full"}
            assert (await client.request("thread/turns/list", full))["data"][0]["items"] == [
                completed
            ]
            # A compaction of a thread with no turn works too; a later turn runs as usual.
            _, later = await run_turn(client, thread_id, "/say after")
            assert completed_items(later)[-1]["text"] == "after"


async def test_builtin_summary_is_stored_and_replaces_the_compacted_turns(tmp_path: Path) -> None:
    """agents/builtin.py's deterministic summary, stored with the item (a real SQLite
    file, across a restart): a second compaction summarises only the first one."""
    config = ServerConfig(data_dir=tmp_path / "data")
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as server, server.connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client, cwd=str(tmp_path))
            await run_turn(client, thread_id, "hello\n/say hi")
            await special(client, "thread/compact/start", {"threadId": thread_id})
        async with open_server(config) as server, server.connect() as client:
            await client.initialize("special")
            await client.request("thread/resume", {"threadId": thread_id})
            await special(client, "thread/compact/start", {"threadId": thread_id})
            turns = await server.store.get_turns(thread_id)
    first = turns[1].items[0]["summary"]
    lines = ["User: hello\n/say hi", "Agent: You said: hello", "Agent: hi"]
    assert first == "\n".join(["Summary of 1 earlier turn(s):", *lines])
    assert (
        turns[2].items[0]["summary"] == f"Summary of 1 earlier turn(s):\nEarlier summary: {first}"
    )


async def openai_server(nursery: trio.Nursery, tmp_path: Path) -> tuple[FakeOpenAI, ServerConfig]:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    key = tmp_path / "key"
    key.write_text("sk-test\n")
    config = ServerConfig(
        data_dir=None,
        agent="openai",
        model="fake-model",
        model_base_url=fake.url,
        api_key_file=key,
        model_timeout=5.0,
        model_retry_delay=0.01,
    )
    return fake, config


def user_contents(body: Message) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] != "system"]


async def test_compaction_replaces_history_for_the_openai_backend(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """What a later turn sends the model: the summary instead of the compacted turns
    (observed at the fake OpenAI endpoint)."""
    fake, config = await openai_server(nursery, tmp_path)
    fake.script(answer("first answer"), answer("THE SUMMARY"), answer("second answer"))
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as server, server.connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client, cwd=str(tmp_path))
            await run_turn(client, thread_id, "first question")
            await special(client, "thread/compact/start", {"threadId": thread_id})
            await run_turn(client, thread_id, "second question")
    contents = user_contents((await fake.request(3)).body)
    assert len(contents) == 2 and contents[1] == "second question"
    assert "THE SUMMARY" in contents[0]
    assert all("first" not in c for c in contents)


async def test_interrupted_compaction_rejoined_mid_way_replaces_nothing(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake, config = await openai_server(nursery, tmp_path)
    stalled = trio.Event()  # never set: the summary never comes
    fake.script(
        answer("first answer"),
        stream_reply(chunk(""), stalled, chunk("never"), DONE),
        answer("second answer"),
    )
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as server, server.connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client, cwd=str(tmp_path))
            await run_turn(client, thread_id, "first question")
            await client.request("thread/compact/start", {"threadId": thread_id})
            await fake.request(2)  # the compaction is waiting for the model
            async with server.connect() as other:
                await other.initialize("other")
                resumed = await other.request("thread/resume", {"threadId": thread_id})
                running = resumed["thread"]["turns"][-1]
                assert running["status"] == "inProgress"
                assert [i["type"] for i in running["items"]] == ["contextCompaction"]
                await client.request(
                    "turn/interrupt", {"threadId": thread_id, "turnId": running["id"]}
                )
                done = await other.next_notification("turn/completed")
                assert done["params"]["turn"]["status"] == "interrupted"
            stored = await server.store.get_turns(thread_id)
            assert "summary" not in stored[1].items[0]
            await run_turn(client, thread_id, "second question")
    assert user_contents((await fake.request(3)).body) == [
        "first question",
        "first answer",
        "second question",
    ]


# --- thread/shellCommand --------------------------------------------------------------


async def test_shell_command_runs_in_a_turn_of_its_own(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client, cwd=str(tmp_path))
            events = await shell(client, thread_id, "echo hi; pwd; echo oops >&2; exit 3")
            assert item_methods(events) == [
                ("item/started", "commandExecution"),
                ("item/completed", "commandExecution"),
            ]
            item = completed_items(events)[0]
            output = f"hi\n{tmp_path}\noops\n"
            assert {k: item[k] for k in ("command", "cwd", "source", "status")} == {
                "command": "echo hi; pwd; echo oops >&2; exit 3",
                "cwd": str(tmp_path),
                "source": "userShell",
                "status": "failed",
            }
            assert (item["exitCode"], item["aggregatedOutput"], item["processId"]) == (
                3,
                output,
                None,
            )
            assert deltas(events, item["id"], "item/commandExecution/outputDelta") == output
            turn = completed_turn(events)
            assert (turn["status"], turn["items"], turn["itemsView"]) == (
                "completed",
                [],
                "notLoaded",
            )
            events = await shell(client, thread_id, "true")
            assert completed_items(events)[0]["status"] == "completed"
            stored = (await stored_thread(client, thread_id))["turns"]
            assert [t["items"][0]["exitCode"] for t in stored] == [3, 0]


@pytest.mark.parametrize("timeout_ms", [0, 300])
async def test_shell_command_timeout(
    connect: ConnectFactory, tmp_path: Path, timeout_ms: int
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client, cwd=str(tmp_path))
            began = trio.current_time()
            events = await shell(
                client, thread_id, "echo a; sleep 30; echo b", timeoutMs=timeout_ms
            )
            assert trio.current_time() - began < 10
            item = completed_items(events)[0]
            assert (item["status"], item["exitCode"]) == ("failed", -1)
            why = f"command timed out after {timeout_ms} ms"
            assert item["aggregatedOutput"] in (why, f"a\n{why}")
            assert completed_turn(events)["status"] == "completed"


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def gone(pids: list[int]) -> None:
    """Wait until the processes are gone (SIGKILL was sent: the kernel finishes the job)."""
    for _ in range(1000):
        if not any(alive(pid) for pid in pids):
            return
        await trio.sleep(0.01)
    raise AssertionError(f"still running: {pids}")


async def test_interrupt_kills_the_shell_command(connect: ConnectFactory, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client, cwd=str(tmp_path))
            command = "sleep 30 & echo $! > child; echo $$ > shell; echo started; wait"
            await client.request("thread/shellCommand", {"threadId": thread_id, "command": command})
            started = await client.next_notification("turn/started")
            turn_id = started["params"]["turn"]["id"]
            await client.next_notification("item/commandExecution/outputDelta")
            pids = [int((tmp_path / name).read_text()) for name in ("shell", "child")]
            await client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            events = await collect_turn(client, thread_id, turn_id)
            item = completed_items(events)[0]
            assert (item["status"], item["exitCode"]) == ("failed", -1)
            assert item["aggregatedOutput"] == "started\ncommand aborted by user"
            assert completed_turn(events)["status"] == "interrupted"
            await gone(pids)
            stored = (await stored_thread(client, thread_id))["turns"][0]
            assert (stored["status"], stored["items"]) == ("interrupted", [item])


async def test_shell_command_joins_the_running_turn(connect: ConnectFactory) -> None:
    """As the reference: sent while a turn runs, the command is an item of that turn,
    which ends once both its agent and the command are done."""
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client)
            turn_id = await start_turn(client, thread_id, "/run echo agent")  # asks approval
            approval = await client.next_server_request("item/commandExecution/requestApproval")
            result = await client.request(
                "thread/shellCommand", {"threadId": thread_id, "command": "echo inside"}
            )
            assert result == {}
            done = await client.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "commandExecution"
            )
            assert done["params"]["turnId"] == turn_id
            assert done["params"]["item"]["aggregatedOutput"] == "inside\n"
            await client.respond(approval.id, {"decision": "accept"})
            await client.next_notification("turn/completed")
            stored = (await stored_thread(client, thread_id))["turns"]
            assert len(stored) == 1
            commands = [(i["type"], i.get("source")) for i in stored[0]["items"]]
            assert commands == [  # stored as they completed
                ("userMessage", None),
                ("commandExecution", "userShell"),
                ("commandExecution", "agent"),
            ]
            assert stored[0]["items"][2]["aggregatedOutput"] == "agent\n"


# --- review/start ---------------------------------------------------------------------

REVIEWS = [
    ({"type": "uncommittedChanges"}, "current changes"),
    ({"type": "baseBranch", "branch": "main"}, "changes against 'main'"),
    ({"type": "commit", "sha": "0123456789abcdef", "title": "Fix it"}, "commit 0123456: Fix it"),
    ({"type": "commit", "sha": "0123456789abcdef"}, "commit 0123456"),
    ({"type": "custom", "instructions": " look at f.txt "}, "look at f.txt"),
]


async def test_review_items_for_each_target(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT * 2):
        async with connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client)
            for target, label in REVIEWS:
                params = {"threadId": thread_id, "target": target, "delivery": "inline"}
                result, events = await special(client, "review/start", params)
                turn = completed_turn(events)
                assert result["reviewThreadId"] == thread_id
                assert result["turn"]["id"] == turn["id"]
                assert (result["turn"]["status"], result["turn"]["items"]) == ("inProgress", [])
                items = completed_items(events)
                assert [i["type"] for i in items] == [
                    "enteredReviewMode",
                    "userMessage",
                    "exitedReviewMode",
                    "agentMessage",
                ]
                review = f"Reviewed {label}: no findings (the builtin agent reads no code)."
                assert items[0]["review"] == label
                assert items[2]["review"] == review and items[3]["text"] == review
                assert turn["items"] == [items[3]] and turn["itemsView"] == "summary"
                prompt = items[1]["content"][0]["text"]
                if target["type"] == "custom":
                    assert prompt == "look at f.txt"
                else:
                    assert prompt.startswith("Review the ")
            stored = (await stored_thread(client, thread_id))["turns"]
            assert [t["items"][0]["review"] for t in stored] == [label for _, label in REVIEWS]


async def test_review_directive_in_an_ordinary_turn(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client)
            _, events = await run_turn(client, thread_id, "/review check the tests\n/review")
            assert_well_ordered(events)
            items = completed_items(events)[1:]
            assert [(i["type"], i.get("review")) for i in items] == [
                ("enteredReviewMode", "check the tests"),
                (
                    "exitedReviewMode",
                    "Reviewed check the tests: no findings (the builtin agent reads no code).",
                ),
                ("agentMessage", None),
                ("enteredReviewMode", "current changes"),
                (
                    "exitedReviewMode",
                    "Reviewed current changes: no findings (the builtin agent reads no code).",
                ),
                ("agentMessage", None),
            ]


# --- several clients ------------------------------------------------------------------


async def test_two_subscribers_and_a_rejoin_see_the_same_stream(
    connect_shared: ConnectFactory, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as one, connect_shared() as two:
            await one.initialize("one")
            await two.initialize("two")
            thread_id = await new_thread(one, cwd=str(tmp_path))
            await two.request("thread/resume", {"threadId": thread_id})
            seen = [Recorder(one), Recorder(two)]
            os.mkfifo(tmp_path / "fifo")
            command = "echo started; read x < fifo; echo done"
            await one.request("thread/shellCommand", {"threadId": thread_id, "command": command})
            delta = await one.next_notification("item/commandExecution/outputDelta")
            turn_id = delta["params"]["turnId"]
            # A third client rejoins mid-command: the running turn is in its snapshot.
            async with connect_shared() as three:
                await three.initialize("three")
                seen.append(Recorder(three))
                resumed = await three.request("thread/resume", {"threadId": thread_id})
                running = resumed["thread"]["turns"][-1]
                assert (running["id"], running["status"]) == (turn_id, "inProgress")
                item = running["items"][0]
                assert (item["type"], item["status"], item["source"]) == (
                    "commandExecution",
                    "inProgress",
                    "userShell",
                )
                assert item["aggregatedOutput"] == "started\n"
                await trio.to_thread.run_sync((tmp_path / "fifo").write_text, "go\n")
                for client in (one, two, three):
                    await client.next_notification(
                        "thread/status/changed", where=lambda p: p["status"]["type"] == "idle"
                    )
            first, second, third = (r.thread_events(thread_id) for r in seen)
            assert first == second
            assert_well_ordered(first)
            assert 0 < len(third) < len(first) and third == first[-len(third) :]
            assert methods(third)[-2:] == ["turn/completed", "thread/status/changed"]
            assert completed_items(first)[0]["aggregatedOutput"] == "started\ndone\n"


# --- errors ---------------------------------------------------------------------------


async def test_errors(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("special")
            thread_id = await new_thread(client)
            custom = {"type": "custom", "instructions": "x"}
            for method, extra in (
                ("thread/compact/start", {}),
                ("thread/shellCommand", {"command": "true"}),
                ("review/start", {"target": custom}),
            ):
                error = await rpc_error(client, method, {"threadId": MISSING, **extra})
                assert (error.code, error.kind) == (-32600, "threadNotFound")
                assert error.message == f"thread not found: {MISSING}"
                error = await rpc_error(client, method, {"threadId": "bad", **extra})
                assert (error.code, error.kind) == (-32600, "invalidThreadId")
                assert error_paths(await rpc_error(client, method, extra)) == {"threadId"}
            bad: list[tuple[str, Message, set[str]]] = [
                ("thread/shellCommand", {}, {"command"}),
                ("thread/shellCommand", {"command": 5}, {"command"}),
                ("thread/shellCommand", {"command": "  "}, {"command"}),
                ("thread/shellCommand", {"command": "a\0b"}, {"command"}),
                ("thread/shellCommand", {"command": "true", "timeoutMs": -1}, {"timeoutMs"}),
                ("thread/shellCommand", {"command": "true", "timeoutMs": "1"}, {"timeoutMs"}),
                ("review/start", {}, {"target"}),
                ("review/start", {"target": {"type": "nope"}}, {"target"}),
                ("review/start", {"target": {"type": "baseBranch"}}, {"target.branch"}),
                (
                    "review/start",
                    {"target": {**custom, "instructions": " "}},
                    {"target.instructions"},
                ),
                ("review/start", {"target": {"type": "commit", "sha": ""}}, {"target.sha"}),
                ("review/start", {"target": custom, "delivery": "detached"}, {"delivery"}),
            ]
            for method, params, paths in bad:
                error = await rpc_error(client, method, {"threadId": thread_id, **params})
                assert error_paths(error) == paths, (method, params)
            # A running turn: compaction and review are refused, nothing else changes.
            turn_id = await start_turn(client, thread_id, "/run true")  # asks approval
            request = await client.next_server_request()
            for method, extra in (
                ("thread/compact/start", {}),
                ("review/start", {"target": custom}),
            ):
                error = await rpc_error(client, method, {"threadId": thread_id, **extra})
                assert (error.code, error.kind) == (-32600, "turnAlreadyActive")
                assert turn_id in error.message
            await client.respond(request.id, {"decision": "decline"})
            await client.next_notification("turn/completed")
            # Not loaded.
            await unload(client, thread_id)
            for method, extra in (
                ("thread/compact/start", {}),
                ("thread/shellCommand", {"command": "true"}),
                ("review/start", {"target": custom}),
            ):
                error = await rpc_error(client, method, {"threadId": thread_id, **extra})
                assert (error.code, error.kind) == (-32600, "threadNotLoaded")
            turns = (await stored_thread(client, thread_id))["turns"]
            assert len(turns) == 1
