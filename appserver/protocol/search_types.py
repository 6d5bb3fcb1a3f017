"""Params and result of `fuzzyFileSearch`, as Codex 0.171 has them (top-level
`FuzzyFileSearchParams.json` / `FuzzyFileSearchResponse.json`, not in `v2/`).

The result's fields are snake_case on the wire (`file_name`, `match_type`), as the
reference's (`__wire_snake_case__`, see `converter.field_wire_name`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

FuzzyFileSearchMatchType = Literal["file", "directory"]


@attrs.frozen(kw_only=True)
class FuzzyFileSearchParams:
    query: str
    roots: list[str]
    # A later search with the same token cancels this one, which then answers no files.
    cancellation_token: str | None = None


@attrs.frozen(kw_only=True)
class FuzzyFileSearchResult:
    __wire_snake_case__: ClassVar[bool] = True

    root: str  # as given in `roots`
    path: str  # relative to `root`
    file_name: str
    match_type: FuzzyFileSearchMatchType
    score: int
    indices: list[int] | None = None  # character positions of the match in `path`


@attrs.frozen(kw_only=True)
class FuzzyFileSearchResponse:
    files: list[FuzzyFileSearchResult]
