"""Requests to an OpenAI-compatible `/chat/completions` endpoint: the settings, the HTTP
client, and one request with its error handling, retried with backoff on 429 and 5xx
answers (each retry announced by an `error` notification with `willRetry: true`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import attrs
import httpx
import trio

from .base import TurnContext, TurnFailed
from .openai_stream import MAX_ERROR_DETAIL_CHARS, Reply, error_text, read_reply

log = logging.getLogger("appserver.agents.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
API_KEY_ENV = "OPENAI_API_KEY"


@attrs.frozen(kw_only=True)
class OpenAISettings:
    """How the backend reaches its endpoint (set from ServerConfig at server start)."""

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL  # for threads that name no model of their own
    api_key: str | None = attrs.field(default=None, repr=False)
    timeout: float = 60.0  # to connect, and between two chunks of a response
    max_attempts: int = 3  # per request, for 429 and 5xx answers
    retry_delay: float = 1.0  # first backoff, doubled on each retry
    max_retry_after: float = 30.0  # a longer Retry-After ends the turn instead
    max_steps: int = 20  # requests per turn

    @property
    def completions_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def scrub(settings: OpenAISettings, text: str) -> str:
    """`text` with the API key replaced, for anything that could reach a client."""
    key = settings.api_key
    return text.replace(key, "[redacted]") if key else text


def open_client(settings: OpenAISettings) -> httpx.AsyncClient:
    """The HTTP client for one turn: the API key goes only into its Authorization header."""
    headers = {"Accept": "text/event-stream"}
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    timeout = httpx.Timeout(settings.timeout)
    return httpx.AsyncClient(headers=headers, timeout=timeout)


async def request_reply(
    ctx: TurnContext,
    client: httpx.AsyncClient,
    settings: OpenAISettings,
    body: dict[str, Any],
    text: list[str] | None = None,
    *,
    emit: bool = True,
) -> Reply:
    """One request, retried on 429 / 5xx (with `error` willRetry notifications). The
    answer's text pieces are appended to `text` as they arrive; `emit` False streams no
    items (a summary or a review, returned rather than said)."""
    attempt = 1
    while True:
        outcome = await _attempt(ctx, client, settings, body, [] if text is None else text, emit)
        if isinstance(outcome, Reply):
            return outcome
        if attempt >= settings.max_attempts:
            raise TurnFailed(f"{outcome.message} (gave up after {attempt} attempts)")
        delay = outcome.retry_after
        if delay is None:
            delay = settings.retry_delay * 2 ** (attempt - 1)
        elif delay > settings.max_retry_after:
            raise TurnFailed(f"{outcome.message}; the endpoint asks to retry after {delay:g} s")
        attempt += 1
        await ctx.retrying(
            scrub(
                settings,
                f"{outcome.message}; retrying in {delay:g} s "
                f"(attempt {attempt} of {settings.max_attempts})",
            )
        )
        await trio.sleep(delay)


async def _attempt(
    ctx: TurnContext,
    client: httpx.AsyncClient,
    settings: OpenAISettings,
    body: dict[str, Any],
    text: list[str],
    emit: bool,
) -> Reply | _Retryable:
    url = settings.completions_url
    log.debug("POST %s (model %s, %d messages)", url, body["model"], len(body["messages"]))
    try:
        async with client.stream("POST", url, json=body) as response:
            status = response.status_code
            if status != 200:
                detail = await _error_detail(response)
                message = f"the model endpoint answered HTTP {status}: {detail}"
                if status == 429 or status >= 500:
                    return _Retryable(message, _retry_after(response))
                if status in (401, 403):
                    message += " (check the API key: --api-key-file or OPENAI_API_KEY)"
                raise TurnFailed(message)
            content_type = response.headers.get("content-type", "")
            if "json" in content_type:
                raise TurnFailed(
                    "malformed response from the model endpoint: expected a server-sent "
                    f"event stream, got {content_type}"
                )
            return await read_reply(ctx, response, text, emit=emit)
    except httpx.ConnectTimeout:
        raise TurnFailed(
            f"timed out after {settings.timeout:g} s connecting to the model endpoint {url}"
        ) from None
    except httpx.ConnectError as exc:
        raise TurnFailed(f"cannot connect to the model endpoint {url}: {exc}") from None
    except httpx.TimeoutException:
        raise TurnFailed(
            f"the model endpoint {url} sent nothing for {settings.timeout:g} s"
        ) from None
    except httpx.RemoteProtocolError as exc:
        raise TurnFailed(
            f"the model endpoint {url} broke off the response: {exc or 'connection closed'}"
        ) from None
    except httpx.HTTPError as exc:
        raise TurnFailed(
            f"request to the model endpoint {url} failed: {type(exc).__name__}: {exc}"
        ) from None


@dataclass
class _Retryable:
    message: str
    retry_after: float | None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < float("inf") else None


async def _error_detail(response: httpx.Response) -> str:
    raw = (await response.aread()).decode("utf-8", errors="replace")
    try:
        return error_text(json.loads(raw))
    except ValueError:
        return raw.strip()[:MAX_ERROR_DETAIL_CHARS] or response.reason_phrase
