"""Thread methods (PROTOCOL.md §5.1 - §5.8)."""

from __future__ import annotations

from typing import Any

from appserver.protocol import errors
from appserver.protocol import types as t
from appserver.protocol.converter import unstructure
from appserver.protocol.errors import InvalidParams
from appserver.protocol.replay_types import Replay
from appserver.requests import RequestContext
from appserver.store.base import InvalidCursor, ListQuery, ThreadRecord
from appserver.threads import objects
from appserver.threads.replay import replay_rejoin
from appserver.threads.starting import store_settings
from appserver.threads.turn import stored_turn

from .common import Handler, Immediate, Services, session_result, settings_of, thread_id_of


async def thread_start(s: Services, ctx: RequestContext, p: t.ThreadStartParams) -> None:
    settings = await settings_of(p, s.backends)
    if p.thread_source is not None:
        settings["threadSource"] = p.thread_source
    if p.dynamic_tools:  # stored with the settings: a resume, a restart, a fork keep them
        settings["dynamicTools"] = unstructure(p.dynamic_tools)
    if ctx.connection.client_name:
        settings["originator"] = ctx.connection.client_name
    ts = objects.now()
    provider = settings.pop("modelProvider", s.backends.default_provider)
    record = ThreadRecord(
        id=objects.uuid7(),
        model_provider=provider,
        model=settings.pop("model", None) or s.backends.default_model(provider),
        cwd=settings.pop("cwd", s.default_cwd),
        created_at=ts,
        updated_at=ts,
        settings={
            "approvalPolicy": "on-request",
            "sandbox": "workspace-write",
            "approvalsReviewer": "user",
            **settings,
        },
    )
    thread = await s.registry.create(ctx.connection, record, ephemeral=p.ephemeral)
    ctx.respond(session_result(thread, []))
    s.broadcast("thread/started", {"thread": thread.thread_object()})


def _after_seq(ctx: RequestContext, p: t.ThreadResumeParams) -> int | None:
    """`afterSeq` (§13): a non-negative integer, from a connection with the capability."""
    after = p.after_seq
    if after is None:
        return None
    if type(after) is not int or after < 0:
        raise InvalidParams.field("afterSeq", f"must be a non-negative integer, got {after!r}")
    if not ctx.connection.event_seq:
        raise errors.InvalidRequest(
            "afterSeq requires the appserverEventSeq capability (initialize)",
            kind="eventSeqNotEnabled",
        )
    return after


async def thread_resume(s: Services, ctx: RequestContext, p: t.ThreadResumeParams) -> None:
    thread_id = thread_id_of(p.thread_id)
    after_seq = _after_seq(ctx, p)
    settings = await settings_of(p, s.backends)
    thread, _ = await s.registry.load(thread_id)
    provider = settings.get("modelProvider")
    if provider is not None and provider != thread.record.model_provider:
        # A provider switch without a model: the new provider's default model (as a fork
        # does), never the old provider's model sent to the new backend.
        settings.setdefault("model", s.backends.default_model(provider))
    # Later turns use them; a running turn keeps its own (§5.2). Stored first (§8.6).
    await store_settings(thread, settings)
    if after_seq is not None:

        def respond_replay(replay: Replay) -> None:
            ctx.respond({**session_result(thread, []), "replay": unstructure(replay)})

        if await replay_rejoin(s.registry, thread, ctx.connection, after_seq, respond_replay):
            return
    # excludeTurns: metadata and live state only (the client pages history itself).
    turns = [] if p.exclude_turns else await s.registry.snapshot_turns(thread)
    if thread.closing or s.registry.get(thread_id) is not thread:
        raise errors.thread_closing(thread_id)
    result = session_result(thread, turns)
    if after_seq is not None:
        result["replay"] = None  # the log does not reach back: the snapshot (§13)
    s.registry.rejoin(thread, ctx.connection, lambda: ctx.respond(result))


async def thread_read(s: Services, ctx: RequestContext, p: t.ThreadReadParams) -> dict[str, Any]:
    thread_id = thread_id_of(p.thread_id)
    thread = s.registry.get(thread_id)
    if thread is not None:
        turns = await s.registry.snapshot_turns(thread) if p.include_turns else None
        return {"thread": thread.thread_object(turns)}
    record = await s.stored(thread_id)
    stored = await s.store.get_turns(thread_id) if p.include_turns else []
    turns = [stored_turn(turn) for turn in stored]
    return {"thread": objects.thread_object(record, dict(objects.NOT_LOADED), turns=turns)}


async def thread_list(s: Services, ctx: RequestContext, p: t.ThreadListParams) -> dict[str, Any]:
    if p.originators:  # as the local Codex app-server answers
        message = "originator filtering is not supported by the local app-server"
        raise InvalidParams(message, errors=[{"path": "originators", "message": message}])
    if p.sort_key == "section_position" and p.section_id is None:
        raise errors.InvalidRequest("section-position sorting requires a section filter")
    included, excluded = p.thread_ids("included"), p.thread_ids("excluded")
    if p.lists_nothing():
        included = ()  # still validates the cursor
    cwd = p.cwd if p.cwd is None or isinstance(p.cwd, str) else tuple(p.cwd)
    query = ListQuery(
        limit=max(1, min(100, 25 if p.limit is None else p.limit)),
        cursor=p.cursor,
        # section_position only comes with a section filter, which lists nothing
        sort_key="created_at" if p.sort_key == "section_position" else p.sort_key,
        direction=p.sort_direction,
        archived=p.archived,
        cwd=cwd,
        search_term=p.search_term,
        model_providers=tuple(p.model_providers),
        included_ids=included,
        excluded_ids=excluded or (),
    )
    try:
        page = await s.store.list_page(query)
    except InvalidCursor:
        raise errors.invalid_cursor(p.cursor or "") from None
    return {
        "data": [objects.thread_object(r, s.status_of(r.id)) for r in page.threads],
        "nextCursor": page.next_cursor,
        "backwardsCursor": page.backwards_cursor,
    }


def thread_loaded_list(
    s: Services, ctx: RequestContext, p: t.ThreadLoadedListParams
) -> dict[str, Any]:
    ids = s.registry.loaded_ids()
    if p.cursor is not None:
        ids = [i for i in ids if i > p.cursor]
    if p.limit is not None:
        if p.limit < 1:
            raise InvalidParams.field("limit", "must be at least 1")
        page = ids[: p.limit]
        next_cursor = page[-1] if len(ids) > len(page) else None
    else:
        page, next_cursor = ids, None
    return {"data": page, "nextCursor": next_cursor}


async def thread_archive(s: Services, ctx: RequestContext, p: t.ThreadIdParams) -> None:
    thread_id = thread_id_of(p.thread_id)
    async with s.registry.archiving(thread_id):
        thread = s.registry.get(thread_id)
        store = s.store
        if thread is not None:
            store = thread.store
            await s.registry.close(thread, archive=True)
        else:
            await s.stored(thread_id)
        await store.update_thread(thread_id, archived=True, updated_at=objects.now())
    ctx.respond({})
    s.broadcast("thread/archived", {"threadId": thread_id})


async def thread_unarchive(s: Services, ctx: RequestContext, p: t.ThreadIdParams) -> None:
    thread_id = thread_id_of(p.thread_id)
    thread = s.registry.get(thread_id)
    if thread is not None:  # loaded threads are never archived
        ctx.respond({"thread": thread.thread_object()})
        return
    record = await s.stored(thread_id)
    if record.archived:
        record.archived = False
        record.updated_at = objects.now()
        await s.store.update_thread(thread_id, archived=False, updated_at=record.updated_at)
    ctx.respond({"thread": objects.thread_object(record, dict(objects.NOT_LOADED))})
    s.broadcast("thread/unarchived", {"threadId": thread_id})


async def thread_unsubscribe(
    s: Services, ctx: RequestContext, p: t.ThreadIdParams
) -> dict[str, str]:
    thread_id = thread_id_of(p.thread_id)
    return {"status": s.registry.unsubscribe(ctx.connection, thread_id)}


async def thread_name_set(s: Services, ctx: RequestContext, p: t.ThreadSetNameParams) -> None:
    thread_id = thread_id_of(p.thread_id)
    name = p.name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidParams.field("name", "must be 1 to 200 characters after trimming")
    ts = objects.now()
    thread = s.registry.get(thread_id)
    if thread is not None:
        await thread.store.update_thread(thread_id, name=name, updated_at=ts)
        thread.record.name, thread.record.updated_at = name, ts
    else:
        await s.stored(thread_id)
        await s.store.update_thread(thread_id, name=name, updated_at=ts)
    ctx.respond({})
    s.broadcast("thread/name/updated", {"threadId": thread_id, "threadName": name})


METHODS: dict[str, Handler] = {
    "thread/start": thread_start,
    "thread/resume": thread_resume,
    "thread/read": thread_read,
    "thread/list": thread_list,
    "thread/archive": thread_archive,
    "thread/unarchive": thread_unarchive,
    "thread/unsubscribe": thread_unsubscribe,
    "thread/name/set": thread_name_set,
}
IMMEDIATE: dict[str, Immediate] = {"thread/loaded/list": thread_loaded_list}
