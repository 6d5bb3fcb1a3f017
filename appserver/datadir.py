"""The data dir (PROTOCOL.md §8.6): one server per directory, private modes.

- The directory is created ``0700`` (an existing one keeps its mode; a warning says so
  when other users can read it). The database file is pre-created ``0600`` before SQLite
  opens it; SQLite gives its ``-wal`` and ``-shm`` files the database file's mode. Existing
  database files readable by others are tightened to ``0600``. The process umask is
  never touched (embedders share it).
- ``DIR/appserver.lock`` is held with an exclusive ``flock`` for the life of the server.
  The kernel drops it when the process ends, however it ends (SIGKILL included), so a
  stale lock is impossible; the file itself is never removed (removing a lock file
  races with the next server opening it). Its content is one JSON object,
  ``{"pid": N, "urls": [...]}``: the owner's pid, and the URL of each listener while it
  listens (``ws://HOST:PORT``, ``unix://PATH``). ``appserver-client`` reads it to reach
  the running server (:func:`read_owner`).
- A second server on the same directory fails with :class:`DataDirInUse`
  (``data dir DIR is in use by pid N``).

Unix only (``fcntl``), like the rest of the server.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import time
from pathlib import Path

import attrs

log = logging.getLogger("appserver.datadir")

LOCK_FILE = "appserver.lock"
DIR_MODE = 0o700
FILE_MODE = 0o600
# How long a second server waits for the owner to write its pid into the lock file
# (the owner writes it right after taking the lock).
_PID_WAIT_SECONDS = 2.0


def default_data_dir() -> Path:
    """$APPSERVER_HOME, else $XDG_DATA_HOME/appserver, else ~/.local/share/appserver."""
    if home := os.environ.get("APPSERVER_HOME"):
        return Path(home)
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return Path(xdg) / "appserver"
    return Path.home() / ".local" / "share" / "appserver"


class DataDirError(Exception):
    """The data dir cannot be used (the message names it and says why)."""


class DataDirInUse(DataDirError):
    """Another process holds the data dir's lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"data dir {path} is in use by {who}")
        self.path = path
        self.pid = pid


@attrs.frozen
class Owner:
    """What the lock file says about the server holding it."""

    pid: int
    urls: tuple[str, ...] = ()


def create_data_dir(path: Path) -> None:
    """Create `path` (and its parents) with mode 0700; an existing directory keeps its
    mode (see :func:`warn_if_shared`)."""
    try:
        path.mkdir(mode=DIR_MODE, parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise DataDirError(f"unusable data dir {path}: not a directory") from None
    except OSError as exc:
        raise DataDirError(f"unusable data dir {path}: {exc.strerror or exc}") from None


def warn_if_shared(path: Path) -> None:
    """Log a warning when group or others have access to the data dir (left as is: the
    administrator may mean it)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "data dir %s has mode %04o: other users may read the conversations (chmod 700 it)",
            path,
            mode,
        )


def create_private_file(path: Path) -> None:
    """Make sure `path` exists with mode 0600 (created so, or tightened), and so do its
    SQLite companions `-wal` / `-shm` if they exist (SQLite creates them with the main
    file's mode). Symlinks are followed, as SQLite follows them."""
    companions = (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    for name in (path, *companions):
        flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_CREAT if name == path else 0)
        try:
            fd = os.open(name, flags, FILE_MODE)
        except FileNotFoundError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if mode & 0o077:
                os.fchmod(fd, FILE_MODE)
                log.debug("tightened %s from mode %04o to %04o", name, mode, FILE_MODE)
        except PermissionError:  # not ours: leave it, SQLite decides whether it can use it
            log.warning("%s has mode %04o and cannot be made private", name, mode)
        finally:
            os.close(fd)


def read_owner(data_dir: Path) -> Owner | None:
    """The pid and listener URLs recorded by the server holding (or that last held)
    `data_dir`'s lock; None when there is no readable record. The record may be stale
    (its server was killed): a URL that refuses connections means nobody is there."""
    try:
        text = (data_dir / LOCK_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return _parse_owner(text)


def _parse_owner(text: str) -> Owner | None:
    try:
        record = json.loads(text)
        pid = record["pid"]
        urls = record.get("urls") or []
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(pid, int) or not all(isinstance(u, str) for u in urls):
        return None
    return Owner(pid, tuple(urls))


@attrs.define(eq=False)
class DataDirLock:
    """The exclusive lock on a data dir; see :func:`lock_data_dir`."""

    data_dir: Path
    _fd: int | None
    pid: int = attrs.field(factory=os.getpid)
    _urls: list[str] = attrs.Factory(list)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self._urls)

    def add_url(self, url: str) -> None:
        """Record a listener's URL (done when it starts listening)."""
        self._urls.append(url)
        self._write()

    def remove_url(self, url: str) -> None:
        """Forget a listener's URL (done when it stops)."""
        with contextlib.suppress(ValueError):
            self._urls.remove(url)
            self._write()

    def _write(self) -> None:
        if self._fd is None:
            return
        data = json.dumps({"pid": self.pid, "urls": self._urls}).encode() + b"\n"
        try:
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))
        except OSError as exc:  # the record is a convenience; the lock is what matters
            log.warning("cannot record the server in %s: %s", self.data_dir / LOCK_FILE, exc)

    def release(self) -> None:
        """Drop the lock (idempotent). The file stays, with the pid and no URLs."""
        if self._fd is None:
            return
        self._urls.clear()
        self._write()
        fd, self._fd = self._fd, None
        os.close(fd)  # closing the only descriptor releases the flock


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Take `data_dir`'s exclusive lock, or raise :class:`DataDirInUse` naming the pid
    that holds it (:class:`DataDirError` when the lock file cannot be opened). The
    directory must exist. The descriptor is not inherited by child processes."""
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise DataDirError(f"unusable data dir {data_dir}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise DataDirError(f"unusable data dir {data_dir}: cannot lock {path}: {exc}") from None
        try:
            pid = _wait_for_owner_pid(fd)
        finally:
            os.close(fd)
        raise DataDirInUse(data_dir, pid) from None
    lock = DataDirLock(data_dir, fd)
    lock._write()
    return lock


def _wait_for_owner_pid(fd: int) -> int | None:
    """The pid in the lock file held by another process. It writes it right after taking
    the lock, so an empty file, or one still naming a dead previous owner, is given a
    moment (polling: there is nothing to wait on)."""
    deadline = time.monotonic() + _PID_WAIT_SECONDS
    while True:
        owner = _parse_owner(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        if owner is not None and _alive(owner.pid):
            return owner.pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
