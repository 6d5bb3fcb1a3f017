"""A scripted session over websocket, with an approval.

    python examples/scripted_session.py [ws://HOST:PORT] [--token-file PATH]

Without a URL it starts its own `appserver --listen ws://127.0.0.1:0 --in-memory`
subprocess, reads the port from its `appserver listening on ...` line, and stops it with
SIGTERM at the end, so the script runs standalone.

The turn runs `/run echo hello from appserver`. Under the default approval policy
(`on-request`) the builtin agent asks before running a command, so the server sends an
`item/commandExecution/requestApproval` request; the script accepts it and prints the
command's streamed output.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import trio

from appserver.client import connect_websocket

BANNER = "appserver listening on "


@asynccontextmanager
async def appserver_subprocess() -> AsyncIterator[str]:
    """Run `appserver` on a free loopback port; yield its URL; SIGTERM it on exit."""
    argv = [sys.executable, "-m", "appserver", "--listen", "ws://127.0.0.1:0", "--in-memory"]
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                argv,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
        )
        assert proc.stderr is not None
        url, seen = None, b""
        with trio.fail_after(20):
            while url is None:
                chunk = await proc.stderr.receive_some()
                if not chunk:
                    raise RuntimeError(f"appserver exited early: {seen.decode()}")
                seen += chunk
                for line in seen.decode(errors="replace").splitlines(keepends=True):
                    if line.startswith(BANNER) and line.endswith("\n"):
                        url = line.removeprefix(BANNER).strip()

        async def drain_stderr() -> None:  # keep the pipe from filling up
            assert proc.stderr is not None
            async for _ in proc.stderr:
                pass

        nursery.start_soon(drain_stderr)
        try:
            yield url
        finally:
            proc.terminate()  # SIGTERM: graceful shutdown, exit 0
            with trio.move_on_after(10):
                await proc.wait()
            print(f"server exited with {proc.returncode}")


async def session(url: str, token: str | None) -> None:
    async with connect_websocket(url, token=token) as client:
        info = await client.initialize("scripted-session", "1.0")
        print(f"connected: {info['userAgent']}")
        thread = (await client.request("thread/start"))["thread"]
        thread_id = thread["id"]
        print(f"thread {thread_id} ({thread['status']['type']})")

        text = "/run echo hello from appserver"
        await client.request(
            "turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
        )

        approval = await client.next_server_request("item/commandExecution/requestApproval")
        print(f"approval requested for: {approval.params['command']}")
        await client.respond(approval.id, {"decision": "accept"})

        while True:
            note = await client.next_notification(where=lambda p: p.get("threadId") == thread_id)
            method, params = note["method"], note["params"]
            if method == "item/commandExecution/outputDelta":
                print(f"output: {params['delta']!r}")
            elif method == "item/completed" and params["item"]["type"] == "commandExecution":
                item = params["item"]
                print(f"command {item['status']}, exit code {item['exitCode']}")
            elif method == "turn/completed":
                print(f"turn {params['turn']['status']}")
                break


async def main(url: str | None, token: str | None) -> None:
    if url is not None:
        await session(url, token)
        return
    async with appserver_subprocess() as own_url:
        print(f"started appserver at {own_url}")
        await session(own_url, token)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", help="ws://HOST:PORT of a running appserver")
    parser.add_argument("--token-file", type=Path, help="file holding the bearer token")
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file else None
    trio.run(main, args.url, token)
