"""The `appserver` command line's words -> ServerConfig (PROTOCOL.md §2.1): the parser,
its value checks and the listen address. `cli.py` runs what they describe."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import attrs

from appserver._version import __version__
from appserver.agents import installed_plugins
from appserver.agents.openai_settings import DEFAULT_BASE_URL, DEFAULT_MODEL
from appserver.cli_help import (
    AUTH_HELP,
    BASE_URL_HELP,
    DATA_HELP,
    DIGEST_HELP,
    EPILOG,
    IDLE_HELP,
    INFLIGHT_HELP,
    KEY_HELP,
    LEASE_HELP,
    LEVEL_HELP,
    MODE_HELP,
    MODEL_HELP,
    MODEL_TIMEOUT_HELP,
    NODE_HELP,
    ORIGIN_HELP,
    PG_STORE_HELP,
    QUEUE_HELP,
    SECRET_HELP,
    SHUTDOWN_HELP,
    SIZE_HELP,
    SKEW_HELP,
    STORE_RETRY_HELP,
    TOKEN_FILE_HELP,
    agent_help,
)
from appserver.datadir import create_data_dir
from appserver.server import ServerConfig, default_data_dir
from appserver.server_config import DEFAULT_LEASE_SECONDS
from appserver.threads.event_log import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS  # event log (B)
from appserver.threads.persist import STORE_RETRY_SECONDS
from appserver.transports.unix import default_socket_path
from appserver.transports.websocket import is_loopback_host, validate_listen_host
from appserver.transports.ws_auth import MODES, WsAuthError

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


DATABASE_URL_ENV = "APPSERVER_DATABASE_URL"


def _lease_seconds(text: str) -> float:
    value = _seconds(text)
    if not 0.1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0.1 to 3600 seconds, got {text!r}")
    return value


def _store_url(args: argparse.Namespace) -> str | None:
    """--store, else $APPSERVER_DATABASE_URL (unless --in-memory); None: no PostgreSQL."""
    url = args.store
    if url is not None and args.in_memory:
        raise UsageError("--store and --in-memory exclude each other")
    if url is None and not args.in_memory:
        url = os.environ.get(DATABASE_URL_ENV) or None
    if url is not None and not url.startswith(("postgresql://", "postgres://")):
        raise UsageError(f"--store: expected a postgresql:// URL, got {url.split('@')[-1]!r}")
    return str(url) if url is not None else None


def _event_bound(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="appserver",
        description="JSON-RPC server hosting agent threads (the Codex app-server v2 API).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add("--version", action="version", version=f"appserver {__version__}")
    add(
        "--listen", default="stdio://", metavar="URL", help="see listeners below (default stdio://)"
    )
    store = p.add_mutually_exclusive_group()
    store.add_argument("--data-dir", type=Path, metavar="DIR", help=DATA_HELP)
    store.add_argument(
        "--in-memory", action="store_true", help="keep nothing on disk (default off)"
    )
    add("--allow-origin", action="append", default=[], metavar="ORIGIN", help=ORIGIN_HELP)
    add("--max-message-bytes", type=_positive_int, default=8 << 20, metavar="N", help=SIZE_HELP)
    add("--outbound-queue", type=_positive_int, default=1024, metavar="N", help=QUEUE_HELP)
    add("--max-inflight", type=_positive_int, default=128, metavar="N", help=INFLIGHT_HELP)
    add("--idle-unload-seconds", type=_seconds, default=1800.0, metavar="S", help=IDLE_HELP)
    add("--shutdown-timeout", type=_seconds, default=30.0, metavar="S", help=SHUTDOWN_HELP)
    add(
        "--store-retry-seconds",
        type=_seconds,
        default=STORE_RETRY_SECONDS,
        metavar="S",
        help=STORE_RETRY_HELP,
    )
    add("--store", metavar="URL", help=PG_STORE_HELP)
    add("--node-id", metavar="NAME", help=NODE_HELP)
    add(
        "--lease-seconds",
        type=_lease_seconds,
        default=DEFAULT_LEASE_SECONDS,
        metavar="S",
        help=LEASE_HELP,
    )
    add(
        "--store-pool-size",
        type=_positive_int,
        default=8,
        metavar="N",
        help="PostgreSQL: most connections the node opens (default %(default)s)",
    )
    add(
        "--event-log-events",
        type=_event_bound,
        default=DEFAULT_MAX_EVENTS,
        metavar="N",
        help="per thread, how many recent numbered events (PROTOCOL.md §13) are kept "
        "for thread/resume afterSeq replays (default %(default)s)",
    )
    add(
        "--event-log-bytes",
        type=_event_bound,
        default=DEFAULT_MAX_BYTES,
        metavar="BYTES",
        help="per thread, the most bytes of recent numbered events kept for replays "
        "(default %(default)s)",
    )
    add("--log-level", choices=LOG_LEVELS, default="info", metavar="LEVEL", help=LEVEL_HELP)
    add("--log-json", action="store_true", help="one JSON object per log line (default off)")
    auth = p.add_argument_group("websocket authentication", AUTH_HELP).add_argument
    auth("--ws-auth", choices=MODES, metavar="MODE", help=MODE_HELP)
    auth("--ws-token-file", type=Path, metavar="PATH", help=TOKEN_FILE_HELP)
    auth("--ws-token-sha256", metavar="HEX", help=DIGEST_HELP)
    auth("--ws-shared-secret-file", type=Path, metavar="PATH", help=SECRET_HELP)
    auth("--ws-issuer", metavar="ISSUER", help="signed: required iss claim (default unchecked)")
    auth("--ws-audience", metavar="AUDIENCE", help="signed: required aud claim (default unchecked)")
    auth("--ws-max-clock-skew-seconds", type=_non_negative_int, metavar="SECONDS", help=SKEW_HELP)
    model = p.add_argument_group("agent backend").add_argument
    plugins = [ep.name for ep in installed_plugins()]  # names only: nothing is imported
    model("--agent", default="builtin", metavar="NAME", help=agent_help(plugins))
    model("--model", default=DEFAULT_MODEL, metavar="NAME", help=MODEL_HELP)
    model("--model-base-url", default=DEFAULT_BASE_URL, metavar="URL", help=BASE_URL_HELP)
    model("--api-key-file", type=Path, metavar="PATH", help=KEY_HELP)
    model("--model-timeout", type=_seconds, default=60.0, metavar="S", help=MODEL_TIMEOUT_HELP)
    apis = ("chat", "responses")  # chat completions or the Responses API (openai backend)
    model("--model-api", choices=apis, default="chat", help="openai wire API (default chat)")
    model(
        "--builtin-token-usage",
        action="store_true",
        help="the builtin agent reports token usage, 4 characters a token (default off)",
    )
    return p


@attrs.frozen
class ListenAddress:
    scheme: str  # "stdio" | "ws" | "unix"
    host: str = ""
    port: int = 0
    path: str = ""  # unix: the socket path ("" = the default under the data dir)


LISTEN_FORMS = "stdio://, ws://HOST:PORT, unix://PATH or off"


def parse_listen(url: str) -> ListenAddress:
    if url == "stdio://":
        return ListenAddress("stdio")
    if url.startswith("unix://"):
        return ListenAddress("unix", path=url.removeprefix("unix://"))
    if url == "off":
        raise UsageError(
            "--listen off: no transport configured; appserver has no remote control, "
            "so use --listen stdio://, ws://HOST:PORT or unix://PATH"
        )
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.path not in ("", "/") or parts.query:
        raise UsageError(f"--listen: expected {LISTEN_FORMS}, got {url!r}")
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


def _read_key_file(flag: str, path: Path) -> None:
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    if not key:
        raise UsageError(f"{flag}: {path} is empty")


def config_from_args(argv: Sequence[str] | None) -> ServerConfig:
    args = build_parser().parse_args(argv)
    listen = parse_listen(args.listen)
    if args.in_memory:
        data_dir = None
    else:
        data_dir = (args.data_dir or default_data_dir()).expanduser().absolute()
    listen_url = args.listen
    if listen.scheme == "unix":
        home = data_dir or default_data_dir().expanduser().absolute()
        socket_path = Path(listen.path).expanduser() if listen.path else default_socket_path(home)
        listen_url = f"unix://{socket_path.absolute()}"
    if args.api_key_file is not None:
        _read_key_file("--api-key-file", args.api_key_file)
    base_url = urlsplit(args.model_base_url)
    if base_url.scheme not in ("http", "https") or not base_url.netloc:
        raise UsageError(f"--model-base-url: expected an http(s) URL, got {args.model_base_url!r}")
    config = ServerConfig(
        listen=listen_url,
        data_dir=data_dir,
        ws_auth=args.ws_auth,
        ws_token_file=args.ws_token_file and args.ws_token_file.expanduser().absolute(),
        ws_token_sha256=args.ws_token_sha256,
        ws_shared_secret_file=args.ws_shared_secret_file
        and args.ws_shared_secret_file.expanduser().absolute(),
        ws_issuer=args.ws_issuer,
        ws_audience=args.ws_audience,
        ws_max_clock_skew_seconds=args.ws_max_clock_skew_seconds,
        allow_origins=tuple(args.allow_origin),
        max_message_bytes=args.max_message_bytes,
        outbound_queue=args.outbound_queue,
        max_inflight=args.max_inflight,
        idle_unload_seconds=args.idle_unload_seconds,
        shutdown_timeout=args.shutdown_timeout,
        store_retry_seconds=args.store_retry_seconds,
        store_url=_store_url(args),
        node_id=args.node_id,
        store_pool_max=args.store_pool_size,
        lease_seconds=args.lease_seconds,
        event_log_events=args.event_log_events,
        event_log_bytes=args.event_log_bytes,
        log_level=args.log_level,
        log_json=args.log_json,
        agent=args.agent,
        model=args.model,
        model_base_url=args.model_base_url,
        api_key_file=args.api_key_file,
        model_timeout=args.model_timeout,
        model_api=args.model_api,
        builtin_token_usage=args.builtin_token_usage,
    )
    try:
        auth = config.load_ws_auth()
    except WsAuthError as exc:
        raise UsageError(str(exc)) from None
    if listen.scheme == "ws" and not is_loopback_host(listen.host) and auth is None:
        raise UsageError(
            f"refusing to listen on non-loopback host {listen.host} "
            "without --ws-token-file or --ws-auth"
        )
    return config


def prepare_data_dir(config: ServerConfig) -> None:
    if config.data_dir is not None:
        create_data_dir(config.data_dir)  # 0700 (datadir.py); DataDirError: exit 2
