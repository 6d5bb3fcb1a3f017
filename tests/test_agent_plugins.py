"""Bring your own agent (issue 15, docs/agents.md): `ServerConfig(agents=...)` serves an
embedder's backend per thread and as the default, model/list and modelProvider/list list
it, and a third-party plugin installed into a fresh virtualenv (tests/fixtures/
appserver_echo_plugin, entry point group `appserver.agents`) is served by
`appserver --agent echo` run from that virtualenv over stdio."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from threads_support import (
    completed_items,
    completed_turn,
    error_paths,
    new_thread,
    rpc_error,
    run_turn,
    start_thread,
)

from appserver.agents import (
    ENTRY_POINT_GROUP,
    AgentModel,
    AgentUnavailable,
    TurnContext,
    TurnFailed,
    installed_plugins,
)
from appserver.agents.base import agent_message_item
from appserver.client import Client, connect_websocket, spawn_stdio
from appserver.server import ServerConfig, open_server

from support import REPO

TIMEOUT = 20
PLUGIN = REPO / "tests" / "fixtures" / "appserver_echo_plugin"


class ShoutAgent:
    """Answers in capitals, naming its model and how many earlier turns it sees."""

    name = "shout"
    display_name = "Shouting agent"
    models = [
        AgentModel("loud-1", display_name="Loud", input_modalities=("text", "image")),
        "loud-2",
    ]

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        text = " ".join(p["text"] for p in user_input if p["type"] == "text")
        if text == "fail":
            raise TurnFailed("shout refused")
        earlier = len(await ctx.history())
        reply = f"{text.upper()}! ({ctx.model}, {earlier} earlier)"
        item = agent_message_item(ctx.new_item_id(), reply)
        await ctx.item_started({**item, "text": ""})
        await ctx.agent_message_delta(item["id"], reply)
        await ctx.item_completed(item)


class PlainAgent:
    """No `models`, no `display_name`: one model named after the provider."""

    name = "plain"

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        item = agent_message_item(ctx.new_item_id(), "plain")
        await ctx.item_started(item)
        await ctx.item_completed(item)


def config(**overrides: Any) -> ServerConfig:
    return ServerConfig(
        data_dir=None, agents={"shout": ShoutAgent, "plain": PlainAgent}, **overrides
    )


@asynccontextmanager
async def clients(cfg: ServerConfig) -> AsyncIterator[tuple[Client, Client]]:
    """An in-process client and a websocket client of one server."""
    async with open_server(cfg) as server, trio.open_nursery() as nursery:
        port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        async with server.connect() as memory, connect_websocket(f"ws://127.0.0.1:{port}") as ws:
            await memory.initialize("plugins-memory")
            await ws.initialize("plugins-ws")
            yield memory, ws
        nursery.cancel_scope.cancel()


def agent_text(events: list[dict[str, Any]]) -> str:
    (item,) = [i for i in completed_items(events) if i["type"] == "agentMessage"]
    return str(item["text"])


async def test_server_config_agent_per_thread() -> None:
    with trio.fail_after(TIMEOUT):
        async with clients(config()) as (memory, ws):
            for client in (memory, ws):
                started = await start_thread(client, modelProvider="shout")
                assert (started["modelProvider"], started["model"]) == ("shout", "loud-1")
                thread_id = started["thread"]["id"]
                _, events = await run_turn(client, thread_id, "hello")
                assert agent_text(events) == "HELLO! (loud-1, 0 earlier)"
                _, events = await run_turn(client, thread_id, "again")
                assert agent_text(events) == "AGAIN! (loud-1, 1 earlier)"
                _, events = await run_turn(client, thread_id, "fail")
                turn = completed_turn(events)
                assert turn["status"] == "failed" and turn["error"]["message"] == "shout refused"

            # The server's default stays builtin; a thread names another model of shout.
            builtin = await new_thread(memory)
            _, events = await run_turn(memory, builtin, "hi")
            assert agent_text(events) == "You said: hi"
            other = await start_thread(memory, modelProvider="shout", model="loud-2")
            _, events = await run_turn(memory, other["thread"]["id"], "x")
            assert agent_text(events) == "X! (loud-2, 0 earlier)"

            # thread/resume switches a thread's provider; thread/fork picks one for the copy.
            resumed = await memory.request(
                "thread/resume", {"threadId": builtin, "modelProvider": "plain"}
            )
            assert resumed["modelProvider"] == "plain"
            _, events = await run_turn(memory, builtin, "hi")
            assert agent_text(events) == "plain"
            fork = await memory.request(
                "thread/fork", {"threadId": builtin, "modelProvider": "shout"}
            )
            assert (fork["modelProvider"], fork["model"]) == ("shout", "loud-1")
            _, events = await run_turn(memory, fork["thread"]["id"], "forked")
            assert agent_text(events) == "FORKED! (loud-1, 2 earlier)"

            # An unknown provider is invalid params, as before.
            error = await rpc_error(ws, "thread/start", {"modelProvider": "nobody"})
            assert error_paths(error) == {"modelProvider"} and "'nobody'" in error.message


async def test_own_agent_as_the_server_default() -> None:
    with trio.fail_after(TIMEOUT):
        async with clients(config(agent="shout")) as (memory, ws):
            started = await start_thread(ws)
            assert (started["modelProvider"], started["model"]) == ("shout", "loud-1")
            _, events = await run_turn(ws, started["thread"]["id"], "default")
            assert agent_text(events) == "DEFAULT! (loud-1, 0 earlier)"
            cfg = (await memory.request("config/read", {}))["config"]
            assert (cfg["model"], cfg["model_provider"]) == ("loud-1", "shout")
            providers = await memory.request("modelProvider/list", {})
            assert providers["defaultProviderId"] == "shout"
            models = await memory.request("model/list", {})  # the default provider's
            assert [m["id"] for m in models["data"]] == ["loud-1", "loud-2"]


async def test_model_list_and_provider_list_include_own_agents() -> None:
    with trio.fail_after(TIMEOUT):
        async with clients(config()) as (memory, ws):
            providers = await ws.request("modelProvider/list", {})
            assert [p["id"] for p in providers["data"]] == ["builtin", "openai", "shout", "plain"]
            by_id = {p["id"]: p for p in providers["data"]}
            assert by_id["shout"] == {
                "id": "shout",
                "name": "Shouting agent",
                "canEdit": False,
                "settings": {"type": "customGateway", "auth": {"mode": "none"}},
                "baseUrl": None,
            }
            assert by_id["plain"]["name"] == "plain"
            assert providers["defaultProviderId"] == "builtin"

            models = await ws.request("model/list", {"modelProvider": "shout"})
            data = models["data"]
            assert [(m["id"], m["displayName"], m["isDefault"]) for m in data] == [
                ("loud-1", "Loud", True),
                ("loud-2", "loud-2", False),
            ]
            assert data[0]["inputModalities"] == ["text", "image"]
            assert data[1]["inputModalities"] == ["text"]
            assert "Shouting agent" in data[1]["description"]
            first = await ws.request("model/list", {"modelProvider": "shout", "limit": 1})
            assert [m["id"] for m in first["data"]] == ["loud-1"] and first["nextCursor"] == "1"
            plain = await memory.request("model/list", {"modelProvider": "plain"})
            assert [m["id"] for m in plain["data"]] == ["plain"]
            started = await start_thread(memory, modelProvider="plain")
            assert started["model"] == "plain"
            error = await rpc_error(memory, "model/list", {"modelProvider": "nobody"})
            assert error_paths(error) == {"modelProvider"}


class NotAnAgent:
    name = "nothing"


def failing_factory() -> ShoutAgent:
    raise RuntimeError("no licence")


class BadModels(ShoutAgent):
    models: Any = []


class TwiceModels(ShoutAgent):
    models: Any = ["a", AgentModel("a")]


class VideoModels(ShoutAgent):
    models: Any = [AgentModel("v", input_modalities=("video",))]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("agents", "agent", "message"),
    [
        ({"builtin": ShoutAgent}, "builtin", "'builtin' is a builtin agent's name"),
        ({"x": NotAnAgent}, "builtin", "has no run_turn method"),
        ({"x": failing_factory}, "builtin", "ServerConfig.agents['x']: RuntimeError: no licence"),
        ({"x": BadModels}, "builtin", "`models` must be a non-empty sequence"),
        ({"x": TwiceModels}, "builtin", "`models` names a model twice: ['a', 'a']"),
        ({"x": VideoModels}, "builtin", "model 'v': input_modalities must be some of"),
        ({"shout": ShoutAgent}, "nobody", "unknown agent 'nobody' (known: builtin, openai, shout)"),
    ],
)
async def test_agents_that_do_not_fit_are_refused_at_start(
    agents: dict[str, Any], agent: str, message: str
) -> None:
    with pytest.raises(AgentUnavailable, match=re.escape(message)):
        async with open_server(ServerConfig(data_dir=None, agents=agents, agent=agent)):
            pass


# --- a plugin installed into a fresh virtualenv ----------------------------------------------


# What building the plugin without network needs from the project venv: pip, setuptools
# with a bdist_wheel command (its own from 70.1 on, else the `wheel` package), appserver.
BUILD_CHECK = """
import importlib.util, pip, setuptools, appserver
major, minor = (int(n) for n in setuptools.__version__.split(".")[:2])
assert (major, minor) >= (70, 1) or importlib.util.find_spec("wheel"), (
    f"setuptools {setuptools.__version__} needs the wheel package to build a wheel"
)
"""


def make_plugin_venv(tmp_path: Path) -> Path:
    """A virtualenv with no packages of its own but the plugin: the project venv's packages
    and the repo are made importable by a .pth file, and the plugin is installed without
    network (no index, no build isolation: setuptools comes from the project venv)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    (Path(site) / "_appserver_project.pth").write_text(f"{ours}\n{REPO}\n")
    check = subprocess.run([str(python), "-c", BUILD_CHECK], capture_output=True, text=True)
    assert check.returncode == 0, f"the new venv cannot build the plugin: {check.stderr}"
    source = tmp_path / "plugin-src"  # pip builds in the tree: keep the repo clean
    shutil.copytree(PLUGIN, source)
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            str(source),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return python


async def test_plugin_installed_in_a_fresh_venv_is_served(tmp_path: Path) -> None:
    # The project venv does not have the plugin: only the new venv can find it.
    assert "echo" not in [ep.name for ep in installed_plugins()]
    python = await trio.to_thread.run_sync(make_plugin_venv, tmp_path)
    appserver = [str(python), "-m", "appserver"]

    help_text = await trio.run_process([*appserver, "--help"], capture_stdout=True)
    assert "installed: broken, echo" in " ".join(help_text.stdout.decode().split())

    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(
            ["--agent", "echo", "--in-memory", "--log-level", "warning"],
            command=appserver,
            stderr=subprocess.PIPE,
        ) as client:
            await client.initialize("plugin-test")
            providers = await client.request("modelProvider/list", {})
            assert providers["defaultProviderId"] == "echo"
            assert [p["id"] for p in providers["data"]] == ["builtin", "openai", "echo"]
            assert providers["data"][2]["name"] == "Echo plugin"
            models = await client.request("model/list", {})
            assert [(m["id"], m["displayName"]) for m in models["data"]] == [
                ("echo-1", "Echo 1"),
                ("echo-2", "echo-2"),
            ]
            started = await start_thread(client)
            assert (started["modelProvider"], started["model"]) == ("echo", "echo-1")
            _, events = await run_turn(client, started["thread"]["id"], "hi there")
            assert agent_text(events) == "echo: hi there (echo-1)"
            builtin = await new_thread(client, modelProvider="builtin")
            _, events = await run_turn(client, builtin, "hi")
            assert agent_text(events) == "You said: hi"
            # The plugin that failed to load is left out, and refused with its reason.
            error = await rpc_error(client, "thread/start", {"modelProvider": "broken"})
            assert error_paths(error) == {"modelProvider"}
            assert "'broken' is unavailable" in error.message
            assert "appserver_echo_plugin.missing" in error.message
            assert "ModuleNotFoundError" in error.message

    # Selected as the default, the broken plugin stops the server with one clear line.
    with trio.fail_after(TIMEOUT):
        refused = await trio.run_process(
            [*appserver, "--agent", "broken", "--in-memory"],
            stdin=b"",
            capture_stderr=True,
            check=False,
        )
    assert refused.returncode == 2
    last = refused.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("appserver: error: --agent: agent 'broken' is unavailable")
    assert "entry point broken = appserver_echo_plugin.missing:Agent" in last

    # In that venv an embedder sees the plugin too, may turn plugins off, and its own
    # agent of the same name wins over the plugin's.
    probe = await trio.run_process(
        [str(python), "-c", EMBEDDER_PROBE], capture_stdout=True, capture_stderr=True
    )
    assert probe.stdout.decode().split() == [
        "builtin,openai,echo:EchoAgent",
        "builtin,openai",
        "builtin,openai,echo:Mine",
    ]


EMBEDDER_PROBE = f"""
from appserver.server import ServerConfig

class Mine:
    name = "mine"
    async def run_turn(self, ctx, user_input): pass

for config in (
    ServerConfig(), ServerConfig(agent_plugins=False), ServerConfig(agents={{"echo": Mine}})
):
    backends = config.backends()
    names = backends.names()
    if "echo" in names:
        names[-1] += ":" + type(backends.get("echo")).__name__
    print(",".join(names))
assert {ENTRY_POINT_GROUP!r} == "appserver.agents"
"""


def test_unknown_default_agent_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "appserver", "--agent", "nobody", "--in-memory"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "appserver: error: --agent: unknown agent 'nobody' (known: builtin, openai)"
    ]
