"""`AsyncCodex`: the SDK's asyncio client. The project runs pytest in trio mode, so these are
plain test functions that drive their own asyncio loop with `asyncio.run`."""

from __future__ import annotations

import asyncio
import time

import pytest
from openai_codex.generated.v2_all import (
    AgentMessageDeltaNotification,
    ItemCompletedNotification,
    TurnCompletedNotification,
    TurnStatus,
)
from openai_codex.models import Notification

from .support import SdkEnv, root, untyped


def test_async_run_and_stream(sdk: SdkEnv) -> None:
    async def main() -> tuple[str, list[Notification], list[str]]:
        async with sdk.async_codex() as codex:
            assert codex.metadata.serverInfo is not None
            thread = await codex.thread_start()
            result = await thread.run("/say async hello")
            assert result.final_response == "async hello"
            assert result.status == TurnStatus.completed

            handle = await thread.turn("/stream 3 2")
            events = [event async for event in handle.stream()]

            listed = await codex.thread_list()
            turns = (await thread.read(include_turns=True)).thread.turns
            assert [t.id for t in turns] == [result.id, handle.id]
            return handle.id, events, [t.id for t in listed.data]

    turn_id, events, listed_ids = asyncio.run(main())

    assert untyped(events) == []
    assert len(listed_ids) == 1
    done = events[-1].payload
    assert isinstance(done, TurnCompletedNotification)
    assert done.turn.id == turn_id
    assert done.turn.status == TurnStatus.completed
    deltas = [e.payload for e in events if isinstance(e.payload, AgentMessageDeltaNotification)]
    assert [len(d.delta) for d in deltas] == [2, 2, 2]
    [agent] = [
        root(e.payload.item)
        for e in events
        if isinstance(e.payload, ItemCompletedNotification)
        and root(e.payload.item).type == "agentMessage"
    ]
    assert agent.text == "".join(d.delta for d in deltas)
    assert sdk.wire.error_responses() == []


def test_async_interrupt_and_failure(sdk: SdkEnv) -> None:
    async def main() -> None:
        async with sdk.async_codex() as codex:
            thread = await codex.thread_start()

            began = time.monotonic()
            handle = await thread.turn("/sleep 30")
            await handle.interrupt()
            interrupted = await handle.run()
            assert interrupted.status == TurnStatus.interrupted
            assert time.monotonic() - began < 10

            with pytest.raises(RuntimeError, match=r"^async boom$"):
                await thread.run("/fail async boom")

            ok = await thread.run("/say fine")
            assert ok.final_response == "fine"

    asyncio.run(main())
