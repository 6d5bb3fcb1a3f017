"""The Python client's bounded buffers (docs/embedding.md, "Bounded buffers"): a consumer
that does not read overflows with ClientOverflow (the stream, waiting `next_*`, pending
requests and later sends all raise it, and the connection is closed); one that reads goes
on past the bound; requests answer while notifications pile up below it."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from appserver.client import (
    BufferLimits,
    Client,
    ClientOverflow,
    ConnectionClosedError,
    ServerRequest,
    connect_websocket,
    spawn_stdio,
)
from appserver.server import ServerConfig, open_server

from conftest import ConnectFactory

TIMEOUT = 20


async def new_thread(client: Client) -> str:
    started = await client.request("thread/start", {"approvalPolicy": "never"})
    thread_id: str = started["thread"]["id"]
    return thread_id


async def stream(client: Client, thread_id: str, script: str) -> None:
    text = [{"type": "text", "text": script}]
    await client.request("turn/start", {"threadId": thread_id, "input": text})


def cat_exec(process_id: str) -> dict[str, Any]:
    """A command/exec that is answered only when its stdin closes (never, here)."""
    return {"command": ["cat"], "processId": process_id, "streamStdin": True}


async def test_a_consumer_that_does_not_read_overflows(connect: ConnectFactory) -> None:
    async with connect() as client:
        await client.initialize("buffers")
        thread_id = await new_thread(client)
        client.drain_notifications()
        client.limits = BufferLimits(messages=40)
        async with trio.open_nursery() as nursery:
            pending: list[BaseException] = []

            async def cat() -> None:
                try:
                    await client.request("command/exec", cat_exec("never-answered"))
                except ClientOverflow as exc:
                    pending.append(exc)

            nursery.start_soon(cat)
            with trio.fail_after(TIMEOUT):
                await stream(client, thread_id, "/stream 400 4")
                with pytest.raises(ClientOverflow) as waited:
                    await client.next_notification("turn/completed")  # skips, never takes
        error = waited.value
        assert (error.limit, error.bound, error.messages) == ("messages", 40, 40)
        assert "BufferLimits.messages=40" in str(error) and "closed" in str(error)
        assert isinstance(error, ConnectionClosedError)  # the connection is gone
        (request_error,) = pending
        assert isinstance(request_error, ClientOverflow)
        assert client.overflowed and client.closed
        with trio.fail_after(TIMEOUT):
            with pytest.raises(ClientOverflow):
                await client.request("thread/read", {"threadId": thread_id})
            with pytest.raises(ClientOverflow):
                async for _ in client:
                    pass  # the stream raises: not a quiet end
        # What was buffered stays inspectable (at most the bound).
        assert len(client.notifications) == 40


async def test_a_consumer_that_reads_goes_past_the_bound(connect: ConnectFactory) -> None:
    async with connect() as client:
        await client.initialize("buffers")
        thread_id = await new_thread(client)
        client.drain_notifications()
        client.limits = BufferLimits(messages=16, bytes=8192)
        deltas = 0
        with trio.fail_after(TIMEOUT):
            await stream(client, thread_id, "/stream 300 4")
            message: dict[str, Any] | ServerRequest
            async for message in client:
                assert isinstance(message, dict)
                deltas += message["method"] == "item/agentMessage/delta"
                if message["method"] == "turn/completed":
                    break
            # The connection is still fine afterwards.
            await client.request("thread/read", {"threadId": thread_id})
    assert deltas == 300
    assert not client.overflowed


async def test_requests_answer_while_notifications_pile_up_below_the_bound(
    connect: ConnectFactory,
) -> None:
    async with connect() as client:
        await client.initialize("buffers")
        thread_id = await new_thread(client)
        client.limits = BufferLimits(messages=1000)
        with trio.fail_after(TIMEOUT):
            await stream(client, thread_id, "/stream 200 4")
            await client.next_notification("turn/completed")  # deltas stay buffered
            for _ in range(5):  # answers are not held behind the unread notifications
                read = await client.request("thread/read", {"threadId": thread_id})
                assert read["thread"]["id"] == thread_id
        messages, size = client.buffered()
        assert messages > 200 and size > 200 * 50
        assert not client.overflowed
        taken = client.drain_notifications()
        assert sum(n["method"] == "item/agentMessage/delta" for n in taken) == 200
        assert client.buffered() == (0, 0)


async def test_the_byte_bound_over_a_websocket() -> None:
    limits = BufferLimits(bytes=6000)
    async with open_server(ServerConfig()) as server, trio.open_nursery() as nursery:
        port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        async with connect_websocket(f"ws://127.0.0.1:{port}", buffer_limits=limits) as client:
            await client.initialize("buffers")
            thread_id = await new_thread(client)
            with trio.fail_after(TIMEOUT):
                await stream(client, thread_id, "/stream 300 20")
                with pytest.raises(ClientOverflow) as caught:
                    async for _ in client:
                        pass
            assert caught.value.limit == "bytes" and caught.value.bytes <= 6000
            assert client.buffered()[1] <= 6000
        await server.shutdown(graceful=False)  # the stream needs no finishing
        nursery.cancel_scope.cancel()


async def test_spawn_stdio_takes_buffer_limits_and_overflow_ends_the_child() -> None:
    limits = BufferLimits(messages=10)
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(
            ["--in-memory", "--log-level", "warning"], buffer_limits=limits
        ) as client:
            assert client.limits == limits
            await client.initialize("buffers")
            thread_id = await new_thread(client)
            await stream(client, thread_id, "/stream 100 4")
            with pytest.raises(ClientOverflow):
                await client.next_server_request()
            assert client.process is not None
            await client.process.wait()  # its stdin was closed: it shut down
        assert client.process.returncode == 0


@pytest.mark.parametrize("field", ["messages", "bytes"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_buffer_limits_must_be_positive_ints(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"BufferLimits.{field} must be a positive int"):
        BufferLimits(**{field: value})


def test_the_default_limits() -> None:
    assert BufferLimits() == BufferLimits(messages=100_000, bytes=64 * 1024 * 1024)


async def test_a_filtered_wait_looks_at_each_message_once(connect_shared: ConnectFactory) -> None:
    """`next_notification(where=...)` behind a long stream calls `where` once per message
    (it used to rescan the whole buffer on every arrival: quadratic in the stream), and
    still finds the first match and leaves the rest buffered in order."""
    count = 2000
    async with connect_shared() as client:
        await client.initialize("filtered-wait")
        thread_id = await new_thread(client)
        client.drain_notifications()
        calls = 0

        def completed(params: dict[str, Any]) -> bool:
            nonlocal calls
            calls += 1
            return bool(params.get("turn", {}).get("status") == "completed")

        with trio.fail_after(TIMEOUT):
            await stream(client, thread_id, f"/stream {count} 4")
            done = await client.next_notification(where=completed)
        assert done["method"] == "turn/completed"
        left = client.drain_notifications()
        deltas = [n for n in left if n["method"] == "item/agentMessage/delta"]
        assert len(deltas) == count
        # Each message before the match was looked at once (later ones not at all).
        assert count < calls <= len(left) + 1, (calls, len(left))
