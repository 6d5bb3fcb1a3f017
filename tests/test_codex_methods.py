"""Codex 0.171's account, configuration, model and feature methods; the methods of Codex's
own product that appserver does not host; the experimentalApi gate (issue 12)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio

from appserver.client import Client, RpcError
from appserver.handlers.models import displayable_url, page
from appserver.protocol.experimental import experimental_reason
from appserver.protocol.methods import METHODS, NOT_HOSTED
from appserver.protocol.not_hosted import NOT_HOSTED as FEATURES
from appserver.protocol.not_hosted import method_not_found
from appserver.server import ServerConfig, open_server

from conftest import ConnectFactory
from support import SchemaChecker

TIMEOUT = 15
SCHEMAS = Path(__file__).resolve().parents[2] / "shared" / "codex-schema-0.171"
RESPONSE_SCHEMAS = {
    "account/read": "GetAccountResponse",
    "config/read": "ConfigReadResponse",
    "model/list": "ModelListResponse",
    "modelProvider/list": "ModelProviderListResponse",
    "modelProvider/capabilities/read": "ModelProviderCapabilitiesReadResponse",
    "experimentalFeature/list": "ExperimentalFeatureListResponse",
}
# 0.171 methods that appserver does not offer yet but may build (issue 14): plain -32601.
NOT_YET: set[str] = set()

pytestmark = pytest.mark.skipif(
    not (SCHEMAS / "ClientRequest.json").exists(), reason="codex-schema-0.171 not found"
)


def validate(method: str, result: Any) -> None:
    schema = json.loads((SCHEMAS / "v2" / f"{RESPONSE_SCHEMAS[method]}.json").read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(result), key=str)
    assert not errors, f"{method}: {[e.message for e in errors[:3]]} in {result}"


async def call(client: Client, method: str, params: Any = None) -> Any:
    result = await client.request(method, {} if params is None else params)
    validate(method, result)
    return result


def stable_methods() -> list[str]:
    requests = json.loads((SCHEMAS / "ClientRequest.json").read_text())["oneOf"]
    return [r["properties"]["method"]["enum"][0] for r in requests]


async def rpc_error(client: Client, method: str, params: Any = None) -> RpcError:
    with pytest.raises(RpcError) as info:
        await client.request(method, {} if params is None else params)
    return info.value


# --- answers from a default server (the builtin agent) ----------------------------------


async def test_every_method_answers_in_the_0171_shape_honestly(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("codex-methods")
            account = await call(client, "account/read", {"refreshToken": True})
            assert account == {"account": None, "requiresOpenaiAuth": False, "userId": None}

            config = await call(client, "config/read")
            assert config["origins"] == {} and "layers" not in config
            assert {k: config["config"][k] for k in ("model", "model_provider")} == {
                "model": "script",
                "model_provider": "builtin",
            }
            assert config["config"]["approval_policy"] == "on-request"
            assert config["config"]["sandbox_mode"] == "workspace-write"
            layered = await call(client, "config/read", {"includeLayers": True, "cwd": "/"})
            assert layered["layers"] == [] and layered["config"] == config["config"]

            models = await call(client, "model/list", {"includeHidden": True})
            assert [(m["id"], m["isDefault"]) for m in models["data"]] == [("script", True)]
            assert models["nextCursor"] is None
            assert models["data"][0]["inputModalities"] == ["text"]

            providers = await call(client, "modelProvider/list")
            assert providers["defaultProviderId"] == "builtin"
            assert [p["id"] for p in providers["data"]] == ["builtin", "openai"]
            assert providers["canChangeDefault"] is False

            features = await call(client, "experimentalFeature/list")
            assert features == {"data": [], "nextCursor": None}


async def test_a_thread_started_with_listed_values_uses_them(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("codex-methods")
            model = (await call(client, "model/list"))["data"][0]["model"]
            provider = (await call(client, "modelProvider/list"))["defaultProviderId"]
            started = await client.request(
                "thread/start", {"model": model, "modelProvider": provider}
            )
            assert (started["model"], started["modelProvider"]) == (model, provider)
            config = (await call(client, "config/read"))["config"]
            assert started["approvalPolicy"] == config["approval_policy"]


async def test_paging_and_bad_params(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("codex-methods")
            first = await call(client, "model/list", {"limit": 0, "cursor": None})
            assert len(first["data"]) == 1 and first["nextCursor"] is None
            assert (await call(client, "model/list", {"cursor": "1"}))["data"] == []
            for cursor, message in [
                ("2", "cursor 2 exceeds total models 1"),
                ("-1", "invalid cursor: '-1'"),
                ("abc", "invalid cursor: 'abc'"),
            ]:
                err = await rpc_error(client, "model/list", {"cursor": cursor})
                assert (err.code, err.message, err.kind) == (-32600, message, "invalidCursor")
            err = await rpc_error(client, "experimentalFeature/list", {"cursor": "1"})
            assert err.message == "cursor 1 exceeds total feature flags 0"

            for method, params, path in [
                ("model/list", {"limit": -1}, "limit"),
                ("model/list", {"limit": "x"}, "limit"),
                ("model/list", {"includeHidden": "x"}, "includeHidden"),
                ("model/list", {"modelProvider": "nope"}, "modelProvider"),
                ("account/read", {"refreshToken": "x"}, "refreshToken"),
                ("config/read", {"includeLayers": "x"}, "includeLayers"),
                ("config/read", {"cwd": 5}, "cwd"),
                ("experimentalFeature/list", {"limit": 1.5}, "limit"),
                ("experimentalFeature/list", {"threadId": 5}, "threadId"),
            ]:
                err = await rpc_error(client, method, params)
                assert (err.code, err.kind) == (-32602, "invalidParams"), (method, params)
                assert [e["path"] for e in err.data["errors"]] == [path]


async def test_feature_list_for_a_thread(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("codex-methods")
            thread = (await client.request("thread/start"))["thread"]
            result = await call(client, "experimentalFeature/list", {"threadId": thread["id"]})
            assert result["data"] == []
            err = await rpc_error(client, "experimentalFeature/list", {"threadId": "nope"})
            assert (err.code, err.kind) == (-32600, "invalidThreadId")
            unknown = "00000000-0000-7000-8000-000000000000"
            err = await rpc_error(client, "experimentalFeature/list", {"threadId": unknown})
            assert (err.code, err.kind) == (-32600, "threadNotFound")


# --- a server whose default agent is the OpenAI-compatible backend ----------------------


@asynccontextmanager
async def openai_client(
    checker: SchemaChecker, tmp_path: Path, base_url: str
) -> AsyncIterator[Client]:
    key = tmp_path / "key"
    key.write_text("sk-test-secret\n")
    config = ServerConfig(
        data_dir=None, agent="openai", model="gpt-test", model_base_url=base_url, api_key_file=key
    )
    async with open_server(config) as server, server.connect() as client:
        client.observer = checker.check
        await client.initialize("codex-methods")
        yield client


async def test_openai_backend_is_listed_with_its_configured_model(
    schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with openai_client(schema_checker, tmp_path, "http://127.0.0.1:9/v1") as client:
            models = await call(client, "model/list")
            assert [(m["id"], m["model"], m["isDefault"]) for m in models["data"]] == [
                ("gpt-test", "gpt-test", True)
            ]
            assert models["data"][0]["inputModalities"] == ["text", "image"]
            assert "http://127.0.0.1:9/v1" in models["data"][0]["description"]
            builtin = await call(client, "model/list", {"modelProvider": "builtin"})
            assert [m["id"] for m in builtin["data"]] == ["script"]

            providers = await call(client, "modelProvider/list")
            assert providers["defaultProviderId"] == "openai"
            openai = {p["id"]: p for p in providers["data"]}["openai"]
            assert openai["baseUrl"] == "http://127.0.0.1:9/v1"
            assert openai["settings"] == {
                "type": "customGateway",
                "auth": {"mode": "externallyConfigured", "envKey": None},
            }
            config = (await call(client, "config/read"))["config"]
            assert (config["model"], config["model_provider"]) == ("gpt-test", "openai")
            text = json.dumps([models, providers, config])
            assert "sk-test-secret" not in text


async def test_openai_endpoint_with_credentials_is_not_shown(
    schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    url = "https://user:pw@models.example/v1"
    with trio.fail_after(TIMEOUT):
        async with openai_client(schema_checker, tmp_path, url) as client:
            providers = await call(client, "modelProvider/list")
            openai = {p["id"]: p for p in providers["data"]}["openai"]
            assert openai["baseUrl"] is None
            models = await call(client, "model/list")
            assert "pw" not in json.dumps(models)


def test_displayable_url_and_page() -> None:
    assert displayable_url("https://api.openai.com/v1") == "https://api.openai.com/v1"
    for hidden in ("https://u:p@h/v1", "https://h/v1?key=s", "not a url", "http://[::1"):
        assert displayable_url(hidden) is None
    assert page([1, 2, 3], None, 2, "n") == ([1, 2], "2")
    assert page([1, 2, 3], "2", 2, "n") == ([3], None)
    assert page([1, 2, 3], "3", None, "n") == ([], None)


# --- Codex features appserver does not host ---------------------------------------------


def test_every_0171_method_is_offered_not_hosted_or_not_yet_built() -> None:
    stable = set(stable_methods())
    assert not NOT_HOSTED & set(METHODS)
    assert not NOT_YET & (NOT_HOSTED | set(METHODS))
    assert stable <= set(METHODS) | NOT_HOSTED | NOT_YET, sorted(
        stable - set(METHODS) - NOT_HOSTED - NOT_YET
    )
    assert method_not_found("plugin/list").message == (
        "Method not found: plugin/list (appserver does not host Codex plugins)"
    )


async def test_not_hosted_methods_say_so_and_not_yet_built_ones_stay_plain(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("codex-methods")
            for method in sorted(NOT_HOSTED):
                err = await rpc_error(client, method)
                assert (err.code, err.kind) == (-32601, "methodNotFound")
                assert err.message == (
                    f"Method not found: {method} (appserver does not host {FEATURES[method]})"
                )
            for method in sorted(NOT_YET | {"no/such/method"}):
                err = await rpc_error(client, method, {"threadId": "x"})
                assert (err.code, err.message) == (-32601, f"Method not found: {method}")
            # The connection is unharmed.
            assert (await call(client, "account/read"))["account"] is None


async def test_named_examples_of_not_hosted_features(connect: ConnectFactory) -> None:
    expected = {
        "plugin/list": "Codex plugins",
        "skills/list": "Codex skills",
        "marketplace/add": "the Codex plugin marketplace",
        "app/list": "Codex apps",
        "thread/realtime/start": "Codex realtime",
        "mcpServerStatus/list": "Codex MCP servers",
        "account/login/start": "Codex account login",
        "account/rateLimits/read": "Codex account rate limits and usage",
        "feedback/upload": "Codex feedback",
        "windowsSandbox/setupStart": "the Codex Windows sandbox",
        "remoteControl/enable": "Codex remote control",
        "thread/goal/set": "Codex goals",
        "threadSection/list": "Codex thread sections",
        "thread/attachment/add": "Codex attachments",
    }
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("codex-methods")
            for method, feature in expected.items():
                err = await rpc_error(client, method)
                assert err.message.endswith(f"(appserver does not host {feature})")


# --- experimentalApi ----------------------------------------------------------------------

GRANULAR = {"granular": {"mcp_elicitations": True, "rules": True, "sandbox_approval": True}}


def test_experimental_reasons_follow_the_reference() -> None:
    cases: list[tuple[str, dict[str, Any] | None, str | None]] = [
        ("thread/start", {"dynamicTools": []}, "thread/start.dynamicTools"),
        ("thread/start", {"dynamicTools": None}, None),
        ("thread/start", {"experimentalRawEvents": False}, None),
        ("thread/start", {"experimentalRawEvents": True}, "thread/start.experimentalRawEvents"),
        ("thread/start", {"approvalPolicy": "never"}, None),
        ("thread/start", {"approvalPolicy": GRANULAR}, "askForApproval.granular"),
        # Several: the first in the reference's order is named.
        ("thread/start", {"dynamicTools": [], "permissions": "x"}, "thread/start.permissions"),
        ("thread/resume", {"threadId": "t", "path": ""}, None),
        ("thread/resume", {"path": "/p"}, "thread/resume.path"),
        ("thread/resume", {"excludeTurns": True}, None),
        ("thread/list", {"projectId": None}, "thread/list.projectId"),
        ("thread/list", {"parentThreadId": None}, None),
        ("turn/start", {"collaborationMode": {}}, "turn/start.collaborationMode"),
        ("turn/start", {"approvalPolicy": GRANULAR}, "askForApproval.granular"),
        ("model/list", {"dynamicTools": []}, None),
        ("thread/start", None, None),
    ]
    for method, params, reason in cases:
        assert experimental_reason(method, params) == reason, (method, params)


async def initialize(client: Client, experimental: bool) -> None:
    params = {"clientInfo": {"name": "gated", "version": "1"}}
    await client.request(
        "initialize", {**params, "capabilities": {"experimentalApi": experimental}}
    )
    await client.notify("initialized")


async def test_experimental_fields_need_the_capability(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as plain:
            await initialize(plain, experimental=False)
            for method, params, reason in [
                ("thread/start", {"dynamicTools": []}, "thread/start.dynamicTools"),
                ("thread/start", {"approvalPolicy": GRANULAR}, "askForApproval.granular"),
                ("thread/list", {"projectId": None}, "thread/list.projectId"),
            ]:
                err = await rpc_error(plain, method, params)
                assert err.code == -32600
                assert err.message == f"{reason} requires experimentalApi capability"
            # Bad params are reported first, as the reference does.
            err = await rpc_error(plain, "thread/start", {"cwd": 5, "dynamicTools": []})
            assert err.code == -32602
            # Stable fields and nulls pass.
            await plain.request("thread/start", {"dynamicTools": None, "ephemeral": True})

        async with connect() as opted_in:
            await initialize(opted_in, experimental=True)
            await opted_in.request("thread/list", {"projectId": None})
            await opted_in.request("thread/start", {"approvalPolicy": GRANULAR})


async def test_the_official_sdk_parses_every_answer(connect: ConnectFactory) -> None:
    generated = pytest.importorskip("openai_codex.generated.v2_all")
    parsers = {
        "account/read": generated.GetAccountResponse,
        "config/read": generated.ConfigReadResponse,
        "model/list": generated.ModelListResponse,
        "experimentalFeature/list": generated.ExperimentalFeatureListResponse,
    }
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("codex-methods")
            for method, model in parsers.items():
                model.model_validate(await call(client, method))
