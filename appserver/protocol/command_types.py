"""Params, results and the notification of `command/exec` and its follow-ups
(`command/exec/write`, `/terminate`, `/resize`), as Codex 0.171 has them
(`v2/CommandExec*.json`): a standalone process outside any thread, owned by the
connection that started it (appserver.execs)."""

from __future__ import annotations

from typing import Literal

import attrs

from appserver.protocol.policies import SandboxPolicy

OutputStream = Literal["stdout", "stderr"]


@attrs.frozen(kw_only=True)
class TerminalSize:
    """`CommandExecTerminalSize`: a PTY's size in character cells (uint16 each)."""

    rows: int
    cols: int


@attrs.frozen(kw_only=True)
class CommandExecParams:
    command: list[str]
    process_id: str | None = None
    tty: bool = False
    stream_stdin: bool = False
    stream_stdout_stderr: bool = False
    output_bytes_cap: int | None = None
    disable_output_cap: bool = False
    disable_timeout: bool = False
    timeout_ms: int | None = None
    cwd: str | None = None
    env: dict[str, str | None] | None = None
    size: TerminalSize | None = None
    # Accepted and ignored: appserver runs commands unsandboxed (the client is the user).
    sandbox_policy: SandboxPolicy | None = None


@attrs.frozen(kw_only=True)
class CommandExecWriteParams:
    process_id: str
    delta_base64: str | None = None
    close_stdin: bool = False


@attrs.frozen(kw_only=True)
class CommandExecTerminateParams:
    process_id: str


@attrs.frozen(kw_only=True)
class CommandExecResizeParams:
    process_id: str
    size: TerminalSize


@attrs.frozen(kw_only=True)
class CommandExecResponse:
    exit_code: int
    stdout: str
    stderr: str


@attrs.frozen(kw_only=True)
class CommandExecOutputDeltaNotification:
    process_id: str
    stream: OutputStream
    delta_base64: str
    cap_reached: bool
