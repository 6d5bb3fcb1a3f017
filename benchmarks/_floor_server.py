"""The round trip's floor: a server that does nothing but answer (codex_reference.py).

    python benchmarks/_floor_server.py

Prints `floor listening on ws://127.0.0.1:PORT` on stderr. A thread per connection reads
its socket with blocking calls (the kernel wakes the reader directly: no event loop),
frames with wsproto, and answers every request with one fixed small result (for
`turn/start`, followed by a `turn/completed` notification). What the latency benchmark's
client measures against it is the client, the kernel and the machine's wake-up jitter:
no server can answer faster through the same client.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

RESULT = {"data": [], "nextCursor": None, "thread": {"id": "floor"}, "turn": {"id": "floor"}}
COMPLETED = '{"jsonrpc":"2.0","method":"turn/completed","params":{}}'


def answer(ws: WSConnection, text: str) -> bytes:
    message = json.loads(text)
    if "id" not in message or "method" not in message:
        return b""
    reply = {"jsonrpc": "2.0", "id": message["id"], "result": RESULT}
    out = ws.send(TextMessage(data=json.dumps(reply, separators=(",", ":"))))
    if message["method"] == "turn/start":
        out += ws.send(TextMessage(data=COMPLETED))
    return out


def serve(conn: socket.socket) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while data := conn.recv(65536):
            ws.receive_data(data)
            out = b""
            for event in ws.events():
                if isinstance(event, Request):
                    out += ws.send(AcceptConnection())
                elif isinstance(event, TextMessage):
                    out += answer(ws, event.data)
                elif isinstance(event, CloseConnection):
                    return
            if out:
                conn.sendall(out)


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"floor listening on ws://127.0.0.1:{listener.getsockname()[1]}", file=sys.stderr)
    sys.stderr.flush()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
