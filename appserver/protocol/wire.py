"""Helpers for describing emitted wire shapes once, as attrs types.

- `nullable()`: a field the wire always carries but whose value may be null (the Codex
  schemas list it as required with type `[X, "null"]`). It defaults to None so that
  structuring, which treats null as absent (PROTOCOL.md §9), still works; the schema
  export lists it as required.
- `any_json()`: metadata of a member taken as any JSON value (described by a schema).
- `register_tagged_union(Union)`: structure a union of attrs classes by their `type`
  literal, with a clear error for an unknown tag.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Literal

import attrs

from appserver.protocol.converter import WireTypeError, converter, type_name

# attrs metadata key: the field must be present on the wire (possibly as null).
WIRE_REQUIRED = "appserver.wire_required"
# attrs metadata key: a JSON Schema fragment that replaces the one derived from the type.
WIRE_SCHEMA = "appserver.wire_schema"


def nullable() -> Any:
    """A required field whose value may be null."""
    return attrs.field(default=None, metadata={WIRE_REQUIRED: True})


def any_json(schema: dict[str, Any] | None = None, *, required: bool = False) -> dict[str, Any]:
    """Field metadata for a member of any JSON value, taken as given when structuring;
    the export describes it by `schema` (default: anything). Use it as
    `x: Any = attrs.field(default=None, metadata=any_json(...))`."""
    metadata: dict[str, Any] = {WIRE_SCHEMA: schema if schema is not None else {}}
    if required:
        metadata[WIRE_REQUIRED] = True
    return metadata


def is_wire_required(field: attrs.Attribute[Any]) -> bool:
    return field.default is attrs.NOTHING or bool(field.metadata.get(WIRE_REQUIRED))


def tag_of(cls: type, tag: str = "type") -> str:
    """The single literal value of `cls`'s tag field."""
    attrs.resolve_types(cls)
    field = attrs.fields_dict(cls)[tag]
    if typing.get_origin(field.type) is not Literal or len(typing.get_args(field.type)) != 1:
        raise TypeError(f"{cls.__name__}.{tag} is not a single literal")
    value = typing.get_args(field.type)[0]
    assert isinstance(value, str)
    return value


def register_tagged_union(union: Any, tag: str = "type") -> None:
    """Structure `union` (attrs classes with a `tag: Literal["…"]` field) by the tag."""
    classes: dict[str, type] = {tag_of(cls, tag): cls for cls in typing.get_args(union)}
    allowed = ", ".join(repr(k) for k in classes)

    def structure(value: Any, _: Any) -> Any:
        if type(value) is not dict:
            raise WireTypeError(f"expected an object, got {type_name(value)}")
        kind = value.get(tag)
        cls = classes.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise WireTypeError(f"unknown {tag} {kind!r}; expected one of {allowed}")
        return converter.structure(value, cls)

    _register_with_optional(union, structure)


def _register_with_optional(union: Any, structure: Callable[[Any, Any], Any]) -> None:
    """Register the hook for `union` and for `union | None` (null stays None)."""
    converter.register_structure_hook(union, structure)
    converter.register_structure_hook(
        union | None, lambda value, t: None if value is None else structure(value, t)
    )


def register_union(union: Any, pick: Callable[[Any], Any]) -> None:
    """Structure `union` with the member type that `pick(value)` chooses."""

    def structure(value: Any, _: Any) -> Any:
        return converter.structure(value, pick(value))

    _register_with_optional(union, structure)


RequestId = int | str


def _structure_request_id(value: Any, _: Any) -> int | str:
    if type(value) is int or type(value) is str:
        return value
    raise WireTypeError(f"expected a string or an integer, got {type_name(value)}")


converter.register_structure_hook(RequestId, _structure_request_id)


@attrs.frozen(kw_only=True)
class Empty:
    """An empty object."""
