"""Every code snippet in README.md and docs/*.md runs (docs/testing.md, "Snippets in the
docs", describes the convention):

- a ```python block runs as a script in a subprocess, in an empty temporary directory,
  with `APPSERVER_URL` set to the ws:// URL of a real `appserver --in-memory` process
  (one per module, shared by the snippets);
- a ```python block after `<!-- run: pytest -->` is a test file: it runs with
  `python -m pytest` in a temporary project whose pytest.ini sets `trio_mode = true`;
- a ```python block after `<!-- no-run: REASON -->` is not run (the reason is required);
- a ```sh block runs (bash -euo pipefail, same directory and environment, HOME set to a
  temporary directory, the venv's bin on PATH) only after `<!-- run -->`; other shell
  blocks are illustrations.

Each snippet must exit 0; snippets check their own results with `assert`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from support import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TIMEOUT = 30
MARKER = re.compile(r"^<!--\s*(?P<kind>no-run|run: pytest|run)(?::\s*(?P<reason>.*?))?\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")


@attrs.frozen
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str | None  # "run", "no-run", "run: pytest" or None
    reason: str | None
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def runs(self) -> bool:
        if self.lang == "python":
            return self.marker != "no-run"
        return self.lang == "sh" and self.marker == "run"


def parse(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        start = i
        i += 1
        while i < len(lines) and lines[i] != "```":
            i += 1
        assert i < len(lines), f"{path}:{start + 1}: unclosed code block"
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = MARKER.match(before.strip())
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                lang=opening["lang"],
                marker=marker["kind"] if marker else None,
                reason=marker["reason"] if marker else None,
                code="\n".join(lines[start + 1 : i]) + "\n",
            )
        )
        i += 1
    return blocks


ALL_BLOCKS = [block for path in DOCS for block in parse(path)]
RUNNABLE = [block for block in ALL_BLOCKS if block.runs]


@pytest.fixture(scope="module")
def appserver_url() -> Iterator[str]:
    """A real `appserver --in-memory` on a free port, shared by this module's snippets."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "appserver", "--listen", "ws://127.0.0.1:0", "--in-memory"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:  # ends at EOF if the server exits early
        seen.append(line)
        if line.startswith("appserver listening on "):
            break
    else:
        raise AssertionError(f"appserver exited before its banner: {''.join(seen)}")
    url = line.removeprefix("appserver listening on ").strip()
    drain = threading.Thread(target=proc.stderr.read, daemon=True)
    drain.start()
    try:
        yield url
    finally:
        proc.terminate()
        assert proc.wait(timeout=TIMEOUT) == 0
        drain.join(timeout=TIMEOUT)
        proc.stderr.close()


def run(argv: list[str], cwd: Path, url: str, block: Block) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
        "APPSERVER_URL": url,
        "HOME": str(cwd),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0, (
        f"{block.id} exited {done.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
    )


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.id for b in RUNNABLE])
def test_snippet_runs(block: Block, appserver_url: str, tmp_path: Path) -> None:
    if block.lang == "sh":
        run(["bash", "-euo", "pipefail", "-c", block.code], tmp_path, appserver_url, block)
    elif block.marker == "run: pytest":
        (tmp_path / "pytest.ini").write_text("[pytest]\ntrio_mode = true\n")
        (tmp_path / "test_snippet.py").write_text(block.code)
        run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            tmp_path,
            appserver_url,
            block,
        )
    else:
        (tmp_path / "snippet.py").write_text(block.code)
        run([sys.executable, "snippet.py"], tmp_path, appserver_url, block)


def test_every_python_block_runs_unless_marked() -> None:
    """Counted independently of `parse`: every ```python fence either runs or carries a
    `<!-- no-run: REASON -->` marker with a reason."""
    fences = sum(
        sum(1 for ln in path.read_text().splitlines() if ln.rstrip() == "```python")
        for path in DOCS
    )
    python = [b for b in ALL_BLOCKS if b.lang == "python"]
    assert len(python) == fences
    not_run = [b for b in python if not b.runs]
    assert all(b.marker == "no-run" and b.reason for b in not_run), [b.id for b in not_run]
    assert len([b for b in RUNNABLE if b.lang == "python"]) == fences - len(not_run)


def test_markers_are_known_and_placed() -> None:
    """A run marker is never stranded (before prose or a block it does not apply to)."""
    for path in DOCS:
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if not MARKER.match(line.strip()):
                continue
            after = next((ln for ln in lines[n + 1 :] if ln.strip()), "")
            fence = FENCE.match(after)
            assert fence is not None, f"{path}:{n + 1}: marker not followed by a code block"
            kind = MARKER.match(line.strip())
            assert kind is not None
            if kind["kind"] == "run":
                assert fence["lang"] == "sh", f"{path}:{n + 1}: <!-- run --> is for sh blocks"
            else:
                assert fence["lang"] == "python", f"{path}:{n + 1}: {kind['kind']} is for python"


def test_docs_pages_exist_and_are_linked() -> None:
    readme = (REPO / "README.md").read_text()
    for page in ("protocol", "embedding", "agents", "testing", "operations"):
        assert (REPO / "docs" / f"{page}.md").is_file()
        assert f"(docs/{page}.md)" in readme
    assert len(RUNNABLE) >= 10


def test_agents_page_documents_the_whole_contract() -> None:
    """docs/agents.md ("Writing an agent backend") names every member of the protocols an
    agent backend sees (agents/base.py), so the documented contract stays complete, and
    its snippets run (above)."""
    from appserver.agents import base

    page = (REPO / "docs" / "agents.md").read_text()
    assert page.startswith("# Writing an agent backend\n")
    protocols = [
        base.TurnContext,
        base.Steering,
        base.TalkingBack,
        base.Compacting,
        base.Reviewing,
        base.AgentBackend,
    ]
    for protocol in protocols:
        assert f"`appserver.agents.base.{protocol.__name__}`" in page or (
            f"`{protocol.__name__}`" in page
        ), protocol
        members = [
            name
            for name in [*vars(protocol), *getattr(protocol, "__annotations__", {})]
            if not name.startswith("_")
        ]
        assert members, protocol
        for name in members:
            assert f"`{name}" in page, f"{protocol.__name__}.{name} is not in docs/agents.md"
    for name in ("TurnFailed", "TurnCancelled", "trio.Cancelled", "ServerConfig(agents="):
        assert name in page
    assert 'entry-points."appserver.agents"' in page
    assert len([b for b in RUNNABLE if b.path.name == "agents.md"]) >= 3
