"""diff.py scenario for thread/turns/list and thread/items/list: run with

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \\
        ".venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/paging.py

Expected differences: errors carry `data` here; thread/items/list of an unknown thread is
-32601 in the reference, threadNotFound here; appserver closes the thread at unsubscribe.
"""

from __future__ import annotations

from typing import Any

MISSING = "019a0000-0000-7000-8000-000000000000"


def scenario(s: Any) -> None:
    s.initialize()
    tid = s.start_thread()
    for i in range(4):
        s.turn(tid, f"/say turn {i}")

    def page(method: str, **params: Any) -> dict[str, Any]:
        reply = s.request(method, {"threadId": tid, **params})
        return (reply or {}).get("result") or {}

    first = page("thread/turns/list", limit=2)
    page("thread/turns/list")
    page("thread/turns/list", limit=2, cursor=first.get("nextCursor"))
    page("thread/turns/list", limit=2, sortDirection="asc", itemsView="full")
    page("thread/turns/list", limit=1, itemsView="notLoaded")
    page("thread/turns/list", limit=2, sortDirection="asc", cursor=first.get("backwardsCursor"))
    page("thread/turns/list", cursor="garbage")
    s.request("thread/turns/list", {"threadId": MISSING})
    items = page("thread/items/list", limit=3)
    page("thread/items/list", limit=3, cursor=items.get("nextCursor"))
    page("thread/items/list", limit=3, sortDirection="desc")
    page("thread/items/list", sortDirection="desc", cursor=items.get("backwardsCursor"))
    page("thread/items/list", cursor="garbage")
    page("thread/items/list", turnId=MISSING)
    page("thread/items/list", cursor={"type": "item", "itemId": "x"})
