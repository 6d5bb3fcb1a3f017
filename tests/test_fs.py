"""`fs/*` (issue 14): the server's files for remote clients, in Codex 0.171's shapes, over
every transport; errors as PROTOCOL.md §12 says; `fs/watch` owned by its connection."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import trio

from appserver import fs_watch
from appserver.client import Client, RpcError

from conftest import ConnectFactory

TIMEOUT = 15


# Synchronous helpers: the tests touch files directly between requests.
def put(path: str, text: str) -> None:
    Path(path).write_text(text)


def read(path: str) -> bytes:
    return Path(path).read_bytes()


def lexists(path: str) -> bool:
    return os.path.lexists(path)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def rpc_error(client: Client, method: str, params: dict[str, Any]) -> RpcError:
    with pytest.raises(RpcError) as info:
        await client.request(method, params)
    return info.value


async def test_files_and_directories_round_trip(connect: ConnectFactory, tmp_path: Path) -> None:
    root = str(tmp_path)
    f = f"{root}/a.bin"
    data = bytes(range(256)) * 10
    with trio.fail_after(TIMEOUT):
        async with connect() as c:
            await c.initialize("fs")
            assert await c.request("fs/writeFile", {"path": f, "dataBase64": b64(data)}) == {}
            assert read(f) == data
            assert await c.request("fs/readFile", {"path": f}) == {"dataBase64": b64(data)}

            await c.request("fs/createDirectory", {"path": f"{root}/d/e/f"})
            await c.request("fs/createDirectory", {"path": f"{root}/d"})  # exists: fine
            assert (tmp_path / "d/e/f").is_dir()
            os.symlink(f, f"{root}/link")
            os.symlink(f"{root}/nowhere", f"{root}/dangling")

            meta = await c.request("fs/getMetadata", {"path": f})
            assert (meta["isFile"], meta["isDirectory"], meta["isSymlink"]) == (True, False, False)
            assert meta["modifiedAtMs"] == os.stat(f).st_mtime_ns // 1_000_000
            link = await c.request("fs/getMetadata", {"path": f"{root}/link"})
            assert (link["isFile"], link["isSymlink"]) == (True, True)

            listing = await c.request("fs/readDirectory", {"path": root})
            entries = sorted(listing["entries"], key=lambda e: e["fileName"])
            assert entries == [  # the dangling link is left out, as in Codex
                {"fileName": "a.bin", "isDirectory": False, "isFile": True},
                {"fileName": "d", "isDirectory": True, "isFile": False},
                {"fileName": "link", "isDirectory": False, "isFile": True},
            ]

            await c.request("fs/copy", {"sourcePath": f, "destinationPath": f"{root}/b.bin"})
            assert (tmp_path / "b.bin").read_bytes() == data
            tree = {"sourcePath": f"{root}/d", "destinationPath": f"{root}/d2", "recursive": True}
            await c.request("fs/copy", tree)
            assert (tmp_path / "d2/e/f").is_dir()

            await c.request("fs/remove", {"path": f"{root}/d2"})
            await c.request("fs/remove", {"path": f"{root}/link"})
            await c.request("fs/remove", {"path": f"{root}/gone"})  # force defaults to true
            assert not (tmp_path / "d2").exists() and (tmp_path / "a.bin").exists()
            assert not lexists(f"{root}/link")


async def test_errors_name_the_field_or_the_os_reason(
    connect: ConnectFactory, tmp_path: Path
) -> None:
    root = str(tmp_path)
    (tmp_path / "full/sub").mkdir(parents=True)
    (tmp_path / "a.txt").write_text("x")
    with trio.fail_after(TIMEOUT):
        async with connect() as c:
            await c.initialize("fs")
            err = await rpc_error(c, "fs/readFile", {"path": "rel.txt"})
            assert err.code == -32602 and err.data["errors"][0]["path"] == "path"
            err = await rpc_error(
                c, "fs/copy", {"sourcePath": f"{root}/a.txt", "destinationPath": "x"}
            )
            assert err.code == -32602 and err.data["errors"][0]["path"] == "destinationPath"
            for method in ("fs/readFile", "fs/remove", "fs/getMetadata", "fs/readDirectory"):
                err = await rpc_error(c, method, {"path": f"{root}/a\0b"})
                assert err.code == -32602, method
                assert err.message == "Invalid params: path: must not contain a NUL character"

            missing: list[tuple[str, dict[str, Any]]] = [
                ("fs/readFile", {"path": f"{root}/missing"}),
                ("fs/getMetadata", {"path": f"{root}/missing"}),
                ("fs/readDirectory", {"path": f"{root}/missing"}),
                ("fs/remove", {"path": f"{root}/missing", "force": False}),
                ("fs/writeFile", {"path": f"{root}/missing/x", "dataBase64": ""}),
            ]
            for method, params in missing:
                err = await rpc_error(c, method, params)
                assert (err.code, err.data["kind"]) == (-32600, "pathNotFound"), method
                assert "No such file or directory" in err.message and "missing" in err.message

            err = await rpc_error(c, "fs/readFile", {"path": root})
            assert err.code == -32600 and err.message == f"path `{root}` is not a file"
            err = await rpc_error(c, "fs/writeFile", {"path": f"{root}/a.txt", "dataBase64": "!"})
            assert err.code == -32600 and "valid base64" in err.message
            err = await rpc_error(c, "fs/readDirectory", {"path": f"{root}/a.txt"})
            assert err.code == -32600 and "Not a directory" in err.message
            err = await rpc_error(c, "fs/remove", {"path": f"{root}/full", "recursive": False})
            assert err.code == -32600 and "Directory not empty" in err.message
            err = await rpc_error(
                c, "fs/copy", {"sourcePath": f"{root}/full", "destinationPath": f"{root}/c"}
            )
            assert err.message == "fs/copy requires recursive: true when sourcePath is a directory"
            inside: dict[str, Any] = {
                "sourcePath": root,
                "destinationPath": f"{root}/full/in",
                "recursive": True,
            }
            err = await rpc_error(c, "fs/copy", inside)
            assert "itself or one of its descendants" in err.message
            assert (tmp_path / "a.txt").read_text() == "x"  # nothing was touched


async def test_read_file_refuses_files_over_the_cap(
    connect_shared: ConnectFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appserver.handlers import fs

    monkeypatch.setattr(fs, "MAX_READ_BYTES", 10)
    (tmp_path / "big").write_bytes(b"x" * 11)
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as c:
            await c.initialize("fs")
            err = await rpc_error(c, "fs/readFile", {"path": str(tmp_path / "big")})
            assert (err.code, err.data["kind"]) == (-32600, "fileTooLarge")


async def next_change(c: Client, watch_id: str) -> list[str]:
    note = await c.next_notification("fs/changed", where=lambda p: p["watchId"] == watch_id)
    paths: list[str] = note["params"]["changedPaths"]
    return paths


async def seen(c: Client, watch_id: str, path: str) -> None:
    """Wait for a `fs/changed` of `watch_id` naming `path` (earlier ones are consumed)."""
    while path not in await next_change(c, watch_id):
        pass


async def test_watch_reports_changes_to_its_connection_only_until_unwatch(
    connect_shared: ConnectFactory, tmp_path: Path
) -> None:
    root = str(tmp_path)
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as a, connect_shared() as b:
            await a.initialize("a")
            await b.initialize("b")
            assert await a.request("fs/watch", {"watchId": "dir", "path": root}) == {"path": root}
            later = f"{root}/later.txt"
            await a.request("fs/watch", {"watchId": "file", "path": later})
            await b.request("fs/watch", {"watchId": "dir", "path": root})  # ids per connection
            err = await rpc_error(a, "fs/watch", {"watchId": "dir", "path": root})
            assert err.message == "watchId already exists: dir"

            put(later, "x")
            assert await next_change(a, "file") == [later]
            await seen(a, "dir", later)
            await seen(b, "dir", later)

            assert await a.request("fs/unwatch", {"watchId": "dir"}) == {}
            assert await a.request("fs/unwatch", {"watchId": "dir"}) == {}  # unknown: fine
            put(f"{root}/other", "y")
            await seen(b, "dir", f"{root}/other")
            put(later, "z")  # a's file watch is still on; its dir watch is not
            assert await next_change(a, "file") == [later]
            await a.request("fs/unwatch", {"watchId": "file"})
            # Once both are gone a's queue holds no fs/changed: a later marker change on b
            # arrives while a sees nothing new.
            put(f"{root}/marker", "m")
            await seen(b, "dir", f"{root}/marker")
            with pytest.raises(trio.TooSlowError), trio.fail_after(0.3):
                await a.next_notification(
                    "fs/changed", where=lambda p: f"{root}/marker" in p["changedPaths"]
                )


async def test_watches_end_with_their_connection(
    connect_shared: ConnectFactory, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as c:
            await c.initialize("fs")
            await c.request("fs/watch", {"watchId": "w", "path": str(tmp_path)})
            ((conn, watch),) = [
                (k, v["w"])
                for k, v in fs_watch._watches.items()
                if "w" in v and v["w"].path == str(tmp_path)
            ]
            assert not watch.done.is_set()
        await watch.done.wait()  # its task ended with the connection
        assert watch.stop.is_set() and "w" not in fs_watch._watches.get(conn, {})
