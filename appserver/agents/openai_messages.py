"""The conversation as chat messages: the system prompt, user input, and earlier turns'
items (history) converted for an OpenAI-compatible `/chat/completions` request."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .base import TurnContext

# Tool output beyond this many characters is cut in the middle before it goes to the model.
MAX_TOOL_OUTPUT_CHARS = 32_000


def system_message(ctx: TurnContext) -> dict[str, Any]:
    return {
        "role": "system",
        "content": (
            "You are a coding agent working in the directory "
            f"{ctx.cwd}. Use the `shell` tool to inspect files and run commands; each "
            "command may need the user's approval. Answer concisely."
        ),
    }


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
    as an assistant tool call followed by its result. Reasoning is not sent back. A
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
        previous = messages[-1] if messages else None
        if (
            previous is not None
            and previous["role"] == "assistant"
            and "tool_calls" not in previous
        ):
            messages.pop()  # the text the model said before calling the tool
            content = previous["content"]
        else:
            content = ""
        messages.append(tool_call_message(item["id"], arguments, content))
        messages.append({"role": "tool", "tool_call_id": item["id"], "content": describe(item)})


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


def truncate(text: str, limit: int = MAX_TOOL_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut ...]\n{text[-half:]}"
