"""diff.py scenarios for `fuzzyFileSearch`: run with

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \\
        ".venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/fuzzy_search.py \\
        --scenario tests/codex_scenarios/fuzzy_search.py:errors --values \\
        --scenario tests/codex_scenarios/fuzzy_search.py:capabilities

With `--values` the results (scores, indices, order; diff.py ignores paths) are compared
too: none differs (the transcripts match file for file). Expected differences: bad params
are -32602 with `data` here (the reference: -32600 without); the capabilities' values
(the reference's provider has both, appserver's backends neither).

Each function takes one diff.py `Session`; this file is run by diff.py, not by pytest.
"""

from __future__ import annotations

import os
from typing import Any


def mk(root: str, rel: str, data: str = "x") -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(data)


def tree(base: str) -> tuple[str, str]:
    """A git repository (with ignore files, hidden files, a symlink, accents) and a plain
    directory whose .gitignore does not apply (not in a repository)."""
    repo, plain = os.path.join(base, "repo"), os.path.join(base, "plain")
    os.makedirs(os.path.join(repo, ".git"))
    mk(repo, ".git/HEAD", "ref: refs/heads/main\n")
    mk(repo, ".gitignore", "ignored_dir/\n*.log\n")
    mk(repo, ".ignore", "dotignored_*\n")
    mk(repo, "src/main.py")
    mk(repo, "src/utils/helper.py")
    mk(repo, "README.md")
    mk(repo, ".hidden/secret_main.py")
    mk(repo, ".env_main")
    mk(repo, "ignored_dir/main.js")
    mk(repo, "debug_main.log")
    mk(repo, "dotignored_main.txt")
    mk(repo, "sub/.gitignore", "inner_*\n")
    mk(repo, "sub/inner_main.txt")
    mk(repo, "sub/outer_main.txt")
    mk(repo, "m_a_i_n.txt")
    mk(repo, "xmainx.txt")
    mk(repo, "ma/in.txt")
    mk(repo, "main")
    mk(repo, "café/Main.txt")
    mk(repo, "MAIN_UPPER.md")
    os.makedirs(os.path.join(repo, "docs", "mainland"))
    os.symlink(os.path.join(repo, "src"), os.path.join(repo, "linked"))
    mk(plain, ".gitignore", "*.py\n")
    mk(plain, "main.py")
    mk(plain, "other_main.rs")
    return repo, plain


def scenario(s: Any) -> None:
    """queries: files and directories, ignore rules, case, accents, words, two roots"""
    s.initialize()
    repo, plain = tree(s.cwd)
    for query in ("main", "MAIN", "mainx", "src", "cafe", "utl hlp", "HEAD", "u", "ma/in"):
        s.request("fuzzyFileSearch", {"query": query, "roots": [repo]})
    s.request("fuzzyFileSearch", {"query": "main", "roots": [plain]})
    s.request("fuzzyFileSearch", {"query": "main", "roots": [repo, plain]})
    # A root inside another: reported once, for the deepest root.
    s.request("fuzzyFileSearch", {"query": "helper", "roots": [repo, os.path.join(repo, "src")]})
    s.request("fuzzyFileSearch", {"query": "main", "roots": [repo + "/"]})
    s.request("fuzzyFileSearch", {"query": "main", "roots": [repo], "cancellationToken": "t"})


def errors(s: Any) -> None:
    """empty query and roots, roots that are not directories, bad params"""
    s.initialize()
    repo, _ = tree(s.cwd)
    s.request("fuzzyFileSearch", {"query": "", "roots": [repo]})
    s.request("fuzzyFileSearch", {"query": "   ", "roots": [repo]})
    s.request("fuzzyFileSearch", {"query": "main", "roots": []})
    s.request("fuzzyFileSearch", {"query": "main", "roots": ["relative/dir"]})
    s.request("fuzzyFileSearch", {"query": "main", "roots": [os.path.join(s.cwd, "missing")]})
    s.request("fuzzyFileSearch", {"query": "main", "roots": [os.path.join(repo, "README.md")]})
    s.request("fuzzyFileSearch", {"query": "zzzz", "roots": [repo]})
    s.request("fuzzyFileSearch", {"query": 3, "roots": [repo]})
    s.request("fuzzyFileSearch", {"roots": [repo]})
    s.request("fuzzyFileSearch", {"query": "main", "roots": "x"})
    s.request("fuzzyFileSearch", {"query": "main", "roots": [repo], "extra": 1})


def capabilities(s: Any) -> None:
    """modelProvider/capabilities/read (same shape; the reference's provider has both
    capabilities, appserver's backends neither)"""
    s.initialize()
    s.request("modelProvider/capabilities/read", {})
    s.request("modelProvider/capabilities/read", {"modelProvider": "other", "bogus": 1})
