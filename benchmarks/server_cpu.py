"""Server CPU time per delivered message during one `/stream N 8` turn to K clients.

Throughput with one client process is capped by the client (~40-50k frames/s), so this
measures what the server itself spends: user+sys CPU of the server process (psutil)
divided by K*N. Compare code versions by pointing PYTHONPATH at another checkout:

    python benchmarks/server_cpu.py K N
    PYTHONPATH=/path/to/old/checkout python benchmarks/server_cpu.py K N
"""

import json
import os
import subprocess
import sys
import time

import psutil
import trio
import trio_websocket


async def main(k: int, n: int) -> None:
    proc = subprocess.Popen(  # noqa: ASYNC220 - before any concurrency starts
        [
            sys.executable,
            "-m",
            "appserver",
            "--listen",
            "ws://127.0.0.1:0",
            "--in-memory",
            "--log-level",
            "warning",
        ],
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        await measure(proc, k, n)
    finally:  # never leave the server behind, even when a client failed
        proc.terminate()
        proc.wait()


async def measure(proc: subprocess.Popen[bytes], k: int, n: int) -> None:
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    url = line.split()[-1]
    ps = psutil.Process(proc.pid)
    async with trio.open_nursery() as nursery:
        conns = []
        for i in range(k):
            ws = await trio_websocket.connect_websocket_url(nursery, url, message_queue_size=10000)
            await ws.send_message(
                json.dumps(
                    {
                        "id": 1,
                        "method": "initialize",
                        "params": {"clientInfo": {"name": f"c{i}", "version": "1"}},
                    }
                )
            )
            await ws.get_message()
            conns.append(ws)
        await conns[0].send_message(
            json.dumps({"id": 2, "method": "thread/start", "params": {"approvalPolicy": "never"}})
        )
        while True:
            m = json.loads(await conns[0].get_message())
            if m.get("id") == 2:
                break
        tid = m["result"]["thread"]["id"]
        for ws in conns[1:]:
            await ws.send_message(
                json.dumps({"id": 2, "method": "thread/resume", "params": {"threadId": tid}})
            )
            while json.loads(await ws.get_message()).get("id") != 2:
                pass
        cpu0 = sum(ps.cpu_times()[:2])
        t0 = time.perf_counter()
        done = [0]

        async def drain(ws):
            while True:
                msg = await ws.get_message()
                if '"turn/completed"' in msg:
                    done[0] += 1
                    return

        async with trio.open_nursery() as inner:
            for ws in conns:
                inner.start_soon(drain, ws)
            await conns[0].send_message(
                json.dumps(
                    {
                        "id": 3,
                        "method": "turn/start",
                        "params": {
                            "threadId": tid,
                            "input": [{"type": "text", "text": f"/stream {n} 8"}],
                        },
                    }
                )
            )
        cpu = sum(ps.cpu_times()[:2]) - cpu0
        wall = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "k": k,
                    "n": n,
                    "server_cpu_s": round(cpu, 3),
                    "wall_s": round(wall, 3),
                    "us_per_delivery": round(cpu / (k * n) * 1e6, 2),
                }
            )
        )
        for ws in conns:
            await ws.aclose()
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(
        main,
        int(sys.argv[1]) if len(sys.argv) > 1 else 10,
        int(sys.argv[2]) if len(sys.argv) > 2 else 20000,
    )
