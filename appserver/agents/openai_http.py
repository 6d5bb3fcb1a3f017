"""Requests to an OpenAI-compatible endpoint (`/chat/completions`, or `/responses` with
`api="responses"`; the settings are in openai_settings): the HTTP client, the request
body, and one request with its error handling, retried on 429 and 5xx answers (each
retry announced by an `error` notification with `willRetry: true`).

Retries go through `tenacity` (exponential backoff with jitter; a `Retry-After` header
is honoured instead, and one longer than `max_retry_after` ends the turn at once). After
each answer the endpoint's token usage is reported (`ctx.token_usage`, when the context
has it: agents.base.TalkingBack)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import tenacity
import trio

from .base import TurnContext, TurnFailed
from .openai_responses import ResponsesStream, responses_body
from .openai_settings import API_KEY_ENV as API_KEY_ENV  # (re-exported: its old place)
from .openai_settings import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from .openai_settings import DEFAULT_MODEL as DEFAULT_MODEL
from .openai_settings import MODEL_APIS as MODEL_APIS
from .openai_settings import OpenAISettings as OpenAISettings
from .openai_stream import MAX_ERROR_DETAIL_CHARS, ChatStream, Reply, error_text, read_reply

log = logging.getLogger("appserver.agents.openai")


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


def request_body(
    settings: OpenAISettings,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The body of one streamed request in the configured API. `messages` are chat
    messages and `tools` chat-completions tools (converted for the Responses API)."""
    if settings.api == "responses":
        return responses_body(model, messages, tools)
    body: dict[str, Any] = {"model": model, "messages": list(messages)}
    if tools:
        body["tools"] = tools
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body


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
    items (a summary or a review, returned rather than said). The answer's usage goes to
    `ctx.token_usage`."""
    pieces: list[str] = [] if text is None else text

    async def announce(state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        failure = outcome.exception() if outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        await ctx.retrying(
            scrub(
                settings,
                f"{failure}; retrying in {delay:.3g} s "
                f"(attempt {state.attempt_number + 1} of {settings.max_attempts})",
            )
        )

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(settings.max_attempts),
        wait=_Wait(settings),
        retry=tenacity.retry_if_exception_type(_Retryable),
        before_sleep=announce,
        sleep=trio.sleep,
        reraise=True,
    )
    try:
        reply: Reply = await retrying(_attempt, ctx, client, settings, body, pieces, emit)
    except _Retryable as exc:
        raise TurnFailed(f"{exc} (gave up after {settings.max_attempts} attempts)") from None
    report = getattr(ctx, "token_usage", None)
    if reply.usage is not None and report is not None:
        await report(dict(reply.usage))
    return reply


class _Wait(tenacity.wait.wait_base):
    """The endpoint's Retry-After when it gives one, else exponential backoff from
    `retry_delay` with up to `retry_delay` of jitter."""

    def __init__(self, settings: OpenAISettings) -> None:
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=settings.retry_delay,
            exp_base=2,
            jitter=settings.retry_delay,
            max=settings.max_retry_after,
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        if isinstance(failure, _Retryable) and failure.retry_after is not None:
            return failure.retry_after
        return float(self._backoff(retry_state))


async def _attempt(
    ctx: TurnContext,
    client: httpx.AsyncClient,
    settings: OpenAISettings,
    body: dict[str, Any],
    text: list[str],
    emit: bool,
) -> Reply:
    url = settings.url
    log.debug("POST %s (model %s)", url, body["model"])
    try:
        async with client.stream("POST", url, json=body) as response:
            status = response.status_code
            if status != 200:
                detail = await _error_detail(response)
                message = f"the model endpoint answered HTTP {status}: {detail}"
                if status == 429 or status >= 500:
                    retry_after = _retry_after(response)
                    if retry_after is not None and retry_after > settings.max_retry_after:
                        raise TurnFailed(
                            f"{message}; the endpoint asks to retry after {retry_after:g} s"
                        )
                    raise _Retryable(message, retry_after)
                if status in (401, 403):
                    message += " (check the API key: --api-key-file or OPENAI_API_KEY)"
                raise TurnFailed(message)
            content_type = response.headers.get("content-type", "")
            if "json" in content_type:
                raise TurnFailed(
                    "malformed response from the model endpoint: expected a server-sent "
                    f"event stream, got {content_type}"
                )
            stream_type = ResponsesStream if settings.api == "responses" else ChatStream
            return await read_reply(stream_type(ctx, text, emit=emit), response)
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


class _Retryable(Exception):
    """A 429 / 5xx answer: retried (its message is the str)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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
