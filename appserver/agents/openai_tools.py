"""The model's tools: the builtin `shell` (`{command, workdir?}`): its schema, and running a
call as a `commandExecution` item through the builtin agent's `run_command` (same approvals,
policies, replay and interrupt); and the client's dynamic tools (openai_client_tools)."""

from __future__ import annotations

import json
import shlex
from typing import Any

import trio

from .base import ApprovalDecision, ApprovalKind, TurnContext
from .openai_client_tools import ClientTool, client_tools, run_client_tool
from .openai_messages import describe
from .openai_stream import ToolCall
from .shell import refusal, run_command

SHELL_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "shell",
        "description": (
            "Run a shell command with /bin/sh -c and return its exit code and combined "
            "stdout/stderr. The user may have to approve each command first."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command to run."},
                "workdir": {
                    "type": "string",
                    "description": "Directory to run in (default: the working directory).",
                },
            },
            "required": ["command"],
        },
    },
}


class _CommandContext:
    """The turn's context as `run_command` sees it for one tool call: `cwd` is the call's
    workdir, and the finished commandExecution item is kept for the tool result."""

    def __init__(self, ctx: TurnContext, cwd: str) -> None:
        self._ctx = ctx
        self._cwd = cwd
        self.item: dict[str, Any] | None = None

    @property
    def thread_id(self) -> str:
        return self._ctx.thread_id

    @property
    def turn_id(self) -> str:
        return self._ctx.turn_id

    @property
    def cwd(self) -> str:
        return self._cwd

    @property
    def approval_policy(self) -> str:
        return self._ctx.approval_policy

    @property
    def sandbox(self) -> str:
        return self._ctx.sandbox

    @property
    def base_instructions(self) -> str | None:
        return self._ctx.base_instructions

    @property
    def developer_instructions(self) -> str | None:
        return self._ctx.developer_instructions

    @property
    def model(self) -> str:
        return self._ctx.model

    @property
    def session_approvals(self) -> set[str]:
        return self._ctx.session_approvals

    def new_item_id(self) -> str:
        return self._ctx.new_item_id()

    async def item_started(self, item: dict[str, Any]) -> None:
        await self._ctx.item_started(item)

    async def item_completed(self, item: dict[str, Any]) -> None:
        self.item = item
        await self._ctx.item_completed(item)

    async def agent_message_delta(self, item_id: str, delta: str) -> None:
        await self._ctx.agent_message_delta(item_id, delta)

    async def reasoning_summary_delta(
        self, item_id: str, delta: str, summary_index: int = 0
    ) -> None:
        await self._ctx.reasoning_summary_delta(item_id, delta, summary_index)

    async def command_output_delta(self, item_id: str, delta: str) -> None:
        await self._ctx.command_output_delta(item_id, delta)

    async def file_change_output_delta(self, item_id: str, delta: str) -> None:
        await self._ctx.file_change_output_delta(item_id, delta)

    async def request_approval(
        self, kind: ApprovalKind, params: dict[str, Any]
    ) -> ApprovalDecision:
        return await self._ctx.request_approval(kind, params)

    async def history(self) -> list[dict[str, Any]]:
        return await self._ctx.history()

    async def retrying(self, message: str) -> None:
        await self._ctx.retrying(message)


def tools_of(ctx: TurnContext) -> list[dict[str, Any]]:
    """The tools offered to the model: `shell`, then the client's (chat form)."""
    return [SHELL_TOOL, *(tool.chat_tool() for tool in client_tools(ctx).values())]


async def run_tool(
    ctx: TurnContext, call: ToolCall, clients: dict[str, ClientTool] | None = None
) -> str:
    """Run one tool call; returns what the model is told. Problems with the call itself are
    reported to the model, not raised. `clients`: the client tools offered (by default
    the context's)."""
    if call.name != "shell":
        offered = client_tools(ctx) if clients is None else clients
        client = offered.get(call.name)
        if client is not None:
            return await run_client_tool(ctx, client, call)
        names = ", ".join(f"`{name}`" for name in ["shell", *offered])
        return f"Error: unknown tool {call.name!r}; the tools are {names}."
    try:
        arguments = json.loads("".join(call.arguments) or "{}")
    except ValueError:
        return "Error: the tool arguments are not valid JSON."
    if not isinstance(arguments, dict):
        return "Error: the tool arguments must be a JSON object."
    command = arguments.get("command")
    if isinstance(command, list) and command and all(isinstance(a, str) for a in command):
        command = shlex.join(command)  # an argv, as Codex's own `shell` tool takes it
    if not isinstance(command, str) or not command.strip():
        return "Error: `command` must be a non-empty string."
    problem = refusal(command)
    if problem is not None:  # e.g. a NUL: the model is told, the turn goes on
        return f"Error: {problem.removeprefix('/run: ')}"
    workdir = arguments.get("workdir")
    cwd = ctx.cwd
    if workdir is not None:
        if not isinstance(workdir, str):
            return "Error: `workdir` must be a string."
        path = trio.Path(ctx.cwd, workdir)
        cwd = str(await path.resolve())
        if not await path.is_dir():
            return f"Error: `workdir` is not a directory: {cwd}"
    capture = _CommandContext(ctx, cwd)
    await run_command(capture, command)
    assert capture.item is not None
    return describe(capture.item)
