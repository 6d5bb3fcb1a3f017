"""`appserver` command line: argparse -> ServerConfig -> trio.run (PROTOCOL.md §2.1)."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from appserver import logs
from appserver.agents import AgentUnavailable
from appserver.cli_args import (
    UsageError,
    build_parser,
    config_from_args,
    parse_listen,
    prepare_data_dir,
)
from appserver.datadir import DataDirError, DataDirInUse
from appserver.server import ServerConfig, open_server
from appserver.store.base import StoreError

__all__ = ["UsageError", "build_parser", "config_from_args", "main", "parse_listen", "run"]


def _find_exception(exc: BaseException, kind: type[OSError]) -> OSError | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _find_exception(sub, kind)
            if found is not None:
                return found
    return None


def _listen_error(exc: BaseException, where: str) -> BaseException:
    os_error = _find_exception(exc, OSError)
    if os_error is None:
        return exc
    return UsageError(f"cannot listen on {where}: {os_error.strerror or os_error}")


async def run(config: ServerConfig) -> None:
    listen = parse_listen(config.listen)
    async with open_server(config) as server, trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            if listen.scheme == "ws":
                try:
                    port = await nursery.start(server.serve_websocket, listen.host, listen.port)
                except (OSError, BaseExceptionGroup) as exc:
                    raise _listen_error(exc, f"{listen.host}:{listen.port}") from None
                host = f"[{listen.host}]" if ":" in listen.host else listen.host
                print(f"appserver listening on ws://{host}:{port}", file=sys.stderr, flush=True)
            elif listen.scheme == "unix":
                try:
                    path = await nursery.start(server.serve_unix, Path(listen.path))
                except (OSError, BaseExceptionGroup) as exc:
                    raise _listen_error(exc, f"unix://{listen.path}") from None
                print(f"appserver listening on unix://{path}", file=sys.stderr, flush=True)
            else:

                async def stdio_then_stop() -> None:
                    await server.serve_stdio()
                    # End of input: shut down at once (§8.8).
                    await server.shutdown(graceful=False)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stdio_then_stop)
            # What is loaded by now (modules, schemas, converters) lives as long as the
            # process: keep it out of the cyclic GC's full collections, which otherwise
            # pause the server ~25 ms every few thousand requests.
            gc.freeze()
            received = 0
            async for signum in signals:
                received += 1
                name = signal.Signals(signum).name
                if received == 1:
                    running = server.registry.statistics()["running_turns"]
                    logs.shutdown_notice(name, running, config.shutdown_timeout)

                    async def graceful() -> None:
                        await server.shutdown(graceful=True)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(graceful)
                else:
                    logs.shutdown_notice(name, 0, 0, forced=True)
                    await server.shutdown(graceful=False)
                    nursery.cancel_scope.cancel()
                    break


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    if words[:1] == ["schema"]:
        from appserver.schema import main as schema_main

        return schema_main(words[1:])
    try:
        config = config_from_args(argv)
        logs.setup_logging(config.log_level, config.log_json)
        prepare_data_dir(config)
        if config.listen == "stdio://":
            sys.stdout = sys.stderr  # stdout belongs to the protocol; stray prints go to stderr
        trio.run(run, config)
    except (UsageError, StoreError, DataDirError, AgentUnavailable) as exc:
        return _exit_2(exc)
    except BaseExceptionGroup as group:
        usage, rest = group.split((UsageError, StoreError, DataDirError, AgentUnavailable))
        if usage is not None:
            first: BaseException = usage
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            return _exit_2(first)
        if rest is not None:
            raise rest from None
    except KeyboardInterrupt:
        return 0
    return 0


def _exit_2(exc: BaseException) -> int:
    """One line on stderr; `data dir DIR is in use by pid N` exactly as PROTOCOL.md §8.6."""
    if isinstance(exc, DataDirInUse):
        line = str(exc)
    else:
        prefix = "unusable data dir: " if isinstance(exc, StoreError) else ""
        if isinstance(exc, StoreError) and "postgresql://" in str(exc):  # --- postgres (C)
            prefix = "unusable store: "
        prefix = "--agent: " if isinstance(exc, AgentUnavailable) else prefix
        line = f"appserver: error: {prefix}{exc}"
    print(line, file=sys.stderr)
    return 2
