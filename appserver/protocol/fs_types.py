"""Params, results and the notification of the `fs/*` methods, as Codex 0.171 has them
(`v2/Fs*Params.json`, `v2/Fs*Response.json`, `v2/FsChangedNotification.json`).

Paths are strings here; that they are absolute is checked by the handlers (a relative
path is -32602 naming the field). File contents travel as base64 (`dataBase64`).
Methods whose result is an empty object use `wire.Empty`.
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class FsPathParams:
    """`{path}`: fs/readFile, fs/getMetadata, fs/readDirectory."""

    path: str


@attrs.frozen(kw_only=True)
class FsWriteFileParams:
    path: str
    data_base64: str


@attrs.frozen(kw_only=True)
class FsCreateDirectoryParams:
    path: str
    recursive: bool | None = None  # default true: parents are created too


@attrs.frozen(kw_only=True)
class FsRemoveParams:
    path: str
    recursive: bool | None = None  # default true
    force: bool | None = None  # default true: a missing path is not an error


@attrs.frozen(kw_only=True)
class FsCopyParams:
    source_path: str
    destination_path: str
    recursive: bool = False  # required for a directory; ignored for a file


@attrs.frozen(kw_only=True)
class FsWatchParams:
    watch_id: str
    path: str


@attrs.frozen(kw_only=True)
class FsUnwatchParams:
    watch_id: str


@attrs.frozen(kw_only=True)
class FsReadFileResponse:
    data_base64: str


@attrs.frozen(kw_only=True)
class FsGetMetadataResponse:
    is_directory: bool
    is_file: bool
    is_symlink: bool
    created_at_ms: int  # 0 where the platform does not record it (Linux)
    modified_at_ms: int


@attrs.frozen(kw_only=True)
class FsReadDirectoryEntry:
    file_name: str
    is_directory: bool
    is_file: bool


@attrs.frozen(kw_only=True)
class FsReadDirectoryResponse:
    entries: list[FsReadDirectoryEntry]


@attrs.frozen(kw_only=True)
class FsWatchResponse:
    path: str


@attrs.frozen(kw_only=True)
class FsChangedNotification:
    watch_id: str
    changed_paths: list[str]
