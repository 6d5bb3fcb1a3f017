"""`Thread.compact()` of the official SDK (thread/compact/start): the compaction runs as a
turn of its own holding one contextCompaction item; the thread goes on afterwards."""

from __future__ import annotations

from openai_codex.generated.v2_all import (
    ContextCompactionThreadItem,
    ThreadStatusChangedNotification,
    TurnStatus,
)

from .support import SdkEnv, root


def test_compact_a_thread(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        thread = codex.thread_start()
        assert thread.run("/say before").final_response == "before"
        thread.compact()
        # The compaction's turn is no turn the SDK started, so nothing routes its events
        # to a caller; thread/status/changed is global: the second `idle` (the first ends
        # the /say turn) ends the compaction.
        idle = 0
        while idle < 2:
            note = codex._client.next_notification()
            if note.method == "thread/status/changed":
                payload = note.payload
                assert isinstance(payload, ThreadStatusChangedNotification)
                idle += root(payload.status).type == "idle"
        turns = thread.read(include_turns=True).thread.turns
        assert turns[-1].status == TurnStatus.completed
        assert [type(root(i)) for i in turns[-1].items] == [ContextCompactionThreadItem]
        assert thread.run("/say after").final_response == "after"
    assert sdk.wire.sent("thread/compact/start") == [{"threadId": thread.id}]
    assert sdk.wire.error_responses() == []
