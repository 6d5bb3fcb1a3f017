"""`/run A && B && …` over a real connection (PROTOCOL.md §7.3, §10): one `/bin/sh -c` runs
the whole command, so shell state carries from part to part exactly as without approvals;
each top-level `&&` part is asked for when the shell reaches it; session approvals never
apply under `read-only`; a NUL in a command is refused before anything is asked."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from agents.helpers import process_alive, wait_process_group_gone
from threads_support import (
    TIMEOUT,
    Message,
    Recorder,
    assert_well_ordered,
    collect_turn,
    completed_turn,
    new_thread,
    run_turn,
    start_turn,
)

from appserver.client import Client, ServerRequest

from conftest import ConnectFactory

APPROVAL = "item/commandExecution/requestApproval"


@asynccontextmanager
async def session(connect: ConnectFactory) -> AsyncIterator[tuple[Client, Recorder]]:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("chain")
            yield client, Recorder(client)


async def asked(client: Client, command: str) -> ServerRequest:
    """The next command approval request, which must be for `command`."""
    request = await client.next_server_request(APPROVAL)
    assert request.params["command"] == command, request.params
    assert request.params["commandActions"] == [{"type": "unknown", "command": command}]
    return request


async def answer(client: Client, command: str, decision: str = "accept") -> ServerRequest:
    request = await asked(client, command)
    await client.respond(request.id, {"decision": decision})
    return request


def the_command(events: list[Message]) -> dict[str, Any]:
    """The turn's one commandExecution item as completed; checks its item/started shows
    the same command."""
    assert_well_ordered(events)
    started = [
        e["params"]["item"]
        for e in events
        if e["method"] == "item/started" and e["params"]["item"]["type"] == "commandExecution"
    ]
    done = [
        e["params"]["item"]
        for e in events
        if e["method"] == "item/completed" and e["params"]["item"]["type"] == "commandExecution"
    ]
    assert len(started) == len(done) == 1
    assert started[0]["command"] == done[0]["command"]
    item: dict[str, Any] = done[0]
    return item


def real(path: Path) -> str:
    return os.path.realpath(path)


async def test_cd_carries_over_with_approvals_exactly_as_under_never(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    command = "cd sub && touch f && pwd -P"
    free, guarded = tmp_path / "never", tmp_path / "on-request"
    for root in (free, guarded):
        (root / "sub").mkdir(parents=True)
    async with session(connect) as (client, _):
        never = await new_thread(client, cwd=str(free), approvalPolicy="never")
        _, unasked = await run_turn(client, never, f"/run {command}")
        thread_id = await new_thread(client, cwd=str(guarded), approvalPolicy="on-request")
        turn_id = await start_turn(client, thread_id, f"/run {command}")
        first = await answer(client, "cd sub")
        second = await answer(client, "touch f")
        await answer(client, "pwd -P")
        events = await collect_turn(client, thread_id, turn_id)
    # Each part was asked for with the same item and its own approvalId, in the
    # directory the shell was in when it reached that part.
    assert first.params["itemId"] == second.params["itemId"]
    assert first.params["approvalId"] != second.params["approvalId"]
    assert (first.params["cwd"], second.params["cwd"]) == (str(guarded), real(guarded / "sub"))
    for root, turn_events in ((free, unasked), (guarded, events)):
        item = the_command(turn_events)
        assert (item["command"], item["status"], item["exitCode"]) == (command, "completed", 0)
        assert item["aggregatedOutput"] == real(root / "sub") + "\n"
        assert (root / "sub" / "f").exists()
        assert not (root / "f").exists()


async def test_variables_carry_over_and_quoted_and_is_one_part(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    async with session(connect) as (client, recorder):
        thread_id = await new_thread(client, cwd=str(tmp_path), approvalPolicy="on-request")
        turn_id = await start_turn(client, thread_id, "/run X=1 && echo $X")
        await answer(client, "X=1")
        await answer(client, "echo $X")
        assert the_command(await collect_turn(client, thread_id, turn_id))["aggregatedOutput"] == (
            "1\n"
        )

        turn_id = await start_turn(client, thread_id, '/run echo "a && b"')
        request = await answer(client, 'echo "a && b"')
        assert "approvalId" not in request.params  # one part: an ordinary request
        item = the_command(await collect_turn(client, thread_id, turn_id))
        assert (item["status"], item["aggregatedOutput"]) == ("completed", "a && b\n")

        # A command bashlex cannot parse is asked for once, as a whole, not split by text.
        command = "echo $(echo a && echo b) && echo c"
        turn_id = await start_turn(client, thread_id, f"/run {command}")
        await answer(client, command)
        item = the_command(await collect_turn(client, thread_id, turn_id))
        assert (item["status"], item["aggregatedOutput"]) == ("completed", "a b\nc\n")
        assert len(recorder.server_requests()) == 4


async def test_nested_and_splits_only_at_top_level(connect: ConnectFactory, tmp_path: Path) -> None:
    command = "true && (false && echo no || echo in) && { echo a && echo b; } && echo yes"
    async with session(connect) as (client, recorder):
        thread_id = await new_thread(client, cwd=str(tmp_path), approvalPolicy="on-request")
        turn_id = await start_turn(client, thread_id, f"/run {command}")
        for part in ("true", "(false && echo no || echo in)", "{ echo a && echo b; }", "echo yes"):
            await answer(client, part)
        item = the_command(await collect_turn(client, thread_id, turn_id))
        assert (item["status"], item["aggregatedOutput"]) == ("completed", "in\na\nb\nyes\n")
        assert len(recorder.server_requests()) == 4


async def test_declined_part_stops_the_command_there(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    async with session(connect) as (client, recorder):
        thread_id = await new_thread(client, cwd=str(tmp_path), approvalPolicy="on-request")
        script = "/run printf 'a && b' > one && touch two && touch three\n/say after"
        turn_id = await start_turn(client, thread_id, script)
        await answer(client, "printf 'a && b' > one")
        await answer(client, "touch two", "decline")
        events = await collect_turn(client, thread_id, turn_id)
    item = the_command(events)
    assert (item["status"], item["exitCode"]) == ("declined", None)
    assert (tmp_path / "one").read_text() == "a && b"
    assert not (tmp_path / "two").exists() and not (tmp_path / "three").exists()
    assert completed_turn(events)["status"] == "completed"  # the agent goes on
    assert len(recorder.server_requests()) == 2


async def test_failing_part_stops_the_chain_without_asking_more(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    async with session(connect) as (client, recorder):
        thread_id = await new_thread(client, cwd=str(tmp_path), approvalPolicy="on-request")
        turn_id = await start_turn(client, thread_id, "/run X=3 && (exit $X) && touch never")
        await answer(client, "X=3")
        await answer(client, "(exit $X)")
        item = the_command(await collect_turn(client, thread_id, turn_id))
        assert (item["status"], item["exitCode"]) == ("failed", 3)
        assert len(recorder.server_requests()) == 2
    assert not (tmp_path / "never").exists()


async def test_each_part_is_asked_for_when_the_shell_reaches_it(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    work = tmp_path / "d"
    async with session(connect) as (client, _):
        thread_id = await new_thread(client, cwd=str(tmp_path), approvalPolicy="on-request")
        turn_id = await start_turn(
            client, thread_id, "/run mkdir d && cd d && touch f1 && touch f2"
        )
        request = await asked(client, "mkdir d")
        assert not work.exists()  # nothing runs before its answer
        await client.respond(request.id, {"decision": "accept"})
        request = await asked(client, "cd d")
        assert work.is_dir()
        await client.respond(request.id, {"decision": "accept"})
        request = await asked(client, "touch f1")
        assert request.params["cwd"] == real(work)
        assert not (work / "f1").exists()
        await client.respond(request.id, {"decision": "accept"})
        request = await asked(client, "touch f2")
        assert (work / "f1").exists()  # the same shell, still in d
        await client.respond(request.id, {"decision": "decline"})
        item = the_command(await collect_turn(client, thread_id, turn_id))
    assert item["status"] == "declined"
    assert sorted(os.listdir(tmp_path)) == ["d"] and os.listdir(work) == ["f1"]


async def test_interrupt_while_the_shell_waits_at_a_gate_kills_it(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    async with session(connect) as (client, recorder):
        thread_id = await new_thread(client, cwd=str(tmp_path), approvalPolicy="on-request")
        turn_id = await start_turn(client, thread_id, "/run echo $$ && touch late\n/say never")
        await answer(client, "echo $$")
        await asked(client, "touch late")
        delta = await client.next_notification("item/commandExecution/outputDelta")
        shell = int(delta["params"]["delta"])  # part 1's output arrived before request 2
        assert process_alive(shell)  # the shell that ran part 1 waits for the answer
        interrupt = {"threadId": thread_id, "turnId": turn_id}
        assert await client.request("turn/interrupt", interrupt) == {}
        await collect_turn(client, thread_id, turn_id)
        events = recorder.thread_events(thread_id)
        assert completed_turn(events)["status"] == "interrupted"
        item = the_command(events)
        assert (item["status"], item["aggregatedOutput"]) == ("declined", f"{shell}\n")
        await wait_process_group_gone(shell)
    assert not (tmp_path / "late").exists()


async def test_accept_for_session_never_applies_under_read_only(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    async with session(connect) as (client, recorder):
        thread_id = await new_thread(
            client, cwd=str(tmp_path), approvalPolicy="never", sandbox="read-only"
        )
        turn_id = await start_turn(client, thread_id, "/run echo same")
        await answer(client, "echo same", "acceptForSession")
        await collect_turn(client, thread_id, turn_id)
        # The same command, alone or as both parts of a chain: asked every time.
        turn_id = await start_turn(client, thread_id, "/run echo same && echo same")
        await answer(client, "echo same", "acceptForSession")
        await answer(client, "echo same", "accept")
        item = the_command(await collect_turn(client, thread_id, turn_id))
        assert item["aggregatedOutput"] == "same\nsame\n"
        # Nor was it remembered for when the sandbox allows session approvals.
        writable = {"sandboxPolicy": {"type": "workspaceWrite"}, "approvalPolicy": "on-request"}
        turn_id = await start_turn(client, thread_id, "/run echo same", **writable)
        await answer(client, "echo same", "acceptForSession")
        await collect_turn(client, thread_id, turn_id)
        _, events = await run_turn(client, thread_id, "/run echo same")  # now remembered
        assert the_command(events)["status"] == "completed"
        assert len(recorder.server_requests()) == 4


async def test_nul_in_command_is_refused_before_any_request(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    async with session(connect) as (client, recorder):
        thread_id = await new_thread(client, cwd=str(tmp_path), approvalPolicy="on-request")
        turn_id = await start_turn(client, thread_id, f"/run touch {marker} && echo a\0b")
        events = await collect_turn(client, thread_id, turn_id)
        turn = completed_turn(events)
        assert turn["status"] == "failed"
        assert "NUL" in turn["error"]["message"]
        assert recorder.server_requests() == []
        assert not [e for e in events if e["method"] == "item/started"][1:]  # only the input
        # The thread goes on: the next command runs.
        _, events = await run_turn(client, thread_id, "/say next")
    assert not marker.exists()
