"""`model/list`, `modelProvider/list` and `modelProvider/capabilities/read`: the agent
backends this server has, in Codex 0.171's shapes. Each backend is a model provider (a
thread picks one by `modelProvider`): the builtin ones with the one model a thread of it
gets when it names none, then an embedder's and installed plugins' backends with the
models they advertise (agents/catalog.py; the first is the default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from appserver.agents.catalog import AgentEntry
from appserver.agents.openai_settings import DEFAULT_BASE_URL, PROVIDER_NAME
from appserver.protocol import errors
from appserver.protocol import results as r
from appserver.protocol.errors import InvalidParams, InvalidRequest
from appserver.protocol.settings_types import ModelListParams, ModelProviderListParams
from appserver.requests import RequestContext

from .common import Handler, Services, checked_provider

T = TypeVar("T")

UINT32_MAX = 2**32 - 1
Modality = Literal["text", "image", "audio"]


def page(
    items: Sequence[T], cursor: str | None, limit: int | None, noun: str
) -> tuple[list[T], str | None]:
    """One page of a short fixed list, paged as Codex pages its catalogues: the cursor is
    the index of the page's first item (a decimal string), `limit` 0 counts as 1 and no
    limit means the rest."""
    if limit is not None and not 0 <= limit <= UINT32_MAX:
        raise InvalidParams.field("limit", f"must be between 0 and {UINT32_MAX}")
    start = 0
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdecimal()):
            raise errors.invalid_cursor(cursor)
        start = int(cursor)
        if start > len(items):
            raise InvalidRequest(
                f"cursor {start} exceeds total {noun} {len(items)}", kind="invalidCursor"
            )
    end = len(items) if limit is None else min(len(items), start + max(limit, 1))
    return list(items[start:end]), (str(end) if end < len(items) else None)


def displayable_url(url: str) -> str | None:
    """`url`, unless it could carry a secret (credentials or a query) or is not a URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc or "@" in parts.netloc or parts.query:
        return None
    return url


def _model(
    name: str,
    display_name: str,
    description: str,
    modalities: list[Modality],
    is_default: bool = True,  # a builtin provider has one model: the one its threads get
) -> r.Model:
    # appserver passes no reasoning effort to any backend: "none" is the only one.
    return r.Model(
        id=name,
        model=name,
        display_name=display_name,
        description=description,
        hidden=False,
        is_default=is_default,
        default_reasoning_effort="none",
        supported_reasoning_efforts=[],
        input_modalities=modalities,
        additional_speed_tiers=[],
        service_tiers=[],
        default_service_tier=None,
        model_specialty=None,
        multi_agent_version=None,
        supports_personality=False,
        upgrade=None,
        upgrade_info=None,
        availability_nux=None,
        available_access_programs=None,
    )


def _entry_models(entry: AgentEntry) -> list[r.Model]:
    return [
        _model(
            m.id,
            m.display_name or m.id,
            m.description or f"{m.id} of the {entry.display_name} agent backend",
            list(m.input_modalities),
            is_default=i == 0,
        )
        for i, m in enumerate(entry.models)
    ]


def provider_models(s: Services, provider: str) -> list[r.Model]:
    entry = s.backends.agents.get(provider)
    if entry is not None:
        return _entry_models(entry)
    if provider == PROVIDER_NAME:
        name = s.backends.openai.model
        url = displayable_url(s.backends.openai.base_url)
        where = f" at {url}" if url else ""
        description = f"{name} through the OpenAI-compatible chat completions endpoint{where}"
        return [_model(name, name, description, ["text", "image"])]
    description = (
        "appserver's builtin scripted agent: it follows the /directives in its input "
        "and needs no network"
    )
    return [_model(s.backends.default_model(provider), "Script", description, ["text"])]


def provider_summary(s: Services, provider: str) -> r.ModelProviderSummary:
    settings: r.ProviderSettings
    entry = s.backends.agents.get(provider)
    if entry is not None:  # an embedder's or a plugin's: nothing to configure from here
        return r.ModelProviderSummary(
            id=provider,
            name=entry.display_name,
            can_edit=False,
            settings=r.CustomGatewayProviderSettings(type="customGateway", auth={"mode": "none"}),
            base_url=None,
        )
    if provider == PROVIDER_NAME:
        openai = s.backends.openai
        if openai.base_url.rstrip("/") == DEFAULT_BASE_URL:
            name, settings = "OpenAI", r.OpenaiProviderSettings(type="openai")
        else:
            # The API key comes from a key file or $OPENAI_API_KEY (never from a client).
            auth = {"mode": "externallyConfigured", "envKey": None} if openai.api_key else None
            settings = r.CustomGatewayProviderSettings(
                type="customGateway", auth=auth or {"mode": "none"}
            )
            name = "OpenAI-compatible"
        return r.ModelProviderSummary(
            id=provider,
            name=name,
            can_edit=False,
            settings=settings,
            base_url=displayable_url(openai.base_url),
        )
    return r.ModelProviderSummary(
        id=provider,
        name="Builtin script agent",
        can_edit=False,
        settings=r.CustomGatewayProviderSettings(type="customGateway", auth={"mode": "none"}),
        base_url=None,
    )


async def model_list(s: Services, ctx: RequestContext, p: ModelListParams) -> r.ModelListResponse:
    if p.model_provider is None:
        provider = s.backends.default_provider
    else:
        provider = checked_provider(p.model_provider, s.backends, "modelProvider")
    data, next_cursor = page(provider_models(s, provider), p.cursor, p.limit, "models")
    return r.ModelListResponse(data=data, next_cursor=next_cursor)


async def model_provider_list(
    s: Services, ctx: RequestContext, p: ModelProviderListParams
) -> r.ModelProviderListResponse:
    return r.ModelProviderListResponse(
        data=[provider_summary(s, name) for name in s.backends.names()],
        default_provider_id=s.backends.default_provider,
        # The default is the server's --agent, fixed at start (no modelProvider/default/set).
        can_change_default=False,
    )


async def model_provider_capabilities_read(
    s: Services, ctx: RequestContext, p: ModelProviderListParams
) -> r.ModelProviderCapabilitiesReadResponse:
    """The reference answers for its configured provider (it takes no params and ignores
    any). Neither of appserver's backends has an image generation or a web search tool:
    the builtin agent follows directives and the OpenAI-compatible one offers only its
    shell tool, so both capabilities are false whichever provider is the default."""
    return r.ModelProviderCapabilitiesReadResponse(image_generation=False, web_search=False)


METHODS: dict[str, Handler] = {
    "model/list": model_list,
    "modelProvider/list": model_provider_list,
    "modelProvider/capabilities/read": model_provider_capabilities_read,
}
