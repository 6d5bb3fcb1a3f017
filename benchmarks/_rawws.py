"""A minimal blocking websocket JSON-RPC client for benchmarks whose clients must cost
next to nothing (issue 18: "clients are never the bottleneck").

trio-websocket (wsproto underneath) spends 10-20 µs of client CPU per received frame; at
100k+ deliveries/s two client processes on a 2-core machine then saturate before the
server does (appserver's fan-out ran at 0.33 of a core, limited by its readers). This
client walks RFC 6455 frames over a plain socket (~1-2 µs per frame), counts
notifications by a substring of the frame's payload, answers pings, and parses JSON only
for the responses it waits for. It is a measuring instrument, not a general client: no
extensions, no TLS, server frames must be unmasked (they always are).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import selectors
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RECV_BYTES = 1 << 20


class Closed(ConnectionError):
    """The server closed the websocket (or the TCP connection)."""


class RawWebSocket:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("closed during the websocket handshake")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 101"):
            raise Closed(f"handshake refused: {status[:200]!r}")
        self.buf = bytearray(rest)
        self.pos = 0
        self.next_id = 1

    # --- frames ---------------------------------------------------------------------------

    def _fill(self) -> None:
        data = self.sock.recv(RECV_BYTES)
        if not data:
            raise Closed("the server closed the connection")
        if self.pos:
            del self.buf[: self.pos]
            self.pos = 0
        self.buf += data

    def _frame(self) -> tuple[int, int, int] | None:
        """The next complete frame in the buffer as (first byte, payload start, end)."""
        buf, pos = self.buf, self.pos
        avail = len(buf) - pos
        if avail < 2:
            return None
        second = buf[pos + 1]
        if second & 0x80:
            raise Closed("the server sent a masked frame")
        length, head = second & 0x7F, 2
        if length == 126:
            if avail < 4:
                return None
            length, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
        elif length == 127:
            if avail < 10:
                return None
            length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        end = pos + head + length
        if end > len(buf):
            return None
        self.pos = end
        return buf[pos], pos + head, end

    def _control(self, first: int, start: int, end: int) -> None:
        opcode = first & 0x0F
        if opcode == OP_PING:
            self._send(OP_PONG, bytes(self.buf[start:end]))
        elif opcode == OP_CLOSE:
            raise Closed(f"close frame {bytes(self.buf[start:end])!r}")

    def _send(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        if size:
            key = int.from_bytes((mask * (size // 4 + 1))[:size], "big")
            payload = (int.from_bytes(payload, "big") ^ key).to_bytes(size, "big")
        self.sock.sendall(header + mask + payload)

    def send_text(self, text: str) -> None:
        self._send(OP_TEXT, text.encode())

    def receive_text(self) -> str:
        """The next whole text message (blocking; control frames are handled)."""
        parts: list[bytes] = []
        while True:
            frame = self._frame()
            if frame is None:
                self._fill()
                continue
            first, start, end = frame
            if first & 0x08:  # a control frame (opcode 0x8-0xF)
                self._control(first, start, end)
                continue
            parts.append(bytes(self.buf[start:end]))
            if first & 0x80:  # FIN
                return b"".join(parts).decode()

    # --- JSON-RPC -------------------------------------------------------------------------

    def call_raw(self, method: str, params: Any = None) -> dict[str, Any]:
        request_id = self.next_id
        self.next_id += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send_text(json.dumps(msg, separators=(",", ":")))
        while True:
            reply = json.loads(self.receive_text())
            if reply.get("id") == request_id and "method" not in reply:
                return reply  # type: ignore[no-any-return]

    def call(self, method: str, params: Any = None) -> Any:
        reply = self.call_raw(method, params)
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        return reply["result"]

    def initialize(self, name: str = "bench") -> None:
        self.call("initialize", {"clientInfo": {"name": name, "version": "0"}})
        self.send_text('{"jsonrpc":"2.0","method":"initialized"}')

    def wait_for(self, needle: str) -> str:
        while True:
            text = self.receive_text()
            if needle in text:
                return text

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send(OP_CLOSE, (1000).to_bytes(2, "big"))
        self.sock.close()

    # --- counting a stream ----------------------------------------------------------------

    def count(self, needle: bytes, until: bytes) -> tuple[int, bool]:
        """Walk the frames buffered now: how many data frames contain `needle`, and
        whether one containing `until` arrived (the rest after it is left unread)."""
        found = 0
        buf = self.buf
        while True:
            frame = self._frame()
            if frame is None:
                return found, False
            first, start, end = frame
            if first & 0x08:
                self._control(first, start, end)
            elif buf.find(needle, start, end) >= 0:
                found += 1
            elif buf.find(until, start, end) >= 0:
                return found, True


def open_clients(url: str, count: int, *, initialize: bool = True) -> list[RawWebSocket]:
    clients = []
    for n in range(count):
        ws = RawWebSocket(url)
        if initialize:
            ws.initialize(f"bench{n}")
        clients.append(ws)
    return clients


def close_all(clients: Sequence[RawWebSocket]) -> None:
    for ws in clients:
        ws.close()


def count_until(
    clients: Sequence[RawWebSocket], needle: bytes, until: bytes, timeout: float = 120.0
) -> int:
    """Read every client until each has seen a frame containing `until`; the number of data
    frames containing `needle` they saw in all. One thread, one selector."""
    total, waiting = 0, set()
    selector = selectors.DefaultSelector()
    for ws in clients:
        found, done = ws.count(needle, until)  # what arrived with an earlier response
        total += found
        if not done:
            ws.sock.setblocking(False)
            selector.register(ws.sock, selectors.EVENT_READ, ws)
            waiting.add(ws)
    while waiting:
        ready = selector.select(timeout)
        if not ready:
            raise TimeoutError(f"{len(waiting)} clients saw no {until!r} in {timeout} s")
        for key, _ in ready:
            ws = key.data
            try:
                ws._fill()
            except BlockingIOError:
                continue
            found, done = ws.count(needle, until)
            total += found
            if done:
                selector.unregister(ws.sock)
                ws.sock.setblocking(True)
                waiting.discard(ws)
    selector.close()
    return total
