"""Params of the account, configuration, model and feature methods, as Codex 0.171 has
them (`v2/GetAccountParams.json`, `ConfigReadParams`, `ModelListParams`,
`ModelProviderListParams`, `ExperimentalFeatureListParams`). Their results are in
`appserver.protocol.results`.

Every field the schemas allow is accepted; a value appserver cannot act on is ignored
(`refreshToken`: there is no token to refresh; `includeHidden`: no model is hidden).
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class GetAccountParams:
    refresh_token: bool = False


@attrs.frozen(kw_only=True)
class ConfigReadParams:
    # Codex resolves project config layers from here; appserver has none, so its
    # effective settings are the same from every directory.
    cwd: str | None = None
    include_layers: bool = False


@attrs.frozen(kw_only=True)
class ModelListParams:
    cursor: str | None = None
    limit: int | None = None
    include_hidden: bool | None = None
    model_provider: str | None = None


@attrs.frozen(kw_only=True)
class ModelProviderListParams:
    """No fields (extra ones are ignored)."""


@attrs.frozen(kw_only=True)
class ExperimentalFeatureListParams:
    cursor: str | None = None
    limit: int | None = None
    thread_id: str | None = None
