"""`command/exec` and its follow-ups: a standalone command run for the client (who is the
user: no approval, no sandbox), outside any thread. The process table and the process
life are in appserver.execs; here are the validation and the wire answers, as Codex 0.171
gives them."""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from appserver import execs
from appserver.protocol import command_types as ct
from appserver.protocol.errors import InvalidParams, InvalidRequest
from appserver.requests import RequestContext

from .common import Handler, Services

UINT16_MAX = 2**16 - 1


def _checked_size(size: ct.TerminalSize) -> ct.TerminalSize:
    if size.rows <= 0 or size.cols <= 0:
        raise InvalidParams("command/exec size rows and cols must be greater than 0")
    if size.rows > UINT16_MAX or size.cols > UINT16_MAX:
        raise InvalidParams(f"command/exec size rows and cols must be at most {UINT16_MAX}")
    return size


def _no_nul(field: str, text: str) -> str:
    if "\0" in text:
        raise InvalidParams.field(field, "must not contain a NUL character")
    return text


def _environment(overrides: dict[str, str | None] | None) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in (overrides or {}).items():
        if not name or "=" in name or "\0" in name:
            raise InvalidParams.field(f"env.{name}", "is not a valid environment variable name")
        if value is not None:
            _no_nul(f"env.{name}", value)
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _spawn_spec(s: Services, p: ct.CommandExecParams) -> execs.Spawn:
    if not p.command:
        raise InvalidRequest("command must not be empty")
    for index, arg in enumerate(p.command):
        _no_nul(f"command[{index}]", arg)
    if p.cwd:
        _no_nul("cwd", p.cwd)
    streaming = p.tty or p.stream_stdin or p.stream_stdout_stderr
    if streaming and p.process_id is None:
        raise InvalidRequest("command/exec tty or streaming requires a client-supplied processId")
    if p.size is not None and not p.tty:
        raise InvalidParams("command/exec size requires tty: true")
    if p.timeout_ms is not None and p.disable_timeout:
        raise InvalidParams("command/exec cannot set both timeoutMs and disableTimeout")
    if p.output_bytes_cap is not None and p.disable_output_cap:
        raise InvalidParams("command/exec cannot set both outputBytesCap and disableOutputCap")
    if p.timeout_ms is not None and p.timeout_ms < 0:
        raise InvalidParams.field("timeoutMs", "must not be negative")
    if p.output_bytes_cap is not None and p.output_bytes_cap < 0:
        raise InvalidParams.field("outputBytesCap", "must not be negative")
    timeout_ms = p.timeout_ms if p.timeout_ms is not None else execs.DEFAULT_TIMEOUT_MS
    cap = p.output_bytes_cap if p.output_bytes_cap is not None else execs.DEFAULT_OUTPUT_CAP
    return execs.Spawn(
        argv=list(p.command),
        cwd=os.path.join(s.default_cwd, p.cwd) if p.cwd else s.default_cwd,
        env=_environment(p.env),
        tty=p.tty,
        size=None if p.size is None else _checked_size(p.size),
        streamed=p.tty or p.stream_stdout_stderr,
        cap=None if p.disable_output_cap else cap,
        timeout=None if p.disable_timeout else timeout_ms / 1000,
    )


def _base64_problem(text: str, exc: binascii.Error) -> str:
    for offset, char in enumerate(text):
        if not (char.isascii() and (char.isalnum() or char in "+/=")):
            return f"Invalid symbol {ord(char)}, offset {offset}."
    return str(exc)


async def command_exec(s: Services, ctx: RequestContext, p: ct.CommandExecParams) -> Any:
    spec = _spawn_spec(s, p)
    conn = ctx.connection
    entry = execs.reserve(conn, p.process_id, stream_stdin=p.tty or p.stream_stdin)
    try:
        return await execs.run(conn, entry, spec)
    finally:
        execs.release(conn, entry)


async def command_exec_write(s: Services, ctx: RequestContext, p: ct.CommandExecWriteParams) -> Any:
    if p.delta_base64 is None and not p.close_stdin:
        raise InvalidParams("command/exec/write requires deltaBase64 or closeStdin")
    entry = execs.lookup(ctx.connection, p.process_id)
    data = b""
    if p.delta_base64 is not None:
        try:
            data = base64.b64decode(p.delta_base64, validate=True)
        except binascii.Error as exc:
            raise InvalidParams(
                f"invalid deltaBase64: {_base64_problem(p.delta_base64, exc)}"
            ) from None
    await execs.write(entry, data, p.close_stdin)
    return {}


async def command_exec_terminate(
    s: Services, ctx: RequestContext, p: ct.CommandExecTerminateParams
) -> Any:
    entry = execs.lookup(ctx.connection, p.process_id)
    await entry.started.wait()
    entry.kill()
    return {}


async def command_exec_resize(
    s: Services, ctx: RequestContext, p: ct.CommandExecResizeParams
) -> Any:
    size = _checked_size(p.size)
    execs.resize(execs.lookup(ctx.connection, p.process_id), size)
    return {}


METHODS: dict[str, Handler] = {
    "command/exec": command_exec,
    "command/exec/write": command_exec_write,
    "command/exec/terminate": command_exec_terminate,
    "command/exec/resize": command_exec_resize,
}
