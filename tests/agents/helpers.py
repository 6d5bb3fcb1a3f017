"""Helpers shared by the agent tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import trio

from appserver.agents import ScriptAgent

from .recording import RecordingContext

TIMEOUT = 10


def text(*texts: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": t, "text_elements": []} for t in texts]


async def run(ctx: RecordingContext, *texts: str) -> None:
    with trio.fail_after(TIMEOUT):
        await ScriptAgent().run_turn(ctx, text(*texts))


async def run_and_cancel(
    ctx: RecordingContext, script: str, ready: Callable[[RecordingContext], bool]
) -> int:
    """Run `script`, cancel the turn once `ready(ctx)` holds, check that trio.Cancelled came
    out of run_turn and nothing was emitted after the cancel. Returns the number of events
    recorded at the moment of the cancel."""
    scope = trio.CancelScope()
    returned = False

    async def turn() -> None:
        nonlocal returned
        with scope:
            await ScriptAgent().run_turn(ctx, text(script))
            returned = True

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(turn)
            await ctx.wait_for(ready)
            seen = len(ctx.events)
            scope.cancel()
    assert scope.cancelled_caught, "trio.Cancelled did not propagate out of run_turn"
    assert not returned
    assert len(ctx.events) == seen, f"emitted after cancel: {ctx.events[seen:]}"
    return seen


async def wait_process_group_gone(pgid: int) -> None:
    """Poll until no process of group `pgid` exists. Killed grandchildren are orphans that
    the system's init reaps on its own schedule, so this cannot wait on an event."""
    with trio.fail_after(TIMEOUT):
        while True:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            await trio.sleep(0.02)


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
