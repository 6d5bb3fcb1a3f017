"""Bring your own agent: serve a small AgentBackend of your own (docs/agents.md).

`CountingAgent` answers every turn by running one command, `wc -w`, on the user's text:
it starts a commandExecution item, asks the thread's clients for approval, runs the
command if approved and reports the count. The server is embedded with
`ServerConfig(agents={"counter": CountingAgent})`; a client in the same program starts a
thread with `modelProvider: "counter"`, accepts the approval request and prints what it
sees.

    python examples/own_agent.py
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from typing import Any

import trio

from appserver.agents import AgentModel, TurnCancelled, TurnContext
from appserver.agents.base import agent_message_item
from appserver.server import ServerConfig, open_server


class CountingAgent:
    name = "counter"
    display_name = "Word counter"
    models = [AgentModel("wc-1", description="counts your words with wc -w")]

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        text = " ".join(part["text"] for part in user_input if part["type"] == "text")
        command = f"printf %s {shlex.quote(text)} | wc -w"
        item: dict[str, Any] = {
            "id": ctx.new_item_id(), "type": "commandExecution", "command": command,
            "cwd": ctx.cwd, "processId": None, "source": "agent", "pluginId": None,
            "scriptPath": None, "status": "inProgress", "aggregatedOutput": None,
            "commandActions": [{"type": "unknown", "command": command}],
            "exitCode": None, "durationMs": None,
        }  # fmt: skip
        await ctx.item_started(item)  # the item must be started before asking for it
        decision = "accept"
        if ctx.approval_policy != "never":
            decision = await ctx.request_approval(
                "commandExecution", {"itemId": item["id"], "command": command, "cwd": ctx.cwd}
            )
        if decision not in ("accept", "acceptForSession"):
            await ctx.item_completed({**item, "status": "declined"})
            if decision == "cancel":
                raise TurnCancelled()  # the turn ends interrupted
            reply = "I did not count your words."
        else:
            done = await trio.run_process(
                ["/bin/sh", "-c", command], cwd=ctx.cwd, capture_stdout=True,
                stderr=subprocess.STDOUT, check=False,
            )  # fmt: skip
            output = done.stdout.decode()
            await ctx.command_output_delta(item["id"], output)
            status = "completed" if done.returncode == 0 else "failed"
            item.update(status=status, aggregatedOutput=output, exitCode=done.returncode)
            await ctx.item_completed(item)  # stored, then announced
            reply = f"You wrote {output.strip()} word(s)."
        message = agent_message_item(ctx.new_item_id(), "")
        await ctx.item_started(message)
        await ctx.agent_message_delta(message["id"], reply)
        await ctx.item_completed({**message, "text": reply})


async def main() -> None:
    config = ServerConfig(agents={"counter": CountingAgent})
    async with open_server(config) as server, server.connect() as client:
        await client.initialize("own-agent-example")
        providers = await client.request("modelProvider/list")
        print("providers:", [p["id"] for p in providers["data"]])
        models = await client.request("model/list", {"modelProvider": "counter"})
        print("models of counter:", [m["id"] for m in models["data"]])
        started = await client.request("thread/start", {"modelProvider": "counter"})
        thread_id = started["thread"]["id"]
        print(f"thread of {started['modelProvider']} with model {started['model']}")
        text = "three little words"
        await client.request(
            "turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
        )
        with trio.fail_after(10):
            request = await client.next_server_request("item/commandExecution/requestApproval")
            print(f"approval requested for: {request.params['command']}")
            await client.respond(request.id, {"decision": "accept"})
            while True:
                note = await client.next_notification()
                if note["method"] == "item/completed":
                    item = note["params"]["item"]
                    if item["type"] == "commandExecution":
                        print(f"command {item['status']}, output {item['aggregatedOutput']!r}")
                    elif item["type"] == "agentMessage":
                        print(f"agent: {item['text']}")
                elif note["method"] == "turn/completed":
                    print(f"turn {note['params']['turn']['status']}")
                    break


if __name__ == "__main__":
    trio.run(main)
