"""Wire shapes of numbered events and replay (PROTOCOL.md §13, an appserver extension).

- `initialize` `capabilities.appserverEventSeq: true` (protocol/types.py
  InitializeCapabilities) opts a connection in: its thread events carry a top-level
  `"seq"` (jsonrpc/codec.py `with_seq`).
- `thread/resume` `afterSeq` (protocol/types.py ThreadResumeParams) asks for a replay;
  the response's `replay` is a `Replay` or null (protocol/results.py
  ThreadResumeResponse).
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class Replay:
    """The events that follow the thread/resume response, before the live stream."""

    from_seq: int
    to_seq: int
