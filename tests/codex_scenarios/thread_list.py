"""diff.py scenarios for thread/list (Codex 0.171 params): run with

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \\
        ".venv/bin/appserver --in-memory" \\
        --scenario tests/codex_scenarios/thread_list.py \\
        --scenario tests/codex_scenarios/thread_list.py:errors --transcripts /tmp/tl

Threads get a short turn first: the reference lists only threads that had one. They are
started a second apart so that both servers order them the same way.
"""

from __future__ import annotations

import time
from typing import Any


def _threads(s: Any, count: int) -> list[str]:
    s.initialize()
    ids = []
    for n in range(count):
        thread_id = s.start_thread()
        s.turn(thread_id, f"hello {n}\n/stream 2 2")
        ids.append(thread_id)
        time.sleep(1.05)
    return ids


def _page(s: Any, params: dict[str, Any]) -> dict[str, Any]:
    reply = s.request("thread/list", params) or {}
    result: dict[str, Any] = reply.get("result") or {}
    return result


def scenario(s: Any) -> None:
    """Both directions and sort keys, cursors both ways, every filter."""
    ids = _threads(s, 4)
    first = _page(s, {"limit": 2})
    _page(s, {"limit": 2, "cursor": first.get("nextCursor")})
    _page(s, {"sortDirection": "desc", "cursor": first.get("backwardsCursor")})
    asc = _page(s, {"limit": 2, "sortDirection": "asc"})
    _page(s, {"limit": 2, "sortDirection": "asc", "cursor": asc.get("nextCursor")})
    _page(s, {"sortDirection": "desc", "cursor": asc.get("backwardsCursor")})
    for key in ("updated_at", "recency_at"):
        _page(s, {"sortKey": key, "limit": 3})
        _page(s, {"sortKey": key, "sortDirection": "asc", "limit": 3})
    _page(s, {"limit": 0})
    _page(s, {"limit": 1000})
    _page(s, {"cwd": s.cwd})
    _page(s, {"cwd": [s.cwd, "/nowhere"]})
    _page(s, {"cwd": []})
    _page(s, {"includedThreadIds": ids[:2]})
    _page(s, {"includedThreadIds": [ids[0].upper()]})
    _page(s, {"includedThreadIds": []})
    _page(s, {"includedThreadIds": ids, "excludedThreadIds": ids[:1], "limit": 2})
    _page(s, {"excludedThreadIds": ids[:3]})
    _page(s, {"modelProviders": []})
    _page(s, {"modelProviders": ["nobody"]})
    _page(s, {"searchTerm": "hello 1"})
    _page(s, {"sourceKinds": []})
    _page(s, {"sourceKinds": ["vscode"]})
    _page(s, {"sourceKinds": ["cli", "exec"]})
    _page(s, {"sectionId": "some-section"})
    _page(s, {"sectionId": None, "sortKey": "created_at"})
    _page(s, {"sortKey": "section_position", "sectionId": "some-section"})
    _page(s, {"originators": []})
    _page(s, {"currentAccountOnly": True, "useStateDbOnly": True})
    _page(s, {"archived": True})


def updates(s: Any) -> None:
    """recency_at moves on a turn start only; updated_at also on a turn end and archive."""
    ids = _threads(s, 3)
    s.turn(ids[0], "again\n/stream 2 2")
    s.request("thread/archive", {"threadId": ids[1]})
    s.settle(0.3)
    s.request("thread/unarchive", {"threadId": ids[1]})
    s.settle(0.3)
    _page(s, {"sortKey": "updated_at"})
    _page(s, {"sortKey": "recency_at"})


def errors(s: Any) -> None:
    """Refused params: bad ids, too many ids, originators, section_position alone, cursor."""
    ids = _threads(s, 1)
    _page(s, {"includedThreadIds": ["not-a-uuid"]})
    _page(s, {"excludedThreadIds": ["not-a-uuid"]})
    _page(s, {"includedThreadIds": ids * 101})
    _page(s, {"excludedThreadIds": ids * 101})
    _page(s, {"includedThreadIds": ids * 100})
    _page(s, {"originators": ["someone"]})
    _page(s, {"sortKey": "section_position"})
    _page(s, {"cursor": "garbage"})
    _page(s, {"sortDirection": "sideways"})
    _page(s, {"sourceKinds": ["nowhere"]})
