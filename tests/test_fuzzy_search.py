"""fuzzyFileSearch over a real server (memory, websocket, stdio), with the reference's
results (scores, indices, order: probed against Codex 0.171, see
tests/codex_scenarios/fuzzy_search.py), and the walker and matcher on their own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from appserver import file_search
from appserver.client import Client, RpcError
from appserver.file_search import Search
from appserver.fuzzy_match import atoms, bonuses, fold, match_atom

from conftest import ConnectFactory

TIMEOUT = 20


def mk(root: Path, rel: str, data: str = "x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with ignore files, hidden files, a symlink and an accent."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    mk(root, ".git/HEAD", "ref: refs/heads/main\n")
    mk(root, ".gitignore", "ignored_dir/\n*.log\n")
    mk(root, ".ignore", "dotignored_*\n")
    for rel in (
        "src/main.py",
        "src/utils/helper.py",
        ".hidden/secret_main.py",
        ".env_main",
        "ignored_dir/main.js",
        "debug_main.log",
        "dotignored_main.txt",
        "sub/inner_main.txt",
        "sub/outer_main.txt",
        "m_a_i_n.txt",
        "ma/in.txt",
        "main",
        "café/Main.txt",
    ):
        mk(root, rel)
    mk(root, "sub/.gitignore", "inner_*\n")
    (root / "docs" / "mainland").mkdir(parents=True)
    (root / "linked").symlink_to(root / "src")
    return root


async def search(client: Client, query: str, roots: list[Any], **extra: Any) -> list[Any]:
    result = await client.request("fuzzyFileSearch", {"query": query, "roots": roots, **extra})
    return list(result["files"])


def rows(files: list[Any]) -> list[tuple[str, str, int, list[int]]]:
    return [(f["path"], f["match_type"], f["score"], f["indices"]) for f in files]


async def test_results_follow_the_reference(connect: ConnectFactory, repo: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("fuzzy")
            files = await search(client, "main", [str(repo)])
            # The reference's answer: exact name, then matches inside the file name,
            # then elsewhere in the path; ignored files (.gitignore in a repository,
            # .ignore, a nested .gitignore) are left out, hidden ones and .git are not.
            assert rows(files) == [
                ("main", "file", 196717, [0, 1, 2, 3]),
                ("café/Main.txt", "file", 65645, [5, 6, 7, 8]),
                ("linked/main.py", "file", 65645, [7, 8, 9, 10]),
                ("src/main.py", "file", 65645, [4, 5, 6, 7]),
                (".env_main", "file", 65640, [5, 6, 7, 8]),
                (".hidden/secret_main.py", "file", 65640, [15, 16, 17, 18]),
                ("sub/outer_main.txt", "file", 65640, [10, 11, 12, 13]),
                ("m_a_i_n.txt", "file", 65633, [0, 2, 4, 6]),
                ("docs/mainland", "directory", 109, [5, 6, 7, 8]),
                ("ma/in.txt", "file", 106, [0, 1, 3, 4]),
            ]
            assert {f["root"] for f in files} == {str(repo)}
            assert files[1]["file_name"] == "Main.txt"
            # Case and accents are ignored; several words each match; a directory
            # named as the query ranks first.
            assert rows(await search(client, "MAIN", [str(repo)])) == rows(files)
            assert rows(await search(client, "cafe", [str(repo)]))[0] == (
                "café",
                "directory",
                131181,
                [0, 1, 2, 3],
            )
            assert rows(await search(client, "utl hlp", [str(repo)])) == [
                ("linked/utils/helper.py", "file", 139, [7, 8, 10, 13, 15, 16]),
                ("src/utils/helper.py", "file", 139, [4, 5, 7, 10, 12, 13]),
            ]
            head = await search(client, "HEAD", [str(repo)])
            assert rows(head) == [(".git/HEAD", "file", 196717, [5, 6, 7, 8])]


async def test_roots_limit_and_empty_queries(
    connect: ConnectFactory, repo: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"  # not a repository: its .gitignore does not apply
    mk(plain, ".gitignore", "*.py\n")
    mk(plain, "main.py")
    many = tmp_path / "many"
    for i in range(60):
        mk(many, f"file_{i:02}.txt")
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("fuzzy")
            assert rows(await search(client, "main", [str(plain)])) == [
                ("main.py", "file", 65645, [0, 1, 2, 3])
            ]
            both = await search(client, "main.py", [str(repo), str(plain) + "/"])
            assert [(f["root"], f["path"]) for f in both][:3] == [  # equal scores: by path
                (str(repo), "linked/main.py"),
                (str(plain) + "/", "main.py"),  # the root as given
                (str(repo), "src/main.py"),
            ]
            # A root inside another: each entry once, for the deepest root.
            nested = await search(client, "helper", [str(repo), str(repo / "src")])
            assert [(f["root"], f["path"]) for f in nested] == [
                (str(repo), "linked/utils/helper.py"),
                (str(repo / "src"), "utils/helper.py"),
            ]
            # At most 50, best first then by path.
            files = await search(client, "file", [str(many)])
            assert [f["path"] for f in files] == [f"file_{i:02}.txt" for i in range(50)]
            # Nothing for an empty query; a query of spaces lists everything, scoring 0,
            # the root itself included (path "").
            assert await search(client, "", [str(plain)]) == []
            spaces = await search(client, "  ", [str(plain)])
            assert rows(spaces) == [
                ("", "directory", 0, []),
                (".gitignore", "file", 0, []),
                ("main.py", "file", 0, []),
            ]
            # Roots that are relative, missing or files give nothing, as the reference.
            for root in ("relative/dir", str(tmp_path / "missing"), str(plain / "main.py")):
                assert await search(client, "main", [root]) == []
            assert await search(client, "main", []) == []


async def test_bad_params_name_the_field(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("fuzzy")
            for params, field in (
                ({"query": 3, "roots": []}, "query"),
                ({"roots": []}, "query"),
                ({"query": "x", "roots": "/"}, "roots"),
                ({"query": "x", "roots": [1]}, "roots[0]"),
                ({"query": "x", "roots": [], "cancellationToken": 5}, "cancellationToken"),
            ):
                with pytest.raises(RpcError) as info:
                    await client.request("fuzzyFileSearch", params)
                assert (info.value.code, info.value.kind) == (-32602, "invalidParams")
                assert field in info.value.message


def fanout(root: Path, levels: int = 6, width: int = 8) -> Path:
    """A tree whose walk visits width**levels paths (symlinks to the next level): a
    search of it runs until the walk cap, seconds, unless it is cancelled."""
    for level in range(levels + 1):
        (root / f"d{level}").mkdir(parents=True)
    for level in range(levels):
        for n in range(width):
            (root / f"d{level}" / f"l{n}").symlink_to(root / f"d{level + 1}")
    mk(root, f"d{levels}/leaf.txt")
    return root / "d0"


async def test_a_later_search_with_the_token_cancels_the_earlier(
    connect: ConnectFactory, repo: Path, tmp_path: Path
) -> None:
    slow_root = fanout(tmp_path / "fan")
    answers: dict[str, Any] = {}
    with trio.fail_after(TIMEOUT):
        async with connect() as client, trio.open_nursery() as nursery:
            await client.initialize("fuzzy")

            async def slow() -> None:
                # Uncancelled, this finds leaf.txt (after seconds of walking).
                answers["slow"] = await search(
                    client, "leaf", [str(slow_root)], cancellationToken="t"
                )

            nursery.start_soon(slow)
            await trio.testing.wait_all_tasks_blocked()
            # The walk runs in a worker thread: other requests are answered meanwhile.
            assert await search(client, "HEAD", [str(repo)]) != []
            assert "slow" not in answers
            # The same token on another search cancels the running one: it answers [].
            newer = await search(client, "HEAD", [str(repo)], cancellationToken="t")
            assert [f["path"] for f in newer] == [".git/HEAD"]
        assert answers["slow"] == []


# --- the walker and the matcher on their own ------------------------------------------


def test_the_walk_stops_at_its_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fanout(tmp_path / "fan", levels=3, width=4)
    monkeypatch.setattr(file_search, "MAX_VISITED", 30)
    done = Search("l", [str(root)])
    done.run()
    assert done.visited == 30
    monkeypatch.setattr(file_search, "MAX_VISITED", 10_000)
    whole = Search("leaf", [str(root)])
    assert {m.path for m in whole.run()} >= {"l0/l1/l2/leaf.txt"}
    assert whole.visited == 4 + 16 + 64 + 64


def test_a_cancelled_search_stops(tmp_path: Path) -> None:
    stopped = Search("x", [str(fanout(tmp_path / "fan", levels=4, width=6))])
    stopped.cancelled = True
    with pytest.raises(file_search.Cancelled):
        stopped.run()
    assert stopped.visited == file_search.CHECK_EVERY


def test_symlink_loops_are_not_entered(tmp_path: Path) -> None:
    mk(tmp_path, "a/file.txt")
    (tmp_path / "a" / "up").symlink_to(tmp_path)
    # a/up leads back to the root: it is listed, not entered.
    assert [m.path for m in Search("file", [str(tmp_path)]).run()] == ["a/file.txt"]
    assert [(m.path, m.match_type) for m in Search("up", [str(tmp_path)]).run()] == [
        ("a/up", "directory")
    ]


@pytest.mark.parametrize(
    ("query", "path", "score", "indices"),
    [  # scores and indices the reference gives (nucleo, path mode)
        ("main", "src/main.py", 109, [4, 5, 6, 7]),
        ("main", ".env_main", 104, [5, 6, 7, 8]),
        ("main", "xmainx.txt", 76, [1, 2, 3, 4]),
        ("main", "ma/in.txt", 106, [0, 1, 3, 4]),
        ("mainx", "sub/outer_main.txt", 116, [10, 11, 12, 13, 16]),
        ("main.rs", "inner/main.rs", 184, [6, 7, 8, 9, 10, 11, 12]),
        ("u", "deep/utils/u.txt", 34, [11]),  # equal alignments: the rightmost
        ("cafe", "café", 109, [0, 1, 2, 3]),
        ("f2", "d12/f222.txt", 59, [4, 5]),
    ],
)
def test_scores_are_the_references(query: str, path: str, score: int, indices: list[int]) -> None:
    [atom] = atoms(query)
    assert match_atom(atom, fold(path), bonuses(path)) == (score, indices)
    assert match_atom("zz", fold(path), bonuses(path)) is None


def test_root_paths_are_compared_not_followed(tmp_path: Path) -> None:
    mk(tmp_path, "x/main.txt")
    assert os.path.isdir(tmp_path / "x")
    results = Search("main", [str(tmp_path / "x" / ".." / "x")]).run()
    assert [(m.root, m.path) for m in results] == [(str(tmp_path / "x" / ".." / "x"), "main.txt")]


def test_odd_entries_neither_block_nor_break_the_search(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    os.mkfifo(tmp_path / ".gitignore")  # would block a reader: not read
    (tmp_path / os.fsdecode(b"bad\xffmain.txt")).write_text("x")  # not UTF-8: skipped
    mk(tmp_path, "good_main.txt")
    assert [m.path for m in Search("main", [str(tmp_path)]).run()] == ["good_main.txt"]
