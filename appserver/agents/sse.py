"""Server-sent events (`text/event-stream`) decoded line by line.

Only what a chat-completions stream needs: `data:` lines (joined by `\\n`) and `event:`;
comments (`:` lines), `id:` and `retry:` are skipped. An event ends at a blank line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str


class SSEDecoder:
    """Feed it lines without their line endings; it returns each complete event."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def flush(self) -> ServerSentEvent | None:
        """At the end of the stream: an event still pending (no blank line after it)."""
        return self._dispatch()

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent(self._event or "message", "\n".join(self._data))
        self._event, self._data = "", []
        return event
