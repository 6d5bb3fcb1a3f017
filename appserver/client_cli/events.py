"""The event pump: every message the client receives, as one ordered stream."""

from __future__ import annotations

import math

import attrs
import trio

from appserver.client import Client, ConnectionClosedError
from appserver.client_cli.common import Message
from appserver.client_cli.render import print_json


@attrs.define(eq=False)
class Events:
    """Every message the client receives, in arrival order, as one stream.

    `Client` buffers notifications and server requests apart; its `observer` sees both in
    order, so it feeds this channel (and prints raw JSON lines with --json)."""

    client: Client
    json_out: bool
    send: trio.MemorySendChannel[Message]
    receive: trio.MemoryReceiveChannel[Message]
    arrived: trio.Event = attrs.Factory(trio.Event)

    @classmethod
    def attach(cls, client: Client, *, json_out: bool) -> Events:
        send, receive = trio.open_memory_channel[Message](math.inf)
        events = cls(client, json_out, send, receive)
        inner = client.observer  # keep whoever already watches (e.g. a test's checker)

        def observe(message: Message, method: str | None) -> None:
            if inner is not None:
                inner(message, method)
            events._observe(message, method)

        client.observer = observe
        return events

    def _observe(self, message: Message, method: str | None) -> None:
        if self.json_out and method != "initialize":
            print_json(message)
        if "method" in message:
            self.send.send_nowait(message)
            self.arrived.set()
            self.arrived = trio.Event()

    async def next(self) -> Message:
        """The next notification or server request; ConnectionClosedError once the
        connection has closed and every message received before has been taken."""
        while True:
            try:
                message = self.receive.receive_nowait()
            except trio.WouldBlock:
                if self.client.closed:
                    raise ConnectionClosedError(
                        self.client.close_reason or "the server closed the connection"
                    ) from None
                await self._wait()
                continue
            # The client keeps its own copies; drop them so long runs do not grow memory.
            if "id" in message:
                await self.client.next_server_request()
            else:
                self.client.drain_notifications()
            return message

    async def _wait(self) -> None:
        """Until a message is queued or the connection closes."""
        async with trio.open_nursery() as nursery:

            async def queued() -> None:
                await self.receive_peek()
                nursery.cancel_scope.cancel()

            async def closed() -> None:
                await self.client.wait_closed()
                nursery.cancel_scope.cancel()

            nursery.start_soon(queued)
            nursery.start_soon(closed)

    async def receive_peek(self) -> None:
        while self.receive.statistics().current_buffer_used == 0:
            await self.arrived.wait()


def thread_of(params: Message) -> str | None:
    thread = params.get("threadId")
    if thread is None and isinstance(params.get("thread"), dict):
        thread = params["thread"].get("id")
    return thread if isinstance(thread, str) else None
