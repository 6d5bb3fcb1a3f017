"""`account/read`: appserver has no Codex account (no login, no ChatGPT plan, no stored
API key). The OpenAI-compatible backend's key comes from a key file or $OPENAI_API_KEY at
server start, as a Codex provider's `env_key` does, so no login is ever required."""

from __future__ import annotations

from appserver.protocol import results as r
from appserver.protocol.settings_types import GetAccountParams
from appserver.requests import RequestContext

from .common import Handler, Services


async def account_read(
    s: Services, ctx: RequestContext, p: GetAccountParams
) -> r.GetAccountResponse:
    # `refreshToken`: there is no token to refresh.
    return r.GetAccountResponse(account=None, requires_openai_auth=False, user_id=None)


METHODS: dict[str, Handler] = {
    "account/read": account_read,
}
