"""The help texts of `appserver --help` (every flag with its default), kept apart from
the parser in cli.py."""

from __future__ import annotations

from appserver.agents.openai_settings import DEFAULT_BASE_URL, DEFAULT_MODEL
from appserver.store.sqlite import BUSY_TIMEOUT_SECONDS
from appserver.threads.persist import (
    STORE_RETRY_FIRST_BACKOFF,
    STORE_RETRY_MAX_BACKOFF,
    STORE_RETRY_SECONDS,
)

DATA_HELP = (
    "where the SQLite store lives (default $APPSERVER_HOME, else $XDG_DATA_HOME/appserver, "
    "else ~/.local/share/appserver)"
)
DIGEST_HELP = "capability token given as its hex SHA-256 digest (default none)"
ORIGIN_HELP = "browser origin allowed to open a websocket, repeatable (default none)"
SIZE_HELP = "largest accepted line or frame (default 8388608)"
QUEUE_HELP = "per-websocket outbound queue in messages; full = slow consumer (default 1024)"
INFLIGHT_HELP = "concurrent requests per connection before -32001 (default 128)"
IDLE_HELP = "unload a thread nobody uses after S seconds, 0 = never (default 1800)"
SHUTDOWN_HELP = "how long running turns may finish after SIGINT/SIGTERM (default 30)"
LEVEL_HELP = "debug, info, warning or error; logs go to stderr (default info)"
AUTH_HELP = """\
Checked at the HTTP upgrade of ws:// connections, before any JSON-RPC; a refusal
is HTTP 401. A non-loopback ws:// HOST needs one of these (else exit 2). unix://
sockets are guarded by their mode (0600) instead."""
MODE_HELP = (
    "capability-token or signed-bearer-token (default none; capability-token when "
    "--ws-token-file or --ws-token-sha256 is given)"
)
TOKEN_FILE_HELP = (
    "capability token file; clients send Authorization: Bearer <its trimmed text> (default none)"
)
SECRET_HELP = "signed-bearer-token: HS256 JWT secret, >= 32 bytes (default none)"
SKEW_HELP = "signed: leeway on exp and nbf (default 30)"


EPILOG = """\
subcommands:
  appserver schema --out DIR   write the JSON Schemas (draft-07) of every method,
                               notification and server request to DIR, in the Codex
                               app-server's file layout, and exit

listeners (--listen):
  stdio://           one client on stdin/stdout, newline-delimited JSON (the default)
  ws://HOST:PORT     websocket; HOST is an IP literal or localhost; port 0 picks one;
                     prints "appserver listening on ws://HOST:PORT" on stderr
  unix://PATH        websocket over a Unix socket (mode 0600, removed on exit);
                     unix:// alone means DATA_DIR/app-server-control/app-server-control.sock;
                     prints "appserver listening on unix://PATH" on stderr
  off                no listener: refused (exit 2), appserver has no remote control

environment:
  APPSERVER_HOME     data dir when --data-dir is not given
  XDG_DATA_HOME      else the data dir is $XDG_DATA_HOME/appserver
  OPENAI_API_KEY     API key of the openai agent when --api-key-file is not given

The Codex command line (codex [-c K=V]... app-server ...) is `appserver-codex`.
Bad flags, a data dir in use or unusable, a port or socket: one line on stderr, exit 2."""


def agent_help(installed: list[str]) -> str:
    """--agent's help: where agent names come from (docs/agents.md)."""
    plugins = ", ".join(installed) if installed else "none"
    return (
        "model provider of new threads: builtin, openai, or the name of an installed agent "
        f"plugin (entry point group appserver.agents; installed: {plugins}); a thread picks "
        "another with modelProvider (default builtin)"
    )


MODEL_HELP = f"model of new openai threads (default {DEFAULT_MODEL})"
BASE_URL_HELP = (
    f"OpenAI-compatible endpoint, POST URL/chat/completions (default {DEFAULT_BASE_URL})"
)
KEY_HELP = "API key of the openai agent (default $OPENAI_API_KEY)"
MODEL_TIMEOUT_HELP = "connect timeout and longest pause in a streamed answer (default 60)"

STORE_RETRY_HELP = (
    f"how long a running turn waits for a failing store (disk full, database locked past "
    f"the {BUSY_TIMEOUT_SECONDS:g} s busy timeout, I/O error) before it ends failed with the "
    f"store's reason (default {STORE_RETRY_SECONDS:g}). Meanwhile its subscribers get an "
    f"`error` notification (willRetry: true) and the write is retried with backoff "
    f"({STORE_RETRY_FIRST_BACKOFF:g} s doubling to {STORE_RETRY_MAX_BACKOFF:g} s); "
    "turn/completed goes out only once the turn's end is stored. A request whose write "
    "fails is answered -32603 storeUnavailable."
)

PG_STORE_HELP = (
    "keep threads in PostgreSQL: postgresql://USER[:PASSWORD]@HOST[:PORT]/DB "
    "(default $APPSERVER_DATABASE_URL; else SQLite in the data dir, which stays the home of "
    "the lock file)"
)
NODE_HELP = (
    "this node's name (default: the host name); with a postgresql:// store, runs this "
    "server as a node of a cluster (docs/operations.md)"
)
LEASE_HELP = (
    "cluster: how long a node's thread ownership lasts without a renewal; a dead node's "
    "threads are taken over after it (default %(default)s)"
)
