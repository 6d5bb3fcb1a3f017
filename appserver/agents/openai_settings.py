"""The OpenAI-compatible backend's settings and defaults, apart from the backend itself
(openai_chat and the modules it imports: httpx, tenacity, ...), so that the CLI, the
server configuration and model/list can name them without importing the backend. The
backend is imported only when an `openai` turn runs (catalog.Backends.get)."""

from __future__ import annotations

import attrs

PROVIDER_NAME = "openai"  # its modelProvider (OpenAIChatAgent.name)
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
API_KEY_ENV = "OPENAI_API_KEY"
MODEL_APIS = ("chat", "responses")

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "MODEL_APIS",
    "PROVIDER_NAME",
    "OpenAISettings",
]


@attrs.frozen(kw_only=True)
class OpenAISettings:
    """How the backend reaches its endpoint (set from ServerConfig at server start)."""

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL  # for threads that name no model of their own
    api_key: str | None = attrs.field(default=None, repr=False)
    timeout: float = 60.0  # to connect, and between two chunks of a response
    max_attempts: int = 3  # per request, for 429 and 5xx answers
    retry_delay: float = 1.0  # first backoff, doubled on each retry (plus jitter)
    max_retry_after: float = 30.0  # a longer Retry-After ends the turn instead
    max_steps: int = 20  # requests per turn
    api: str = "chat"  # "chat" (/chat/completions) or "responses" (/responses)

    @property
    def completions_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @property
    def responses_url(self) -> str:
        return self.base_url.rstrip("/") + "/responses"

    @property
    def url(self) -> str:
        return self.responses_url if self.api == "responses" else self.completions_url
