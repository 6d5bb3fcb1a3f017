"""`appserver-client` as a subprocess against real servers (spawned stdio and websocket)."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import trio

from appserver.client import connect_websocket

from support import ServerProcess, run_ws_server

TIMEOUT = 30
CLIENT_ARGV = [sys.executable, "-m", "appserver.client_cli"]


@attrs.frozen
class Done:
    returncode: int
    stdout: str
    stderr: str


async def cli(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> Done:
    env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    with trio.fail_after(TIMEOUT):
        proc = await trio.run_process(
            [*CLIENT_ARGV, *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
        )
    return Done(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def thread_id_in(done: Done) -> str:
    """`send` prints `thread <id> (new)` first."""
    first = done.stdout.splitlines()[0]
    assert first.startswith("thread "), done.stdout
    return first.split()[1]


async def test_send_yes_then_threads_and_read_over_stdio(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    sent = await cli("send", "--data-dir", data, "--yes", "/run echo hi")
    assert sent.returncode == 0, sent.stderr
    assert "hi" in sent.stdout.splitlines()
    assert "turn completed" in sent.stdout
    thread_id = thread_id_in(sent)
    assert f"--thread {thread_id}" in sent.stderr

    again = await cli("send", "--data-dir", data, "--thread", thread_id, "second", "message")
    assert again.returncode == 0, again.stderr
    assert "You said: second message" in again.stdout

    listed = await cli("threads", "--data-dir", data)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "UPDATED"]
    assert row.startswith(thread_id) and "notLoaded" in row and "/run echo hi" in row

    read = await cli("read", "--data-dir", data, thread_id)
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    assert lines[0] == f"thread {thread_id}"
    for expected in ["> /run echo hi", "$ echo hi", "hi", "> second message"]:
        assert expected in lines, read.stdout
    assert read.stdout.count("── turn completed") == 2

    as_json = await cli("read", "--data-dir", data, "--json", thread_id)
    turns = json.loads(as_json.stdout)["thread"]["turns"]
    assert [turn["status"] for turn in turns] == ["completed", "completed"]


async def test_approvals_from_piped_stdin_over_websocket(tmp_path: Path) -> None:
    async with run_ws_server("--data-dir", str(tmp_path)) as server:
        url = ["--url", server.url]
        # Default with stdin not a terminal: declined, with a message saying why.
        plain = await cli("send", *url, "/run echo plain")
        assert plain.returncode == 0, plain.stderr
        assert "declined: stdin is not a terminal" in plain.stderr
        assert "✗ declined" in plain.stdout and "plain" not in plain.stdout.splitlines()

        # --approve-from-stdin: one line per request, in order.
        piped = await cli(
            "send", *url, "--approve-from-stdin", "/run echo one && echo two", stdin=b"y\nn\n"
        )
        assert piped.returncode == 0, piped.stderr
        out = piped.stdout.splitlines()
        assert "one" in out and "two" not in out
        assert "approval: accept" in out and "approval: decline" in out
        thread_id = thread_id_in(piped)

        async with connect_websocket(server.url) as client:
            await client.initialize("test")
            read = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}
            )
        command = read["thread"]["turns"][0]["items"][-1]
        assert command["type"] == "commandExecution" and command["status"] == "declined"
        assert command["aggregatedOutput"] == "one\n"

        # End of input declines too.
        eof = await cli("send", *url, "--approve-from-stdin", "/run echo never", stdin=b"")
        assert eof.returncode == 0 and "(end of input)" in eof.stderr
        assert "never" not in eof.stdout.splitlines()


async def test_json_lines_include_turn_completed() -> None:
    done = await cli("send", "--in-memory", "--json", "--yes", "/say hello json\n/run echo hi")
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    methods = [m.get("method") for m in messages]
    assert "turn/completed" in methods
    assert "item/commandExecution/requestApproval" in methods
    deltas = [
        m["params"]["delta"] for m in messages if m.get("method") == "item/agentMessage/delta"
    ]
    assert "".join(deltas) == "hello json"
    assert any("result" in m and "thread" in m["result"] for m in messages)
    assert "accepted (--yes)" in done.stderr  # human notes go to stderr with --json

    listed = await cli("threads", "--in-memory", "--json")
    assert json.loads(listed.stdout) == {"data": [], "nextCursor": None, "backwardsCursor": None}


async def test_watch_sees_a_turn_started_by_another_client(tmp_path: Path) -> None:
    async with (
        run_ws_server("--data-dir", str(tmp_path)) as server,
        connect_websocket(server.url) as client,
    ):
        await client.initialize("test")
        thread_id = (await client.request("thread/start"))["thread"]["id"]
        argv = [*CLIENT_ARGV, "watch", "--url", server.url, thread_id, "--until-turn-completed"]
        with trio.fail_after(TIMEOUT):
            proc = await trio.lowlevel.open_process(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "NO_COLOR": "1"},
            )
            assert proc.stdout is not None and proc.stderr is not None
            output = b""
            while b"watching thread" not in output:  # subscribed once this is printed
                chunk = await proc.stdout.receive_some()
                assert chunk, "watch exited early"
                output += chunk
            await client.request(
                "turn/start",
                {"threadId": thread_id, "input": [{"type": "text", "text": "/say from elsewhere"}]},
            )
            async for chunk in proc.stdout:
                output += chunk
            assert await proc.wait() == 0
    text = output.decode()
    assert "from elsewhere" in text.splitlines()
    assert "── turn completed" in text
    assert "· status active" in text


async def test_exit_codes() -> None:
    failed = await cli("send", "--in-memory", "/fail boom")
    assert failed.returncode == 1
    assert "turn failed: boom" in failed.stdout

    missing = "01a20280-49d5-7ad7-bc52-b1f1b13631e6"
    not_found = await cli("read", "--in-memory", missing)
    assert not_found.returncode == 2
    assert not_found.stderr.strip() == f"appserver-client: error: thread not found: {missing}"

    resume_missing = await cli("send", "--in-memory", "--thread", missing, "hi")
    assert resume_missing.returncode == 2 and "thread not found" in resume_missing.stderr

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = await cli("threads", "--url", f"ws://127.0.0.1:{port}")
    assert refused.returncode == 2 and "cannot connect" in refused.stderr

    for bad in (["send"], ["threads", "--limit", "0"], ["read", "--url", "http://x", "id"]):
        usage = await cli(*bad)
        assert usage.returncode == 2, bad
        assert usage.stderr.startswith("appserver-client: error: "), usage.stderr
        assert usage.stdout == ""


def continue_hint(done: Done) -> list[str]:
    """The `continue with:` command of a `send`, as a shell would split it, MESSAGE
    replaced by a real message, run with this interpreter."""
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("continue with: ")]
    words = shlex.split(line.removeprefix("continue with: "))
    assert words[0] == "appserver-client" and words[-1] == "MESSAGE", words
    return [*words[1:-1], "next", "message"]


async def loaded_threads(server: ServerProcess) -> list[str]:
    async with connect_websocket(server.url) as client:
        await client.initialize("observer")
        result = await client.request("thread/loaded/list")
    return list(result["data"])


async def test_without_url_the_client_uses_the_server_running_on_the_data_dir(
    tmp_path: Path,
) -> None:
    """No --url, no --data-dir: the default data dir ($APPSERVER_HOME here) has a running
    server, so the client talks to it instead of starting a second server on it."""
    home = {"APPSERVER_HOME": str(tmp_path / "home")}
    async with run_ws_server(env=home) as server:
        sent = await cli("send", "--yes", "/run echo hi", env=home)
        assert sent.returncode == 0, sent.stderr
        assert "hi" in sent.stdout.splitlines()
        thread_id = thread_id_in(sent)
        # The thread lives in that server: loaded there, visible to its other clients.
        assert thread_id in await loaded_threads(server)
        async with connect_websocket(server.url) as client:
            await client.initialize("other")
            read = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}
            )
        assert [turn["status"] for turn in read["thread"]["turns"]] == ["completed"]
        listed = await cli("threads", env=home)
        assert listed.returncode == 0, listed.stderr
        (row,) = listed.stdout.splitlines()[1:]
        assert row.startswith(thread_id) and "idle" in row  # loaded: that server's view
        # --data-dir naming the same directory finds it too.
        read_cli = await cli("read", "--data-dir", home["APPSERVER_HOME"], thread_id)
        assert read_cli.returncode == 0 and "$ echo hi" in read_cli.stdout


async def test_the_continue_hint_works_when_copy_pasted(tmp_path: Path) -> None:
    # The default data dir is elsewhere and empty: a hint that leaves out how this
    # `send` connected would start a server that does not know the thread.
    elsewhere = {"APPSERVER_HOME": str(tmp_path / "elsewhere")}
    data = tmp_path / "data"

    # Over --url: the hint carries the --url.
    async with run_ws_server("--data-dir", str(data)) as server:
        first = await cli("send", "--url", server.url, "first", env=elsewhere)
        assert first.returncode == 0, first.stderr
        thread_id = thread_id_in(first)
        again = await cli(*continue_hint(first), env=elsewhere)
        assert again.returncode == 0, again.stderr
        assert "You said: next message" in again.stdout
        assert thread_id_in(again) == thread_id
    # A private stdio server on --data-dir (none running now): the hint carries the
    # data dir, absolute, so it works from any directory.
    own = await cli("send", "--data-dir", str(data), "third", env=elsewhere)
    assert own.returncode == 0, own.stderr
    hint = continue_hint(own)
    assert hint[hint.index("--data-dir") + 1] == str(data)
    again = await cli(*hint, env=elsewhere)
    assert again.returncode == 0, again.stderr
    read = await cli("read", "--data-dir", str(data), "--json", thread_id_in(own))
    texts = [
        t["items"][0]["content"][0]["text"] for t in json.loads(read.stdout)["thread"]["turns"]
    ]
    assert texts == ["third", "next message"]
    # In memory there is nothing to continue: no hint.
    gone = await cli("send", "--in-memory", "hello")
    assert gone.returncode == 0 and "continue with" not in gone.stderr


async def test_a_stale_record_is_skipped_and_a_unix_listener_is_reached(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with run_ws_server("--data-dir", str(data)) as server:
        server.process.kill()  # leaves its URL recorded in the lock file
        await server.process.wait()
    stale = await cli("threads", "--data-dir", str(data))
    assert stale.returncode == 0, stale.stderr  # refused: fell back to a private server
    with tempfile.TemporaryDirectory(prefix="as-", dir="/tmp") as short:
        sock_path = Path(short) / "s.sock"
        async with run_ws_server(
            "--data-dir", str(data), "--listen", f"unix://{sock_path}"
        ) as unix_server:
            assert unix_server.url == f"unix://{sock_path}"
            sent = await cli("send", "--data-dir", str(data), "over unix")
            assert sent.returncode == 0, sent.stderr
            listed = await cli("threads", "--url", unix_server.url)
            (row,) = listed.stdout.splitlines()[1:]
            assert row.startswith(thread_id_in(sent)) and "idle" in row
