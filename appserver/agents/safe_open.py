"""Write a file below a directory handle without following any symbolic link (`openat`-style).

`write_below(root, relative, data)` opens `root`, then walks `relative` one component at a
time with `os.open(name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, dir_fd=parent)`, creating a
missing directory with `os.mkdir(name, 0o777, dir_fd=parent)` (the process umask applies)
and opening it the same way. The file itself is opened with `O_NOFOLLOW` and `dir_fd` too.
So every component is looked up in the directory that was actually opened before it: no
symbolic link anywhere below `root` is followed, whatever was swapped in since the path was
checked, and `..` can only step back to a directory already opened on the way down — a `..`
that would climb above `root` is refused. The file written is exactly `root/relative`.

Blocking: call it from a worker thread (`trio.to_thread.run_sync`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from dataclasses import dataclass

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not hang the worker (it is refused right after, by fstat).
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class WriteRefused(Exception):
    """The path no longer leads where it was checked to lead (a symbolic link, a `..` above
    the root, the root itself replaced): nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Written:
    created: bool  # the file did not exist: this write created it
    old: bytes | None  # its previous content (None when created, or when it was unreadable)


def write_below(
    root: str, relative: str, data: bytes, *, root_id: tuple[int, int] | None = None
) -> Written:
    """Write `data` to `root/relative` (truncating an existing file), creating missing
    directories on the way. `root_id` (st_dev, st_ino): refuse unless `root` still is that
    directory. Raises WriteRefused, or OSError for an ordinary failure (permission, not a
    directory, a directory where the file should be, not a regular file, ...)."""
    names = [n for n in relative.split("/") if n not in ("", ".")]
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        if root_id is not None:
            st = os.fstat(fds[0])
            if (st.st_dev, st.st_ino) != root_id:
                raise WriteRefused(f"{root} was replaced by another directory; nothing written")
        shown = root.rstrip("/")
        if not names or names[-1] == "..":
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        for name in names[:-1]:
            if name == "..":
                if len(fds) == 1:
                    raise WriteRefused(f"'..' would climb above {root}; nothing written")
                os.close(fds.pop())
                shown = os.path.dirname(shown)
                continue
            shown = f"{shown}/{name}"
            fds.append(_open_dir(fds[-1], name, shown))
        return _write_file(fds[-1], names[-1], f"{shown}/{names[-1]}", data)
    finally:
        for fd in fds:
            os.close(fd)


def _refuse_if_symlink(parent: int, name: str, shown: str) -> None:
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise WriteRefused(
            f"{shown} is a symbolic link (it was not when the write was checked), "
            "not followed; nothing written"
        )


def _open_dir(parent: int, name: str, shown: str) -> int:
    """Open directory `name` of `parent` without following a link; create it if missing."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        pass
    except OSError:  # ELOOP (a link), ENOTDIR (a link or a file): say which
        _refuse_if_symlink(parent, name, shown)
        raise
    with contextlib.suppress(FileExistsError):  # created meanwhile: open what is there
        os.mkdir(name, 0o777, dir_fd=parent)
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError:
        _refuse_if_symlink(parent, name, shown)
        raise


def _write_file(parent: int, name: str, shown: str, data: bytes) -> Written:
    for _ in range(3):  # a file removed between the two opens: try creating it again
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS
            fd = os.open(name, flags, 0o666, dir_fd=parent)
        except FileExistsError:
            pass
        else:
            try:
                _blocking(fd)
                _write_all(fd, data)
            finally:
                os.close(fd)
            return Written(created=True, old=None)
        try:
            fd = _open_existing(parent, name)
        except FileNotFoundError:
            continue
        except OSError:
            _refuse_if_symlink(parent, name, shown)
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            readable = _blocking(fd) & os.O_ACCMODE == os.O_RDWR
            old = _read_all(fd) if readable else None
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            _write_all(fd, data)
        finally:
            os.close(fd)
        return Written(created=False, old=old)
    raise OSError(errno.EAGAIN, "the file kept disappearing while it was opened")


def _open_existing(parent: int, name: str) -> int:
    """Open for reading (to diff what is replaced) and writing; write-only when unreadable."""
    try:
        return os.open(name, os.O_RDWR | _FILE_FLAGS, dir_fd=parent)
    except PermissionError:
        return os.open(name, os.O_WRONLY | _FILE_FLAGS, dir_fd=parent)


def _blocking(fd: int) -> int:
    """Clear O_NONBLOCK (needed for the open only); return the file status flags."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return flags


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
