"""`fs/*`: the server's files for remote clients, in Codex 0.171's shapes and behaviour.

They act with the server's rights (docs/operations.md). Paths must be absolute (-32602
naming the field otherwise); a path that does not exist is -32600 `pathNotFound` and any
other OS error -32600 with the OS's message (PROTOCOL.md §12). All file work runs in a
worker thread, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import shutil
import stat
from collections.abc import Callable
from typing import TypeVar

import trio

from appserver import fs_watch
from appserver.protocol import fs_types as fst
from appserver.protocol.errors import InvalidParams, InvalidRequest
from appserver.protocol.wire import Empty
from appserver.requests import RequestContext

from .common import Handler, Services

T = TypeVar("T")

# The largest file fs/readFile returns (its base64 is a third larger, in one frame).
MAX_READ_BYTES = 32 * 1024 * 1024


def absolute(path: str, field: str = "path") -> str:
    if "\0" in path:
        raise InvalidParams.field(field, "must not contain a NUL character")
    if not os.path.isabs(path):
        raise InvalidParams.field(field, f"must be an absolute path, got {path!r}")
    return os.path.normpath(path)


def os_error(exc: OSError, path: str) -> InvalidRequest:
    """-32600 with the OS's message and the path it is about; `pathNotFound` when the
    path (or a parent) does not exist."""
    where = exc.filename if isinstance(exc.filename, str) else path
    message = f"{exc.strerror or exc} (os error {exc.errno}): {where}"
    if exc.errno == errno.ENOENT:
        return InvalidRequest(message, kind="pathNotFound")
    return InvalidRequest(message)


async def in_thread(fn: Callable[[], T], path: str) -> T:
    try:
        return await trio.to_thread.run_sync(fn)
    except OSError as exc:
        raise os_error(exc, path) from None


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InvalidRequest(f"path `{path}` is not a file")
        if info.st_size > MAX_READ_BYTES:
            raise InvalidRequest(
                f"file too large: {path} has {info.st_size} bytes, the limit is "
                f"{MAX_READ_BYTES} bytes",
                kind="fileTooLarge",
            )
        data = f.read(MAX_READ_BYTES + 1)
    if len(data) > MAX_READ_BYTES:  # it grew while read
        raise InvalidRequest(
            f"file too large: {path} has over {MAX_READ_BYTES} bytes", kind="fileTooLarge"
        )
    return data


async def read_file(
    s: Services, ctx: RequestContext, p: fst.FsPathParams
) -> fst.FsReadFileResponse:
    path = absolute(p.path)

    def work() -> str:
        # A FIFO or device would block open() or read(): only regular files are opened.
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InvalidRequest(f"path `{path}` is not a file")
        return base64.b64encode(_read(path)).decode("ascii")

    return fst.FsReadFileResponse(data_base64=await in_thread(work, path))


async def write_file(s: Services, ctx: RequestContext, p: fst.FsWriteFileParams) -> Empty:
    path = absolute(p.path)
    try:
        data = base64.b64decode(p.data_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest(f"fs/writeFile requires valid base64 dataBase64: {exc}") from None

    def work() -> None:
        with open(path, "wb") as f:
            f.write(data)

    await in_thread(work, path)
    return Empty()


async def create_directory(
    s: Services, ctx: RequestContext, p: fst.FsCreateDirectoryParams
) -> Empty:
    path = absolute(p.path)
    if p.recursive is False:
        await in_thread(lambda: os.mkdir(path), path)
    else:  # an existing directory is fine; an existing file is not (EEXIST)
        await in_thread(lambda: os.makedirs(path, exist_ok=True), path)
    return Empty()


def _ms(ns: int) -> int:
    return ns // 1_000_000


async def get_metadata(
    s: Services, ctx: RequestContext, p: fst.FsPathParams
) -> fst.FsGetMetadataResponse:
    path = absolute(p.path)

    def work() -> fst.FsGetMetadataResponse:
        link = os.lstat(path)
        info = os.stat(path) if stat.S_ISLNK(link.st_mode) else link  # a dangling link: ENOENT
        birth = getattr(info, "st_birthtime", None)  # not on Linux
        return fst.FsGetMetadataResponse(
            is_directory=stat.S_ISDIR(info.st_mode),
            is_file=stat.S_ISREG(info.st_mode),
            is_symlink=stat.S_ISLNK(link.st_mode),
            created_at_ms=int(birth * 1000) if birth else 0,
            modified_at_ms=_ms(info.st_mtime_ns),
        )

    return await in_thread(work, path)


async def read_directory(
    s: Services, ctx: RequestContext, p: fst.FsPathParams
) -> fst.FsReadDirectoryResponse:
    path = absolute(p.path)

    def work() -> list[fst.FsReadDirectoryEntry]:
        entries = []
        with os.scandir(path) as it:
            for entry in it:
                try:  # symlinks are followed; a dangling one is left out, as Codex does
                    info = os.stat(entry.path)
                except OSError:
                    continue
                entries.append(
                    fst.FsReadDirectoryEntry(
                        file_name=entry.name,
                        is_directory=stat.S_ISDIR(info.st_mode),
                        is_file=stat.S_ISREG(info.st_mode),
                    )
                )
        return entries

    return fst.FsReadDirectoryResponse(entries=await in_thread(work, path))


async def remove(s: Services, ctx: RequestContext, p: fst.FsRemoveParams) -> Empty:
    path = absolute(p.path)
    force = p.force is not False
    recursive = p.recursive is not False

    def work() -> None:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            if force:
                return
            raise
        if not stat.S_ISDIR(mode):  # a file or a symlink (never followed)
            os.unlink(path)
        elif recursive:
            shutil.rmtree(path)
        else:
            os.rmdir(path)

    await in_thread(work, path)
    return Empty()


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


async def copy(s: Services, ctx: RequestContext, p: fst.FsCopyParams) -> Empty:
    source = absolute(p.source_path, "sourcePath")
    destination = absolute(p.destination_path, "destinationPath")

    def work() -> None:
        if not stat.S_ISDIR(os.stat(source).st_mode):
            shutil.copyfile(source, destination)
            shutil.copymode(source, destination)
            return
        if not p.recursive:
            raise InvalidRequest("fs/copy requires recursive: true when sourcePath is a directory")
        if _inside(destination, source):
            raise InvalidRequest(
                "fs/copy cannot copy a directory to itself or one of its descendants"
            )
        shutil.copytree(source, destination, symlinks=True)

    try:
        await trio.to_thread.run_sync(work)
    except shutil.Error as exc:  # copytree's collected per-file errors
        raise InvalidRequest(f"fs/copy failed: {exc}") from None
    except OSError as exc:
        raise os_error(exc, source) from None
    return Empty()


async def watch(s: Services, ctx: RequestContext, p: fst.FsWatchParams) -> fst.FsWatchResponse:
    path = absolute(p.path)
    try:
        await fs_watch.start(s.registry.nursery, ctx.connection, p.watch_id, path)
    except OSError as exc:
        raise os_error(exc, path) from None
    except RuntimeError as exc:  # the watcher's own errors (e.g. out of inotify watches)
        raise InvalidRequest(f"cannot watch {path}: {exc}") from None
    return fst.FsWatchResponse(path=path)


async def unwatch(s: Services, ctx: RequestContext, p: fst.FsUnwatchParams) -> Empty:
    fs_watch.stop(ctx.connection, p.watch_id)  # an unknown id is fine, as in Codex
    return Empty()


METHODS: dict[str, Handler] = {
    "fs/readFile": read_file,
    "fs/writeFile": write_file,
    "fs/createDirectory": create_directory,
    "fs/getMetadata": get_metadata,
    "fs/readDirectory": read_directory,
    "fs/remove": remove,
    "fs/copy": copy,
    "fs/watch": watch,
    "fs/unwatch": unwatch,
}
