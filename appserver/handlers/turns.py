"""Turn methods (PROTOCOL.md §5.9, §5.10)."""

from __future__ import annotations

from typing import Any

from appserver.protocol import errors
from appserver.protocol import steer_types as steer
from appserver.protocol import types as t
from appserver.protocol.converter import unstructure
from appserver.protocol.errors import InvalidParams
from appserver.requests import RequestContext
from appserver.threads import objects, steering
from appserver.threads.loaded import LoadedThread

from .common import Handler, Services, approval_policy_of, checked_cwd, thread_id_of

MAX_INPUT_CHARS = 1_048_576


def _input_chars(user_input: list[dict[str, Any]]) -> int:
    return sum(len(i.get("text", "")) for i in user_input if i.get("type") == "text")


def _wire_input(entries: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if v is not None} for entry in unstructure(entries)]


def _check_size(user_input: list[dict[str, Any]]) -> None:
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
    user_input = _wire_input(p.input)
    _check_size(user_input)
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


async def turn_steer(s: Services, ctx: RequestContext, p: steer.TurnSteerParams) -> dict[str, Any]:
    """Extra input for the running turn (PROTOCOL.md §10, threads/steering.py). The answer
    is queued before the turn task wakes, so it comes before the steered item's
    item/started, as in the reference."""
    thread_id = thread_id_of(p.thread_id)
    thread = s.registry.get(thread_id)
    if thread is None:
        await s.stored(thread_id)  # threadNotFound for an unknown thread
    turn = steering.steerable_turn(thread, p.expected_turn_id)
    if not p.input:
        raise errors.InvalidRequest("input must not be empty")
    user_input = _wire_input(p.input)
    _check_size(user_input)
    result = {"turnId": turn.id}
    ctx.respond(result)
    steering.steer(turn, steering.steered_item(user_input, p.client_user_message_id))
    return result


METHODS: dict[str, Handler] = {
    "turn/start": turn_start,
    "turn/interrupt": turn_interrupt,
    "turn/steer": turn_steer,
}
