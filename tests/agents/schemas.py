"""Validation of what the agent emits against ../shared/codex-schema-0.171 (when it is
there) and against the protocol types (appserver.protocol.items)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from appserver.protocol.items import ThreadItem
from appserver.protocol.server_requests import SERVER_REQUESTS

from support import round_trip

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "shared" / "codex-schema-0.171"

# What the registry adds to an agent's approval params before sending them (§7.1).
_FILLED_BY_REGISTRY = {"threadId": "t", "turnId": "u", "startedAtMs": 0}


def schemas_available() -> bool:
    return SCHEMA_DIR.is_dir()


@cache
def _validator(file: str, definition: str | None) -> Any:
    schema = json.loads((SCHEMA_DIR / file).read_text(encoding="utf-8"))
    if definition is not None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    return jsonschema.Draft7Validator(schema)


def check_item(item: dict[str, Any]) -> None:
    """Raise if `item` is not a valid 0.171 ThreadItem described by the protocol types
    (the schema part is skipped without the schema directory)."""
    if schemas_available():
        _validator("v2/ItemStartedNotification.json", "ThreadItem").validate(item)
    round_trip(item, ThreadItem)


def check_approval(kind: str, params: dict[str, Any]) -> None:
    full = {**_FILLED_BY_REGISTRY, **params}
    if schemas_available():
        _validator(f"{kind[0].upper()}{kind[1:]}RequestApprovalParams.json", None).validate(full)
    round_trip(full, SERVER_REQUESTS[f"item/{kind}/requestApproval"].params)
