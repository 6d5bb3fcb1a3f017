"""Embed appserver in your own trio program.

The server runs inside this program's nursery: one task serves websocket clients on a
free port while the program itself talks to the server in process (no sockets) and then
over the websocket, like any other client would.

    python examples/embed_in_trio_app.py [--data-dir DIR]

Without --data-dir the store is in memory and nothing is written to disk.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import trio

from appserver.client import Client, connect_websocket
from appserver.server import ServerConfig, open_server


async def say(client: Client, thread_id: str, text: str) -> str:
    """Run one `/say` turn and return the text streamed by its deltas."""
    await client.request(
        "turn/start",
        {"threadId": thread_id, "input": [{"type": "text", "text": f"/say {text}"}]},
    )
    streamed = ""
    while True:
        note = await client.next_notification(
            where=lambda p: p.get("threadId") == thread_id,
        )
        method, params = note["method"], note["params"]
        if method == "item/agentMessage/delta":
            streamed += params["delta"]
            print(f"  delta {params['delta']!r}")
        elif method == "turn/completed":
            print(f"  turn {params['turn']['status']}")
            return streamed


async def main(data_dir: Path | None) -> None:
    config = ServerConfig(data_dir=data_dir)
    async with open_server(config) as server, trio.open_nursery() as nursery:
        port: int = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}"
        print(f"serving {url}")

        # 1. In process: memory channels, same protocol.
        async with server.connect() as client:
            info: dict[str, Any] = await client.initialize("embedder", "1.0")
            print(f"in-process: {info['userAgent']}")
            started = await client.request("thread/start")
            thread_id = started["thread"]["id"]
            text = await say(client, thread_id, "hello from inside the process")
            print(f"in-process streamed: {text!r}")

        # 2. Over the websocket: resume the same thread and run another turn.
        async with connect_websocket(url) as ws_client:
            await ws_client.initialize("embedder-ws", "1.0")
            resumed = await ws_client.request("thread/resume", {"threadId": thread_id})
            print(f"websocket: resumed thread with {len(resumed['thread']['turns'])} turn(s)")
            text = await say(ws_client, thread_id, "hello over the websocket")
            print(f"websocket streamed: {text!r}")

        # Stop serving; leaving open_server then shuts the server down (§8.8).
        nursery.cancel_scope.cancel()
    print("done")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    trio.run(main, parser.parse_args().data_dir)
