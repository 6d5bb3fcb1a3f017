"""The data dir (PROTOCOL.md §8.6): one server per data dir, private modes, crash recovery
logged. Real subprocess servers on real directories (appserver/datadir.py)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
import trio

from appserver.client import Client, connect_websocket
from appserver.datadir import LOCK_FILE, DataDirInUse, read_owner
from appserver.server import ServerConfig, open_server

from support import ServerProcess, appserver_argv, run_ws_server

TIMEOUT = 30
COMMAND_APPROVAL = "item/commandExecution/requestApproval"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def server_process(*args: str, umask: int = 0o022) -> AbstractAsyncContextManager[ServerProcess]:
    """`appserver --listen ws://127.0.0.1:0 ARGS` under `umask` (every stderr line is
    collected); SIGTERM when leaving."""
    return run_ws_server(*args, umask=umask, banner_timeout=TIMEOUT)


async def start_waiting_turn(client: Client, cwd: Path) -> tuple[str, str, Any]:
    """A thread whose turn is running, waiting for the approval of `/run echo done`."""
    await client.initialize("datadir-test")
    thread = await client.request("thread/start", {"cwd": str(cwd)})
    thread_id = thread["thread"]["id"]
    started = await client.request(
        "turn/start",
        {"threadId": thread_id, "input": [{"type": "text", "text": "/run echo done"}]},
    )
    request = await client.next_server_request(COMMAND_APPROVAL)
    return thread_id, started["turn"]["id"], request


async def test_second_server_exits_2_naming_the_first_pid_and_leaves_its_turn_running(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            server_process("--data-dir", str(data)) as first,
            connect_websocket(first.url) as client,
        ):
            thread_id, turn_id, request = await start_waiting_turn(client, tmp_path)
            for listen in ("ws://127.0.0.1:0", "stdio://"):
                second = await trio.run_process(
                    appserver_argv("--listen", listen, "--data-dir", str(data)),
                    stdin=subprocess.DEVNULL,
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )
                assert second.returncode == 2, second.stderr
                assert second.stderr.decode() == (
                    f"data dir {data} is in use by pid {first.process.pid}\n"
                )
                assert second.stdout == b""
            # The first server's turn is untouched: still running, and it completes.
            read = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}
            )
            assert read["thread"]["turns"][-1]["status"] == "inProgress"
            await client.respond(request.id, {"decision": "accept"})
            done = await client.next_notification(
                "turn/completed", where=lambda p: p["turn"]["id"] == turn_id
            )
            assert done["params"]["turn"]["status"] == "completed"
            read = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}
            )
            (turn,) = read["thread"]["turns"]
            assert turn["status"] == "completed"
            assert turn["items"][-1]["aggregatedOutput"] == "done\n"
    owner = read_owner(data)
    assert owner is not None and owner.pid == first.process.pid and owner.urls == ()


async def test_lock_is_released_by_sigkill_and_the_restart_logs_recovered_turns(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with (
            server_process("--data-dir", str(data)) as first,
            connect_websocket(first.url) as client,
        ):
            thread_id, turn_id, _ = await start_waiting_turn(client, tmp_path)
            owner = read_owner(data)
            assert owner is not None
            assert owner.pid == first.process.pid and owner.urls == (first.url,)
            first.process.send_signal(signal.SIGKILL)
            await first.process.wait()
        # The kernel dropped the flock: a new server takes the data dir at once, and says
        # at info level how many turns it found running.
        async with server_process("--data-dir", str(data)) as second:
            recovered = [line for line in second.stderr_lines if "crash recovery" in line]
            assert len(recovered) == 1, second.stderr_lines
            assert " INFO " in recovered[0] and "1 turn " in recovered[0], recovered
            assert "interrupted" in recovered[0]
            owner = read_owner(data)
            assert owner is not None
            assert owner.pid == second.process.pid and owner.urls == (second.url,)
            async with connect_websocket(second.url) as client:
                await client.initialize("after-kill")
                read = await client.request(
                    "thread/read", {"threadId": thread_id, "includeTurns": True}
                )
                assert [(t["id"], t["status"]) for t in read["thread"]["turns"]] == [
                    (turn_id, "interrupted")
                ]
        # A clean restart has nothing to recover, and says nothing about it.
        async with server_process("--data-dir", str(data)) as third:
            assert not [line for line in third.stderr_lines if "crash recovery" in line]


async def test_data_dir_0700_and_database_files_0600_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "a" / "data"  # missing, with a missing parent
    with trio.fail_after(TIMEOUT):
        async with (
            server_process("--data-dir", str(data), umask=0o002) as server,
            connect_websocket(server.url) as client,
        ):
            await client.initialize("modes")
            await client.request("thread/start", {"cwd": str(tmp_path)})  # a write: -wal, -shm
            names = sorted(p.name for p in data.iterdir())
            assert names == [
                LOCK_FILE,
                "appserver.sqlite3",
                "appserver.sqlite3-shm",
                "appserver.sqlite3-wal",
            ]
            assert mode(data) == 0o700
            for name in names:
                assert mode(data / name) == 0o600, name
    assert not [line for line in server.stderr_lines if "WARNING" in line], server.stderr_lines


async def test_an_existing_data_dir_keeps_its_mode_with_a_warning_and_files_are_tightened(
    tmp_path: Path,
) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o750)
    db = data / "appserver.sqlite3"
    async with open_server(ServerConfig(data_dir=data)):
        pass  # an existing store, as an older version left it
    db.chmod(0o644)
    with trio.fail_after(TIMEOUT):
        async with (
            server_process("--data-dir", str(data)) as server,
            connect_websocket(server.url) as client,
        ):
            await client.initialize("modes")
            await client.request("thread/start", {"cwd": str(tmp_path)})
            assert mode(data) == 0o750
            for name in ("appserver.sqlite3", "appserver.sqlite3-wal", "appserver.sqlite3-shm"):
                assert mode(data / name) == 0o600, name
    warnings = [line for line in server.stderr_lines if "WARNING" in line]
    assert len(warnings) == 1 and "mode 0750" in warnings[0], server.stderr_lines


async def test_open_server_refuses_a_data_dir_in_use_and_in_memory_servers_take_no_lock(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with trio.fail_after(TIMEOUT):
        async with open_server(ServerConfig(data_dir=data)) as server:
            lock = json.loads((data / LOCK_FILE).read_text())
            assert lock == {"pid": os.getpid(), "urls": []}
            with pytest.raises(DataDirInUse) as caught:
                async with open_server(ServerConfig(data_dir=data)):
                    pass
            assert str(caught.value) == f"data dir {data} is in use by pid {os.getpid()}"
            assert caught.value.pid == os.getpid()
            # The refused one touched nothing: the first still serves.
            async with server.connect() as client:
                await client.initialize("embedder")
                await client.request("thread/start", {"cwd": str(tmp_path)})
            async with trio.open_nursery() as nursery:
                port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
                owner = read_owner(data)
                assert owner is not None and owner.urls == (f"ws://127.0.0.1:{port}",)
                nursery.cancel_scope.cancel()
            owner = read_owner(data)
            assert owner is not None and owner.urls == ()
        async with open_server(ServerConfig(data_dir=data)):  # released on exit
            pass
        async with open_server(ServerConfig()), open_server(ServerConfig()):
            pass
