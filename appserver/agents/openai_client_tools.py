"""Dynamic tools (issue 15): the tools a client declared at thread/start (`dynamicTools`)
offered to the model as functions beside `shell`.

The context lists them (`ctx.dynamic_tools`, agents.base.TalkingBack) and runs a call
through `ctx.call_client_tool`, which starts the `dynamicToolCall` item, sends
`item/tool/call` to the thread's clients and completes the item with the answer; the
answer's text (`contentItems` of type `inputText`, joined) goes back to the model. A
context without them (a test's recording context, or before a client declared any) offers
only `shell`.

A tool inside a namespace (`{"type": "namespace", "name": NS, "tools": [...]}`) is offered
as the function `NS__NAME` (chat completions has no namespaces); a client tool named like
the builtin `shell` is not offered (the builtin wins).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .base import TurnContext
from .openai_messages import answer_text
from .openai_stream import ToolCall

NAMESPACE_SEPARATOR = "__"
RESERVED = frozenset({"shell"})


@dataclass(frozen=True)
class ClientTool:
    function: str  # the name the model calls it by
    tool: str
    namespace: str | None
    description: str
    parameters: Any

    def chat_tool(self) -> dict[str, Any]:
        parameters = self.parameters if isinstance(self.parameters, dict) else {}
        return {
            "type": "function",
            "function": {
                "name": self.function,
                "description": self.description,
                "parameters": {"type": "object", "properties": {}, **parameters},
            },
        }


def function_name(tool: str, namespace: str | None) -> str:
    return tool if namespace is None else f"{namespace}{NAMESPACE_SEPARATOR}{tool}"


def _specs(specs: Any, namespace: str | None) -> Iterator[ClientTool]:
    for spec in specs if isinstance(specs, list) else []:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            continue
        description = spec.get("description")
        description = description if isinstance(description, str) else ""
        if spec.get("type") == "namespace":
            if namespace is None:
                yield from _specs(spec.get("tools"), spec["name"])
            continue
        name = spec["name"]
        yield ClientTool(
            function_name(name, namespace), name, namespace, description, spec.get("inputSchema")
        )


def client_tools(ctx: TurnContext) -> dict[str, ClientTool]:
    """The client's tools by function name (none when the context cannot call them)."""
    if getattr(ctx, "call_client_tool", None) is None:
        return {}
    tools: dict[str, ClientTool] = {}
    for tool in _specs(getattr(ctx, "dynamic_tools", None), None):
        if tool.function not in RESERVED and tool.function not in tools:
            tools[tool.function] = tool
    return tools


async def run_client_tool(ctx: TurnContext, tool: ClientTool, call: ToolCall) -> str:
    """Run one call of a client tool; returns what the model is told."""
    try:
        arguments = json.loads("".join(call.arguments) or "{}")
    except ValueError:
        return "Error: the tool arguments are not valid JSON."
    run = getattr(ctx, "call_client_tool", None)
    if run is None:  # client_tools offers none then
        return f"Error: the tool {call.name!r} is not available."
    answer: dict[str, Any] | None = await run(tool.tool, arguments, namespace=tool.namespace)
    if answer is None:
        return "Error: the client did not run the tool (its answer was an error, or none came)."
    return answer_text(answer)
