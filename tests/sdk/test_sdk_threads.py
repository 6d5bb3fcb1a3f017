"""Thread management through the official SDK: ephemeral threads, listing with filters and
sort directions, resume from a second client, archive/unarchive."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_codex import CodexError, JsonRpcError
from openai_codex.generated.v2_all import (
    AgentMessageThreadItem,
    NotLoadedThreadStatus,
    SortDirection,
    ThreadListCwdFilter,
    ThreadSortKey,
    TurnStatus,
)

from .support import SdkEnv, root


def ids(response: object) -> list[str]:
    return [t.id for t in getattr(response, "data")]  # noqa: B009


def test_ephemeral_thread(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        fleeting = codex.thread_start(ephemeral=True)
        kept = codex.thread_start()
        result = fleeting.run("/say fleeting")
        assert result.final_response == "fleeting"
        assert fleeting.read().thread.ephemeral is True
        assert kept.read().thread.ephemeral is False
        assert ids(codex.thread_list()) == [kept.id]
    assert sdk.wire.sent("thread/start")[0]["ephemeral"] is True
    assert sdk.wire.error_responses() == []

    # Nothing of it was stored: a later server on the same data dir does not know it.
    with sdk.codex() as codex:
        with pytest.raises(JsonRpcError):
            codex.thread_resume(fleeting.id)
        assert ids(codex.thread_list()) == [kept.id]


def test_thread_list_filters(sdk: SdkEnv) -> None:
    a = (sdk.tmp_path / "a").resolve()
    b = (sdk.tmp_path / "b").resolve()
    a.mkdir()
    b.mkdir()
    with sdk.codex() as codex:
        t1 = codex.thread_start(cwd=str(a))
        t1.run("alpha needle one")
        t2 = codex.thread_start(cwd=str(b))
        t2.run("beta two")
        t3 = codex.thread_start(cwd=str(a))
        t3.run("gamma NEEDLE three")

        everything = codex.thread_list()
        assert set(ids(everything)) == {t1.id, t2.id, t3.id}
        assert everything.next_cursor is None
        by_id = {t.id: t for t in everything.data}
        assert by_id[t1.id].preview == "alpha needle one"
        assert Path(root(by_id[t2.id].cwd)) == b
        assert all(t.turns == [] for t in everything.data)

        assert set(ids(codex.thread_list(cwd=ThreadListCwdFilter(root=str(a))))) == {
            t1.id,
            t3.id,
        }
        assert ids(codex.thread_list(cwd=ThreadListCwdFilter(root=str(b)))) == [t2.id]
        both = codex.thread_list(cwd=ThreadListCwdFilter(root=[str(a), str(b)]))
        assert set(ids(both)) == {t1.id, t2.id, t3.id}

        # PROTOCOL.md §12: searchTerm matches case-insensitively.
        assert set(ids(codex.thread_list(search_term="needle"))) == {t1.id, t3.id}
        assert ids(codex.thread_list(search_term="beta")) == [t2.id]
        assert ids(codex.thread_list(search_term="no such words")) == []

        provider = by_id[t1.id].model_provider
        assert provider
        assert set(ids(codex.thread_list(model_providers=[provider]))) == {t1.id, t2.id, t3.id}
        assert set(ids(codex.thread_list(model_providers=[]))) == {t1.id, t2.id, t3.id}
        assert ids(codex.thread_list(model_providers=["no-such-provider"])) == []

        codex.thread_archive(t2.id)
        assert set(ids(codex.thread_list())) == {t1.id, t3.id}
        assert set(ids(codex.thread_list(archived=False))) == {t1.id, t3.id}
        assert ids(codex.thread_list(archived=True)) == [t2.id]
        assert ids(codex.thread_list(archived=True, cwd=ThreadListCwdFilter(root=str(a)))) == []

    listed = sdk.wire.sent("thread/list")
    assert {"cwd": [str(a), str(b)]} in listed
    assert {"searchTerm": "needle"} in listed
    assert {"modelProviders": ["no-such-provider"]} in listed
    assert sdk.wire.error_responses() == []


def test_thread_list_sort_directions(sdk: SdkEnv) -> None:
    """Newest first by default; `sortDirection: asc` reverses every listing and its pages.
    `createdAt` has one-second resolution, so the expected order is the documented one,
    (createdAt, id), not the order of creation."""
    with sdk.codex() as codex:
        for _ in range(3):
            codex.thread_start()
        threads = codex.thread_list().data
        assert len(threads) == 3
        newest_first = [
            t.id for t in sorted(threads, key=lambda t: (t.created_at, t.id), reverse=True)
        ]
        oldest_first = list(reversed(newest_first))

        assert [t.id for t in threads] == newest_first
        desc = codex.thread_list(
            sort_key=ThreadSortKey.created_at, sort_direction=SortDirection.desc
        )
        assert ids(desc) == newest_first
        asc = codex.thread_list(sort_key=ThreadSortKey.created_at, sort_direction=SortDirection.asc)
        assert ids(asc) == oldest_first
        assert ids(codex.thread_list(sort_direction=SortDirection.asc)) == oldest_first

        # Pages follow the direction too.
        page1 = codex.thread_list(limit=2, sort_direction=SortDirection.asc)
        assert ids(page1) == oldest_first[:2]
        assert page1.next_cursor is not None
        page2 = codex.thread_list(
            limit=2, cursor=page1.next_cursor, sort_direction=SortDirection.asc
        )
        assert ids(page2) == oldest_first[2:]
        assert page2.next_cursor is None

        by_update_desc = codex.thread_list(
            sort_key=ThreadSortKey.updated_at, sort_direction=SortDirection.desc
        )
        by_update_asc = codex.thread_list(
            sort_key=ThreadSortKey.updated_at, sort_direction=SortDirection.asc
        )
        assert set(ids(by_update_desc)) == set(newest_first)
        assert ids(by_update_asc) == list(reversed(ids(by_update_desc)))

    listed = sdk.wire.sent("thread/list")
    assert {"sortKey": "created_at", "sortDirection": "asc"} in listed
    assert sdk.wire.error_responses() == []


def test_thread_resume_from_a_second_client(sdk: SdkEnv) -> None:
    """A data dir belongs to one server process and the SDK spawns its own server per
    client, so the second client is the next program run on the same APPSERVER_HOME."""
    with sdk.codex() as first:
        thread = first.thread_start()
        turn1 = thread.run("/say first answer")
        assert turn1.final_response == "first answer"

    with sdk.codex() as second:
        listed = second.thread_list()
        assert ids(listed) == [thread.id]
        assert isinstance(listed.data[0].status.root, NotLoadedThreadStatus)

        resumed = second.thread_resume(thread.id)
        assert resumed.id == thread.id
        turns = resumed.read(include_turns=True).thread.turns
        assert [(t.id, t.status) for t in turns] == [(turn1.id, TurnStatus.completed)]
        agents = [root(i) for i in turns[0].items if isinstance(root(i), AgentMessageThreadItem)]
        assert [a.text for a in agents] == ["first answer"]

        turn2 = resumed.run("/say second answer")
        assert turn2.final_response == "second answer"

    # A third run reads both turns straight from the resume response.
    client = sdk.client()
    response = client.thread_resume(thread.id)
    assert response.thread.id == thread.id
    assert [t.id for t in response.thread.turns] == [turn1.id, turn2.id]
    assert response.thread.preview == "/say first answer"
    client.close()

    assert sdk.wire.sent("thread/resume")[0] == {"threadId": thread.id}
    assert sdk.wire.error_responses() == []


def test_thread_resume_include_turns_is_version_gated(sdk: SdkEnv) -> None:
    """`include_turns` becomes `excludeTurns`, which the SDK only sends to a runtime that
    reports Codex >= 0.151.0 in `serverInfo.version` (else it raises CodexError itself)."""
    with sdk.codex() as first:
        thread = first.thread_start()
        first_turn = thread.run("/say kept")
    with sdk.codex() as second:
        try:
            resumed = second.thread_resume(thread.id, include_turns=False)
        except CodexError as exc:
            pytest.fail(f"SDK refused excludeTurns: {exc}")
        assert resumed.id == thread.id
        turns = resumed.read(include_turns=True).thread.turns
        assert [t.id for t in turns] == [first_turn.id]
    assert sdk.wire.sent("thread/resume") == [{"threadId": thread.id, "excludeTurns": True}]
    assert sdk.wire.error_responses() == []


def test_archive_and_unarchive(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        thread = codex.thread_start()
        first = thread.run("/say before archive")
        codex.thread_archive(thread.id)

        assert ids(codex.thread_list()) == []
        assert ids(codex.thread_list(archived=True)) == [thread.id]
        with pytest.raises(JsonRpcError, match="archived"):
            thread.run("/say refused")
        with pytest.raises(JsonRpcError, match="archived"):
            codex.thread_resume(thread.id)
        # Reading still works.
        assert [t.id for t in thread.read(include_turns=True).thread.turns] == [first.id]

        restored = codex.thread_unarchive(thread.id)
        assert restored.id == thread.id
        assert ids(codex.thread_list()) == [thread.id]
        assert ids(codex.thread_list(archived=True)) == []

        resumed = codex.thread_resume(thread.id)
        again = resumed.run("/say after unarchive")
        assert again.final_response == "after unarchive"
        turns = resumed.read(include_turns=True).thread.turns
        assert [t.id for t in turns] == [first.id, again.id]

    assert sdk.wire.sent("thread/archive") == [{"threadId": thread.id}]
    assert sdk.wire.sent("thread/unarchive") == [{"threadId": thread.id}]
