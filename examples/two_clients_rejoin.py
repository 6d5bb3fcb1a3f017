"""Rejoin a running turn from a second client without losing a character.

    python examples/two_clients_rejoin.py [ws://HOST:PORT]

Client A starts a thread and a long `/stream 20000 8` turn (160,000 characters in 20,000
deltas), reads the first delta and disconnects. The turn keeps running with no
subscriber (PROTOCOL.md §8.2). Client B, connected separately, calls `thread/resume`: the
response's snapshot holds the agent message streamed so far, and every later delta
reaches B. Snapshot text + B's deltas must equal the final text.

Without a URL the script embeds its own server (in memory) and serves websocket on a free
loopback port.
"""

from __future__ import annotations

import sys
from typing import Any

import trio

from appserver.client import Client, connect_websocket
from appserver.server import ServerConfig, open_server

COUNT, SIZE = 20000, 8


async def start_and_leave(url: str) -> tuple[str, str]:
    """Client A: start a thread and the long turn, read one delta, disconnect."""
    async with connect_websocket(url) as a:
        await a.initialize("client-a", "1.0")
        thread_id: str = (await a.request("thread/start"))["thread"]["id"]
        text = f"/stream {COUNT} {SIZE}"
        started = await a.request(
            "turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
        )
        first = await a.next_notification("item/agentMessage/delta")
        print(f"A: started turn, first delta {first['params']['delta']!r}, disconnecting")
        return thread_id, started["turn"]["id"]


def agent_message(turn: dict[str, Any]) -> dict[str, Any] | None:
    return next((i for i in turn["items"] if i["type"] == "agentMessage"), None)


async def rejoin(b: Client, thread_id: str, turn_id: str) -> None:
    """Client B: resume the thread and reconstruct the whole text."""
    resumed = await b.request("thread/resume", {"threadId": thread_id})
    turn = next(t for t in resumed["thread"]["turns"] if t["id"] == turn_id)
    message = agent_message(turn)
    snapshot = message["text"] if message else ""
    print(f"B: resumed; turn {turn['status']}, snapshot holds {len(snapshot)} characters")

    deltas: list[str] = []
    final = snapshot
    if turn["status"] == "inProgress":
        while True:
            note = await b.next_notification(where=lambda p: p.get("threadId") == thread_id)
            method, params = note["method"], note["params"]
            if method == "item/agentMessage/delta":
                deltas.append(params["delta"])
            elif method == "item/completed" and params["item"]["type"] == "agentMessage":
                final = params["item"]["text"]
            elif method == "turn/completed":
                print(f"B: turn {params['turn']['status']}")
                break
    rebuilt = snapshot + "".join(deltas)
    print(f"B: {len(deltas)} deltas after the snapshot, {len(rebuilt) - len(snapshot)} chars")
    print(f"snapshot {len(snapshot)} + deltas {len(rebuilt) - len(snapshot)} = {len(rebuilt)}")
    print(f"final text {len(final)} characters, expected {COUNT * SIZE}")
    ok = rebuilt == final and len(final) == COUNT * SIZE
    print(f"check: {'OK' if ok else 'MISMATCH'}")
    if not ok:
        raise SystemExit(1)


async def run(url: str) -> None:
    async with connect_websocket(url) as b:
        await b.initialize("client-b", "1.0")
        thread_id, turn_id = await start_and_leave(url)
        await rejoin(b, thread_id, turn_id)


async def main(url: str | None) -> None:
    if url is not None:
        await run(url)
        return
    async with open_server(ServerConfig(data_dir=None)) as server, trio.open_nursery() as n:
        port = await n.start(server.serve_websocket, "127.0.0.1", 0)
        await run(f"ws://127.0.0.1:{port}")
        n.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else None)
