"""The pytest plugin shipped as `appserver.testing` (docs/testing.md): its fixtures used
here directly (the entry point makes them available in this repo too), and in fresh
projects run by `python -m pytest` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import trio

from appserver.client import Client, connect_websocket
from appserver.server import STORE_FILE, Server, ServerConfig
from appserver.testing import run_turn

from support import REPO

TIMEOUT = 30

# The five-line claim of docs/testing.md, verbatim (docs/testing.md shows the same code).
FIVE_LINE_TEST = """\
from appserver.testing import run_turn


async def test_hello(appserver_client):
    thread = (await appserver_client.request("thread/start"))["thread"]
    turn = await run_turn(appserver_client, thread["id"], "/say hello world")
    assert turn.text == "hello world"
"""


# --- the fixtures in this repository -----------------------------------------------------


async def test_five_lines_in_process(appserver_client: Client) -> None:
    thread = (await appserver_client.request("thread/start"))["thread"]
    turn = await run_turn(appserver_client, thread["id"], "/say hello world")
    assert turn.text == "hello world"
    assert turn.status == "completed"


async def test_server_uses_sqlite_in_tmp_path(
    appserver_server: Server, appserver_config: ServerConfig, tmp_path: Path
) -> None:
    assert appserver_config.data_dir == tmp_path / "appserver"
    assert (tmp_path / "appserver" / STORE_FILE).is_file()
    async with appserver_server.connect() as client:
        info = await client.initialize("plugin-test")
        assert info["codexHome"] == str((tmp_path / "appserver").resolve())
        thread_id = (await client.request("thread/start"))["thread"]["id"]
    async with appserver_server.connect() as again:
        await again.initialize("plugin-test-2")
        listed = await again.request("thread/list")
        assert [t["id"] for t in listed["data"]] == [thread_id]


async def test_run_turn_answers_approvals(appserver_client: Client) -> None:
    thread_id = (await appserver_client.request("thread/start"))["thread"]["id"]
    with trio.fail_after(TIMEOUT):
        turn = await run_turn(appserver_client, thread_id, "/run echo approved")
    assert [a["command"] for a in turn.approvals] == ["echo approved"]
    (command,) = [i for i in turn.items if i["type"] == "commandExecution"]
    assert command["status"] == "completed"
    assert command["aggregatedOutput"] == "approved\n"
    methods = [n["method"] for n in turn.notifications]
    assert methods[-1] == "turn/completed"
    assert "serverRequest/resolved" in methods


async def test_run_turn_decline(appserver_client: Client) -> None:
    thread_id = (await appserver_client.request("thread/start"))["thread"]["id"]
    with trio.fail_after(TIMEOUT):
        turn = await run_turn(appserver_client, thread_id, "/run echo no", decision="decline")
    (command,) = [i for i in turn.items if i["type"] == "commandExecution"]
    assert command["status"] == "declined"
    assert turn.status == "completed"


async def test_run_turn_leaves_requests_to_the_caller(appserver_client: Client) -> None:
    thread_id = (await appserver_client.request("thread/start"))["thread"]["id"]

    async def answer() -> None:
        request = await appserver_client.next_server_request()
        await appserver_client.respond(request.id, {"decision": "cancel"})

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer)
            turn = await run_turn(appserver_client, thread_id, "/run echo x", decision=None)
    assert turn.status == "interrupted"
    assert turn.approvals == []


async def test_ws_url(appserver_ws_url: str, appserver_server: Server) -> None:
    async with connect_websocket(appserver_ws_url) as client:
        info = await client.initialize("over-websocket")
        assert info["userAgent"].endswith("(over-websocket/0)")
        thread_id = (await client.request("thread/start"))["thread"]["id"]
        with trio.fail_after(TIMEOUT):
            turn = await run_turn(client, thread_id, "plain text")
        assert turn.text == "You said: plain text"
    assert appserver_server.statistics()["listeners"] == 1


# --- fresh projects, in a subprocess --------------------------------------------------------


async def run_pytest(project: Path, *args: str) -> str:
    """`python -m pytest` in `project` (its own rootdir and config); its output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS")
    }
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=project,
            env=env,
            capture_stdout=True,
            stderr=subprocess.STDOUT,
            check=False,
        )
    output: str = done.stdout.decode()
    assert done.returncode == 0, output
    return output


async def test_five_line_test_in_a_trio_mode_project(tmp_path: Path) -> None:
    code_lines = [ln for ln in FIVE_LINE_TEST.splitlines() if ln.strip()]
    assert len(code_lines) == 5
    assert FIVE_LINE_TEST in (REPO / "docs" / "testing.md").read_text()
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    (tmp_path / "test_five.py").write_text(FIVE_LINE_TEST)
    output = await run_pytest(tmp_path)
    assert "1 passed" in output


async def test_marker_mode_project(tmp_path: Path) -> None:
    """Without trio_mode, `@pytest.mark.trio` tests get the async fixtures too."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.trio\n"
        "async def test_marked(appserver_client, appserver_server):\n"
        '    started = await appserver_client.request("thread/start")\n'
        '    assert started["thread"]["status"] == {"type": "idle"}\n'
    )
    output = await run_pytest(tmp_path)
    assert "1 passed" in output


async def test_project_without_pytest_trio_is_unaffected(tmp_path: Path) -> None:
    """The plugin loads (and its sync fixture works) with pytest-trio disabled."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_plain.py").write_text(
        "import sys\n\n"
        "def test_plain(appserver_config):\n"
        "    assert appserver_config.data_dir.name == 'appserver'\n"
        "    assert 'pytest_trio' not in sys.modules\n"
        "    assert 'appserver.testing' in sys.modules\n"
    )
    output = await run_pytest(tmp_path, "-p", "no:trio")
    assert "1 passed" in output
