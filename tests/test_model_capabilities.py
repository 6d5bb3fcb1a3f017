"""modelProvider/capabilities/read (Codex 0.171) over a real server."""

from __future__ import annotations

import trio

from conftest import ConnectFactory

TIMEOUT = 15


async def test_capabilities_are_false_for_every_backend(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("capabilities")
            expected = {"imageGeneration": False, "webSearch": False}
            assert await client.request("modelProvider/capabilities/read", {}) == expected
            # The reference takes no params and ignores any it is given.
            params = {"modelProvider": "openai", "bogus": 1}
            assert await client.request("modelProvider/capabilities/read", params) == expected
