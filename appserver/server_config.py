"""ServerConfig: every CLI option as a field (PROTOCOL.md §2.1, §11), and what the
composition root derives from it (agent backends, websocket authentication)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from appserver.agents import AgentFactory, Backends, OpenAISettings
from appserver.agents.catalog import build_backends
from appserver.agents.openai_settings import API_KEY_ENV, DEFAULT_BASE_URL, DEFAULT_MODEL
from appserver.threads.event_log import DEFAULT_MAX_BYTES as DEFAULT_EVENT_LOG_BYTES  # (B)
from appserver.threads.event_log import DEFAULT_MAX_EVENTS as DEFAULT_EVENT_LOG_EVENTS  # (B)
from appserver.threads.persist import STORE_RETRY_SECONDS
from appserver.transports.ws_auth import WsAuthPolicy, WsAuthSettings

DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DEFAULT_LEASE_SECONDS = 5.0

__all__ = ["DEFAULT_LEASE_SECONDS", "DEFAULT_MAX_MESSAGE_BYTES", "ServerConfig"]


@attrs.define(kw_only=True)
class ServerConfig:
    """Every CLI option as a field (PROTOCOL.md §2.1, §11). data_dir=None: in memory."""

    listen: str = "stdio://"  # stdio://, ws://HOST:PORT, unix://[PATH] (off: none, refused)
    data_dir: Path | None = None
    # websocket authentication (PROTOCOL.md §2.2, transports/ws_auth.py). ws_auth None with
    # a token file or digest means capability-token.
    ws_auth: str | None = None  # "capability-token" | "signed-bearer-token"
    ws_token_file: Path | None = None
    ws_token_sha256: str | None = None
    ws_shared_secret_file: Path | None = None
    ws_issuer: str | None = None
    ws_audience: str | None = None
    ws_max_clock_skew_seconds: int | None = None  # None: 30
    allow_origins: Sequence[str] = ()
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    outbound_queue: int = 1024
    max_inflight: int = 128
    idle_unload_seconds: float = 1800.0
    shutdown_timeout: float = 30.0
    store_retry_seconds: float = STORE_RETRY_SECONDS  # §8.6: a failing store, then failed
    # PostgreSQL store (postgresql://...; None: SQLite in data_dir, or memory); node_id
    # names the node's connections (application_name appserver:<node_id>; None: the
    # host name); store_pool_max bounds its connection pool.
    store_url: str | None = None
    node_id: str | None = None
    store_pool_max: int = 8
    # Cluster (appserver/cluster/): on with a PostgreSQL store and a node_id. A thread's
    # owner renews its lease every lease_seconds / 3; a lease not renewed for
    # lease_seconds is taken over by another node.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    # §13: each thread's numbered event log keeps its most recent events, at most this
    # many and this many bytes (threads/event_log.py).
    event_log_events: int = DEFAULT_EVENT_LOG_EVENTS
    event_log_bytes: int = DEFAULT_EVENT_LOG_BYTES
    # Read by the `appserver` command (logs.setup_logging); an embedding program
    # configures `logging` itself.
    log_level: str = "info"
    log_json: bool = False
    # websocket liveness (§2.2): ping an idle peer this often; no pong in time = gone
    ws_ping_interval: float = 30.0
    ws_ping_timeout: float = 30.0
    # Agent backends (issue #9): the provider of new threads, and the OpenAI-compatible one.
    agent: str = "builtin"  # builtin, openai, a name of `agents` or of an installed plugin
    # Your own backends (docs/agents.md): modelProvider name -> zero-argument factory of an
    # AgentBackend (a class will do). Served beside the builtin ones and installed plugins.
    agents: Mapping[str, AgentFactory] = attrs.Factory(dict)
    # Load installed plugins (entry point group `appserver.agents`); False: only `agents`.
    agent_plugins: bool = True
    model: str = DEFAULT_MODEL
    model_base_url: str = DEFAULT_BASE_URL
    api_key_file: Path | None = None  # else $OPENAI_API_KEY
    model_timeout: float = 60.0  # connect, and between two chunks of a streamed answer
    model_retry_delay: float = 1.0  # first backoff after a 429 / 5xx answer
    model_api: str = "chat"  # openai backend: "chat" (/chat/completions) | "responses"
    # The builtin agent reports character-counted token usage (off: a plain turn's events
    # are exactly PROTOCOL.md §6's).
    builtin_token_usage: bool = False

    @property
    def cluster(self) -> bool:
        """Whether this server runs as a node of a cluster: a PostgreSQL store and a node id."""
        return self.store_url is not None and self.node_id is not None

    def read_api_key(self) -> str | None:
        """The model endpoint's API key: the key file's trimmed content, else
        $OPENAI_API_KEY, else None (no Authorization header)."""
        if self.api_key_file is not None:
            key = self.api_key_file.read_text(encoding="utf-8").strip()
            if not key:
                raise ValueError(f"API key file is empty: {self.api_key_file}")
            return key
        return os.environ.get(API_KEY_ENV) or None

    def backends(self) -> Backends:
        openai = OpenAISettings(
            base_url=self.model_base_url,
            model=self.model,
            api_key=self.read_api_key(),
            timeout=self.model_timeout,
            retry_delay=self.model_retry_delay,
            api=self.model_api,
        )
        # AgentUnavailable (a ValueError): an unknown default agent, a factory that fails.
        return build_backends(
            default_provider=self.agent,
            openai=openai,
            agents=self.agents,
            plugins=self.agent_plugins,
            builtin_usage=self.builtin_token_usage,
        )

    def ws_auth_settings(self) -> WsAuthSettings:
        return WsAuthSettings(
            mode=self.ws_auth,
            token_file=self.ws_token_file,
            token_sha256=self.ws_token_sha256,
            shared_secret_file=self.ws_shared_secret_file,
            issuer=self.ws_issuer,
            audience=self.ws_audience,
            max_clock_skew_seconds=self.ws_max_clock_skew_seconds,
        )

    def load_ws_auth(self) -> WsAuthPolicy | None:
        """The websocket authentication policy; raises WsAuthError (a ValueError) when
        the settings do not fit together or a file cannot be read."""
        return self.ws_auth_settings().load()
