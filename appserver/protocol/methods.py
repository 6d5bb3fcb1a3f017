"""The METHODS table: every client→server method, its params type and whether it needs an
initialized connection. Dispatch, validation and the schema export read this table."""

from __future__ import annotations

import attrs

from appserver.protocol import not_hosted
from appserver.protocol import settings_types as st
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
    MethodSpec("experimentalFeature/list", st.ExperimentalFeatureListParams),
    # --- end of account, configuration, models, features ------------------------------
    # --- fs ---
    # --- end of fs ---
    # --- command/exec ---
    # --- end of command/exec ---
    # --- turn/steer ---
    # --- end of turn/steer ---
    # --- paging ---
    # --- end of paging ---
)

# Codex 0.171 methods that appserver does not host, by design: their -32601 names the
# Codex feature (`not_hosted.method_not_found`). Disjoint from METHODS.
NOT_HOSTED: frozenset[str] = frozenset(not_hosted.NOT_HOSTED)

# Client→server notifications that are accepted (and have no effect).
CLIENT_NOTIFICATIONS = frozenset({"initialized"})
