"""Hostile clients against the real CLI (PROTOCOL.md §2.2-§2.4, §7.2): floods of
connections, 100 MB frames, a client that never reads while a stream runs, a client that
pipelines thousands of requests, one that answers approvals it never received, forged
upgrades. Throughout, a well-behaved client's `thread/read` p50 round trip stays within
max(5 x its quiet p50, 50 ms)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from reliability_support import (
    INIT_PARAMS,
    TIMEOUT,
    LatencyUnderLoad,
    RawPeer,
    cli_server,
    latency_bound,
    quiet_latency,
    raw_stdio,
    raw_websocket,
    read_until,
    text_input,
)
from test_transports import upgrade_status

from appserver.client import connect_websocket

HUNDRED_MB = 100 * 1024 * 1024

# Figures for docs/reliability.md (printed with -s): name -> (quiet p50, p50 under attack).
LATENCY: dict[str, tuple[float, float]] = {}
FIGURES: dict[str, Any] = {}


async def under_attack(
    name: str, url: str, attack: Callable[[], Awaitable[None]], *, token: str | None = None
) -> None:
    """Run `attack` while a well-behaved client measures its round-trip latency."""
    async with connect_websocket(url, token=token) as good:
        await good.initialize("well-behaved")
        thread_id = (await good.request("thread/start"))["thread"]["id"]
        quiet = await quiet_latency(good, thread_id)
        probe = LatencyUnderLoad()
        done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe.sample_until, good, thread_id, done)
            try:
                await attack()
            finally:
                done.set()
        LATENCY[name] = (quiet, probe.p50)
        print(
            f"\n[hostile] {name}: quiet p50 {quiet * 1000:.2f} ms, "
            f"attacked {probe.p50 * 1000:.2f} ms "
            f"({len(probe.samples)} samples)"
        )
        assert probe.p50 <= latency_bound(quiet), (name, quiet, probe.p50)
        # And the server still does real work for it.
        turn = await good.request(
            "turn/start", {"threadId": thread_id, "input": text_input("/say still fine")}
        )
        done_turn = await good.next_notification(
            "turn/completed", where=lambda p: p["turn"]["id"] == turn["turn"]["id"]
        )
        assert done_turn["params"]["turn"]["status"] == "completed"


# --- many connections -----------------------------------------------------------------------


FLOOD_SCRIPT = """
import sys, trio
from contextlib import AsyncExitStack
from appserver.client import connect_websocket

async def main(url, count):
    async with AsyncExitStack() as stack:
        for i in range(count):
            client = await stack.enter_async_context(connect_websocket(url))
            await client.initialize(f"flood-{i}")
            await client.request("thread/list", {"limit": 1})
        print(f"open {count}", flush=True)
        await trio.wrap_file(sys.stdin).read()  # hold every connection until stdin closes

trio.run(main, sys.argv[1], int(sys.argv[2]))
"""


async def many_connections(tmp_path: Path, count: int) -> None:
    """The flood runs in its own process, so the latency measured is the server's."""
    async with cli_server("--in-memory", "--log-level", "warning", cwd=tmp_path) as server:

        async def attack() -> None:
            argv = [sys.executable, "-c", FLOOD_SCRIPT, server.url, str(count)]
            flood = await trio.lowlevel.open_process(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            try:
                assert flood.stdout is not None and flood.stdin is not None
                with trio.fail_after(TIMEOUT * 4):
                    line = await flood.stdout.receive_some(100)
                assert line.decode().strip() == f"open {count}", line
                # While all are open, a newcomer still gets in and is served.
                async with connect_websocket(server.url) as late:
                    await late.initialize("late")
                    assert len((await late.request("thread/loaded/list"))["data"]) == 1
                await flood.stdin.aclose()
                with trio.fail_after(TIMEOUT):
                    assert await flood.wait() == 0
            finally:
                if flood.returncode is None:
                    flood.kill()
                    await flood.wait()
            FIGURES[f"connections_{count}"] = count

        with trio.fail_after(TIMEOUT * 6):
            await under_attack(f"{count} connections", server.url, attack)


async def test_many_connections(tmp_path: Path) -> None:
    await many_connections(tmp_path, 200)


@pytest.mark.slow
async def test_a_thousand_connections(tmp_path: Path) -> None:
    await many_connections(tmp_path, 1000)


# --- 100 MB frames ----------------------------------------------------------------------------


async def test_websocket_100mb_frame_is_closed_1009(tmp_path: Path) -> None:
    async with cli_server("--in-memory", "--log-level", "warning", cwd=tmp_path) as server:
        code: list[int | None] = []

        async def attack() -> None:
            async with raw_websocket(server.url) as peer:
                await peer.result("i", "initialize", INIT_PARAMS)
                try:
                    await peer.send_frame("x" * HUNDRED_MB)
                    await peer.receive()
                    raise AssertionError("a 100 MB frame was accepted")
                except trio_websocket.ConnectionClosed as exc:
                    code.append(exc.reason.code if exc.reason else None)

        with trio.fail_after(TIMEOUT * 2):
            await under_attack("100 MB websocket frame", server.url, attack)
        assert code == [1009]


async def test_stdio_100mb_line_is_refused_and_the_connection_goes_on(tmp_path: Path) -> None:
    async with raw_stdio("--in-memory", "--log-level", "warning", cwd=tmp_path) as peer:
        with trio.fail_after(TIMEOUT * 2):
            await peer.result("i", "initialize", INIT_PARAMS)
            line = b'{"jsonrpc":"2.0","id":"big","method":"thread/list","params":{"x":"'
            await peer.send_bytes(line + b"y" * HUNDRED_MB + b'"}}\n')
            answer = await read_until(peer, lambda m: "method" not in m)
            assert answer["id"] is None, answer
            assert answer["error"]["code"] == -32600, answer
            assert answer["error"]["data"]["kind"] == "messageTooLarge", answer
            result = await peer.result("after", "thread/list")
            assert result["data"] == []


# --- a client that never reads while a stream runs ---------------------------------------------


async def test_client_that_never_reads_during_a_stream(tmp_path: Path) -> None:
    deltas, size = 30_000, 1024
    async with cli_server("--in-memory", "--log-level", "warning", cwd=tmp_path) as server:
        received: list[int] = []
        close_codes: list[int | None] = []

        async def attack() -> None:
            async with connect_websocket(server.url) as watcher:
                await watcher.initialize("watcher", opt_out=["item/agentMessage/delta"])
                thread_id = (await watcher.request("thread/start"))["thread"]["id"]
                async with raw_websocket(server.url) as stalled:
                    await stalled.result("i", "initialize", INIT_PARAMS)
                    await stalled.result("r", "thread/resume", {"threadId": thread_id})
                    await stalled.send(
                        {
                            "id": "t",
                            "method": "turn/start",
                            "params": {
                                "threadId": thread_id,
                                "input": text_input(f"/stream {deltas} {size}"),
                            },
                        }
                    )
                    # ...and never reads while the turn runs.
                    done = await watcher.next_notification("turn/completed")
                    assert done["params"]["turn"]["status"] == "completed"
                    count = 0
                    try:
                        while True:
                            msg = await stalled.receive()
                            count += msg.get("method") == "item/agentMessage/delta"
                    except trio_websocket.ConnectionClosed as exc:
                        close_codes.append(exc.reason.code if exc.reason else None)
                    received.append(count)
                # The turn and its text are intact for everyone else.
                read = await watcher.request(
                    "thread/read", {"threadId": thread_id, "includeTurns": True}
                )
                text = read["thread"]["turns"][-1]["items"][-1]["text"]
                assert len(text) == deltas * size

        with trio.fail_after(TIMEOUT * 4):
            await under_attack("never-reading client during /stream", server.url, attack)
        assert received and received[0] < deltas, "the stalled client was never cut off"
        assert close_codes and close_codes[0] in (1008, 1006), close_codes
        FIGURES["stalled_client_deltas_before_cutoff"] = received[0]


# --- pipelining --------------------------------------------------------------------------------


async def pipeline(peer: RawPeer, total: int) -> dict[str, int]:
    """Send `total` thread/list requests without reading, then read: each is answered
    exactly once, by a result or by -32001 overloaded (§2.4)."""
    for n in range(total):
        await peer.send_frame(json.dumps({"jsonrpc": "2.0", "id": n, "method": "thread/list"}))
    answers: dict[int, dict[str, Any]] = {}
    while len(answers) < total:
        msg = await peer.receive()
        if "method" in msg:
            continue
        assert msg["id"] not in answers, f"answered twice: {msg}"
        answers[msg["id"]] = msg
    assert set(answers) == set(range(total))
    overloaded = 0
    for msg in answers.values():
        if "error" in msg:
            assert msg["error"]["code"] == -32001, msg
            assert msg["error"]["data"]["kind"] == "overloaded", msg
            overloaded += 1
        else:
            assert isinstance(msg["result"]["data"], list)
    # The connection is still usable afterwards.
    assert (await peer.result("after", "thread/list"))["data"] is not None
    assert total - overloaded >= 128, "fewer than --max-inflight requests were served"
    return {"answered": total - overloaded, "overloaded": overloaded}


async def test_pipelined_requests_without_reading(tmp_path: Path) -> None:
    """websocket: the application does not read, but its socket drains (a large client
    queue); a socket that stops draining is a slow consumer instead (see
    test_client_that_never_reads_during_a_stream)."""
    async with cli_server("--in-memory", "--log-level", "warning", cwd=tmp_path) as server:

        async def attack() -> None:
            async with raw_websocket(server.url, queue=100_000) as peer:
                await peer.result("i", "initialize", INIT_PARAMS)
                FIGURES["pipelined_ws"] = await pipeline(peer, 5000)

        with trio.fail_after(TIMEOUT * 4):
            await under_attack("5,000 pipelined requests", server.url, attack)


async def test_pipelined_requests_over_stdio(tmp_path: Path) -> None:
    async with raw_stdio("--in-memory", "--log-level", "warning", cwd=tmp_path) as peer:
        with trio.fail_after(TIMEOUT * 4):
            await peer.result("i", "initialize", INIT_PARAMS)
            FIGURES["pipelined_stdio"] = await pipeline(peer, 5000)


# --- answers to approvals the client never received ----------------------------------------------


async def test_foreign_and_random_approval_answers_are_ignored(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    async with cli_server("--in-memory", "--log-level", "warning", cwd=tmp_path) as server:

        async def attack() -> None:
            async with connect_websocket(server.url) as owner:
                await owner.initialize("owner")
                thread_id = (
                    await owner.request(
                        "thread/start", {"cwd": str(tmp_path), "approvalPolicy": "on-request"}
                    )
                )["thread"]["id"]
                turn = await owner.request(
                    "turn/start",
                    {"threadId": thread_id, "input": text_input(f"/run touch {marker}")},
                )
                request = await owner.next_server_request("item/commandExecution/requestApproval")
                async with raw_websocket(server.url) as intruder:
                    await intruder.result("i", "initialize", INIT_PARAMS)
                    rng = random.Random(7)
                    assert isinstance(request.id, int)
                    forged: list[Any] = [request.id, str(request.id), request.id + 1, -1, 0]
                    forged += [rng.randrange(2**31) for _ in range(1000)]
                    for decision in ("accept", "acceptForSession"):
                        for forged_id in forged:
                            await intruder.send(
                                {
                                    "jsonrpc": "2.0",
                                    "id": forged_id,
                                    "result": {"decision": decision},
                                }
                            )
                    await intruder.send(
                        {"jsonrpc": "2.0", "id": request.id, "error": {"code": 1, "message": "x"}}
                    )
                    await intruder.result("probe", "thread/list")
                    replies = [m for m in intruder.received if "method" not in m]
                    assert [m["id"] for m in replies] == ["i", "probe"], "a response was answered"
                # The owner still controls the approval.
                read = await owner.request("thread/read", {"threadId": thread_id})
                assert read["thread"]["status"] == {
                    "type": "active",
                    "activeFlags": ["waitingOnApproval"],
                }
                assert not marker.exists(), "a foreign answer ran the command"
                await owner.respond(request.id, {"decision": "decline"})
                done = await owner.next_notification(
                    "turn/completed", where=lambda p: p["turn"]["id"] == turn["turn"]["id"]
                )
                assert done["params"]["turn"]["status"] == "completed"
                item = await owner.next_notification(
                    "item/completed", where=lambda p: p["item"]["type"] == "commandExecution"
                )
                assert item["params"]["item"]["status"] == "declined"
                assert not marker.exists()

        with trio.fail_after(TIMEOUT * 2):
            await under_attack("foreign approval answers", server.url, attack)


# --- forged upgrades --------------------------------------------------------------------------


async def test_forged_origin_and_wrong_token_are_refused(tmp_path: Path) -> None:
    token = "hostile-suite-token-" + "".join(random.choices("abcdef0123456789", k=24))
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    async with cli_server(
        "--in-memory",
        "--ws-token-file",
        str(token_file),
        "--allow-origin",
        "https://ok.example",
        cwd=tmp_path,
    ) as server:
        statuses: dict[int, int] = {}

        async def attack() -> None:
            cases = [
                ({"token": token, "origin": "https://evil.example"}, 403),
                ({"token": token, "origin": "null"}, 403),
                ({"token": token[:-1] + "x"}, 401),
                ({"token": token + "x"}, 401),
                ({"token": ""}, 401),
                ({}, 401),
                ({"origin": "https://ok.example"}, 401),
            ]
            for round_ in range(30):
                for kwargs, expected in cases:
                    status = await upgrade_status(server.url, **kwargs)
                    assert status == expected, (round_, kwargs, status)
                    statuses[status] = statuses.get(status, 0) + 1
            assert await upgrade_status(server.url, token=token, origin="https://ok.example") == 101

        with trio.fail_after(TIMEOUT * 2):
            await under_attack("forged upgrades", server.url, attack, token=token)
        FIGURES["refused_upgrades"] = statuses
