"""The METHODS table: every client→server method, its params type and whether it needs an
initialized connection. Dispatch, validation and the schema export read this table."""

from __future__ import annotations

import attrs

from appserver.protocol import command_types as ct
from appserver.protocol import fs_types as fst
from appserver.protocol import lifecycle_types as lct
from appserver.protocol import not_hosted
from appserver.protocol import paging_types as pgt
from appserver.protocol import search_types as search
from appserver.protocol import settings_types as st
from appserver.protocol import special_types as sp
from appserver.protocol import steer_types as steer
from appserver.protocol import types as t


@attrs.frozen
class MethodSpec:
    name: str
    params: type
    needs_init: bool = True


def _table(*specs: MethodSpec) -> dict[str, MethodSpec]:
    return {spec.name: spec for spec in specs}


METHODS: dict[str, MethodSpec] = _table(
    MethodSpec("initialize", t.InitializeParams, needs_init=False),
    MethodSpec("thread/start", t.ThreadStartParams),
    MethodSpec("thread/resume", t.ThreadResumeParams),
    MethodSpec("thread/read", t.ThreadReadParams),
    MethodSpec("thread/list", t.ThreadListParams),
    MethodSpec("thread/loaded/list", t.ThreadLoadedListParams),
    MethodSpec("thread/archive", t.ThreadIdParams),
    MethodSpec("thread/unarchive", t.ThreadIdParams),
    MethodSpec("thread/unsubscribe", t.ThreadIdParams),
    MethodSpec("thread/name/set", t.ThreadSetNameParams),
    MethodSpec("turn/start", t.TurnStartParams),
    MethodSpec("turn/interrupt", t.TurnInterruptParams),
    # --- account, configuration, models, features ------------------------------------
    MethodSpec("account/read", st.GetAccountParams),
    MethodSpec("config/read", st.ConfigReadParams),
    MethodSpec("model/list", st.ModelListParams),
    MethodSpec("modelProvider/list", st.ModelProviderListParams),
    # No fields in 0.171 (the reference ignores any): the same params as modelProvider/list.
    MethodSpec("modelProvider/capabilities/read", st.ModelProviderListParams),
    MethodSpec("experimentalFeature/list", st.ExperimentalFeatureListParams),
    # --- end of account, configuration, models, features ------------------------------
    # --- fs ---
    MethodSpec("fs/readFile", fst.FsPathParams),
    MethodSpec("fs/writeFile", fst.FsWriteFileParams),
    MethodSpec("fs/createDirectory", fst.FsCreateDirectoryParams),
    MethodSpec("fs/getMetadata", fst.FsPathParams),
    MethodSpec("fs/readDirectory", fst.FsPathParams),
    MethodSpec("fs/remove", fst.FsRemoveParams),
    MethodSpec("fs/copy", fst.FsCopyParams),
    MethodSpec("fs/watch", fst.FsWatchParams),
    MethodSpec("fs/unwatch", fst.FsUnwatchParams),
    # --- end of fs ---
    # --- command/exec ---
    MethodSpec("command/exec", ct.CommandExecParams),
    MethodSpec("command/exec/write", ct.CommandExecWriteParams),
    MethodSpec("command/exec/terminate", ct.CommandExecTerminateParams),
    MethodSpec("command/exec/resize", ct.CommandExecResizeParams),
    # --- end of command/exec ---
    # --- turn/steer ---
    MethodSpec("turn/steer", steer.TurnSteerParams),
    # --- end of turn/steer ---
    # --- paging ---
    MethodSpec("thread/turns/list", pgt.ThreadTurnsListParams),
    MethodSpec("thread/items/list", pgt.ThreadItemsListParams),
    # --- end of paging ---
    # --- thread lifecycle ---
    MethodSpec("thread/fork", lct.ThreadForkParams),
    MethodSpec("thread/delete", t.ThreadIdParams),
    MethodSpec("thread/revert", lct.ThreadRevertParams),
    MethodSpec("thread/metadata/update", lct.ThreadMetadataUpdateParams),
    MethodSpec("thread/inject_items", lct.ThreadInjectItemsParams),
    # --- end of thread lifecycle ---
    # --- special turns ---
    MethodSpec("thread/compact/start", sp.ThreadCompactStartParams),
    MethodSpec("thread/shellCommand", sp.ThreadShellCommandParams),
    MethodSpec("review/start", sp.ReviewStartParams),
    # --- end of special turns ---
    # --- search ---
    MethodSpec("fuzzyFileSearch", search.FuzzyFileSearchParams),
    # --- end of search ---
)

# Codex 0.171 methods that appserver does not host, by design: their -32601 names the
# Codex feature (`not_hosted.method_not_found`). Disjoint from METHODS.
NOT_HOSTED: frozenset[str] = frozenset(not_hosted.NOT_HOSTED)

# Client→server notifications that are accepted (and have no effect).
CLIENT_NOTIFICATIONS = frozenset({"initialized"})
