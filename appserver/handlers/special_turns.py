"""Turns that are not a user's turn/start: thread/compact/start, thread/shellCommand,
review/start (Codex 0.171; threads/special.py).

Each needs a loaded thread (as turn/start: `threadNotLoaded`, `threadArchived`). A
compaction or a review while a turn runs is refused `turnAlreadyActive` (the reference
interrupts the running turn); a user shell command while a turn runs joins that turn, as
in the reference. The answer comes before the turn's first notification.
"""

from __future__ import annotations

import os
from typing import Any

from appserver.protocol import special_types as sp
from appserver.protocol.converter import unstructure
from appserver.protocol.errors import InvalidParams
from appserver.requests import RequestContext
from appserver.threads import objects, special
from appserver.threads.loaded import ActiveTurn

from .common import Handler, Services, thread_id_of
from .turns import loaded_for_turn


async def compact_start(
    s: Services, ctx: RequestContext, p: sp.ThreadCompactStartParams
) -> dict[str, Any]:
    thread = await loaded_for_turn(s, thread_id_of(p.thread_id))
    await s.registry.start_special_turn(thread, special.CompactionTurn, summary_view=False)
    return {}


def _checked_command(command: str) -> str:
    if not command.strip():
        raise InvalidParams.field("command", "command must not be empty")
    if "\0" in command:
        raise InvalidParams.field("command", "command must not contain a NUL character")
    try:
        os.fsencode(command)
    except UnicodeEncodeError as exc:
        raise InvalidParams.field(
            "command", f"command is not valid text at position {exc.start}"
        ) from None
    return command


async def shell_command(
    s: Services, ctx: RequestContext, p: sp.ThreadShellCommandParams
) -> dict[str, Any]:
    thread = await loaded_for_turn(s, thread_id_of(p.thread_id))
    command = _checked_command(p.command)
    timeout_ms = special.DEFAULT_SHELL_TIMEOUT_MS if p.timeout_ms is None else p.timeout_ms
    if timeout_ms < 0:
        raise InvalidParams.field("timeoutMs", f"timeoutMs must be non-negative, got {timeout_ms}")
    while True:
        running: ActiveTurn | None = thread.turn
        if running is None:
            await s.registry.start_special_turn(
                thread,
                lambda _backend: special.ShellTurn(command, timeout_ms),
                summary_view=False,
            )
            return {}
        if special.join_running_turn(running, command, timeout_ms):
            return {}
        await running.done.wait()  # that turn is ending: the command gets a turn of its own


def _checked_target(target: sp.ReviewTarget) -> dict[str, Any]:
    value: dict[str, Any] = {k: v for k, v in unstructure(target).items() if v is not None}
    for field in ("branch", "sha", "instructions"):
        if field in value and not str(value[field]).strip():
            raise InvalidParams.field(f"target.{field}", f"{field} must not be empty")
    return value


async def review_start(s: Services, ctx: RequestContext, p: sp.ReviewStartParams) -> dict[str, Any]:
    thread = await loaded_for_turn(s, thread_id_of(p.thread_id))
    target = _checked_target(p.target)
    turn = await s.registry.start_special_turn(
        thread, lambda backend: special.ReviewTurn(backend, target), summary_view=True
    )
    started = objects.turn_object(
        turn.id, "inProgress", items_view="notLoaded", started_at_ms=turn.started_at_ms
    )
    return {"reviewThreadId": thread.id, "turn": started}


METHODS: dict[str, Handler] = {
    "thread/compact/start": compact_start,
    "thread/shellCommand": shell_command,
    "review/start": review_start,
}
