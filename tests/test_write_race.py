"""`/write` over a real connection (PROTOCOL.md §7.3, §10; issue 13 defects 2 and 6): the
file is opened after the approval relative to the cwd, one component at a time, following
no symlink — a parent directory swapped for a symlink while the approval waits writes
nothing outside; missing directories are created; `..` and absolute paths obey the
sandbox; a NUL in the path is refused before anything is asked."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from threads_support import (
    TIMEOUT,
    Message,
    Recorder,
    collect_turn,
    completed_items,
    completed_turn,
    deltas,
    new_thread,
    run_turn,
    start_turn,
    stored_thread,
)

from appserver.client import Client

from conftest import ConnectFactory

FILE_APPROVAL = "item/fileChange/requestApproval"
OUTPUT = "item/fileChange/outputDelta"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    (tmp_path / "outside").mkdir()
    return tmp_path / "ws"


def changes(events: list[Message]) -> list[Message]:
    return [i for i in completed_items(events) if i["type"] == "fileChange"]


def tree(root: Path) -> dict[str, str | None]:
    """Every entry below `root`: file content, None for a directory, `-> target` for a link."""
    found: dict[str, str | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = None
            else:
                found[rel] = path.read_text()
    return found


async def approved_turn(
    client: Client, thread_id: str, script: str, meanwhile: Callable[[], object] | None = None
) -> list[Message]:
    """Run `script` (one /write), calling `meanwhile()` while its approval request is
    pending, then accepting it. Returns the turn's notifications."""
    turn_id = await start_turn(client, thread_id, script)
    request = await client.next_server_request(FILE_APPROVAL)
    if meanwhile is not None:
        meanwhile()
    await client.respond(request.id, {"decision": "accept"})
    return await collect_turn(client, thread_id, turn_id)


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
async def test_parent_swapped_for_a_symlink_while_the_approval_waits(
    connect: ConnectFactory, ws: Path, existing: bool
) -> None:
    outside = ws.parent / "outside"
    (ws / "sub").mkdir()
    if existing:
        (ws / "sub" / "x.txt").write_text("inside\n")
        (outside / "x.txt").write_text("original\n")
    before = tree(outside)

    def swap() -> None:
        (ws / "sub").rename(ws / "moved")
        (ws / "sub").symlink_to(outside, target_is_directory=True)

    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("race")
            thread_id = await new_thread(client, cwd=str(ws), approvalPolicy="on-request")
            events = await approved_turn(client, thread_id, "/write sub/x.txt hi\n/say next", swap)
            stored = await stored_thread(client, thread_id)
    assert tree(outside) == before, "the write landed outside the workspace"
    assert tree(ws / "moved") == ({"x.txt": "inside\n"} if existing else {})
    (item,) = changes(events)
    assert item["status"] == "failed"
    assert item["changes"][0]["path"] == str(ws / "sub" / "x.txt")
    assert deltas(events, item["id"], OUTPUT) == (
        f"refused: {ws}/sub is a symbolic link (it was not when the write was checked), "
        "not followed; nothing written\n"
    )
    assert completed_turn(events)["status"] == "completed"  # the agent goes on: /say next
    (turn,) = stored["turns"]
    assert [i["status"] for i in turn["items"] if i["type"] == "fileChange"] == ["failed"]


async def test_a_file_that_appears_while_the_approval_waits_is_diffed_as_replaced(
    connect: ConnectFactory, ws: Path
) -> None:
    target = ws / "f.txt"
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("race")
            thread_id = await new_thread(client, cwd=str(ws), approvalPolicy="on-request")
            events = await approved_turn(
                client, thread_id, "/write f.txt mine", lambda: target.write_text("theirs\n")
            )
            stored = await stored_thread(client, thread_id)
    assert target.read_text() == "mine\n"
    (started,) = [
        e["params"]["item"]
        for e in events
        if e["method"] == "item/started" and e["params"]["item"]["type"] == "fileChange"
    ]
    assert started["changes"][0]["kind"] == {"type": "add"}
    (item,) = changes(events)
    assert item["status"] == "completed"
    assert item["changes"][0]["kind"] == {"type": "update", "move_path": None}
    assert item["changes"][0]["diff"] == (
        f"--- {target}\n+++ {target}\n@@ -1 +1 @@\n-theirs\n+mine\n"
    )
    assert "changed while the approval was pending" in deltas(events, item["id"], OUTPUT)
    (turn,) = stored["turns"]
    assert [i for i in turn["items"] if i["type"] == "fileChange"] == [item]


async def test_missing_directories_are_created(connect: ConnectFactory, ws: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("dirs")
            thread_id = await new_thread(client, cwd=str(ws), approvalPolicy="on-request")
            first = await approved_turn(client, thread_id, "/write notes/a.txt one")
            second = await approved_turn(client, thread_id, "/write a/b/c/d.txt two")
    assert tree(ws) == {
        "notes": None,
        "notes/a.txt": "one\n",
        "a": None,
        "a/b": None,
        "a/b/c": None,
        "a/b/c/d.txt": "two\n",
    }
    for events, path in ((first, ws / "notes" / "a.txt"), (second, ws / "a/b/c/d.txt")):
        (item,) = changes(events)
        assert item["status"] == "completed"
        assert item["changes"][0]["path"] == str(path)
        assert item["changes"][0]["kind"] == {"type": "add"}


async def test_dotdot_stays_inside_the_workspace(connect: ConnectFactory, ws: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("dotdot")
            recorder = Recorder(client)
            thread_id = await new_thread(client, cwd=str(ws), approvalPolicy="on-request")
            _, refused = await run_turn(client, thread_id, "/write new/../../outside/f.txt x")
            assert recorder.server_requests() == [], "asked for a write outside the workspace"
            inside = await approved_turn(client, thread_id, "/write new/sub/../f.txt y")
    (item,) = changes(refused)
    assert item["status"] == "failed"
    assert item["changes"][0]["path"] == str(ws.parent / "outside" / "f.txt")
    assert tree(ws.parent / "outside") == {}
    (item,) = changes(inside)
    assert item["status"] == "completed"
    assert tree(ws) == {"new": None, "new/f.txt": "y\n"}


@pytest.mark.parametrize("sandbox", ["workspace-write", "danger-full-access"])
async def test_an_absolute_path_outside(connect: ConnectFactory, ws: Path, sandbox: str) -> None:
    target = ws.parent / "outside" / "deep" / "f.txt"
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("absolute")
            recorder = Recorder(client)
            thread_id = await new_thread(
                client, cwd=str(ws), approvalPolicy="never", sandbox=sandbox
            )
            _, events = await run_turn(client, thread_id, f"/write {target} text")
            assert recorder.server_requests() == []
    (item,) = changes(events)
    assert item["changes"][0]["path"] == str(target)
    if sandbox == "workspace-write":
        assert item["status"] == "failed"
        assert tree(ws.parent / "outside") == {}
    else:
        assert item["status"] == "completed"
        assert tree(ws.parent / "outside") == {"deep": None, "deep/f.txt": "text\n"}


@pytest.mark.parametrize("policy", ["on-request", "never"])
async def test_a_nul_in_the_path_is_refused_before_asking(
    connect: ConnectFactory, ws: Path, policy: str
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("nul")
            recorder = Recorder(client)
            thread_id = await new_thread(client, cwd=str(ws), approvalPolicy=policy)
            _, events = await run_turn(client, thread_id, "/write a\0b.txt x\n/say next")
            assert recorder.server_requests() == []
            stored = await stored_thread(client, thread_id)
    (item,) = changes(events)
    assert item["status"] == "failed"
    assert item["changes"][0]["path"] == f"{ws}/a\0b.txt"
    assert deltas(events, item["id"], OUTPUT) == (
        "refused: the path contains a NUL byte; nothing written\n"
    )
    assert completed_turn(events)["status"] == "completed"
    assert [e["method"] for e in events if e["method"] == "error"] == []
    (turn,) = stored["turns"]
    assert [i["type"] for i in turn["items"]] == ["userMessage", "fileChange", "agentMessage"]
    assert tree(ws) == {}
