"""`/run A && B && …`: the command's top-level `&&` parts and the one shell program that
runs them all, stopping at a gate before each part (PROTOCOL.md §10).

The parts are found by a real shell parser (`bashlex`), using its node positions to take
each part's exact source text: a quoted or nested `&&` (in quotes, `$(…)`, `( … )`,
`{ …; }`, `if`, …) is no split. Only a command whose top level is nothing but an `&&`
chain is split; anything else (`a || b && c`, `a && b; c`, `a && b &`, a text bashlex
cannot parse, …) is one part, approved once as a whole — never split textually.

The program (`Plan.program`) is run by one `/bin/sh -c`, so shell state carries from part
to part. It starts with the gate function, defined on the command's own first line so line
numbers and syntax errors read as for the bare command. For a chain of n > 1 parts:

    __appserver_gate 1 && { A; } </dev/null && __appserver_gate 2 && { B; } </dev/null …

with the text between the parts (the `&&`s, spaces, a trailing `;` or comment) kept as
written. One part:  `__appserver_gate 1; exec </dev/null; CMD`.

`__appserver_gate N` writes `N\\n` to the shell's stdin — a socket whose other end the
server holds (see shell.py) — and blocks reading the answer from it: `go` lets the shell
go on; anything else, or end of file, exits the shell. The user's text itself always runs
with stdin `/dev/null` (the brace group's redirection; the shell keeps the socket on a
close-on-exec descriptor meanwhile, so no command it starts inherits it), so it sees the
same stdin as without approvals. A `{ …; }` group runs in the current shell: `cd`,
variables, functions, `exec >file` carry over exactly as in the bare command.

A shell parser reads bash; `/bin/sh` may be dash, and the two lex a few constructs
differently (`$'…'`, `"${x:-'}'}"`, here-documents, backquotes). Where such a construct
could make `/bin/sh` see a part boundary elsewhere than bashlex does, the command is not
split (`_LEXICALLY_RISKY`): a wrong split could run text the user was not shown.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from typing import Any

GATE = "__appserver_gate"
PRELUDE = (
    f"{GATE}() {{ printf '%s\\n' \"$1\" >&0 && IFS= read -r __appserver_answer"
    ' && [ "$__appserver_answer" = go ] && unset __appserver_answer || exit 126; }; '
)
# Replies the server writes to the gate.
GO = b"go\n"
STOP = b"stop\n"


@functools.cache
def _bashlex() -> Any:
    """bashlex, imported on first use: it builds its parser tables at import (~0.1 s of
    every server start, most of which never parse a command)."""
    return importlib.import_module("bashlex")


# Longer commands are not parsed (bashlex is pure Python); they are approved as a whole.
MAX_SPLIT_CHARS = 16384

# Text in which bash (bashlex) and a POSIX sh may disagree about where words end, or
# which spans lines: such a command is approved as a whole instead of split.
_LEXICALLY_RISKY = re.compile(r"[\n\r`]|\$'|\$\"|<<|\$\{[^}]*['\"\\]")


@dataclass(frozen=True)
class Plan:
    """How one command runs: the shell program, and the text of each part in order (gate
    N, 1-based, precedes `parts[N - 1]`)."""

    program: str
    parts: tuple[str, ...]


def plan(command: str) -> Plan:
    spans = split_spans(command)
    if spans is None or len(spans) < 2:
        return Plan(f"{PRELUDE}{GATE} 1; exec </dev/null; {command}", (command,))
    pieces = [PRELUDE]
    at = 0
    for index, (start, end) in enumerate(spans, 1):
        pieces.append(command[at:start])
        pieces.append(f"{GATE} {index} && {{ {command[start:end]}; }} </dev/null")
        at = end
    pieces.append(command[at:])
    return Plan("".join(pieces), tuple(command[s:e] for s, e in spans))


def split_spans(command: str) -> list[tuple[int, int]] | None:
    """The `(start, end)` of each top-level `&&` part, or None when the command is not a
    plain `&&` chain bashlex can parse (then it runs and is approved as one part)."""
    if len(command) > MAX_SPLIT_CHARS or _LEXICALLY_RISKY.search(command):
        return None
    try:
        nodes = _bashlex().parse(command)
    except Exception:  # bashlex raises ParsingError, NotImplementedError and others
        return None
    if len(nodes) != 1 or nodes[0].kind != "list" or _has_heredoc(nodes[0]):
        return None
    items = list(nodes[0].parts)
    if items and _is_operator(items[-1], ";"):
        items.pop()  # `a && b;` is the chain `a && b`
    spans: list[tuple[int, int]] = []
    for i, node in enumerate(items):
        if i % 2:
            if not _is_operator(node, "&&"):
                return None
        elif node.kind == "operator":
            return None
        else:
            start, end = node.pos
            spans.append((int(start), int(end)))
    if len(items) % 2 == 0:
        return None
    return spans


def _is_operator(node: Any, op: str) -> bool:
    return bool(node.kind == "operator" and node.op == op)


def _has_heredoc(node: Any) -> bool:
    if getattr(node, "kind", None) == "heredoc":
        return True
    for value in vars(node).values():
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, _bashlex().ast.node) and _has_heredoc(child):
                return True
    return False
