"""Compaction and review with the openai backend (issue 14): the summary request and its
use in later turns, and reviews of changes gathered with read-only git in a real
repository made in tmp_path. Real HTTP to the fake chat-completions server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from agents.recording import RecordingContext
from fake_openai import FakeOpenAI, answer, chunk, stream_reply
from test_openai_backend import API_KEY, make_config, session

from appserver.agents import OpenAIChatAgent, OpenAISettings, TurnFailed, openai_git
from appserver.agents.openai_compact import COMPACT_INSTRUCTION, EMPTY_CONVERSATION
from appserver.agents.openai_messages import SUMMARY_PREFIX, history_messages
from appserver.agents.openai_review import REVIEW_INSTRUCTION

from support import SchemaChecker

TIMEOUT = 10
GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed on this machine")

Message = dict[str, Any]


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeOpenAI:
    server = FakeOpenAI()
    await nursery.start(server.serve)
    return server


def agent(fake: FakeOpenAI) -> OpenAIChatAgent:
    return OpenAIChatAgent(OpenAISettings(base_url=fake.url, model="m", retry_delay=0.01))


def user(text: str, item_id: str = "u") -> Message:
    return {"type": "userMessage", "id": item_id, "content": [{"type": "text", "text": text}]}


def said(text: str, item_id: str = "a") -> Message:
    return {"type": "agentMessage", "id": item_id, "text": text}


def turn(*items: Message) -> Message:
    return {"id": "t", "status": "completed", "error": None, "items": list(items)}


def compaction(summary: str | None) -> Message:
    entry: Message = {"type": "contextCompaction", "id": "c"}
    if summary is not None:
        entry["summary"] = summary
    return entry


# --- compaction --------------------------------------------------------------------------------


def test_a_summary_entry_replaces_the_turns_before_it() -> None:
    history = [
        turn(user("old question"), said("old answer")),
        compaction("S1"),
        turn(user("newer question"), said("newer answer")),
    ]
    assert history_messages(history) == [
        {"role": "user", "content": SUMMARY_PREFIX + "S1"},
        {"role": "user", "content": "newer question"},
        {"role": "assistant", "content": "newer answer"},
    ]


def test_a_summary_item_inside_a_turn_replaces_everything_before_it() -> None:
    """B's synthetic compaction turn; the latest summary wins; the wire item (no summary)
    changes nothing."""
    history = [
        turn(user("q1"), said("a1")),
        turn(compaction("first summary")),
        turn(user("q2"), said("a2")),
        turn(compaction("second summary"), user("q3")),
        turn(compaction(None)),
    ]
    assert history_messages(history) == [
        {"role": "user", "content": SUMMARY_PREFIX + "second summary"},
        {"role": "user", "content": "q3"},
    ]


async def test_compact_asks_for_a_summary_of_the_history(fake: FakeOpenAI, tmp_path: Path) -> None:
    command = {
        "type": "commandExecution",
        "id": "cmd1",
        "command": "ls",
        "cwd": str(tmp_path),
        "status": "completed",
        "exitCode": 0,
        "aggregatedOutput": "notes.txt\n",
    }
    history = [turn(user("list the files"), said("Looking."), command, said("One file."))]
    fake.script(answer("  The user asked ", "for the files; there is one.  \n"))
    ctx = RecordingContext(str(tmp_path), model="m", history=history)
    with trio.fail_after(TIMEOUT):
        summary = await agent(fake).compact(ctx)
    assert summary == "The user asked for the files; there is one."
    assert ctx.events == []  # the summary is returned, not said
    body = (await fake.request(1)).body
    assert "tools" not in body and body["stream"] is True and body["model"] == "m"
    system, request = body["messages"]
    assert system == {"role": "system", "content": COMPACT_INSTRUCTION}
    text = request["content"]
    assert text.startswith("The conversation to summarise:\n\nUser: list the files")
    assert "Agent: Looking." in text and "Agent: One file." in text
    assert 'Agent called shell: {"command": "ls"' in text
    assert "Tool result:\nExit code: 0\nOutput:\nnotes.txt" in text


async def test_compact_of_nothing_makes_no_request(fake: FakeOpenAI, tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path), model="m", history=[])
    assert await agent(fake).compact(ctx) == EMPTY_CONVERSATION
    assert fake.requests == []


async def test_an_empty_summary_fails(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.script(stream_reply(chunk(reasoning="hm"), chunk("  ", finish="stop")))
    ctx = RecordingContext(str(tmp_path), model="m", history=[turn(user("x"))])
    with pytest.raises(TurnFailed, match="empty summary"), trio.fail_after(TIMEOUT):
        await agent(fake).compact(ctx)
    assert ctx.events == []


async def test_a_later_turn_sends_the_summary_not_the_compacted_turns(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    history = [turn(user("secret old turn"), said("old reply")), compaction("S")]
    fake.script(answer("ok"))
    ctx = RecordingContext(str(tmp_path), model="m", history=history)
    with trio.fail_after(TIMEOUT):
        await agent(fake).run_turn(ctx, [{"type": "text", "text": "new question"}])
    messages = (await fake.request(1)).body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "user"]
    assert messages[1]["content"] == SUMMARY_PREFIX + "S"
    assert messages[2]["content"] == "new question"
    assert "secret old turn" not in json.dumps(messages)


# --- review ------------------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    assert GIT is not None
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    command = [GIT, "-c", "user.name=T", "-c", "user.email=t@example.com", *args]
    done = subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    return done.stdout.decode()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on `main` with one commit (a.txt, b.txt)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("beta\n")
    git(root, "add", "a.txt", "b.txt")
    git(root, "commit", "-qm", "first commit")
    return root


async def review(fake: FakeOpenAI, cwd: Path, target: Message, text: str = "LGTM") -> str:
    fake.script(answer(text))
    ctx = RecordingContext(str(cwd), model="m")
    with trio.fail_after(TIMEOUT):
        result = await agent(fake).review(ctx, target)
    assert ctx.events == []  # the review is returned, not said
    return result


def review_request(fake: FakeOpenAI) -> str:
    body = fake.requests[-1].body
    assert "tools" not in body
    system, request = body["messages"]
    assert system == {"role": "system", "content": REVIEW_INSTRUCTION}
    content: str = request["content"]
    return content


@needs_git
async def test_review_of_uncommitted_changes(fake: FakeOpenAI, repo: Path) -> None:
    (repo / "a.txt").write_text("alpha staged\n")
    git(repo, "add", "a.txt")
    (repo / "b.txt").write_text("beta unstaged\n")
    (repo / "new.txt").write_text("brand new\n")
    index = (repo / ".git" / "index").read_bytes()
    result = await review(fake, repo, {"type": "uncommittedChanges"}, "  [P1] a.txt: typo  ")
    assert result == "[P1] a.txt: typo"
    prompt = review_request(fake)
    assert prompt.startswith("Review the current code changes (staged, unstaged, and untracked")
    staged = prompt.index("Staged changes (git diff --cached):")
    unstaged = prompt.index("Unstaged changes (git diff):")
    untracked = prompt.index("Untracked files (not shown in the diffs):\nnew.txt")
    assert staged < prompt.index("+alpha staged") < unstaged < prompt.index("+beta unstaged")
    assert unstaged < untracked
    # git only read: the index is untouched and nothing was left behind
    assert (repo / ".git" / "index").read_bytes() == index
    assert not (repo / ".git" / "index.lock").exists()
    assert git(repo, "status", "--porcelain").splitlines() == ["M  a.txt", " M b.txt", "?? new.txt"]


@needs_git
async def test_review_against_a_base_branch(fake: FakeOpenAI, repo: Path) -> None:
    git(repo, "checkout", "-qb", "feature")
    (repo / "a.txt").write_text("alpha on feature\n")
    git(repo, "commit", "-qam", "feature work")
    git(repo, "checkout", "-q", "main")
    (repo / "b.txt").write_text("beta on main\n")
    git(repo, "commit", "-qam", "main moved on")
    git(repo, "checkout", "-q", "feature")
    await review(fake, repo, {"type": "baseBranch", "branch": "main"})
    prompt = review_request(fake)
    assert "against the base branch 'main'" in prompt
    assert "+alpha on feature" in prompt and "beta on main" not in prompt


@needs_git
async def test_review_of_a_commit(fake: FakeOpenAI, repo: Path) -> None:
    (repo / "b.txt").write_text("beta v2\n")
    git(repo, "commit", "-qam", "second commit")
    sha = git(repo, "rev-parse", "HEAD").strip()
    (repo / "a.txt").write_text("uncommitted\n")
    await review(fake, repo, {"type": "commit", "sha": sha[:10], "title": "second commit"})
    prompt = review_request(fake)
    assert f'commit {sha[:10]} ("second commit")' in prompt
    assert f"commit {sha}" in prompt and "second commit" in prompt and "+beta v2" in prompt
    assert "uncommitted" not in prompt.split("The change:", 1)[1]


async def test_custom_review_needs_no_repository(fake: FakeOpenAI, tmp_path: Path) -> None:
    await review(fake, tmp_path, {"type": "custom", "instructions": " Check the README. "})
    assert review_request(fake) == "Check the README."


@needs_git
async def test_a_clean_tree_is_answered_without_a_request(fake: FakeOpenAI, repo: Path) -> None:
    ctx = RecordingContext(str(repo), model="m")
    result = await agent(fake).review(ctx, {"type": "uncommittedChanges"})
    assert result == "Nothing to review: the working tree has no changes."
    assert fake.requests == []


@needs_git
async def test_a_long_diff_is_cut(
    fake: FakeOpenAI, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_git, "MAX_GIT_OUTPUT", 200)
    (repo / "a.txt").write_text("x" * 100_000 + "\n")
    await review(fake, repo, {"type": "uncommittedChanges"})
    prompt = review_request(fake)
    assert "[... cut: the output of `git diff --no-ext-diff" in prompt
    assert len(prompt) < 2000


@needs_git
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({"type": "baseBranch", "branch": "nope"}, "unknown branch 'nope' in the repository at"),
        ({"type": "baseBranch", "branch": "--output=x"}, "not a branch name: '--output=x'"),
        ({"type": "commit", "sha": "0123abcd"}, "unknown commit '0123abcd'"),
        ({"type": "commit", "sha": ""}, "a commit review needs a non-empty `sha`"),
        ({"type": "custom", "instructions": " "}, "needs non-empty `instructions`"),
        ({"type": "everything"}, "unknown review target type: 'everything'"),
    ],
    ids=["branch", "option-like", "sha", "no-sha", "no-instructions", "type"],
)
async def test_bad_targets_fail_clearly(
    fake: FakeOpenAI, repo: Path, target: Message, message: str
) -> None:
    ctx = RecordingContext(str(repo), model="m")
    with pytest.raises(TurnFailed) as info, trio.fail_after(TIMEOUT):
        await agent(fake).review(ctx, target)
    assert message in info.value.message
    assert fake.requests == []
    assert not (repo / "x").exists()


@needs_git
async def test_not_a_repository(fake: FakeOpenAI, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    ctx = RecordingContext(str(plain), model="m")
    with pytest.raises(TurnFailed) as info, trio.fail_after(TIMEOUT):
        await agent(fake).review(ctx, {"type": "uncommittedChanges"})
    assert info.value.message == f"cannot review: {plain} is not in a git repository"


async def test_git_missing(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git there
    ctx = RecordingContext(str(tmp_path), model="m")
    with pytest.raises(TurnFailed) as info, trio.fail_after(TIMEOUT):
        await agent(fake).review(ctx, {"type": "commit", "sha": "HEAD"})
    assert info.value.message == "cannot review: git is not installed (it is not on PATH)"


@needs_git
async def test_a_slow_git_is_stopped(
    fake: FakeOpenAI, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_git, "GIT_TIMEOUT", 0)
    ctx = RecordingContext(str(repo), model="m")
    with pytest.raises(TurnFailed) as info, trio.fail_after(TIMEOUT):
        await agent(fake).review(ctx, {"type": "uncommittedChanges"})
    assert info.value.message == "cannot review: git rev-parse --git-dir took longer than 0 s"


# --- end to end: thread/compact/start and review/start ----------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text(API_KEY + "\n", encoding="utf-8")
    return path


async def test_compact_then_a_later_turn_sends_the_summary(
    fake: FakeOpenAI, key_file: Path, schema_checker: SchemaChecker
) -> None:
    fake.script(
        answer("The capital is Paris."),
        answer("User asked for France's capital: Paris."),
        answer("About 2 million."),
    )
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id, turn = await s.run("capital of France?")
        assert turn["status"] == "completed"
        assert await s.client.request("thread/compact/start", {"threadId": thread_id}) == {}
        compacted = await s.completed(thread_id)
        assert compacted["status"] == "completed"
        (item,) = [i for i in s.items() if i["type"] == "contextCompaction"]
        assert "summary" not in item  # never on the wire
        await s.start_turn(thread_id, "and its population?")
        assert (await s.completed(thread_id))["status"] == "completed"
    summary_request = (await fake.request(2)).body
    assert summary_request["messages"][0]["content"] == COMPACT_INSTRUCTION
    assert "User: capital of France?" in summary_request["messages"][1]["content"]
    later = (await fake.request(3)).body["messages"]
    assert [m["role"] for m in later] == ["system", "user", "user"]
    assert later[1]["content"] == SUMMARY_PREFIX + "User asked for France's capital: Paris."
    assert later[2]["content"] == "and its population?"
    assert "The capital is Paris." not in json.dumps(later)


@needs_git
async def test_review_start_reviews_the_working_tree(
    fake: FakeOpenAI, key_file: Path, repo: Path, schema_checker: SchemaChecker
) -> None:
    (repo / "a.txt").write_text("alpha changed\n")
    fake.script(answer("[P2] a.txt: the change drops alpha."))
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id = await s.start_thread(cwd=str(repo))
        result = await s.client.request(
            "review/start", {"threadId": thread_id, "target": {"type": "uncommittedChanges"}}
        )
        assert result["reviewThreadId"] == thread_id
        turn = await s.completed(thread_id)
        assert turn["status"] == "completed"
        exited = [i for i in s.items() if i["type"] == "exitedReviewMode"]
        assert [i["review"] for i in exited] == ["[P2] a.txt: the change drops alpha."]
    assert "+alpha changed" in review_request(fake)


@needs_git
async def test_review_start_outside_a_repository_fails_the_turn(
    fake: FakeOpenAI, key_file: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread(cwd=str(plain))
        await s.client.request(
            "review/start", {"threadId": thread_id, "target": {"type": "commit", "sha": "HEAD"}}
        )
        turn = await s.completed(thread_id)
        assert turn["status"] == "failed"
        assert turn["error"]["message"] == f"cannot review: {plain} is not in a git repository"
        assert {i["id"] for i in s.items("item/started")} == {i["id"] for i in s.items()}
    assert fake.requests == []
