"""What a turn's context adds beyond approvals (agents.base.TalkingBack, issue 15): user
input, dynamic tool calls and permission requests, routed and settled as approvals are
(threads/requests.py, PROTOCOL.md §7.2, §7.4), and the plan, token usage and diff
notifications of the turn.

`TalkBack` is a mixin of threads/turn.py's TurnRunner: it uses the runner's thread, turn,
server requests and item methods.
"""

from __future__ import annotations

from typing import Any

from appserver.threads import objects
from appserver.threads.loaded import USER_INPUT_METHOD, ActiveTurn, LoadedThread
from appserver.threads.requests import Answer, ServerRequests

TOOL_CALL_METHOD = "item/tool/call"
PERMISSIONS_METHOD = "item/permissions/requestApproval"
CONTENT_TYPES = {"inputText": "text", "inputImage": "imageUrl", "inputAudio": "audioUrl"}
USAGE_KEYS = (
    "inputTokens",
    "cachedInputTokens",
    "cacheWriteInputTokens",
    "outputTokens",
    "reasoningOutputTokens",
)


def wire_question(question: dict[str, Any]) -> dict[str, Any]:
    """A ToolRequestUserInputQuestion with every member the wire carries."""
    options = question.get("options")
    return {
        "id": question["id"],
        "header": question.get("header", ""),
        "question": question["question"],
        "isOther": bool(question.get("isOther", False)),
        "isSecret": bool(question.get("isSecret", False)),
        "options": None
        if options is None
        else [{"label": o["label"], "description": o.get("description", "")} for o in options],
    }


def user_answers(answer: Answer) -> dict[str, Any] | None:
    """The `answers` of a ToolRequestUserInputResponse, or None when there is none (an
    error answer, a settlement, or a result of another shape)."""
    result = answer.result
    if answer.error or not isinstance(result, dict) or not isinstance(result.get("answers"), dict):
        return None
    out: dict[str, Any] = {}
    for question, value in result["answers"].items():
        texts = value.get("answers") if isinstance(value, dict) else None
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return None
        out[question] = {"answers": list(texts)}
    return out


def tool_result(answer: Answer) -> dict[str, Any] | None:
    """A DynamicToolCallResponse (`contentItems`, `success`), or None when there is none
    (an error answer, a settlement, or a result of another shape)."""
    result = answer.result
    if answer.error or not isinstance(result, dict):
        return None
    items, success = result.get("contentItems"), result.get("success")
    if not isinstance(items, list) or type(success) is not bool:
        return None
    content: list[dict[str, Any]] = []
    for entry in items:
        kind = entry.get("type") if isinstance(entry, dict) else None
        field = CONTENT_TYPES.get(kind) if isinstance(kind, str) else None
        if field is None or not isinstance(entry.get(field), str):
            return None
        content.append({"type": kind, field: entry[field]})
    return {"contentItems": content, "success": success}


def usage_breakdown(usage: dict[str, Any]) -> dict[str, int]:
    """A TokenUsageBreakdown from an agent's counts (missing counts are 0; totalTokens
    defaults to input + output)."""
    out = {key: _count(usage.get(key)) for key in USAGE_KEYS}
    total = usage.get("totalTokens")
    out["totalTokens"] = (
        _count(total) if total is not None else out["inputTokens"] + out["outputTokens"]
    )
    return out


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def add_usage(total: dict[str, int] | None, last: dict[str, int]) -> dict[str, int]:
    if total is None:
        return dict(last)
    return {key: total.get(key, 0) + value for key, value in last.items()}


class TalkBack:
    """agents.base.TalkingBack for one turn (mixed into TurnRunner)."""

    _thread: LoadedThread
    _turn: ActiveTurn
    _requests: ServerRequests

    def new_item_id(self) -> str:
        return objects.uuid7()

    async def item_started(self, item: dict[str, Any]) -> None:
        raise NotImplementedError  # TurnRunner's

    async def item_completed(self, item: dict[str, Any]) -> None:
        raise NotImplementedError  # TurnRunner's

    async def _publish(self, method: str, **params: Any) -> None:
        thread = self._thread
        thread.publish(method, {"threadId": thread.id, "turnId": self._turn.id, **params})
        await thread.after_publish()

    @property
    def dynamic_tools(self) -> list[dict[str, Any]]:
        tools = self._thread.record.settings.get("dynamicTools")
        return list(tools) if isinstance(tools, list) else []

    async def request_user_input(
        self, item_id: str, questions: list[dict[str, Any]], *, is_blocking: bool = True
    ) -> dict[str, Any] | None:
        params = {
            "itemId": item_id,
            "questions": [wire_question(q) for q in questions],
            "isBlocking": is_blocking,
            "autoResolutionMs": None,  # deprecated; null as the reference sends it
        }
        answer = await self._requests.request(
            self._thread, self._turn, USER_INPUT_METHOD, params, item_id
        )
        return user_answers(answer)

    async def call_client_tool(
        self, tool: str, arguments: Any, *, namespace: str | None = None
    ) -> dict[str, Any] | None:
        item_id = self.new_item_id()
        item: dict[str, Any] = {
            "id": item_id,
            "type": "dynamicToolCall",
            "tool": tool,
            "namespace": namespace,
            "arguments": arguments,
            "status": "inProgress",
            "contentItems": None,
            "success": None,
            "durationMs": None,
        }
        await self.item_started(item)
        started = objects.now_ms()
        params = {"callId": item_id, "namespace": namespace, "tool": tool, "arguments": arguments}
        answer = await self._requests.request(
            self._thread, self._turn, TOOL_CALL_METHOD, params, item_id
        )
        result = tool_result(answer)
        done = {**item, "durationMs": objects.now_ms() - started}
        if result is None:
            done.update(status="failed", success=False)
        else:
            done.update(
                status="completed" if result["success"] else "failed",
                contentItems=result["contentItems"],
                success=result["success"],
            )
        await self.item_completed(done)
        return result

    async def request_permissions(
        self, item_id: str, permissions: dict[str, Any], reason: str | None = None
    ) -> dict[str, Any] | None:
        params = {
            "itemId": item_id,
            "cwd": self._turn.cwd,
            "reason": reason,
            "permissions": permissions,
            "startedAtMs": objects.now_ms(),
        }
        answer = await self._requests.request(
            self._thread, self._turn, PERMISSIONS_METHOD, params, item_id
        )
        result = answer.result
        if answer.error or not isinstance(result, dict):
            return None
        granted = result.get("permissions")
        if not isinstance(granted, dict):
            return None
        scope = result.get("scope")
        return {"permissions": granted, "scope": scope if scope in ("turn", "session") else "turn"}

    async def plan_updated(
        self, plan: list[dict[str, Any]], explanation: str | None = None
    ) -> None:
        steps = [{"step": s["step"], "status": s["status"]} for s in plan]
        await self._publish("turn/plan/updated", explanation=explanation, plan=steps)

    async def token_usage(self, usage: dict[str, Any]) -> None:
        last = usage_breakdown(usage)
        thread = self._thread
        thread.token_total = add_usage(thread.token_total, last)
        window = usage.get("modelContextWindow")
        token_usage = {
            "total": dict(thread.token_total),
            "last": last,
            "modelContextWindow": window if type(window) is int else None,
        }
        await self._publish("thread/tokenUsage/updated", tokenUsage=token_usage)

    async def diff_updated(self, diff: str) -> None:
        await self._publish("turn/diff/updated", diff=diff)
