from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from .support import SdkEnv, sdk_env
from support import schemas_available


@pytest.fixture
def sdk(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SdkEnv]:
    """SDK factory for one test: its own data dir, a wire log and a watchdog. At teardown
    every message of the test is checked against the Codex 0.171 schemas (as the root
    conftest does for appserver.client.Client; the `no_schema_check` marker opts out)."""
    with sdk_env(tmp_path, monkeypatch) as env:
        request.node.stash[_ENV] = env
        yield env
    if request.node.get_closest_marker("no_schema_check") is not None or not schemas_available():
        return
    problems = env.wire.schema_problems()
    if problems:
        pytest.fail(
            f"{len(problems)} message(s) do not match the Codex 0.171 schemas:\n"
            + "\n".join(problems[:10]),
            pytrace=False,
        )


_ENV = pytest.StashKey[SdkEnv]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    env = item.stash.get(_ENV, None)
    if env is not None and report.failed:
        if env.watchdog.fired:
            report.sections.append(
                (
                    "sdk watchdog",
                    f"timed out: after {env.watchdog.timeout:.0f} s the watchdog killed the "
                    "server so the blocked SDK call could fail",
                )
            )
        report.sections.append(("sdk wire (last messages)", env.wire.tail()))
        report.sections.append(("server stderr (tail)", env.wire.stderr_tails()))
    return report
