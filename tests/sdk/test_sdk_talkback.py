"""Server requests beyond approvals answered through the official SDK's
`CodexClient(approval_handler=...)` (its one handler for every server request):
`/ask` (item/tool/requestUserInput) and `/tool` (item/tool/call on a tool the thread
declared in `dynamicTools`; the SDK initializes with the experimental API on)."""

from __future__ import annotations

import threading

from openai_codex import Thread
from openai_codex.generated.v2_all import TurnStatus
from openai_codex.models import JsonObject

from .support import SdkEnv


class Answers:
    """A server-request handler: the user answers `blue`, the client tool returns text."""

    def __init__(self) -> None:
        self.methods: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, params: JsonObject | None) -> JsonObject:
        with self._lock:
            self.methods.append(method)
        if method == "item/tool/requestUserInput":
            return {"answers": {"q1": {"answers": ["blue"]}}}
        if method == "item/tool/call":
            assert params is not None and params["tool"] == "lookup"
            return {"contentItems": [{"type": "inputText", "text": "42"}], "success": True}
        return {"decision": "decline"}


def test_user_input_and_a_client_tool_through_the_sdk_handler(sdk: SdkEnv) -> None:
    handler = Answers()
    client = sdk.client(approval_handler=handler)
    tool: JsonObject = {
        "type": "function",
        "name": "lookup",
        "description": "looks a thing up",
        "inputSchema": {"type": "object", "properties": {}},
    }
    started = client.thread_start({"dynamicTools": [tool]})
    thread = Thread(client, started.thread.id)

    asked = thread.run("/ask Which colour? | red | blue")
    assert asked.status == TurnStatus.completed
    assert asked.final_response == "You answered: blue"

    called = thread.run('/tool lookup {"q": "answer"}')
    assert called.status == TurnStatus.completed
    assert called.final_response == "tool lookup returned: 42"
    assert handler.methods == ["item/tool/requestUserInput", "item/tool/call"]
    assert sdk.wire.error_responses() == []
