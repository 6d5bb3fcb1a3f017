"""Bare websocket servers the benchmarks compare appserver against.

    python benchmarks/baseline_servers.py --kind trio|asyncio --mode fanout|echo

Prints `baseline listening on ws://127.0.0.1:PORT` on stderr, like appserver.

- echo: every text frame is sent back as it is.
- fanout: a connection whose first frame is `sub` is a subscriber (answered `ok`). A
  connection that sends `go N SIZE` makes the server push N JSON text frames shaped and
  sized like appserver's `item/agentMessage/delta` notifications to every subscriber
  (each frame serialised once, then sent to each subscriber in turn), followed by one
  `turn/completed` frame. trio: `await ws.send_message` per subscriber; asyncio
  `websockets`: `await ws.send` per subscriber.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import string
import sys
from typing import Any

import trio
import trio_websocket

ID = "019a0000-0000-7000-8000-000000000000"  # as long as appserver's UUIDv7 ids
ALPHABET = string.ascii_lowercase
MAX_MESSAGE = 64 * 1024 * 1024


def frames(count: int, size: int) -> tuple[list[str], str]:
    chunks = [(ALPHABET * (size // 26 + 2))[i : i + size] for i in range(26)]
    head = {"threadId": ID, "turnId": ID, "itemId": ID}

    def encode(method: str, params: Any) -> str:
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))

    # The encoding is done per frame (as appserver does per event), not hoisted.
    texts = [
        encode("item/agentMessage/delta", {**head, "delta": chunks[i % 26]}) for i in range(count)
    ]
    done = encode("turn/completed", {"threadId": ID, "turn": {"id": ID, "status": "completed"}})
    return texts, done


def parse_go(text: str) -> tuple[int, int]:
    _, count, size = text.split()
    return int(count), int(size)


def announce(port: int) -> None:
    print(f"baseline listening on ws://127.0.0.1:{port}", file=sys.stderr, flush=True)


# --- trio-websocket ------------------------------------------------------------------------


async def trio_main(mode: str) -> None:
    subscribers: set[trio_websocket.WebSocketConnection] = set()
    head = {"threadId": ID, "turnId": ID, "itemId": ID}

    async def push(count: int, size: int) -> None:
        chunks = [(ALPHABET * (size // 26 + 2))[i : i + size] for i in range(26)]
        targets = list(subscribers)
        for i in range(count):
            params = {**head, "delta": chunks[i % 26]}
            text = json.dumps(
                {"jsonrpc": "2.0", "method": "item/agentMessage/delta", "params": params},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for ws in targets:
                await ws.send_message(text)
        _, done = frames(0, size)
        for ws in targets:
            await ws.send_message(done)

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            first = await ws.get_message()
            if mode == "echo":
                await ws.send_message(first)
                while True:
                    await ws.send_message(await ws.get_message())
            elif first == "sub":
                subscribers.add(ws)
                await ws.send_message("ok")
                while True:
                    await ws.get_message()
            else:
                while True:
                    await push(*parse_go(str(first)))
                    first = await ws.get_message()
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            subscribers.discard(ws)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: trio_websocket.serve_websocket(
                handler,
                "127.0.0.1",
                0,
                None,
                max_message_size=MAX_MESSAGE,
                task_status=task_status,
            )
        )
        announce(server.port)


# --- asyncio websockets --------------------------------------------------------------------


async def asyncio_main(mode: str) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    subscribers: set[ServerConnection] = set()
    head = {"threadId": ID, "turnId": ID, "itemId": ID}

    async def push(count: int, size: int) -> None:
        chunks = [(ALPHABET * (size // 26 + 2))[i : i + size] for i in range(26)]
        targets = list(subscribers)
        for i in range(count):
            params = {**head, "delta": chunks[i % 26]}
            text = json.dumps(
                {"jsonrpc": "2.0", "method": "item/agentMessage/delta", "params": params},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for ws in targets:
                await ws.send(text)
        _, done = frames(0, size)
        for ws in targets:
            await ws.send(done)

    async def handler(ws: ServerConnection) -> None:
        try:
            first = await ws.recv()
            if mode == "echo":
                await ws.send(first)
                async for message in ws:
                    await ws.send(message)
            elif first == "sub":
                subscribers.add(ws)
                await ws.send("ok")
                async for _ in ws:
                    pass
            else:
                await push(*parse_go(str(first)))
                async for message in ws:
                    await push(*parse_go(str(message)))
        except ConnectionClosed:
            pass
        finally:
            subscribers.discard(ws)

    async with serve(
        handler, "127.0.0.1", 0, max_size=MAX_MESSAGE, compression=None, ping_interval=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        announce(port)
        await asyncio.Future()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("trio", "asyncio"), required=True)
    parser.add_argument("--mode", choices=("fanout", "echo"), required=True)
    args = parser.parse_args()
    try:
        if args.kind == "trio":
            trio.run(trio_main, args.mode)
        else:
            asyncio.run(asyncio_main(args.mode))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
