"""`appserver-codex`: the Codex command line (`codex [-c K=V]... app-server ...`) that Codex
SDKs launch, as a real subprocess, plus the translation itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from appserver._version import __version__
from appserver.client import spawn_stdio
from appserver.codex_cli import CodexUsageError, main, plan_from_args

from support import SchemaChecker

TIMEOUT = 30
_SCRIPT = Path(sys.executable).parent / "appserver-codex"
CODEX_BIN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "appserver.codex_cli"]


def warnings_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("appserver-codex: ")]


async def test_sdk_launch_line_over_stdio(tmp_path: Path, schema_checker: SchemaChecker) -> None:
    """Exactly what the SDK runs: CODEX_BIN --config K=V app-server --listen stdio://."""
    err_path = tmp_path / "stderr"
    env = {**os.environ, "APPSERVER_HOME": str(tmp_path / "home")}
    with err_path.open("wb") as err, trio.fail_after(TIMEOUT):
        async with spawn_stdio(
            ["--config", "a=b", "app-server", "--listen", "stdio://"],
            command=CODEX_BIN,
            env=env,
            stderr=err.fileno(),
        ) as client:
            client.observer = schema_checker.check
            result = await client.initialize("sdk")
            assert result["codexHome"] == str(tmp_path / "home")
            assert result["serverInfo"]["version"].startswith("0.171.0 ")
            started = await client.request("thread/start", {})
            assert started["thread"]["id"]
        assert client.process is not None and client.process.returncode == 0
    assert warnings_in(err_path.read_text()) == [
        "appserver-codex: ignoring --config a=b (appserver has no such setting)"
    ]
    assert (tmp_path / "home" / "appserver.sqlite3").exists()


def test_generate_json_schema_writes_the_export(tmp_path: Path) -> None:
    out = tmp_path / "schema"
    done = subprocess.run(
        [
            *CODEX_BIN,
            *("--config", "x=1", "app-server", "generate-json-schema", "--experimental"),
            *("--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    written = list(out.rglob("*.json"))
    assert len(written) > 10
    assert all(isinstance(json.loads(p.read_text()), dict) for p in written)
    assert len(warnings_in(done.stderr)) == 1


def test_mapping_and_warnings() -> None:
    plan = plan_from_args(
        [
            *("-c", 'model="gpt-x"', "--config=model_provider=openai"),
            *("--enable", "foo", "-c", "approval_policy=never", "-s", "read-only"),
            *("app-server", "--stdio", "--disable", "bar", "--strict-config"),
            *("--ws-auth=capability-token", "--ws-token-sha256", "ab" * 32),
            *("--in-memory", "--log-level", "debug", "--analytics-default-enabled"),
        ]
    )
    assert plan.action == "serve"
    assert plan.argv == [
        *("--model", "gpt-x", "--agent", "openai", "--listen", "stdio://"),
        *("--ws-auth", "capability-token", "--ws-token-sha256", "ab" * 32),
        *("--in-memory", "--log-level", "debug"),
    ]
    assert plan.warnings == [
        "ignoring --enable foo (appserver has no feature flags)",
        "ignoring --config approval_policy=never (appserver has no such setting)",
        "ignoring --sandbox read-only (not used by appserver)",
        "ignoring --disable bar (appserver has no feature flags)",
        "ignoring --strict-config (not used by appserver)",
        "ignoring --analytics-default-enabled (not used by appserver)",
    ]
    cd = plan_from_args(["-C", "/tmp", "-m", "o3", "app-server", "--model", "mine"])
    assert cd.cwd == "/tmp" and cd.argv == ["--model", "o3", "--model", "mine"]
    unknown = plan_from_args(["-c", "model_provider=azure", "app-server"])
    assert unknown.warnings == [
        "ignoring --config model_provider=azure (appserver's providers are builtin and openai)"
    ]
    schema = plan_from_args(["app-server", "generate-json-schema", "-o", "/x"])
    assert (schema.action, schema.argv) == ("schema", ["--out", "/x"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "expected the app-server subcommand"),
        (["exec", "hi"], "only the app-server subcommand"),
        (["app-server", "generate-ts", "--out", "x"], "not supported"),
        (["app-server", "daemon"], "not supported"),
        (["app-server", "--bogus"], "unexpected argument"),
        (["app-server", "generate-json-schema"], "--out DIR is required"),
        (["-c", "novalue", "app-server"], "KEY=VALUE"),
        (["app-server", "--listen"], "needs a value"),
    ],
)
def test_bad_command_lines(args: list[str], needle: str) -> None:
    with pytest.raises(CodexUsageError, match=needle):
        plan_from_args(args)


def test_version_help_and_startup_config(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--version"], ["app-server", "--version"], ["-V"]):
        assert main(args) == 0
        assert capsys.readouterr().out == f"codex-cli 0.171.0 (appserver {__version__})\n"
    assert main(["app-server", "--help"]) == 0
    assert "CodexConfig(codex_bin=" in capsys.readouterr().out
    assert main(["app-server", "--print-startup-config"]) == 0
    assert json.loads(capsys.readouterr().out)["appServerVersion"] == "0.171.0"
    assert main(["login"]) == 2
    assert capsys.readouterr().err.startswith("appserver-codex: error: ")
