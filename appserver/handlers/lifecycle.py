"""Thread lifecycle beyond start/archive: thread/fork, thread/delete, thread/revert,
thread/metadata/update, thread/inject_items (Codex 0.171).

As the reference: a fork answers with the thread/start result (turns unless
`excludeTurns`) and broadcasts `thread/started`; a delete broadcasts `thread/deleted`
after its answer; a revert broadcasts `thread/reverted` after its answer; metadata
updates and injected items send no notification. inject_items and revert need the
thread loaded (`threadNotLoaded`); fork, delete and metadata/update work on stored
threads too. The acts on live threads are in threads/lifecycle.py.
"""

from __future__ import annotations

from typing import Any

from appserver.protocol import errors
from appserver.protocol import lifecycle_types as lct
from appserver.protocol import types as t
from appserver.protocol.converter import type_name
from appserver.protocol.errors import InvalidParams
from appserver.requests import RequestContext
from appserver.store.base import ThreadRecord
from appserver.threads import lifecycle, objects
from appserver.threads.history import stored_turn
from appserver.threads.loaded import LoadedThread
from appserver.threads.starting import store_settings

from .common import Handler, Services, session_result, settings_of, thread_id_of

# --- thread/fork ---------------------------------------------------------------------


def _fork_record(
    s: Services, ctx: RequestContext, source: ThreadRecord, p: lct.ThreadForkParams
) -> ThreadRecord:
    """The fork's record: the source's settings (its gitInfo too), its own times."""
    ts = objects.now()
    settings = {**source.settings, "forkedFromId": source.id}
    if ctx.connection.client_name:
        settings["originator"] = ctx.connection.client_name
    if p.thread_source is not None:
        settings["threadSource"] = p.thread_source
    return ThreadRecord(
        id=objects.uuid7(),
        preview=source.preview,
        model_provider=source.model_provider,
        model=source.model,
        cwd=source.cwd,
        created_at=ts,
        updated_at=ts,
        settings=settings,
    )


async def thread_fork(s: Services, ctx: RequestContext, p: lct.ThreadForkParams) -> None:
    source_id = thread_id_of(p.thread_id)
    if p.path:  # "" is absent (the schema's rule)
        raise errors.InvalidRequest(
            "thread/fork.path is not supported: appserver keeps threads in its store, not "
            "in rollout files; fork by threadId"
        )
    if p.ephemeral and not p.exclude_turns:
        raise errors.InvalidRequest("ephemeral thread/fork requires `excludeTurns: true`")
    overrides = await settings_of(p, s.backends)
    source = await lifecycle.fork_source(s.registry, s.store, source_id)
    turns = source.through(p.last_turn_id)
    record = _fork_record(s, ctx, source.record, p)
    provider = overrides.pop("modelProvider", None)
    if provider is not None and provider != record.model_provider:
        record.model_provider = provider
        record.model = overrides.pop("model", None) or s.backends.default_model(provider)
    objects.apply_settings(record, overrides)
    thread = await lifecycle.fork(s.registry, ctx.connection, record, turns, ephemeral=p.ephemeral)
    shown = [] if p.exclude_turns else [stored_turn(turn) for turn in turns]
    ctx.respond(session_result(thread, shown))
    s.broadcast("thread/started", {"thread": thread.thread_object()})


# --- thread/delete -------------------------------------------------------------------


async def thread_delete(s: Services, ctx: RequestContext, p: t.ThreadIdParams) -> None:
    thread_id = thread_id_of(p.thread_id)
    await lifecycle.delete(s.registry, thread_id)
    ctx.respond({})
    s.broadcast("thread/deleted", {"threadId": thread_id})


# --- thread/revert -------------------------------------------------------------------


async def _loaded(s: Services, thread_id: str) -> LoadedThread:
    thread = s.registry.get(thread_id)
    if thread is None:
        await s.stored(thread_id)  # threadNotFound
        raise errors.thread_not_loaded(thread_id)
    if thread.closing:
        raise errors.thread_closing(thread_id)
    return thread


async def thread_revert(s: Services, ctx: RequestContext, p: lct.ThreadRevertParams) -> None:
    thread = await _loaded(s, thread_id_of(p.thread_id))
    reverted = await lifecycle.revert(s.registry, thread, p.before_turn_id)
    ctx.respond(
        {
            "thread": thread.thread_object(),
            "turnsBackwardsCursor": reverted.turns_backwards_cursor,
            "itemsBackwardsCursor": reverted.items_backwards_cursor,
        }
    )
    s.broadcast("thread/reverted", {"threadId": thread.id})


# --- thread/metadata/update ----------------------------------------------------------


def _git_patch(value: Any) -> dict[str, str | None]:
    """The gitInfo patch: absent members unchanged, null clears, a string replaces."""
    if not isinstance(value, dict):
        raise InvalidParams.field("gitInfo", f"expected an object, got {type_name(value)}")
    patch: dict[str, str | None] = {}
    for field in lct.GIT_FIELDS:
        if field not in value:
            continue
        member = value[field]
        if member is not None and not isinstance(member, str):
            message = f"expected a string or null, got {type_name(member)}"
            raise InvalidParams.field(f"gitInfo.{field}", message)
        if isinstance(member, str):
            member = member.strip()
            if not member:
                raise errors.InvalidRequest(f"gitInfo.{field} must not be empty")
        patch[field] = member
    if not patch:
        raise errors.InvalidRequest("gitInfo must include at least one field")
    return patch


def _patched(settings: dict[str, Any], patch: dict[str, str | None]) -> dict[str, Any] | None:
    info = {**(settings.get("gitInfo") or {}), **patch}
    info = {key: value for key, value in info.items() if value is not None}
    return info or None


async def thread_metadata_update(
    s: Services, ctx: RequestContext, p: lct.ThreadMetadataUpdateParams
) -> dict[str, Any]:
    thread_id = thread_id_of(p.thread_id)
    if p.git_info is None:
        raise errors.InvalidRequest("thread metadata update must include at least one field")
    patch = _git_patch(p.git_info)
    thread = s.registry.get(thread_id)
    if thread is not None:
        if thread.ephemeral:
            message = f"ephemeral thread does not support metadata updates: {thread_id}"
            raise errors.InvalidRequest(message)
        await store_settings(thread, {"gitInfo": _patched(thread.record.settings, patch)})
        return {"thread": thread.thread_object()}
    record = await s.stored(thread_id)
    record.settings["gitInfo"] = _patched(record.settings, patch)
    await s.store.update_thread(thread_id, settings=record.settings)
    return {"thread": objects.thread_object(record, dict(objects.NOT_LOADED))}


# --- thread/inject_items -------------------------------------------------------------


def _checked_items(items: Any) -> list[dict[str, Any]]:
    """Raw Responses API items: objects with a string `type`; a `message` needs a string
    `role` and a `content` list (as the reference parses them; other types are kept as
    given)."""
    if not isinstance(items, list):
        raise InvalidParams.field("items", f"expected an array, got {type_name(items)}")
    if not items:
        raise errors.InvalidRequest("items must not be empty")
    for index, item in enumerate(items):
        path = f"items[{index}]"
        if not isinstance(item, dict):
            raise InvalidParams.field(path, f"expected an object, got {type_name(item)}")
        if not isinstance(item.get("type"), str):
            raise InvalidParams.field(f"{path}.type", "a response item needs a string `type`")
        if item["type"] == "message":
            if not isinstance(item.get("role"), str):
                raise InvalidParams.field(f"{path}.role", "a message needs a string `role`")
            if not isinstance(item.get("content"), list):
                raise InvalidParams.field(f"{path}.content", "a message needs a `content` array")
    return items


async def thread_inject_items(
    s: Services, ctx: RequestContext, p: lct.ThreadInjectItemsParams
) -> dict[str, Any]:
    thread_id = thread_id_of(p.thread_id)
    thread = await _loaded(s, thread_id)  # as the reference: the thread first
    items = _checked_items(p.items)
    await thread.store.inject_items(thread_id, items)
    return {}


METHODS: dict[str, Handler] = {
    "thread/fork": thread_fork,
    "thread/delete": thread_delete,
    "thread/revert": thread_revert,
    "thread/metadata/update": thread_metadata_update,
    "thread/inject_items": thread_inject_items,
}
