"""`appserver schema --out DIR` against ../shared/codex-schema and a real server's output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trio

from appserver.client import spawn_stdio
from appserver.protocol.methods import METHODS

from support import RESPONSE_SCHEMAS, SCHEMA_DIR

pytestmark = pytest.mark.skipif(
    not (SCHEMA_DIR / "ClientRequest.json").exists(), reason="codex schemas not found"
)

Json = Any


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("schema")
    done = subprocess.run(
        [sys.executable, "-m", "appserver", "schema", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def load(path: Path) -> Json:
    return json.loads(path.read_text())


def index(exported: Path) -> Json:
    return load(exported / "index.json")


def validator(root: Path, rel: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(load(root / rel))


def codex_definitions(envelope: str) -> tuple[dict[str, Json], dict[str, str]]:
    """A codex envelope schema's definitions, and method -> params definition name."""
    schema = load(SCHEMA_DIR / envelope)
    names = {}
    for variant in schema["oneOf"]:
        ref = variant["properties"].get("params", {}).get("$ref", "")
        names[variant["properties"]["method"]["enum"][0]] = ref.rsplit("/", 1)[-1]
    return schema["definitions"], names


def samples(schema: Json, defs: dict[str, Json]) -> list[Json]:
    """Values our schema accepts, one per branch/enum value/optional field. `{}` (accepts
    anything) and null (= absent) give none: there is nothing narrower to check."""
    if schema is True or schema == {}:
        return []
    if "$ref" in schema:
        return samples(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return [s for branch in schema["anyOf"] for s in samples(branch, defs)]
    if "enum" in schema:
        return list(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return [s for k in kind for s in samples({**schema, "type": k}, defs)]
    simple: dict[str, list[Json]] = {
        "string": ["text"],
        "integer": [1],
        "number": [1.5],
        "boolean": [True, False],
    }
    if kind in simple:
        return simple[kind]
    if kind == "null":
        return []  # a null optional field means the same as leaving it out (§9)
    if kind == "array":
        return [[], *([s] for s in samples(schema.get("items", {}), defs))]
    if kind == "object":
        props = schema.get("properties", {})
        base = {name: samples(props[name], defs)[0] for name in schema.get("required", [])}
        out = [base]
        for name, prop in props.items():
            out.extend({**base, name: value} for value in samples(prop, defs))
        return out
    raise AssertionError(f"unexpected schema {schema}")


def test_index_lists_every_method_notification_and_server_request(exported: Path) -> None:
    idx = index(exported)
    assert set(idx["methods"]) == set(METHODS)
    assert {"turn/started", "item/agentMessage/delta", "error"} <= set(idx["notifications"])
    assert set(idx["serverRequests"]) == {
        "item/commandExecution/requestApproval",
        "item/fileChange/requestApproval",
    }
    rels = [
        *(rel for entry in idx["methods"].values() for rel in entry.values()),
        *idx["notifications"].values(),
        *(rel for entry in idx["serverRequests"].values() for rel in entry.values()),
    ]
    assert sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*.json")) == sorted(
        [*set(rels), "index.json"]
    )
    for rel in rels:
        schema = load(exported / rel)
        jsonschema.Draft7Validator.check_schema(schema)
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert rel.startswith("v2/") and schema["title"] == Path(rel).stem
    start = load(exported / "v2/ThreadStartParams.json")
    assert start["properties"]["approvalPolicy"]["anyOf"][0]["enum"] == [
        "untrusted",
        "on-failure",
        "on-request",
        "never",
    ]
    turn = load(exported / "v2/TurnStartParams.json")
    assert turn["required"] == ["threadId", "input"]
    assert "text_elements" in turn["definitions"]["TextInput"]["properties"]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_params_agree_with_codex(exported: Path, method: str) -> None:
    defs, names = codex_definitions("ClientRequest.json")
    assert method in names, f"{method} is not a codex method"
    codex = defs[names[method]]
    ours = load(exported / index(exported)["methods"][method]["params"])
    ours_defs = ours.get("definitions", {})
    codex_props = codex.get("properties", {})
    for name, prop in ours["properties"].items():
        assert name in codex_props, f"{method}: {name} is not a codex field"
        check = jsonschema.Draft7Validator({**codex_props[name], "definitions": defs})
        values = samples(prop, ours_defs)
        for value in values:
            errors = list(check.iter_errors(value))
            assert not errors, f"{method}.{name}: codex rejects {value!r}: {errors[0].message}"
    for name in codex.get("required", []):
        assert name in ours["properties"], f"{method}: codex requires {name}, we ignore it"
        assert name in ours.get("required", []) or name in ours["properties"]


SCRIPT = "\n".join(
    [
        "hello",
        "/think about it",
        "/say streamed words",
        "/run echo one && echo two",
        "/write notes.txt some text",
        "/stream 3",
    ]
)


async def real_traffic(data_dir: Path, cwd: Path) -> tuple[list[Json], list[Json]]:
    """Drive a real server through every method, notification and approval; return every
    message received (with the method of answers) and the approval answers sent."""
    received: list[Json] = []
    answers: list[Json] = []
    args = ["--data-dir", str(data_dir), "--log-level", "warning"]
    async with spawn_stdio(args) as client:
        client.observer = lambda message, method: received.append((message, method))
        await client.initialize("schema-test")
        started = await client.request("thread/start", {"cwd": str(cwd)})
        thread_id = started["thread"]["id"]

        async def turn(text: str, *, answer: str = "accept") -> None:
            params = {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
            await client.request("turn/start", params)
            async with trio.open_nursery() as nursery:

                async def approve() -> None:
                    while True:
                        request = await client.next_server_request()
                        result = {"decision": answer}
                        answers.append((request.method, result))
                        await client.respond(request.id, result)

                nursery.start_soon(approve)
                await client.next_notification("turn/completed")
                nursery.cancel_scope.cancel()

        await turn(SCRIPT)
        await turn("/run echo declined", answer="decline")
        await turn("/fail on purpose")
        await client.request(
            "turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": "/sleep 30"}]}
        )
        await client.next_notification("turn/started")
        turn_id = (
            await client.request("thread/read", {"threadId": thread_id, "includeTurns": True})
        )["thread"]["turns"][-1]["id"]
        await client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
        await client.request("thread/name/set", {"threadId": thread_id, "name": "schema test"})
        await client.request("thread/list", {})
        await client.request("thread/loaded/list", {})
        await client.request("thread/unsubscribe", {"threadId": thread_id})
        await client.next_notification("thread/closed")
        await client.request("thread/resume", {"threadId": thread_id})
        await client.request("thread/archive", {"threadId": thread_id})
        await client.request("thread/unarchive", {"threadId": thread_id})
        await client.next_notification("thread/unarchived")
    return received, answers


async def test_real_messages_validate_against_ours_and_codex(
    exported: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    received, answers = await real_traffic(tmp_path / "data", work)
    idx = index(exported)
    _, codex_notifications = codex_definitions("ServerNotification.json")
    _, codex_requests = codex_definitions("ServerRequest.json")
    seen: set[str] = set()

    def check(root: Path, rel: str, instance: Json, what: str) -> None:
        errors = list(validator(root, rel).iter_errors(instance))
        assert not errors, f"{root.name}/{rel} rejects {what} {json.dumps(instance)[:800]}: " + (
            "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:3])
        )

    for message, answered in received:
        if "method" in message and "id" in message:
            method = message["method"]
            ours = idx["serverRequests"][method]["params"]
            codex = f"{codex_requests[method]}.json"
        elif "method" in message:
            method = message["method"]
            ours = idx["notifications"][method]
            codex = f"v2/{codex_notifications[method]}.json"
        else:
            assert "result" in message, message
            method = answered
            ours = idx["methods"][method]["result"]
            codex = RESPONSE_SCHEMAS[method]
        instance = message.get("params", message.get("result"))
        check(exported, ours, instance, method)
        check(SCHEMA_DIR, codex, instance, method)
        seen.add(method)
    for method, answer in answers:
        check(exported, idx["serverRequests"][method]["result"], answer, method)
        stem = codex_requests[method].removesuffix("Params")
        check(SCHEMA_DIR, f"{stem}Response.json", answer, method)

    every = {*idx["methods"], *idx["notifications"], *idx["serverRequests"]}
    assert every - seen == set(), "not exercised by the real run"
