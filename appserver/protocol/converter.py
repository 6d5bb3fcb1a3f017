"""The one cattrs converter: camelCase on the wire, strict primitive types, precise errors.

`structure_params(data, cls)` is the only way client params become typed values; it turns
every cattrs failure into an `InvalidParams` whose `data.errors` lists `{path, message}`
with dotted wire paths such as `input[0].text` (PROTOCOL.md §1.1, §9).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.cols import is_mapping, is_sequence, list_structure_factory, mapping_structure_factory
from cattrs.errors import (
    CattrsError,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import format_exception

from appserver.protocol.errors import InvalidParams

T = TypeVar("T")

# Field names that stay snake_case on the wire (PROTOCOL.md §4).
SNAKE_CASE_FIELDS = frozenset(
    {
        "text_elements",
        "move_path",
        # AskForApproval {"granular": {...}}
        "mcp_elicitations",
        "request_permissions",
        "sandbox_approval",
        "skill_approval",
    }
)


@functools.cache
def camel(name: str) -> str:
    if name in SNAKE_CASE_FIELDS or "_" not in name.strip("_"):
        return name.strip("_") if name.endswith("_") else name
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def field_wire_name(cls: type, name: str) -> str:
    """A field's wire name: camelCase, except in the few classes whose every field keeps
    its snake_case name on the wire (``__wire_snake_case__ = True``, e.g. Codex's
    ``FuzzyFileSearchResult``)."""
    return name if getattr(cls, "__wire_snake_case__", False) else camel(name)


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class WireTypeError(TypeError):
    """A value of the wrong JSON type; its message is what the client sees."""


def _strict_str(value: Any, _: type) -> str:
    if type(value) is not str:
        raise WireTypeError(f"expected a string, got {type_name(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise WireTypeError("not valid Unicode (contains a lone surrogate)") from None
    return value


def _strict_int(value: Any, _: type) -> int:
    if type(value) is not int:
        raise WireTypeError(f"expected an integer, got {type_name(value)}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if type(value) not in (int, float):
        raise WireTypeError(f"expected a number, got {type_name(value)}")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if type(value) is not bool:
        raise WireTypeError(f"expected a boolean, got {type_name(value)}")
    return bool(value)


def _wrap_object_hook(cls: type, inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, type_: Any) -> Any:
        if type(value) is not dict:
            raise WireTypeError(f"expected an object, got {type_name(value)}")
        # An optional field sent as null means the same as leaving it out (§9).
        return inner({k: v for k, v in value.items() if v is not None}, type_)

    return structure


def make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)

    def structure_factory(cls: type) -> Callable[[Any, Any], Any]:
        renames: dict[str, Any] = {
            a.name: override(rename=field_wire_name(cls, a.name)) for a in attrs.fields(cls)
        }
        return _wrap_object_hook(cls, make_dict_structure_fn(cls, conv, **renames))

    def unstructure_factory(cls: type) -> Callable[[Any], Any]:
        renames: dict[str, Any] = {
            a.name: override(rename=field_wire_name(cls, a.name)) for a in attrs.fields(cls)
        }
        return make_dict_unstructure_fn(cls, conv, **renames)

    def list_factory(type_: Any, c: cattrs.BaseConverter) -> Callable[[Any, Any], Any]:
        inner = list_structure_factory(type_, c)

        def structure(value: Any, t: Any) -> Any:
            if type(value) is not list:
                raise WireTypeError(f"expected an array, got {type_name(value)}")
            return inner(value, t)

        return structure

    def mapping_factory(type_: Any, c: cattrs.BaseConverter) -> Callable[[Any, Any], Any]:
        inner = mapping_structure_factory(type_, c)

        def structure(value: Any, t: Any) -> Any:
            if type(value) is not dict:
                raise WireTypeError(f"expected an object, got {type_name(value)}")
            return inner(value, t)

        return structure

    conv.register_structure_hook_factory(is_sequence, list_factory)
    conv.register_structure_hook_factory(is_mapping, mapping_factory)
    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


converter = make_converter()


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, WireTypeError):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ValueError) and str(exc).startswith("expected "):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unexpected fields: {sorted(exc.extra_fields)}"
    if isinstance(exc, CattrsError) and " not in literal " in str(exc):
        literal_args = getattr(type_, "__args__", ())
        allowed = ", ".join(repr(a) for a in literal_args)
        return f"must be one of {allowed}" if allowed else str(exc)
    return format_exception(exc, type_)


def _collect(exc: BaseException, path: str, type_: Any, out: list[dict[str, str]]) -> None:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        with_notes, without_notes = exc.group_exceptions()
        for sub, note in with_notes:
            name = getattr(note, "name", None)
            if name is not None:
                sub_path = f"{path}.{camel(name)}" if path else camel(name)
            else:
                sub_path = f"{path}[{getattr(note, 'index', '?')}]"
            _collect(sub, sub_path, getattr(note, "type", Any), out)
        for plain in without_notes:
            _collect(plain, path, type_, out)
        return
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            _collect(member, path, type_, out)
        return
    out.append({"path": path, "message": _describe(exc, type_)})


def validation_errors(exc: BaseException) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    _collect(exc, "", Any, errors)
    return errors


def structure_params(data: Any, cls: type[T]) -> T:
    """Structure client params into `cls`, or raise InvalidParams naming every bad field."""
    if data is None:
        data = {}
    try:
        return converter.structure(data, cls)
    except (ClassValidationError, IterableValidationError, WireTypeError) as exc:
        errors = validation_errors(exc)
        if not errors or (len(errors) == 1 and not errors[0]["path"]):
            errors = [{"path": "", "message": _describe(exc, cls)}]
            raise InvalidParams(f"Invalid params: {errors[0]['message']}", errors=errors) from None
        summary = "; ".join(
            f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in errors
        )
        raise InvalidParams(f"Invalid params: {summary}", errors=errors) from None


def unstructure(value: Any) -> Any:
    return converter.unstructure(value)
