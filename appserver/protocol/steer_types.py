"""turn/steer, as Codex 0.171 has it (`v2/TurnSteerParams.json`, `v2/TurnSteerResponse.json`):
extra input for the running turn, which must be `expectedTurnId` (PROTOCOL.md §10)."""

from __future__ import annotations

import attrs

from appserver.protocol.types import UserInput


@attrs.frozen(kw_only=True)
class TurnSteerParams:
    thread_id: str
    expected_turn_id: str
    input: list[UserInput]
    client_user_message_id: str | None = None  # the steered userMessage item's clientId


@attrs.frozen(kw_only=True)
class TurnSteerResponse:
    turn_id: str
