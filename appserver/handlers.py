"""One function per method (PROTOCOL.md §5): validates what the types cannot, then calls
threads/ and store/. `Handlers` is the connection's RequestHandler."""

from __future__ import annotations

import logging
import os
import platform
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from appserver._version import __version__
from appserver.agents import Backends, get_backend
from appserver.connection import Connection, RequestContext
from appserver.jsonrpc import ErrorResponse, Response
from appserver.protocol import errors
from appserver.protocol import types as t
from appserver.protocol.converter import unstructure
from appserver.protocol.errors import InvalidParams
from appserver.store.base import InvalidCursor, ListQuery, ThreadRecord, ThreadStore
from appserver.threads import objects
from appserver.threads.loaded import Broadcast, LoadedThread
from appserver.threads.registry import Registry, stored_turn

log = logging.getLogger("appserver.handlers")

MAX_INPUT_CHARS = 1_048_576

Handler = Callable[[RequestContext, Any], Awaitable[Any]]


# --- validation helpers ----------------------------------------------------------------


def _validate_client_name(name: str) -> None:
    if not 1 <= len(name) <= 128 or not name.isprintable():
        raise InvalidParams.field("clientInfo.name", "must be 1 to 128 printable characters")


def thread_id_of(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise errors.invalid_thread_id(value) from None
    return value


def _absolute(path: str, field: str) -> str:
    if not os.path.isabs(path):
        raise InvalidParams.field(field, f"must be an absolute path, got {path!r}")
    return os.path.normpath(path)


async def checked_cwd(path: str, field: str) -> str:
    path = _absolute(path, field)
    if not await trio.Path(path).is_dir():
        raise InvalidParams.field(field, f"directory does not exist: {path}")
    return path


def checked_provider(provider: str, field: str = "modelProvider") -> str:
    if get_backend(provider) is None:
        raise InvalidParams.field(field, f"unknown model provider {provider!r}")
    return provider


async def settings_of(p: t.ThreadSettingsParams) -> dict[str, Any]:
    """The settings a thread/start or thread/resume gives, validated (absent = None)."""
    settings: dict[str, Any] = {
        "approvalPolicy": p.approval_policy,
        "sandbox": p.sandbox,
        "baseInstructions": p.base_instructions,
        "developerInstructions": p.developer_instructions,
        "config": p.config,
        "model": p.model,
    }
    if p.cwd is not None:
        settings["cwd"] = await checked_cwd(p.cwd, "cwd")
    if p.model_provider is not None:
        settings["modelProvider"] = checked_provider(p.model_provider)
    return {k: v for k, v in settings.items() if v is not None}


def session_result(thread: LoadedThread, turns: list[dict[str, Any]]) -> dict[str, Any]:
    """The result of thread/start and thread/resume (§5.1): while a turn runs, its
    settings; otherwise the thread's."""
    record, turn = thread.record, thread.turn
    if turn is not None:
        cwd, policy, sandbox, model = turn.cwd, turn.approval_policy, turn.sandbox, turn.model
    else:
        cwd = objects.effective(record, "cwd")
        policy = objects.effective(record, "approvalPolicy") or "on-request"
        sandbox = objects.effective(record, "sandbox") or "workspace-write"
        model = objects.effective(record, "model")
    return {
        "thread": thread.thread_object(turns),
        "model": model,
        "modelProvider": record.model_provider,
        "serviceTier": None,
        "cwd": cwd,
        "approvalPolicy": policy,
        "approvalsReviewer": "user",
        "sandbox": objects.sandbox_policy(sandbox, cwd),
        "reasoningEffort": None,
    }


def _input_chars(user_input: list[dict[str, Any]]) -> int:
    return sum(len(i.get("text", "")) for i in user_input if i.get("type") == "text")


@attrs.define(eq=False)
class Handlers:
    codex_home: str
    store: ThreadStore
    registry: Registry
    broadcast: Broadcast
    default_cwd: str = attrs.Factory(os.getcwd)
    backends: Backends = attrs.Factory(Backends)
    methods: dict[str, Handler] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.methods = {
            "thread/start": self.thread_start,
            "thread/resume": self.thread_resume,
            "thread/read": self.thread_read,
            "thread/list": self.thread_list,
            "thread/loaded/list": self.thread_loaded_list,
            "thread/archive": self.thread_archive,
            "thread/unarchive": self.thread_unarchive,
            "thread/unsubscribe": self.thread_unsubscribe,
            "thread/name/set": self.thread_name_set,
            "turn/start": self.turn_start,
            "turn/interrupt": self.turn_interrupt,
        }

    # --- RequestHandler -----------------------------------------------------------------

    def initialize(self, conn: Connection, params: t.InitializeParams) -> t.InitializeResult:
        info = params.client_info
        _validate_client_name(info.name)
        return t.InitializeResult(
            user_agent=f"appserver/{__version__} ({info.name}/{info.version})",
            codex_home=self.codex_home,
            platform_family="windows" if sys.platform == "win32" else "unix",
            platform_os=platform.system().lower() or sys.platform,
        )

    async def handle(self, ctx: RequestContext, method: str, params: Any) -> Any:
        handler = self.methods.get(method)
        if handler is None:
            raise errors.MethodNotFound(f"Method not found: {method}")
        return await handler(ctx, params)

    def on_client_response(self, conn: Connection, message: Response | ErrorResponse) -> None:
        self.registry.on_client_response(conn, message)

    def on_disconnect(self, conn: Connection) -> None:
        self.registry.on_disconnect(conn)

    # --- lookups ------------------------------------------------------------------------

    async def _stored(self, thread_id: str) -> ThreadRecord:
        record = await self.store.get_thread(thread_id)
        if record is None:
            raise errors.thread_not_found(thread_id)
        return record

    def _status_of(self, thread_id: str) -> dict[str, Any]:
        thread = self.registry.get(thread_id)
        return thread.status() if thread is not None else dict(objects.NOT_LOADED)

    # --- threads (§5.1 - §5.8) ----------------------------------------------------------

    async def thread_start(self, ctx: RequestContext, p: t.ThreadStartParams) -> None:
        settings = await settings_of(p)
        ts = objects.now()
        provider = settings.pop("modelProvider", self.backends.default_provider)
        record = ThreadRecord(
            id=objects.uuid7(),
            model_provider=provider,
            model=settings.pop("model", None) or self.backends.default_model(provider),
            cwd=settings.pop("cwd", self.default_cwd),
            created_at=ts,
            updated_at=ts,
            settings={
                "approvalPolicy": "on-request",
                "sandbox": "workspace-write",
                "approvalsReviewer": "user",
                **settings,
            },
        )
        thread = await self.registry.create(ctx.connection, record, ephemeral=p.ephemeral)
        ctx.respond(session_result(thread, []))
        self.broadcast("thread/started", {"thread": thread.thread_object()})

    async def thread_resume(self, ctx: RequestContext, p: t.ThreadResumeParams) -> None:
        thread_id = thread_id_of(p.thread_id)
        settings = await settings_of(p)
        thread, _ = await self.registry.load(thread_id)
        # Later turns use them; a running turn keeps its own (§5.2).
        update = objects.apply_settings(thread.record, settings)
        if update:
            await thread.store.update_thread(thread_id, **update)
        turns = await self.registry.snapshot_turns(thread)
        if thread.closing or self.registry.get(thread_id) is not thread:
            raise errors.thread_closing(thread_id)
        result = session_result(thread, turns)
        self.registry.rejoin(thread, ctx.connection, lambda: ctx.respond(result))

    async def thread_read(self, ctx: RequestContext, p: t.ThreadReadParams) -> dict[str, Any]:
        thread_id = thread_id_of(p.thread_id)
        thread = self.registry.get(thread_id)
        if thread is not None:
            turns = await self.registry.snapshot_turns(thread) if p.include_turns else None
            return {"thread": thread.thread_object(turns)}
        record = await self._stored(thread_id)
        stored = await self.store.get_turns(thread_id) if p.include_turns else []
        turns = [stored_turn(turn) for turn in stored]
        return {"thread": objects.thread_object(record, dict(objects.NOT_LOADED), turns=turns)}

    async def thread_list(self, ctx: RequestContext, p: t.ThreadListParams) -> dict[str, Any]:
        query = ListQuery(
            limit=max(1, min(100, 25 if p.limit is None else p.limit)),
            cursor=p.cursor,
            sort_key=p.sort_key,
            archived=p.archived,
            cwd=p.cwd,
            search_term=p.search_term,
            model_providers=tuple(p.model_providers),
        )
        try:
            records, next_cursor = await self.store.list_threads(query)
        except InvalidCursor:
            raise errors.invalid_cursor(p.cursor or "") from None
        data = [objects.thread_object(r, self._status_of(r.id)) for r in records]
        return {"data": data, "nextCursor": next_cursor}

    async def thread_loaded_list(
        self, ctx: RequestContext, p: t.ThreadLoadedListParams
    ) -> dict[str, Any]:
        ids = self.registry.loaded_ids()
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

    async def thread_archive(self, ctx: RequestContext, p: t.ThreadIdParams) -> None:
        thread_id = thread_id_of(p.thread_id)
        async with self.registry.archiving(thread_id):
            thread = self.registry.get(thread_id)
            store = self.store
            if thread is not None:
                store = thread.store
                await self.registry.close(thread, archive=True)
            else:
                await self._stored(thread_id)
            await store.update_thread(thread_id, archived=True, updated_at=objects.now())
        ctx.respond({})
        self.broadcast("thread/archived", {"threadId": thread_id})

    async def thread_unarchive(self, ctx: RequestContext, p: t.ThreadIdParams) -> None:
        thread_id = thread_id_of(p.thread_id)
        thread = self.registry.get(thread_id)
        if thread is not None:  # loaded threads are never archived
            ctx.respond({"thread": thread.thread_object()})
            return
        record = await self._stored(thread_id)
        if record.archived:
            record.archived = False
            record.updated_at = objects.now()
            await self.store.update_thread(thread_id, archived=False, updated_at=record.updated_at)
        ctx.respond({"thread": objects.thread_object(record, dict(objects.NOT_LOADED))})
        self.broadcast("thread/unarchived", {"threadId": thread_id})

    async def thread_unsubscribe(self, ctx: RequestContext, p: t.ThreadIdParams) -> dict[str, str]:
        thread_id = thread_id_of(p.thread_id)
        return {"status": self.registry.unsubscribe(ctx.connection, thread_id)}

    async def thread_name_set(self, ctx: RequestContext, p: t.ThreadSetNameParams) -> None:
        thread_id = thread_id_of(p.thread_id)
        name = p.name.strip()
        if not 1 <= len(name) <= 200:
            raise InvalidParams.field("name", "must be 1 to 200 characters after trimming")
        ts = objects.now()
        thread = self.registry.get(thread_id)
        if thread is not None:
            await thread.store.update_thread(thread_id, name=name, updated_at=ts)
            thread.record.name, thread.record.updated_at = name, ts
        else:
            await self._stored(thread_id)
            await self.store.update_thread(thread_id, name=name, updated_at=ts)
        ctx.respond({})
        self.broadcast("thread/name/updated", {"threadId": thread_id, "threadName": name})

    # --- turns (§5.9, §5.10) ------------------------------------------------------------

    async def _loaded_for_turn(self, thread_id: str) -> LoadedThread:
        thread = self.registry.get(thread_id)
        if thread is not None:
            return thread
        record = await self._stored(thread_id)
        if record.archived:
            raise errors.thread_archived(thread_id)
        if self.registry.is_closing(thread_id):
            raise errors.thread_closing(thread_id)
        raise errors.thread_not_loaded(thread_id)

    async def turn_start(self, ctx: RequestContext, p: t.TurnStartParams) -> dict[str, Any]:
        thread_id = thread_id_of(p.thread_id)
        thread = await self._loaded_for_turn(thread_id)
        if not p.input:
            raise InvalidParams.field("input", "must not be empty")
        user_input: list[dict[str, Any]] = unstructure(p.input)
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
            settings["approvalPolicy"] = p.approval_policy
        if p.sandbox_policy is not None:
            settings["sandbox"] = objects.sandbox_mode(p.sandbox_policy.type)
        if p.model is not None:
            settings["model"] = p.model
        turn = await self.registry.start_turn(thread, user_input, settings)
        return {"turn": objects.turn_object(turn.id, "inProgress")}

    async def turn_interrupt(self, ctx: RequestContext, p: t.TurnInterruptParams) -> dict[str, Any]:
        thread_id = thread_id_of(p.thread_id)
        thread = self.registry.get(thread_id)
        if thread is None:
            await self._stored(thread_id)
            raise errors.turn_not_active(p.turn_id)
        await self.registry.interrupt(thread, p.turn_id)
        return {}
