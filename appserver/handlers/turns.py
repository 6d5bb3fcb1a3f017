"""Turn methods (PROTOCOL.md §5.9, §5.10)."""

from __future__ import annotations

from typing import Any

from appserver.connection import RequestContext
from appserver.protocol import errors
from appserver.protocol import types as t
from appserver.protocol.converter import unstructure
from appserver.protocol.errors import InvalidParams
from appserver.threads import objects
from appserver.threads.loaded import LoadedThread

from .common import Handler, Services, approval_policy_of, checked_cwd, thread_id_of

MAX_INPUT_CHARS = 1_048_576


def _input_chars(user_input: list[dict[str, Any]]) -> int:
    return sum(len(i.get("text", "")) for i in user_input if i.get("type") == "text")


async def loaded_for_turn(s: Services, thread_id: str) -> LoadedThread:
    thread = s.registry.get(thread_id)
    if thread is not None:
        return thread
    record = await s.stored(thread_id)
    if record.archived:
        raise errors.thread_archived(thread_id)
    if s.registry.is_closing(thread_id):
        raise errors.thread_closing(thread_id)
    raise errors.thread_not_loaded(thread_id)


async def turn_start(s: Services, ctx: RequestContext, p: t.TurnStartParams) -> dict[str, Any]:
    thread_id = thread_id_of(p.thread_id)
    thread = await loaded_for_turn(s, thread_id)
    if not p.input and p.tool_output is None:
        raise InvalidParams.field("input", "must not be empty")
    user_input = [
        {k: v for k, v in entry.items() if v is not None} for entry in unstructure(p.input)
    ]
    chars = _input_chars(user_input)
    if chars > MAX_INPUT_CHARS:
        message = f"input too large: {chars} characters, the limit is {MAX_INPUT_CHARS}"
        raise InvalidParams(
            f"Invalid params: {message}",
            kind="inputTooLarge",
            errors=[{"path": "input", "message": message}],
            max_chars=MAX_INPUT_CHARS,
            actual_chars=chars,
        )
    settings: dict[str, Any] = {}
    if p.cwd is not None:
        settings["cwd"] = await checked_cwd(p.cwd, "cwd")
    if p.approval_policy is not None:
        settings["approvalPolicy"] = approval_policy_of(p.approval_policy)
    if p.sandbox_policy is not None:
        settings["sandbox"] = objects.sandbox_mode(p.sandbox_policy.type)
    if p.model is not None:
        settings["model"] = p.model
    turn = await s.registry.start_turn(
        thread, user_input, settings, client_id=p.client_user_message_id
    )
    started = objects.turn_object(
        turn.id, "inProgress", items_view="notLoaded", started_at_ms=turn.started_at_ms
    )
    return {"turn": started}


async def turn_interrupt(
    s: Services, ctx: RequestContext, p: t.TurnInterruptParams
) -> dict[str, Any]:
    thread_id = thread_id_of(p.thread_id)
    thread = s.registry.get(thread_id)
    if thread is None:
        await s.stored(thread_id)
        raise errors.turn_not_active(p.turn_id)
    await s.registry.interrupt(thread, p.turn_id)
    return {}


METHODS: dict[str, Handler] = {
    "turn/start": turn_start,
    "turn/interrupt": turn_interrupt,
}
