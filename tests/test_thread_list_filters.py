"""thread/list with the Codex 0.171 params over a real connection (PROTOCOL.md §5.4):
sortDirection, every sortKey, the cwd list, thread id lists, source kinds, sections,
the params appserver cannot act on, backwardsCursor, and the refusals the reference
makes. Every result is checked against the 0.171 ThreadListResponse schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio
from threads_support import TIMEOUT, new_thread, rpc_error, run_turn

from appserver.client import Client

from conftest import ConnectFactory

SCHEMA = (
    Path(__file__).resolve().parents[2] / "shared/codex-schema-0.171/v2/ThreadListResponse.json"
)


@pytest.fixture(scope="module")
def response_validator() -> jsonschema.Draft7Validator:
    if not SCHEMA.exists():
        pytest.skip(f"no 0.171 schema at {SCHEMA}")
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


class Lister:
    def __init__(self, client: Client, validator: jsonschema.Draft7Validator) -> None:
        self.client = client
        self.validator = validator

    async def page(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.client.request("thread/list", params)
        errors = [e.message for e in self.validator.iter_errors(result)]
        assert not errors, errors
        assert set(result) == {"data", "nextCursor", "backwardsCursor"}
        # the cursor to reverse from exists exactly when the page has threads
        assert (result["backwardsCursor"] is None) == (result["data"] == [])
        return result

    async def ids(self, **params: Any) -> list[str]:
        return [t["id"] for t in (await self.page(**params))["data"]]

    async def walk(self, **params: Any) -> list[str]:
        seen: list[str] = []
        while True:
            page = await self.page(**params)
            seen += [t["id"] for t in page["data"]]
            if page["nextCursor"] is None:
                return seen
            params["cursor"] = page["nextCursor"]


async def setup(client: Client, tmp_path: Path, count: int = 5) -> list[str]:
    """``count`` threads, oldest first, alternating between two working directories."""
    await client.initialize("list-filters")
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        d.mkdir(exist_ok=True)
    ids = []
    for n in range(count):
        thread_id = await new_thread(client, cwd=str(dirs[n % 2]))
        await run_turn(client, thread_id, f"topic {n}")
        ids.append(thread_id)
    return ids


async def test_every_0171_param_is_accepted_and_honoured(
    connect: ConnectFactory, tmp_path: Path, response_validator: jsonschema.Draft7Validator
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            ids = await setup(client, tmp_path)
            lister = Lister(client, response_validator)
            newest = list(reversed(ids))  # same-second ties go by id (UUIDv7), descending
            assert await lister.ids() == newest
            assert await lister.ids(sortDirection="desc") == newest
            assert await lister.ids(sortDirection="asc") == ids
            for key in ("created_at", "updated_at", "recency_at"):
                assert await lister.walk(sortKey=key, limit=2) == newest
                assert await lister.walk(sortKey=key, sortDirection="asc", limit=2) == ids
            a, b = str(tmp_path / "a"), str(tmp_path / "b")
            assert await lister.ids(cwd=a) == newest[::2]
            assert await lister.ids(cwd=[b]) == newest[1::2]
            assert await lister.ids(cwd=[a, b, "/nowhere"]) == newest
            assert await lister.ids(cwd=[]) == []
            assert await lister.ids(includedThreadIds=[ids[1], ids[3].upper()]) == [
                ids[3],
                ids[1],
            ]
            assert await lister.ids(includedThreadIds=[]) == []
            assert await lister.ids(includedThreadIds=ids * 20) == newest  # 100 entries
            assert await lister.ids(excludedThreadIds=ids[:3]) == [ids[4], ids[3]]
            assert await lister.ids(
                includedThreadIds=ids[:3], excludedThreadIds=[f"urn:uuid:{ids[0]}"]
            ) == [ids[2], ids[1]]
            assert await lister.walk(includedThreadIds=ids[1:], limit=1) == newest[:-1]
            assert await lister.ids(modelProviders=[]) == newest
            assert await lister.ids(modelProviders=["nobody"]) == []
            assert await lister.ids(searchTerm="TOPIC 2") == [ids[2]]
            # sources: Codex lists app-server threads as `vscode`; appserver says appServer
            for kinds in ([], ["vscode"], ["appServer"], ["cli", "vscode"]):
                assert await lister.ids(sourceKinds=kinds) == newest
            assert await lister.ids(sourceKinds=["cli", "exec", "subAgent"]) == []
            # no sections in appserver: every thread is unsectioned
            assert await lister.ids(sectionId="some-section") == []
            assert await lister.ids(sectionId=None) == newest
            assert await lister.ids(sortKey="section_position", sectionId="s") == []
            # nothing to act on: accepted and ignored
            assert (
                await lister.ids(currentAccountOnly=True, useStateDbOnly=True, originators=[])
                == newest
            )
            assert await lister.ids(archived=True) == []


async def test_backwards_cursor_reverses_from_the_page_start(
    connect: ConnectFactory, tmp_path: Path, response_validator: jsonschema.Draft7Validator
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            ids = await setup(client, tmp_path)
            lister = Lister(client, response_validator)
            first = await lister.page(limit=2)
            second = await lister.page(limit=2, cursor=first["nextCursor"])
            assert [t["id"] for t in second["data"]] == [ids[2], ids[1]]

            async def from_(anchor: str, *, newer: bool) -> list[str]:
                """Threads at or beyond ``anchor``'s second, in that direction."""
                listed = list(reversed((await lister.page())["data"]))  # oldest first
                at = next(t["createdAt"] for t in listed if t["id"] == anchor)
                chosen = [
                    t["id"]
                    for t in listed
                    if (t["createdAt"] >= at if newer else t["createdAt"] <= at)
                ]
                return chosen if newer else list(reversed(chosen))

            # back from the second page: its first thread (and its second), then newer
            back = await lister.walk(sortDirection="asc", cursor=second["backwardsCursor"])
            assert back == await from_(ids[2], newer=True) and back.index(ids[2]) < back.index(
                ids[4]
            )
            # a new thread shows up when reversing from the first page (polling for news)
            later = await new_thread(client)
            await run_turn(client, later, "news")
            news = await lister.walk(sortDirection="asc", cursor=first["backwardsCursor"])
            assert news == await from_(ids[4], newer=True) and news[-1] == later
            # ascending pages reverse the same way
            asc = await lister.page(sortDirection="asc", limit=2)
            older = await lister.ids(cursor=asc["backwardsCursor"])
            assert older == await from_(ids[0], newer=False) and older[-1] == ids[0]
            # a nextCursor is a position: the other direction goes back from it
            assert await lister.ids(sortDirection="asc", cursor=first["nextCursor"]) == [
                ids[4],
                later,
            ]


async def test_refused_params_name_the_field(
    connect: ConnectFactory, tmp_path: Path, response_validator: jsonschema.Draft7Validator
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            ids = await setup(client, tmp_path, count=2)
            lister = Lister(client, response_validator)
            for field in ("includedThreadIds", "excludedThreadIds"):
                error = await rpc_error(client, "thread/list", {field: [ids[0], "nope"]})
                assert (error.code, error.data["kind"]) == (-32602, "invalidParams")
                assert [e["path"] for e in error.data["errors"]] == [f"{field}[1]"]
                assert "thread id" in error.message and "nope" in error.message
                error = await rpc_error(client, "thread/list", {field: [ids[0]] * 101})
                assert error.code == -32602 and field in error.message
                assert "at most 100" in error.message  # never truncated
            error = await rpc_error(client, "thread/list", {"originators": ["someone"]})
            assert error.code == -32602
            assert "originator filtering is not supported" in error.message
            error = await rpc_error(client, "thread/list", {"sortKey": "section_position"})
            assert (error.code, error.data["kind"]) == (-32600, "invalidRequest")
            assert "requires a section filter" in error.message
            for params in ({"sortDirection": "up"}, {"sourceKinds": ["mcp"]}, {"cwd": 5}):
                error = await rpc_error(client, "thread/list", params)
                assert error.code == -32602 and error.data["errors"][0]["path"].startswith(
                    next(iter(params))
                )
            created = await lister.page(limit=1)
            for key in ("updated_at", "recency_at"):
                for cursor in (created["nextCursor"], created["backwardsCursor"]):
                    error = await rpc_error(
                        client, "thread/list", {"sortKey": key, "cursor": cursor}
                    )
                    assert (error.code, error.data["kind"]) == (-32600, "invalidCursor")
            error = await rpc_error(client, "thread/list", {"cursor": "garbage"})
            assert error.data["kind"] == "invalidCursor" and "garbage" in error.message
