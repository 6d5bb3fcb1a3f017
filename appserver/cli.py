"""`appserver` command line: argparse -> ServerConfig -> trio.run (PROTOCOL.md §2.1)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import attrs
import trio

from appserver._version import __version__
from appserver.agents.openai_chat import DEFAULT_BASE_URL, DEFAULT_MODEL
from appserver.server import ServerConfig, default_data_dir, open_server
from appserver.store.base import StoreError
from appserver.transports.websocket import is_loopback_host, validate_listen_host

log = logging.getLogger("appserver")

LOG_LEVELS = ("debug", "info", "warning", "error")


class UsageError(Exception):
    """Bad flags or an unusable environment: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="appserver", description="JSON-RPC server hosting agent threads.")
    p.add_argument("--version", action="version", version=f"appserver {__version__}")
    p.add_argument("--listen", default="stdio://", metavar="URL", help="stdio:// or ws://HOST:PORT")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--data-dir", type=Path, metavar="DIR", help="where the SQLite store lives")
    store.add_argument("--in-memory", action="store_true", help="keep nothing on disk")
    p.add_argument("--ws-token-file", type=Path, metavar="PATH")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN")
    p.add_argument("--max-message-bytes", type=_positive_int, default=8 * 1024 * 1024, metavar="N")
    p.add_argument("--outbound-queue", type=_positive_int, default=1024, metavar="N")
    p.add_argument("--max-inflight", type=_positive_int, default=128, metavar="N")
    p.add_argument("--idle-unload-seconds", type=_seconds, default=1800.0, metavar="S")
    p.add_argument("--shutdown-timeout", type=_seconds, default=30.0, metavar="S")
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info", metavar="LEVEL")
    p.add_argument("--log-json", action="store_true")
    model = p.add_argument_group("agent backend")
    model.add_argument(
        "--agent",
        choices=("builtin", "openai"),
        default="builtin",
        help="model provider of new threads (default builtin)",
    )
    model.add_argument(
        "--model", default=DEFAULT_MODEL, metavar="NAME", help="model of new openai threads"
    )
    model.add_argument(
        "--model-base-url",
        default=DEFAULT_BASE_URL,
        metavar="URL",
        help="OpenAI-compatible endpoint (POST URL/chat/completions)",
    )
    model.add_argument(
        "--api-key-file", type=Path, metavar="PATH", help="API key (default $OPENAI_API_KEY)"
    )
    model.add_argument("--model-timeout", type=_seconds, default=60.0, metavar="S")
    return p


@attrs.frozen
class ListenAddress:
    scheme: str  # "stdio" | "ws"
    host: str = ""
    port: int = 0


def parse_listen(url: str) -> ListenAddress:
    if url == "stdio://":
        return ListenAddress("stdio")
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"--listen: expected stdio:// or ws://HOST:PORT, got {url!r}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UsageError(f"--listen: {exc} in {url!r}") from None
    if not host or port is None:
        raise UsageError(f"--listen: expected ws://HOST:PORT, got {url!r}")
    try:
        validate_listen_host(host)
    except ValueError as exc:
        raise UsageError(f"--listen: {exc}") from None
    return ListenAddress("ws", host, port)


def config_from_args(argv: Sequence[str] | None) -> ServerConfig:
    args = build_parser().parse_args(argv)
    listen = parse_listen(args.listen)
    if args.in_memory:
        data_dir = None
    else:
        data_dir = (args.data_dir or default_data_dir()).expanduser().absolute()
    if args.ws_token_file is not None:
        try:
            token = args.ws_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(
                f"--ws-token-file: cannot read {args.ws_token_file}: {exc.strerror}"
            ) from None
        if not token:
            raise UsageError(f"--ws-token-file: {args.ws_token_file} is empty")
    if args.api_key_file is not None:
        try:
            key = args.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(
                f"--api-key-file: cannot read {args.api_key_file}: {exc.strerror}"
            ) from None
        if not key:
            raise UsageError(f"--api-key-file: {args.api_key_file} is empty")
    base_url = urlsplit(args.model_base_url)
    if base_url.scheme not in ("http", "https") or not base_url.netloc:
        raise UsageError(f"--model-base-url: expected an http(s) URL, got {args.model_base_url!r}")
    if listen.scheme == "ws" and not is_loopback_host(listen.host) and args.ws_token_file is None:
        raise UsageError(
            f"refusing to listen on non-loopback host {listen.host} without --ws-token-file"
        )
    return ServerConfig(
        listen=args.listen,
        data_dir=data_dir,
        ws_token_file=args.ws_token_file,
        allow_origins=tuple(args.allow_origin),
        max_message_bytes=args.max_message_bytes,
        outbound_queue=args.outbound_queue,
        max_inflight=args.max_inflight,
        idle_unload_seconds=args.idle_unload_seconds,
        shutdown_timeout=args.shutdown_timeout,
        log_level=args.log_level,
        log_json=args.log_json,
        agent=args.agent,
        model=args.model,
        model_base_url=args.model_base_url,
        api_key_file=args.api_key_file,
        model_timeout=args.model_timeout,
    )


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def prepare_data_dir(config: ServerConfig) -> None:
    if config.data_dir is None:
        return
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"unusable data dir {config.data_dir}: {exc.strerror}") from None
    if not config.data_dir.is_dir():
        raise UsageError(f"unusable data dir {config.data_dir}: not a directory")


def _find_exception(exc: BaseException, kind: type[OSError]) -> OSError | None:
    if isinstance(exc, kind):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _find_exception(sub, kind)
            if found is not None:
                return found
    return None


async def run(config: ServerConfig) -> None:
    listen = parse_listen(config.listen)
    async with open_server(config) as server, trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            if listen.scheme == "ws":
                try:
                    port = await nursery.start(server.serve_websocket, listen.host, listen.port)
                except (OSError, BaseExceptionGroup) as exc:
                    os_error = _find_exception(exc, OSError)
                    if os_error is None:
                        raise
                    raise UsageError(
                        f"cannot listen on {listen.host}:{listen.port}: "
                        f"{os_error.strerror or os_error}"
                    ) from None
                host = f"[{listen.host}]" if ":" in listen.host else listen.host
                print(f"appserver listening on ws://{host}:{port}", file=sys.stderr, flush=True)
            else:

                async def stdio_then_stop() -> None:
                    await server.serve_stdio()
                    # End of input: shut down at once (§8.8).
                    await server.shutdown(graceful=False)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stdio_then_stop)
            received = 0
            async for signum in signals:
                received += 1
                log.info("received %s", signal.Signals(signum).name)
                if received == 1:

                    async def graceful() -> None:
                        await server.shutdown(graceful=True)
                        nursery.cancel_scope.cancel()

                    nursery.start_soon(graceful)
                else:
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
        setup_logging(config.log_level, config.log_json)
        prepare_data_dir(config)
        if config.listen == "stdio://":
            sys.stdout = sys.stderr  # stdout belongs to the protocol; stray prints go to stderr
        trio.run(run, config)
    except UsageError as exc:
        print(f"appserver: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"appserver: error: unusable data dir: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        usage, rest = group.split((UsageError, StoreError))
        if usage is not None:
            first: BaseException = usage
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            prefix = "unusable data dir: " if isinstance(first, StoreError) else ""
            print(f"appserver: error: {prefix}{first}", file=sys.stderr)
            return 2
        if rest is not None:
            raise rest from None
    except KeyboardInterrupt:
        return 0
    return 0
