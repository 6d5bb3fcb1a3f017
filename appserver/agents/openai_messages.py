"""The conversation as chat messages: the instructions, user input, and earlier turns'
items (history) converted for an OpenAI-compatible `/chat/completions` request (the
Responses API converts these messages in turn: openai_responses.input_items)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .base import TurnContext

# Tool output beyond this many characters is cut in the middle before it goes to the model.
MAX_TOOL_OUTPUT_CHARS = 32_000


DEFAULT_INSTRUCTIONS = (
    "You are a coding agent working in the directory {cwd}. Use the `shell` tool to "
    "inspect files and run commands; each command may need the user's approval. Answer "
    "concisely."
)


def instructions(ctx: TurnContext) -> tuple[str, str | None]:
    """The thread's instructions: its `baseInstructions` (which replace the backend's
    default prompt, as in Codex) and its `developerInstructions` (added after them).
    The context offers them as `base_instructions` / `developer_instructions` when it
    has them (a context without them gets the default prompt)."""
    base = getattr(ctx, "base_instructions", None)
    developer = getattr(ctx, "developer_instructions", None)
    if not isinstance(base, str) or not base.strip():
        base = DEFAULT_INSTRUCTIONS.format(cwd=ctx.cwd)
    if not isinstance(developer, str) or not developer.strip():
        developer = None
    return base, developer


def system_messages(ctx: TurnContext, *, separate: bool = False) -> list[dict[str, Any]]:
    """The instructions as the conversation's first messages. Chat completions get one
    system message (chat templates that take a single system message accept it), the
    developer instructions after the base ones; `separate` (the Responses API) gives
    two, as Codex sends its two `developer` messages."""
    base, developer = instructions(ctx)
    if developer is None:
        return [{"role": "system", "content": base}]
    if separate:
        return [{"role": "system", "content": base}, {"role": "system", "content": developer}]
    return [{"role": "system", "content": f"{base}\n\n{developer}"}]


def system_message(ctx: TurnContext) -> dict[str, Any]:
    """The instructions as one system message (see system_messages)."""
    (message,) = system_messages(ctx)
    return message


def user_content(content: Sequence[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A userMessage's input as chat content: plain text, or parts when it has images."""
    texts = [
        i["text"] for i in content if i.get("type") == "text" and isinstance(i.get("text"), str)
    ]
    images = [
        i["url"] for i in content if i.get("type") == "image" and isinstance(i.get("url"), str)
    ]
    text = "\n".join(texts)
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return parts


def tool_call_message(call_id: str, arguments: dict[str, Any], content: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "shell", "arguments": json.dumps(arguments)},
            }
        ],
    }


SUMMARY_PREFIX = (
    "Summary of the conversation so far (the earlier messages were compacted into it):\n\n"
)


def summary_message(summary: str) -> dict[str, Any]:
    """What stands for the turns a compaction replaced (a user message: chat templates
    that take one system message, first, still accept it)."""
    return {"role": "user", "content": SUMMARY_PREFIX + summary}


def compaction_summary(entry: dict[str, Any]) -> str | None:
    """The summary of a history entry or item `{"type": "contextCompaction", "summary":
    TEXT}` (agents.base.Compacting); None for anything else, the wire item (no summary)
    included."""
    summary = entry.get("summary")
    if entry.get("type") == "contextCompaction" and isinstance(summary, str):
        return summary
    return None


def history_messages(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier turns' items as chat messages: user and agent messages, and each command
    or client tool call (`dynamicToolCall`) as an assistant tool call followed by its
    result. Reasoning is not sent back. A
    compaction summary, whether a history entry of its own or an item of a turn, replaces
    everything before it."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        summary = compaction_summary(turn)
        if summary is not None:
            messages = [summary_message(summary)]
            continue
        for item in turn.get("items", []):
            summary = compaction_summary(item)
            if summary is not None:
                messages = [summary_message(summary)]
            else:
                _add_item(messages, item)
    return messages


CHAT_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def injected_message(raw: Any) -> dict[str, Any] | None:
    """A thread/inject_items Responses API item as a chat message: a `message` item's
    text parts joined (`input_text`, `output_text`, `text`); other item kinds (function
    calls, reasoning, ...) have no chat form here and are left out."""
    if not isinstance(raw, dict) or raw.get("type", "message") != "message":
        return None
    role = CHAT_ROLES.get(raw.get("role", ""))
    content = raw.get("content")
    if role is None:
        return None
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        content = "\n".join(t for t in parts if isinstance(t, str))
    if not isinstance(content, str):
        return None
    return {"role": role, "content": content}


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    kind = item.get("type")
    if kind == "responseItem":
        message = injected_message(item.get("item"))
        if message is not None:
            messages.append(message)
    elif kind == "userMessage":
        messages.append({"role": "user", "content": user_content(item["content"])})
    elif kind == "agentMessage":
        messages.append({"role": "assistant", "content": item.get("text") or ""})
    elif kind == "commandExecution":
        arguments = {"command": item.get("command", ""), "workdir": item.get("cwd")}
        _add_call(messages, item["id"], "shell", json.dumps(arguments), describe(item))
    elif kind == "dynamicToolCall":
        namespace = item.get("namespace")
        name = item.get("tool", "")
        if isinstance(namespace, str):
            name = f"{namespace}__{name}"  # openai_client_tools.function_name
        if item.get("contentItems") is None and item.get("success") is None:
            result = "Error: the client did not run the tool."
        else:
            result = answer_text(item)
        _add_call(messages, item["id"], name, json.dumps(item.get("arguments")), result)


def _add_call(
    messages: list[dict[str, Any]], call_id: str, name: str, arguments: str, result: str
) -> None:
    """A stored tool call and its result; the text the model said just before it is the
    call message's content."""
    previous = messages[-1] if messages else None
    if previous is not None and previous["role"] == "assistant" and "tool_calls" not in previous:
        messages.pop()
        content = previous["content"]
    else:
        content = ""
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    messages.append({"role": "assistant", "content": content, "tool_calls": [call]})
    messages.append({"role": "tool", "tool_call_id": call_id, "content": result})


def describe(item: dict[str, Any]) -> str:
    """What the model is told about a finished commandExecution item."""
    status, output, code = item.get("status"), item.get("aggregatedOutput"), item.get("exitCode")
    lines: list[str] = []
    if status == "declined":
        lines.append(
            "The user declined to run this command."
            if output is None
            else "The user declined to run the rest of this command."
        )
    elif output is None:
        lines.append("The command was not run: the approval request failed.")
    if code is not None:
        lines.append(f"Exit code: {code}")
    if output:
        lines.append("Output:\n" + truncate(output))
    elif output == "":
        lines.append("(no output)")
    return "\n".join(lines)


def answer_text(answer: dict[str, Any]) -> str:
    """What the model is told of a client tool's answer (or of a stored item's)."""
    parts: list[str] = []
    for content in answer.get("contentItems") or []:
        if not isinstance(content, dict):
            continue
        if content.get("type") == "inputText" and isinstance(content.get("text"), str):
            parts.append(content["text"])
        elif content.get("type") == "inputImage":
            parts.append("[image]")
    text = truncate("\n".join(parts)) if parts else "(no output)"
    if answer.get("success") is False:
        return f"The tool reported a failure.\n{text}"
    return text


def truncate(text: str, limit: int = MAX_TOOL_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut ...]\n{text[-half:]}"
