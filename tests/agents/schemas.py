"""Validation of what the agent emits against ../shared/codex-schema (when it is there)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "shared" / "codex-schema"


def schemas_available() -> bool:
    return SCHEMA_DIR.is_dir()


@cache
def _validator(file: str, definition: str | None) -> Any:
    schema = json.loads((SCHEMA_DIR / file).read_text(encoding="utf-8"))
    if definition is not None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    return jsonschema.Draft7Validator(schema)


def check_item(item: dict[str, Any]) -> None:
    """Raise if `item` is not a valid ThreadItem (no-op without the schema directory)."""
    if schemas_available():
        _validator("v2/ItemStartedNotification.json", "ThreadItem").validate(item)


def check_approval(kind: str, params: dict[str, Any]) -> None:
    if schemas_available():
        full = {"threadId": "t", "turnId": "u", **params}
        _validator(f"{kind[0].upper()}{kind[1:]}RequestApprovalParams.json", None).validate(full)
