"""`command/exec` and its follow-ups (`/write`, `/terminate`, `/resize`) with
`command/exec/outputDelta`, against a real server: buffered and streamed output, stdin,
PTY, timeouts, caps, process-group kills and the connection owning its processes."""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from threads_support import TIMEOUT, rpc_error

from appserver.client import Client, ConnectionClosedError

from conftest import ConnectFactory

DELTA = "command/exec/outputDelta"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Pending:
    """A command/exec sent in the background: its answer once it comes."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.message: dict[str, Any] = {}


async def started(client: Client, nursery: trio.Nursery, params: dict[str, Any]) -> Pending:
    answer = Pending()

    async def run() -> None:
        with contextlib.suppress(ConnectionClosedError):  # a test may close the client
            answer.message = await client.request_raw("command/exec", params)
        answer.done.set()

    nursery.start_soon(run)
    # Requests in flight run concurrently: wait until the server knows the process id
    # (a resize answers "no active command/exec" until then).
    process_id = params.get("processId")
    while process_id is not None:
        resize = {"processId": process_id, "size": {"rows": 24, "cols": 80}}
        reply = await client.request_raw("command/exec/resize", resize)
        if "no active" not in reply.get("error", {}).get("message", ""):
            break
    return answer


async def output(client: Client, process_id: str, until: str) -> str:
    """Streamed stdout of `process_id` until it contains `until`."""
    text = ""
    while until not in text:
        note = await client.next_notification(DELTA, where=lambda p: p["processId"] == process_id)
        text += base64.b64decode(note["params"]["deltaBase64"]).decode()
    return text


async def wait_answer(answer: Pending) -> dict[str, Any]:
    await answer.done.wait()
    return answer.message


def watch_group(nursery: trio.Nursery, fifo: Path) -> trio.Event:
    """An event set once every process that opened `fifo` for writing has ended (the
    commands open it first thing: that waits until this reader is there)."""
    gone = trio.Event()

    def read_to_eof() -> None:
        with open(fifo, "rb") as f:
            f.read()

    async def watch() -> None:
        await trio.to_thread.run_sync(read_to_eof)
        gone.set()

    nursery.start_soon(watch)
    return gone


async def test_buffered_exec_answers_after_exit(connect: ConnectFactory, tmp_path: Path) -> None:
    async with connect() as client:
        await client.initialize()
        result = await client.request(
            "command/exec",
            {
                "command": ["sh", "-c", "pwd; echo $FOO; echo err >&2; exit 3"],
                "cwd": str(tmp_path),
                "env": {"FOO": "bar"},
            },
        )
        assert result == {"exitCode": 3, "stdout": f"{tmp_path}\nbar\n", "stderr": "err\n"}
        assert not [n for n in client.notifications if n["method"] == DELTA]


async def test_streamed_stdin_and_output(connect: ConnectFactory) -> None:
    async with connect() as client, trio.open_nursery() as nursery:
        await client.initialize()
        answer = await started(
            client,
            nursery,
            {
                "command": ["cat"],
                "processId": "cat",
                "streamStdin": True,
                "streamStdoutStderr": True,
            },
        )
        with trio.fail_after(TIMEOUT):
            assert (
                await client.request(
                    "command/exec/write", {"processId": "cat", "deltaBase64": b64("hello\n")}
                )
                == {}
            )
            assert await output(client, "cat", "hello\n") == "hello\n"
            await client.request("command/exec/write", {"processId": "cat", "closeStdin": True})
            message = await wait_answer(answer)
        assert message["result"] == {"exitCode": 0, "stdout": "", "stderr": ""}
        error = await rpc_error(
            client, "command/exec/write", {"processId": "cat", "closeStdin": True}
        )
        assert (error.code, error.message) == (
            -32600,
            'no active command/exec for process id "cat"',
        )


async def test_buffered_stdin_write_after_close(connect_shared: ConnectFactory) -> None:
    async with connect_shared() as client, trio.open_nursery() as nursery:
        await client.initialize()
        answer = await started(
            client, nursery, {"command": ["cat"], "processId": "c", "streamStdin": True}
        )
        with trio.fail_after(TIMEOUT):
            await client.request(
                "command/exec/write",
                {"processId": "c", "deltaBase64": b64("hi\n"), "closeStdin": True},
            )
            message = await wait_answer(answer)
        assert message["result"] == {"exitCode": 0, "stdout": "hi\n", "stderr": ""}


async def test_pty_size_resize_and_input(connect_shared: ConnectFactory) -> None:
    script = "tty >/dev/null && echo istty; stty size; read x; echo got $x; stty size"
    async with connect_shared() as client, trio.open_nursery() as nursery:
        await client.initialize()
        answer = await started(
            client,
            nursery,
            {
                "command": ["sh", "-c", script],
                "processId": "t",
                "tty": True,
                "size": {"rows": 10, "cols": 40},
            },
        )
        with trio.fail_after(TIMEOUT):
            assert await output(client, "t", "10 40\r\n") == "istty\r\n10 40\r\n"
            await client.request(
                "command/exec/resize", {"processId": "t", "size": {"rows": 20, "cols": 60}}
            )
            await client.request(
                "command/exec/write", {"processId": "t", "deltaBase64": b64("a\n")}
            )
            text = await output(client, "t", "20 60\r\n")
            message = await wait_answer(answer)
        assert "got a\r\n" in text
        assert message["result"] == {"exitCode": 0, "stdout": "", "stderr": ""}


async def test_terminate_kills_the_process_group(
    connect_shared: ConnectFactory, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    async with connect_shared() as client, trio.open_nursery() as nursery:
        await client.initialize()
        script = f"exec 3>{fifo}; sleep 60 & echo ready; wait"
        answer = await started(
            client,
            nursery,
            {"command": ["sh", "-c", script], "processId": "g", "streamStdoutStderr": True},
        )
        gone = watch_group(nursery, fifo)
        with trio.fail_after(TIMEOUT):
            await output(client, "g", "ready")
            error = await rpc_error(
                client, "command/exec/resize", {"processId": "g", "size": {"rows": 5, "cols": 5}}
            )
            assert error.message == "failed to resize PTY: process is not attached to a PTY"
            error = await rpc_error(
                client, "command/exec/write", {"processId": "g", "deltaBase64": b64("x")}
            )
            assert error.message == "stdin streaming is not enabled for this command/exec"
            assert await client.request("command/exec/terminate", {"processId": "g"}) == {}
            message = await wait_answer(answer)
            await gone.wait()
        assert message["result"]["exitCode"] == 137


async def test_disconnect_ends_its_processes(
    connect_shared: ConnectFactory, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    async with connect_shared() as other, trio.open_nursery() as nursery:
        await other.initialize()
        gone = watch_group(nursery, fifo)
        async with connect_shared() as client:
            await client.initialize()
            await started(
                client,
                nursery,
                {
                    "command": ["sh", "-c", f"exec 3>{fifo}; echo ready; sleep 60"],
                    "processId": "p",
                    "streamStdoutStderr": True,
                },
            )
            with trio.fail_after(TIMEOUT):
                await output(client, "p", "ready")
            # processIds are connection-scoped: another connection cannot reach it
            error = await rpc_error(other, "command/exec/terminate", {"processId": "p"})
            assert error.code == -32600
        with trio.fail_after(TIMEOUT):
            await gone.wait()
        assert not [n for n in other.notifications if n["method"] == DELTA]


async def test_timeout_and_output_cap(connect_shared: ConnectFactory) -> None:
    async with connect_shared() as client:
        await client.initialize()
        result = await client.request(
            "command/exec", {"command": ["sleep", "30"], "timeoutMs": 100}
        )
        assert result == {"exitCode": 124, "stdout": "", "stderr": ""}
        result = await client.request(
            "command/exec", {"command": ["echo", "0123456789"], "outputBytesCap": 4}
        )
        assert result["stdout"] == "0123"
        result = await client.request(
            "command/exec",
            {
                "command": ["sh", "-c", "echo 0123456789; echo abcdefgh >&2"],
                "processId": "cap",
                "streamStdoutStderr": True,
                "outputBytesCap": 4,
            },
        )
        assert result == {"exitCode": 0, "stdout": "", "stderr": ""}
        deltas = {
            n["params"]["stream"]: n["params"]
            for n in client.drain_notifications()
            if n["method"] == DELTA
        }
        assert deltas["stdout"]["deltaBase64"] == b64("0123")
        assert deltas["stderr"]["deltaBase64"] == b64("abcd")
        assert deltas["stdout"]["capReached"] and deltas["stderr"]["capReached"]


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({"command": []}, -32600, "command must not be empty"),
        (
            {"command": ["true"], "tty": True},
            -32600,
            "command/exec tty or streaming requires a client-supplied processId",
        ),
        (
            {"command": ["true"], "processId": "p", "size": {"rows": 5, "cols": 5}},
            -32602,
            "command/exec size requires tty: true",
        ),
        (
            {"command": ["true"], "processId": "p", "tty": True, "size": {"rows": 0, "cols": 5}},
            -32602,
            "command/exec size rows and cols must be greater than 0",
        ),
        (
            {"command": ["true"], "timeoutMs": 5, "disableTimeout": True},
            -32602,
            "command/exec cannot set both timeoutMs and disableTimeout",
        ),
        (
            {"command": ["true"], "outputBytesCap": 5, "disableOutputCap": True},
            -32602,
            "command/exec cannot set both outputBytesCap and disableOutputCap",
        ),
        (
            {"command": ["true"], "cwd": "/nonexistent-dir"},
            -32600,
            "failed to spawn command: No such file or directory (os error 2)",
        ),
        ({"command": "true"}, -32602, None),
        (
            {"command": ["echo", "a\0b"]},
            -32602,
            "Invalid params: command[1]: must not contain a NUL character",
        ),
        (
            {"command": ["true"], "cwd": "/tmp\0"},
            -32602,
            "Invalid params: cwd: must not contain a NUL character",
        ),
        (
            {"command": ["true"], "env": {"A": "b\0"}},
            -32602,
            "Invalid params: env.A: must not contain a NUL character",
        ),
        (
            {"command": ["true"], "env": {"A=B": "c"}},
            -32602,
            "Invalid params: env.A=B: is not a valid environment variable name",
        ),
    ],
)
async def test_exec_errors(
    connect_shared: ConnectFactory, params: dict[str, Any], code: int, message: str | None
) -> None:
    async with connect_shared() as client:
        await client.initialize()
        error = await rpc_error(client, "command/exec", params)
        assert error.code == code
        if message is not None:
            assert error.message == message


async def test_follow_up_errors(connect_shared: ConnectFactory) -> None:
    async with connect_shared() as client, trio.open_nursery() as nursery:
        await client.initialize()
        cases: list[tuple[str, dict[str, Any]]] = [
            ("command/exec/write", {"deltaBase64": b64("x")}),
            ("command/exec/terminate", {}),
            ("command/exec/resize", {"size": {"rows": 5, "cols": 5}}),
        ]
        for method, extra in cases:
            error = await rpc_error(client, method, {"processId": "nope", **extra})
            assert (error.code, error.message) == (
                -32600,
                'no active command/exec for process id "nope"',
            )
        error = await rpc_error(client, "command/exec/write", {"processId": "nope"})
        assert error.message == "command/exec/write requires deltaBase64 or closeStdin"
        answer = await started(
            client, nursery, {"command": ["cat"], "processId": "c", "streamStdin": True}
        )
        with trio.fail_after(TIMEOUT):
            error = await rpc_error(
                client, "command/exec/write", {"processId": "c", "deltaBase64": "!!"}
            )
            assert error.message == "invalid deltaBase64: Invalid symbol 33, offset 0."
            error = await rpc_error(client, "command/exec", {"command": ["true"], "processId": "c"})
            assert error.message == 'duplicate active command/exec process id: "c"'
            await client.request("command/exec/write", {"processId": "c", "closeStdin": True})
            error = await rpc_error(
                client, "command/exec/write", {"processId": "c", "deltaBase64": b64("x")}
            )
            assert error.message in (
                "stdin is already closed",
                'no active command/exec for process id "c"',
            )
            message = await wait_answer(answer)
        assert message["result"]["exitCode"] == 0
