"""Security review of the builtin agent and the websocket front door (PROTOCOL.md §2.2,
§7, §10): a command never runs without the approval its policy demands — including after
reconnects, replays, duplicate answers and answers from the wrong connection — shown with
a marker file that `/run touch MARKER` would create; `/write` cannot leave the thread's cwd
under workspace-write (`..`, absolute paths, symlinks — also one swapped in while the approval
waits: tests/test_write_race.py) and a NUL in its path is refused unasked; the token is never
logged."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import trio
from reliability_support import TIMEOUT, cli_server, stop_gracefully, text_input
from test_transports import upgrade_status

from appserver.client import Client, connect_websocket
from appserver.server import Server

APPROVAL = "item/commandExecution/requestApproval"


async def new_thread(client: Client, cwd: Path, **settings: Any) -> str:
    result = await client.request("thread/start", {"cwd": str(cwd), **settings})
    thread_id: str = result["thread"]["id"]
    return thread_id


async def start(client: Client, thread_id: str, script: str) -> str:
    result = await client.request(
        "turn/start", {"threadId": thread_id, "input": text_input(script)}
    )
    turn_id: str = result["turn"]["id"]
    return turn_id


async def finished(client: Client, turn_id: str) -> dict[str, Any]:
    note = await client.next_notification(
        "turn/completed", where=lambda p: p["turn"]["id"] == turn_id
    )
    turn: dict[str, Any] = note["params"]["turn"]
    return turn


async def stored_items(client: Client, thread_id: str, turn_id: str) -> list[dict[str, Any]]:
    read = await client.request("thread/read", {"threadId": thread_id, "includeTurns": True})
    (turn,) = [t for t in read["thread"]["turns"] if t["id"] == turn_id]
    items: list[dict[str, Any]] = turn["items"]
    return items


# --- approvals under every policy ---------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "sandbox"),
    [
        ("on-request", "workspace-write"),
        ("on-failure", "workspace-write"),
        ("untrusted", "workspace-write"),
        ("on-request", "danger-full-access"),
        ("untrusted", "read-only"),
        ("never", "read-only"),
    ],
)
async def test_command_waits_for_approval_and_decline_never_runs_it(
    server: Server, tmp_path: Path, policy: str, sandbox: str
) -> None:
    marker = tmp_path / "MARKER"
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            await client.initialize("sec")
            thread_id = await new_thread(client, tmp_path, approvalPolicy=policy, sandbox=sandbox)
            turn_id = await start(client, thread_id, f"/run touch {marker}")
            request = await client.next_server_request(APPROVAL)
            assert request.params["command"] == f"touch {marker}"
            assert not marker.exists(), "ran before the approval was answered"
            await client.respond(request.id, {"decision": "decline"})
            assert (await finished(client, turn_id))["status"] == "completed"
            (item,) = [
                i
                for i in await stored_items(client, thread_id, turn_id)
                if i["type"] == "commandExecution"
            ]
            assert item["status"] == "declined"
            assert not marker.exists()


@pytest.mark.parametrize("answer", [{"decision": "bogus"}, None, {}, "accept", {"decision": 1}])
async def test_an_answer_that_is_not_a_decision_counts_as_decline(
    server: Server, tmp_path: Path, answer: Any
) -> None:
    marker = tmp_path / "MARKER"
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            await client.initialize("sec")
            thread_id = await new_thread(client, tmp_path, approvalPolicy="on-request")
            turn_id = await start(client, thread_id, f"/run touch {marker}")
            request = await client.next_server_request(APPROVAL)
            await client.respond(request.id, answer)
            assert (await finished(client, turn_id))["status"] == "completed"
            assert not marker.exists()


async def test_positive_controls_the_marker_is_created_when_allowed(
    server: Server, tmp_path: Path
) -> None:
    """Without these the marker checks above could never fail."""
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            await client.initialize("sec")
            never = await new_thread(client, tmp_path, approvalPolicy="never")
            turn_id = await start(client, never, f"/run touch {tmp_path / 'M-never'}")
            assert (await finished(client, turn_id))["status"] == "completed"
            assert (tmp_path / "M-never").exists()
            asking = await new_thread(client, tmp_path, approvalPolicy="on-request")
            turn_id = await start(client, asking, f"/run touch {tmp_path / 'M-accept'}")
            request = await client.next_server_request(APPROVAL)
            await client.respond(request.id, {"decision": "accept"})
            assert (await finished(client, turn_id))["status"] == "completed"
            assert (tmp_path / "M-accept").exists()


async def test_reconnects_replays_duplicates_and_wrong_connections_never_approve(
    server: Server, tmp_path: Path
) -> None:
    marker = tmp_path / "MARKER"
    with trio.fail_after(TIMEOUT):
        async with server.connect() as stranger:
            await stranger.initialize("stranger")
            async with server.connect() as first:
                await first.initialize("first")
                thread_id = await new_thread(first, tmp_path, approvalPolicy="on-request")
                turn_id = await start(first, thread_id, f"/run touch {marker}")
                request = await first.next_server_request(APPROVAL)
                # A connection the request was never delivered to answers it.
                await stranger.respond(request.id, {"decision": "accept"})
                await stranger.request("thread/list")
                assert not marker.exists()
            # The owner is gone; the request survives and is re-sent on resume.
            async with server.connect() as second:
                await second.initialize("second")
                await stranger.respond(request.id, {"decision": "accept"})
                await second.request("thread/resume", {"threadId": thread_id})
                replayed = await second.next_server_request(APPROVAL)
                assert (replayed.id, replayed.params) == (request.id, request.params)
                await stranger.respond(request.id, {"decision": "acceptForSession"})
                await stranger.request("thread/list")
                assert not marker.exists()
                # The first answer wins; a duplicate accept is ignored.
                await second.respond(request.id, {"decision": "decline"})
                await second.respond(request.id, {"decision": "accept"})
                assert (await finished(second, turn_id))["status"] == "completed"
                assert not marker.exists()
                # A second turn: replaying the old id for the new request does nothing.
                turn_id = await start(second, thread_id, f"/run touch {marker}")
                new_request = await second.next_server_request(APPROVAL)
                assert new_request.id != request.id
                await second.respond(request.id, {"decision": "accept"})
                await stranger.respond(new_request.id, {"decision": "accept"})
                await second.request("thread/list")
                assert not marker.exists()
                await second.respond(new_request.id, {"decision": "cancel"})
                assert (await finished(second, turn_id))["status"] == "interrupted"
                # A late accept after the turn ended is ignored too.
                await second.respond(new_request.id, {"decision": "accept"})
                turn_id = await start(second, thread_id, "/say done")
                assert (await finished(second, turn_id))["status"] == "completed"
                assert not marker.exists()


async def test_accept_for_session_covers_only_that_command_while_loaded(
    server: Server, tmp_path: Path
) -> None:
    m1, m2 = tmp_path / "M1", tmp_path / "M2"
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            await client.initialize("sec")
            thread_id = await new_thread(client, tmp_path, approvalPolicy="on-request")
            turn_id = await start(client, thread_id, f"/run touch {m1}")
            request = await client.next_server_request(APPROVAL)
            await client.respond(request.id, {"decision": "acceptForSession"})
            await finished(client, turn_id)
            assert m1.exists()
            m1.unlink()
            # A different command still asks.
            turn_id = await start(client, thread_id, f"/run touch {m2}")
            request = await client.next_server_request(APPROVAL)
            assert request.params["command"] == f"touch {m2}"
            await client.respond(request.id, {"decision": "decline"})
            await finished(client, turn_id)
            assert not m2.exists()
            # After the thread is closed and loaded again, the session grant is gone.
            await client.request("thread/unsubscribe", {"threadId": thread_id})
            await client.next_notification("thread/closed")
            await client.request("thread/resume", {"threadId": thread_id})
            turn_id = await start(client, thread_id, f"/run touch {m1}")
            request = await client.next_server_request(APPROVAL)
            await client.respond(request.id, {"decision": "decline"})
            await finished(client, turn_id)
            assert not m1.exists()


async def test_compound_command_needs_each_part_approved(server: Server, tmp_path: Path) -> None:
    m1, m2 = tmp_path / "M1", tmp_path / "M2"
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            await client.initialize("sec")
            thread_id = await new_thread(client, tmp_path, approvalPolicy="on-request")
            turn_id = await start(client, thread_id, f"/run touch {m1} && touch {m2}")
            first = await client.next_server_request(APPROVAL)
            await client.respond(first.id, {"decision": "accept"})
            second = await client.next_server_request(APPROVAL)
            assert second.params["approvalId"] != first.params["approvalId"]
            await client.respond(first.id, {"decision": "accept"})  # duplicate: ignored
            await client.request("thread/list")
            assert m1.exists() and not m2.exists()
            await client.respond(second.id, {"decision": "decline"})
            await finished(client, turn_id)
            assert not m2.exists()


# --- /write stays inside cwd -------------------------------------------------------------


@pytest.mark.parametrize("policy", ["never", "on-request"])
async def test_write_cannot_escape_the_workspace(
    server: Server, tmp_path: Path, policy: str
) -> None:
    cwd, outside = tmp_path / "ws", tmp_path / "outside"
    cwd.mkdir()
    outside.mkdir()
    (outside / "target.txt").write_text("original\n")
    (cwd / "dirlink").symlink_to(outside, target_is_directory=True)
    (cwd / "filelink").symlink_to(outside / "target.txt")
    (cwd / "sub").mkdir()
    (cwd / "sub" / "uplink").symlink_to("../../outside", target_is_directory=True)
    attempts = [
        "../outside/dotdot.txt",
        "sub/../../outside/dotdot2.txt",
        str(outside / "absolute.txt"),
        "dirlink/via-dirlink.txt",
        "filelink",
        "sub/uplink/via-uplink.txt",
        "/etc/appserver-should-not-exist.txt",
        "made/../../outside/via-missing-dir.txt",
        "made/sub/../../../outside/via-missing-dirs.txt",
        "nul\0/../../outside/nul.txt",
    ]
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            await client.initialize("sec")
            thread_id = await new_thread(client, cwd, approvalPolicy=policy)
            for path in attempts:
                turn_id = await start(client, thread_id, f"/write {path} pwned")
                assert (await finished(client, turn_id))["status"] in ("completed", "failed")
                changes = [
                    i
                    for i in await stored_items(client, thread_id, turn_id)
                    if i["type"] == "fileChange"
                ]
                assert [c["status"] for c in changes] in ([], ["failed"]), (path, changes)
            assert client.drain_notifications()  # it did work
            requests = list(client._buffers.requests)
            assert requests == [], "approval asked for a write outside the workspace"
            assert not (cwd / "made").exists(), "a refused write created a directory"
            # Control: a write inside the workspace works (after approval if required), in a
            # directory it creates too.
            for path in ("inside.txt", "made/inside.txt"):
                turn_id = await start(client, thread_id, f"/write {path} fine")
                if policy != "never":
                    request = await client.next_server_request("item/fileChange/requestApproval")
                    await client.respond(request.id, {"decision": "accept"})
                await finished(client, turn_id)
    assert (cwd / "inside.txt").read_text() == "fine\n"
    assert (cwd / "made" / "inside.txt").read_text() == "fine\n"
    assert sorted(p.name for p in cwd.iterdir()) == [
        "dirlink",
        "filelink",
        "inside.txt",
        "made",
        "sub",
    ]
    assert (outside / "target.txt").read_text() == "original\n"
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]
    assert not await trio.Path("/etc/appserver-should-not-exist.txt").exists()
    assert not (tmp_path / "dotdot.txt").exists()


async def test_read_only_sandbox_never_writes(server: Server, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with server.connect() as client:
            await client.initialize("sec")
            thread_id = await new_thread(
                client, tmp_path, approvalPolicy="never", sandbox="read-only"
            )
            turn_id = await start(client, thread_id, "/write ro.txt nope")
            await finished(client, turn_id)
            changes = [
                i
                for i in await stored_items(client, thread_id, turn_id)
                if i["type"] == "fileChange"
            ]
            assert [c["status"] for c in changes] == ["failed"]
    assert not (tmp_path / "ro.txt").exists()


# --- the token is never logged ----------------------------------------------------------------


async def test_token_is_never_logged(tmp_path: Path) -> None:
    token = "tok-" + secrets.token_hex(24)
    token_file = tmp_path / "token"
    token_file.write_text(f"  {token}\n")
    server_cm = cli_server(
        "--in-memory", "--ws-token-file", str(token_file), "--log-level", "debug", cwd=tmp_path
    )
    async with server_cm as server:
        with trio.fail_after(TIMEOUT):
            for wrong in (token[:-1], token + "0", token.upper(), ""):
                assert await upgrade_status(server.url, token=wrong) == 401
            assert await upgrade_status(server.url) == 401
            assert await upgrade_status(server.url, token=token, origin="https://x.example") == 403
            async with connect_websocket(server.url, token=token) as client:
                await client.initialize("authorized")
                thread_id = await new_thread(client, tmp_path, approvalPolicy="never")
                turn_id = await start(client, thread_id, "/say hello")
                await finished(client, turn_id)
            assert await stop_gracefully(server) == 0
            await server.wait_eof()
    log = server.stderr_text
    assert "refused" in log  # the failures were logged...
    assert token not in log  # ...without the secret
    assert token[:-1] not in log
    assert token[8:24] not in log
