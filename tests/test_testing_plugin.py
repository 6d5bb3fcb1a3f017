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
from appserver.testing import ServerFactory, TurnTimeout, run_turn

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


async def test_run_turn_times_out(appserver_client: Client) -> None:
    """`run_turn(..., timeout=)` raises TurnTimeout, never hangs; the turn left running
    is interrupted by the fixture's server at teardown."""
    thread_id = (await appserver_client.request("thread/start"))["thread"]["id"]
    with trio.fail_after(TIMEOUT):
        before = trio.current_time()
        try:
            await run_turn(appserver_client, thread_id, "/sleep 60", timeout=0.5)
        except TurnTimeout as exc:
            assert "did not complete within 0.5 s" in str(exc)
            assert "turn/started" in str(exc)
        else:
            raise AssertionError("no TurnTimeout")
        assert trio.current_time() - before < 5


async def test_factory_restarts_on_the_same_data_dir(appserver_factory: ServerFactory) -> None:
    first = await appserver_factory.start()
    async with first.connect() as client:
        await client.initialize("factory")
        thread_id = (await client.request("thread/start"))["thread"]["id"]
    again = await appserver_factory.restart(first)
    assert again is not first and again.config.data_dir == first.config.data_dir
    other = await appserver_factory.start(ServerConfig())
    async with again.connect() as client, other.connect() as second:
        await client.initialize("factory")
        await second.initialize("factory")
        listed = await client.request("thread/list")
        assert [t["id"] for t in listed["data"]] == [thread_id]
        assert (await second.request("thread/list"))["data"] == []


def test_helpers_import_without_pytest() -> None:
    code = (
        "import sys\n"
        "sys.modules['pytest'] = None\n"
        "from appserver.testing import run_turn, text_input, TurnResult, TurnTimeout\n"
        "assert text_input('hi') == [{'type': 'text', 'text': 'hi'}]\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


async def run_pytest(project: Path, *args: str, ok: bool = True) -> str:
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
    assert (done.returncode == 0) == ok, output
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


async def test_a_turn_left_running_does_not_slow_teardown(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
    (tmp_path / "test_left.py").write_text(
        "async def test_left(appserver_client):\n"
        '    thread = (await appserver_client.request("thread/start"))["thread"]\n'
        '    text = [{"type": "text", "text": "/sleep 60"}]\n'
        '    params = {"threadId": thread["id"], "input": text}\n'
        '    await appserver_client.request("turn/start", params)\n'
    )
    before = trio.current_time()
    output = await run_pytest(tmp_path)
    assert "1 passed" in output
    assert trio.current_time() - before < 20  # was 30 s of shutdown grace


async def test_async_fixture_without_trio_mode_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_unmarked.py").write_text(
        "async def test_unmarked(appserver_client):\n    pass\n\n"
        "def test_sync(appserver_server):\n    pass\n"
    )
    output = await run_pytest(tmp_path, "-W", "ignore", ok=False)
    assert "test_unmarked.py::test_unmarked uses appserver_client" in output
    assert "test_unmarked.py::test_sync uses appserver_server" in output
    assert "trio_mode = true" in output and "2 error" in output


def test_packaging_license_classifiers_and_the_pytest_extra() -> None:
    """Issue 17's packaging points, read from pyproject.toml (the source of the wheel's
    metadata): a LICENSE file, `Typing :: Typed` (with the py.typed marker), the
    `appserver[pytest]` extra and the plugin's entry point."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert (REPO / "LICENSE").is_file()
    assert "Typing :: Typed" in project["classifiers"]
    assert (REPO / "appserver" / "py.typed").is_file()
    extra = " ".join(project["optional-dependencies"]["pytest"])
    assert "pytest-trio" in extra and "pytest>=" in extra
    assert project["entry-points"]["pytest11"] == {"appserver": "appserver.testing"}
