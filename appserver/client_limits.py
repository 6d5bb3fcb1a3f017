"""How much the Python client (client.py) buffers for its consumer, and what it does
when that is passed (docs/embedding.md, "Bounded buffers")."""

from __future__ import annotations

import attrs

__all__ = ["OVERFLOW_CLOSE_CODE", "OVERFLOW_CLOSE_REASON", "BufferLimits", "frame_size"]

OVERFLOW_CLOSE_CODE = 1008  # policy violation, as the server closes a slow consumer
OVERFLOW_CLOSE_REASON = "client buffer overflow"


def _positive(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"BufferLimits.{attribute.name} must be a positive int, not {value!r}")


@attrs.frozen
class BufferLimits:
    """The most a client holds for its consumer: notifications and server requests that
    arrived and were not taken yet (answers to requests are not counted). The reader never
    waits, so a request always gets its answer; when a message would pass either bound
    the client closes the connection (1008) and raises `ClientOverflow` from then on
    (docs/embedding.md, "Bounded buffers")."""

    messages: int = attrs.field(default=100_000, validator=_positive)
    bytes: int = attrs.field(default=64 * 1024 * 1024, validator=_positive)


def frame_size(text: str | bytes) -> int:
    """A frame's size in bytes (UTF-8), cheaply for the usual ASCII JSON."""
    if isinstance(text, bytes) or text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))
