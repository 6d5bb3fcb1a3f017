"""`--listen unix://PATH`: websocket over a Unix domain socket, as the Codex app-server.

The reference (0.171) answers an ordinary HTTP/1.1 websocket upgrade on its Unix socket and
then speaks one JSON-RPC message per text frame, exactly as over TCP; it applies no bearer
authentication there, the socket's mode (0600, in a 0700 directory it creates) being the
guard. Here the same upgrade handler as TCP runs (Origin check included; a browser cannot
reach a Unix socket anyway). A live socket already at PATH is refused ("in use"), a stale
one (nobody accepting) is replaced, anything else at PATH is refused. The socket file is
removed when serving ends.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

import trio

from appserver.transports import websocket
from appserver.transports.websocket import PING_INTERVAL, PING_TIMEOUT
from appserver.transports.ws_auth import WsAuthPolicy
from appserver.transports.ws_server import ServerWebSocket

log = logging.getLogger("appserver.unix")

SOCKET_MODE = 0o600
DIRECTORY_MODE = 0o700
SOCKET_DIR_NAME = "app-server-control"  # `unix://` with no path, as the reference names it
SOCKET_FILE_NAME = "app-server-control.sock"
MAX_PATH_BYTES = 107  # sun_path is 108 bytes on Linux, including the final NUL


def default_socket_path(home: Path) -> Path:
    return home / SOCKET_DIR_NAME / SOCKET_FILE_NAME


class UnixSocketListener(trio.abc.Listener[trio.SocketStream]):
    """A listener on a bound Unix socket (trio's SocketListener, without the TCP-only
    address handling trio-websocket applies to SocketListener instances)."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._inner = trio.SocketListener(sock)

    async def accept(self) -> trio.SocketStream:
        return await self._inner.accept()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _check_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        raise OSError(
            errno.ENAMETOOLONG,
            f"socket path is longer than {MAX_PATH_BYTES} bytes: {path}",
        )


def _existing_socket(path: Path) -> bool:
    """Create the parent directory (0700) if missing; True when a socket is at PATH,
    OSError when something else is."""
    parent = path.parent
    if not parent.exists():
        parent.mkdir(mode=DIRECTORY_MODE, parents=True)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if not stat.S_ISSOCK(info.st_mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    return True


async def _prepare_path(path: Path) -> None:
    """Clear a stale socket at PATH; refuse a live one or a path that is not a socket."""
    if not _existing_socket(path):
        return
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await probe.connect(os.fspath(path))
    except ConnectionRefusedError:
        os.unlink(path)  # stale: nobody accepts there any more
        return
    except FileNotFoundError:
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"the socket {path} is in use by another server")


async def open_unix_listener(path: Path, backlog: int = 128) -> UnixSocketListener:
    """Bind PATH with mode 0600 (set before listen(), so nobody connects earlier)."""
    _check_path(path)
    await _prepare_path(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(path))
        os.chmod(path, SOCKET_MODE)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return UnixSocketListener(sock)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _remove_socket_file(path: Path, inode: int) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if info.st_ino == inode and stat.S_ISSOCK(info.st_mode):  # still ours, not a newcomer's
        try:
            path.unlink()
        except OSError as exc:
            log.warning("could not remove the socket %s: %s", path, exc)


async def serve(
    path: Path,
    on_connection: Callable[[ServerWebSocket], Awaitable[None]],
    *,
    handler_nursery: trio.Nursery,
    allowed_origins: Sequence[str] = (),
    max_message_bytes: int,
    ping_interval: float = PING_INTERVAL,
    ping_timeout: float = PING_TIMEOUT,
    auth: WsAuthPolicy | None = None,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve websocket clients on the Unix socket PATH until cancelled; reports the
    absolute socket path through task_status and removes the file when done."""
    path = _absolute(path)
    listener = await open_unix_listener(path)
    inode = os.lstat(path).st_ino
    handler = websocket.make_handler(
        on_connection,
        allowed_origins=allowed_origins,
        auth=auth,
        max_message_bytes=max_message_bytes,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(
                    websocket.serve_listeners,
                    [listener],
                    handler,
                    handler_nursery=handler_nursery,
                )
            )
            log.debug("listening on unix://%s", path)
            task_status.started(path)
    finally:
        _remove_socket_file(path, inode)
        with trio.CancelScope(shield=True):
            await listener.aclose()
