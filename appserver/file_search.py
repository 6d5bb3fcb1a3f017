"""`fuzzyFileSearch`'s work: walk the roots and score every entry, as the Codex 0.171
reference does. Plain blocking code: the handler runs it in a worker thread and sets
`Search.cancelled` to stop it (checked every `CHECK_EVERY` entries).

The walk (the reference's: ripgrep's `ignore` walker) lists files and directories below
each root (not the root itself), hidden ones and `.git` included, following symlinks
(a link back to an ancestor is not entered). It leaves out what ignore files exclude:
`.ignore` files everywhere, `.gitignore` files and `.git/info/exclude` inside a git
repository (a directory with `.git`, or below one), in the root, its subdirectories and
its parents up to the repository's top; a deeper file overrides a shallower one, and
`.ignore` overrides `.gitignore`. Matching the patterns is `pathspec`'s
`GitIgnoreSpec` (git's own semantics). At most `MAX_VISITED` entries are visited per
search, all roots together.

Scores (`fuzzy_match`): the path's fuzzy score, plus 65,536 for a file whose name alone
matches every word of the query and 131,072 for an entry whose name is the query (case
and accents ignored). An empty query finds nothing; a query of spaces only matches
every entry (the roots too, as path ""), scoring 0. Results: the best `MATCH_LIMIT`, by
score (highest first) then path; an entry under several roots is reported once, for the
deepest root.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterator
from typing import Literal

import attrs
import pathspec

from appserver.fuzzy_match import Atom, atoms, bonuses, fold, match_atom

__all__ = ["MATCH_LIMIT", "MAX_VISITED", "Match", "Search"]

MATCH_LIMIT = 50  # as the reference
MAX_VISITED = 100_000  # entries walked per search, all roots together (~1.5 s)
CHECK_EVERY = 256  # entries between two looks at the cancel flag
MAX_IGNORE_BYTES = 1 << 20  # of one ignore file
NAME_BONUS = 1 << 16  # a file whose name matches the query
EXACT_BONUS = 2 << 16  # an entry whose name is the query

MatchType = Literal["file", "directory"]


class Cancelled(Exception):
    """The search was cancelled (by a newer one with its token, or its request)."""


@attrs.frozen
class Match:
    root: str
    path: str  # relative to the root
    file_name: str
    match_type: MatchType
    score: int
    indices: list[int]


@attrs.frozen
class _Rules:
    """The ignore files of one directory: (the directory, its specs by precedence)."""

    base: str
    specs: tuple[pathspec.GitIgnoreSpec, ...]

    def verdict(self, path: str, is_dir: bool) -> bool | None:
        rel = os.path.relpath(path, self.base)
        if is_dir:
            rel += "/"
        for spec in self.specs:
            include = spec.check_file(rel).include
            if include is not None:
                return include  # True: ignored; False: re-included by a `!` pattern
        return None


def _spec(path: str) -> pathspec.GitIgnoreSpec | None:
    """The patterns of an ignore file; only a regular file is read (a FIFO would block),
    and only its first MAX_IGNORE_BYTES."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as f:
            lines = f.read(MAX_IGNORE_BYTES).decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def _is_repo(directory: str) -> bool:
    return os.path.lexists(os.path.join(directory, ".git"))


def _rules(directory: str, in_repo: bool, present: set[str] | None = None) -> _Rules | None:
    """The ignore rules of ``directory`` (``present``: the names in it, if known)."""
    names = [".ignore"] + ([".gitignore"] if in_repo else [])
    if in_repo and (present is None or ".git" in present):
        names.append(os.path.join(".git", "info", "exclude"))
    if present is not None:
        names = [n for n in names if n.split(os.sep, 1)[0] in present]
    specs = tuple(s for s in (_spec(os.path.join(directory, n)) for n in names) if s)
    return _Rules(directory, specs) if specs else None


def _parent_rules(root: str) -> tuple[list[_Rules], bool]:
    """The ignore rules of the root's parents (outermost first) up to the top of its git
    repository, and whether the root is in one (no repository: none)."""
    chain, at = [], root
    while True:
        parent = os.path.dirname(at)
        if _is_repo(at) or parent == at:
            break
        chain.append(parent)
        at = parent
    if not _is_repo(at):
        return [], False
    rules = [r for r in (_rules(d, True) for d in reversed(chain)) if r]
    return rules, True


def _ignored(rules: list[_Rules], path: str, is_dir: bool) -> bool:
    for rule in reversed(rules):  # the deepest decides
        verdict = rule.verdict(path, is_dir)
        if verdict is not None:
            return verdict
    return False


@attrs.define(eq=False)
class Search:
    query: str
    roots: list[str]
    cancelled: bool = False
    visited: int = 0

    def _check(self) -> None:
        self.visited += 1
        if self.visited % CHECK_EVERY == 0 and self.cancelled:
            raise Cancelled

    def _walk(self, root: str) -> Iterator[tuple[str, bool]]:
        """(absolute path, is a directory) of every entry below ``root`` not ignored."""
        parents, in_repo = _parent_rules(root)
        top = os.stat(root)
        Pending = tuple[str, bool, list[_Rules], tuple[tuple[int, int], ...]]
        stack: list[Pending] = [(root, in_repo, parents, ((top.st_dev, top.st_ino),))]
        while stack:
            directory, in_repo, rules, ancestors = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue
            present = {e.name for e in entries if e.name.startswith(".")}
            in_repo = in_repo or ".git" in present
            own = _rules(directory, in_repo, present) if present else None
            if own is not None:
                rules = [*rules, own]
            below: list[Pending] = []
            for entry in entries:
                if self.visited >= MAX_VISITED:
                    return
                self._check()
                if not _utf8(entry.name):  # not valid UTF-8: skipped, as the reference
                    continue
                try:
                    info = entry.stat()  # follows symlinks; a dangling one is left out
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(info.st_mode)
                if _ignored(rules, entry.path, is_dir):
                    continue
                yield entry.path, is_dir
                key = (info.st_dev, info.st_ino)
                if is_dir and key not in ancestors:
                    below.append((entry.path, in_repo, rules, (*ancestors, key)))
            stack.extend(reversed(below))

    def run(self) -> list[Match]:
        if not self.query:
            return []
        # A query of only spaces has no words: everything matches, scoring 0 (the
        # roots themselves included, with path ""), as in the reference.
        words = atoms(self.query)
        exact = fold(self.query.strip())
        roots = [(r, os.path.normpath(r)) for r in self.roots if os.path.isabs(r)]
        roots = [(r, n) for r, n in roots if os.path.isdir(n)]
        # Deepest first: an entry is reported for the deepest root it is under.
        roots.sort(key=lambda pair: -pair[1].count(os.sep))
        seen: set[str] = set()
        found: list[Match] = []
        for given, root in roots:
            prefix = root.rstrip(os.sep) + os.sep
            for path, is_dir in itertools.chain([(root, True)], self._walk(root)):
                if path in seen:
                    continue
                seen.add(path)
                rel = path[len(prefix) :] if path != root else ""
                match = _score(words, exact, given, rel, is_dir)
                if match is not None:
                    found.append(match)
        found.sort(key=lambda m: (-m.score, m.path))
        return found[:MATCH_LIMIT]


def _score(words: list[Atom], exact: str, root: str, rel: str, is_dir: bool) -> Match | None:
    text = rel.lower() if rel.isascii() else fold(rel)
    if not all(_subsequence(word, text) for word in words):  # most entries stop here
        return None
    bonus = bonuses(rel)
    total, indices = 0, set()
    for word in words:
        result = match_atom(word, text, bonus)
        if result is None:
            return None
        total += result[0]
        indices.update(result[1])
    name = os.path.basename(rel)
    folded_name = text[len(text) - len(name) :]
    if not words:
        pass
    elif folded_name == exact:
        total += EXACT_BONUS + (0 if is_dir else NAME_BONUS)
    elif not is_dir and all(_subsequence(word, folded_name) for word in words):
        total += NAME_BONUS
    return Match(
        root=root,
        path=rel,
        file_name=name,
        match_type="directory" if is_dir else "file",
        score=total,
        indices=sorted(indices),
    )


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes (surrogate escapes)
        return False
    return True


def _subsequence(word: str, text: str) -> bool:
    at = 0
    for c in word:
        at = text.find(c, at)
        if at < 0:
            return False
        at += 1
    return True
