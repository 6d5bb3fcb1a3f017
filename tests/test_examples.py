"""Every program in examples/ runs as written (a real subprocess, with a timeout), and the
systemd unit of examples/daemon.md starts, authenticates, logs JSON and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import trio

from appserver.client import connect_websocket
from appserver.server import STORE_FILE

from support import REPO, run_ws_server

EXAMPLES = REPO / "examples"
TIMEOUT = 30


async def run_example(*args: str) -> str:
    """Run `python examples/<args>`; assert it exits 0; its stdout (stderr on failure)."""
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process(
            [sys.executable, *args],
            cwd=EXAMPLES,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out: str = done.stdout.decode()
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{out}\n{done.stderr.decode()}"
    return out


async def test_embed_in_trio_app(tmp_path: Path) -> None:
    out = await run_example("embed_in_trio_app.py", "--data-dir", str(tmp_path))
    assert re.search(r"^serving ws://127\.0\.0\.1:\d+$", out, re.M)
    assert "in-process: appserver/" in out
    assert "in-process streamed: 'hello from inside the process'" in out
    assert "websocket: resumed thread with 1 turn(s)" in out
    assert "websocket streamed: 'hello over the websocket'" in out
    assert out.rstrip().endswith("done")
    assert (tmp_path / STORE_FILE).is_file()


async def test_embed_in_trio_app_in_memory() -> None:
    out = await run_example("embed_in_trio_app.py")
    assert out.count("turn completed") == 2


async def test_scripted_session_standalone() -> None:
    out = await run_example("scripted_session.py")
    assert "approval requested for: echo hello from appserver" in out
    assert "output: 'hello from appserver\\n'" in out
    assert "command completed, exit code 0" in out
    assert "turn completed" in out
    assert out.rstrip().endswith("server exited with 0")


async def test_scripted_session_against_a_running_server(appserver_ws_url: str) -> None:
    out = await run_example("scripted_session.py", appserver_ws_url)
    assert "started appserver" not in out
    assert "output: 'hello from appserver\\n'" in out
    assert out.rstrip().endswith("turn completed")


async def test_scripted_session_with_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    async with run_ws_server("--in-memory", "--ws-token-file", str(token_file)) as server:
        out = await run_example("scripted_session.py", server.url, "--token-file", str(token_file))
    assert "command completed, exit code 0" in out


async def test_own_agent() -> None:
    """examples/own_agent.py: an embedder's agent that asks for approval and runs a command."""
    out = await run_example("own_agent.py")
    assert "providers: ['builtin', 'openai', 'counter']" in out
    assert "models of counter: ['wc-1']" in out
    assert "thread of counter with model wc-1" in out
    assert "approval requested for: printf %s 'three little words' | wc -w" in out
    assert "command completed, output '3\\n'" in out
    assert "agent: You wrote 3 word(s)." in out
    assert out.rstrip().endswith("turn completed")


async def test_two_clients_rejoin() -> None:
    out = await run_example("two_clients_rejoin.py")
    assert "A: started turn, first delta 'abcdefgh', disconnecting" in out
    snapshot = re.search(r"snapshot holds (\d+) characters", out)
    assert snapshot is not None
    assert "snapshot " + snapshot[1] + " + deltas " in out
    assert "final text 160000 characters, expected 160000" in out
    assert "check: OK" in out


# --- examples/daemon.md ----------------------------------------------------------------------


async def upgrade_status(url: str, token: str) -> int:
    """The HTTP status of a websocket upgrade to `url` with this bearer token."""
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(
            (
                f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Authorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n" not in head:
            chunk = await stream.receive_some()
            assert chunk, "connection closed before the status line"
            head += chunk
    return int(head.split(b" ", 2)[1])


def daemon_exec_start() -> list[str]:
    text = (EXAMPLES / "daemon.md").read_text()
    block = text.split("<!-- daemon-unit", 1)[1].split("```ini\n", 1)[1].split("```", 1)[0]
    (line,) = [ln for ln in block.splitlines() if ln.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


async def test_daemon_unit_exec_start(tmp_path: Path) -> None:
    argv = daemon_exec_start()
    assert argv[0] == "%h/.local/opt/appserver/bin/appserver"
    assert argv[1:3] == ["--listen", "ws://127.0.0.1:4500"]
    # Run it with %h = a temporary home, on a free port, with the documented token file.
    args = [a.replace("%h", str(tmp_path)) for a in argv[3:]]
    token_file = tmp_path / ".config" / "appserver" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text("daemon-token\n")
    token_file.chmod(0o600)
    data_dir = tmp_path / ".local" / "share" / "appserver"

    async with run_ws_server(*args) as server:
        async with connect_websocket(server.url, token="daemon-token") as client:
            await client.initialize("daemon-test")
            assert (await client.request("thread/start"))["thread"]["status"]["type"] == "idle"
            with trio.fail_after(TIMEOUT):
                await client.request(
                    "turn/start",
                    {
                        "threadId": (await client.request("thread/list"))["data"][0]["id"],
                        "input": [{"type": "text", "text": "hi"}],
                    },
                )
                await client.next_notification("turn/completed")
        assert await upgrade_status(server.url, "wrong") == 401
        assert await upgrade_status(server.url, "daemon-token") == 101
        server.process.send_signal(signal.SIGTERM)
        with trio.fail_after(TIMEOUT):
            await server.process.wait()
        assert server.process.returncode == 0

    assert (data_dir / STORE_FILE).is_file()
    banner, *rest = [ln for ln in server.stderr_lines if ln.strip()]
    assert banner.startswith("appserver listening on ws://127.0.0.1:")
    logs = [json.loads(ln) for ln in rest]  # --log-json: every other line is JSON
    assert any(entry["message"] == "received SIGTERM" for entry in logs)
    assert {"ts", "level", "logger", "message"} <= set(logs[0])


def test_daemon_token_recipe_is_private(tmp_path: Path) -> None:
    """The token-file recipe of daemon.md yields a 0600 file (run with HOME=tmp_path)."""
    text = (EXAMPLES / "daemon.md").read_text()
    recipe = text.split("## 2. The token file", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", recipe],
        env={**os.environ, "HOME": str(tmp_path)},
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    token = tmp_path / ".config" / "appserver" / "token"
    assert token.stat().st_mode & 0o777 == 0o600
    assert (token.parent.stat().st_mode & 0o777) == 0o700
    assert len(token.read_text().strip()) >= 32
