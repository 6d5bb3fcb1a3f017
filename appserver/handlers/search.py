"""fuzzyFileSearch (Codex 0.171): fuzzy file and directory names under the given roots.

The walk and the scoring (appserver/file_search.py) run in a worker thread; cancelling
the request (a disconnect, shutdown) abandons the thread and sets its cancel flag, which
it checks every few hundred entries. A `cancellationToken` names a search on its
connection: a later search with the same token cancels the earlier one, which answers
`{"files": []}` (as the reference). Roots that are relative or not directories are
skipped, not refused (as the reference: no error, no files from them).
"""

from __future__ import annotations

import weakref

import trio

from appserver.connection import Connection
from appserver.file_search import Cancelled, Match, Search
from appserver.protocol import search_types as st
from appserver.requests import RequestContext

from .common import Handler, Services

# Each connection's running searches by cancellation token.
_searches: weakref.WeakKeyDictionary[Connection, dict[str, Search]] = weakref.WeakKeyDictionary()


def _result(match: Match) -> st.FuzzyFileSearchResult:
    return st.FuzzyFileSearchResult(
        root=match.root,
        path=match.path,
        file_name=match.file_name,
        match_type=match.match_type,
        score=match.score,
        indices=match.indices,
    )


async def fuzzy_file_search(
    s: Services, ctx: RequestContext, p: st.FuzzyFileSearchParams
) -> st.FuzzyFileSearchResponse:
    search = Search(p.query, list(p.roots))
    token = p.cancellation_token
    searches = _searches.setdefault(ctx.connection, {})
    if token is not None:
        earlier = searches.get(token)
        if earlier is not None:
            earlier.cancelled = True
        searches[token] = search
    try:
        matches = await trio.to_thread.run_sync(search.run, abandon_on_cancel=True)
    except Cancelled:
        matches = []
    finally:
        if token is not None and searches.get(token) is search:
            del searches[token]
        cancelled, search.cancelled = search.cancelled, True  # an abandoned thread stops
    return st.FuzzyFileSearchResponse(files=[] if cancelled else [_result(m) for m in matches])


METHODS: dict[str, Handler] = {"fuzzyFileSearch": fuzzy_file_search}
