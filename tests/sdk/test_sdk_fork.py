"""thread/fork through the official SDK (`Codex.thread_fork`): the fork holds the source's
turns with their ids, runs turns of its own, and survives a restart of the server."""

from __future__ import annotations

from .support import SdkEnv


def test_thread_fork(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        source = codex.thread_start()
        assert source.run("/say one").final_response == "one"
        assert source.run("/say two").final_response == "two"
        history = source.read(include_turns=True).thread.turns

        fork = codex.thread_fork(source.id)
        assert fork.id != source.id
        forked = fork.read(include_turns=True).thread
        assert forked.forked_from_id == source.id
        assert [t.id for t in forked.turns] == [t.id for t in history]
        assert forked.turns == history

        # The fork goes its own way; the source is unchanged.
        assert fork.run("/say three").final_response == "three"
        assert len(fork.read(include_turns=True).thread.turns) == 3
        assert len(source.read(include_turns=True).thread.turns) == 2

        bare = codex.thread_fork(source.id, include_turns=False, ephemeral=True)
        assert bare.read().thread.ephemeral is True

    forks = sdk.wire.sent("thread/fork")
    assert forks[0] == {"threadId": source.id}
    assert forks[1]["excludeTurns"] is True and forks[1]["ephemeral"] is True
    assert sdk.wire.error_responses() == []

    # Stored: a later server on the same data dir has the fork and its history.
    with sdk.codex() as codex:
        again = codex.thread_resume(fork.id)
        thread = again.read(include_turns=True).thread
        assert thread.forked_from_id == source.id and len(thread.turns) == 3
