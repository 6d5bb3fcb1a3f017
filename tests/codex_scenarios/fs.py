"""diff.py scenarios for the `fs/*` methods (issue 14).

    python3 ../shared/codex-reference/diff.py "serve.sh stdio" \
        "$PWD/.venv/bin/appserver --in-memory" --scenario tests/codex_scenarios/fs.py \
        --scenario tests/codex_scenarios/fs.py:errors --scenario tests/codex_scenarios/fs.py:watch

Each function takes one diff.py `Session`; this file is run by diff.py, not by pytest.
"""

from __future__ import annotations

import base64
import os
from typing import Any


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def scenario(s: Any) -> None:
    """every method once on the happy path"""
    s.initialize()
    root = s.cwd
    f = os.path.join(root, "a.txt")
    s.request("fs/writeFile", {"path": f, "dataBase64": b64(b"hello\n")})
    s.request("fs/readFile", {"path": f})
    s.request("fs/writeFile", {"path": f, "dataBase64": ""})
    s.request("fs/readFile", {"path": f})
    s.request("fs/createDirectory", {"path": os.path.join(root, "d", "e", "f")})
    s.request("fs/createDirectory", {"path": os.path.join(root, "d")})
    s.request("fs/getMetadata", {"path": f})
    s.request("fs/getMetadata", {"path": os.path.join(root, "d")})
    os.symlink(f, os.path.join(root, "link"))
    os.symlink(os.path.join(root, "nowhere"), os.path.join(root, "dangling"))
    s.request("fs/getMetadata", {"path": os.path.join(root, "link")})
    s.request("fs/getMetadata", {"path": os.path.join(root, "dangling")})
    s.request("fs/readDirectory", {"path": root})
    s.request("fs/copy", {"sourcePath": f, "destinationPath": os.path.join(root, "b.txt")})
    s.request(
        "fs/copy",
        {
            "sourcePath": os.path.join(root, "d"),
            "destinationPath": os.path.join(root, "d2"),
            "recursive": True,
        },
    )
    s.request("fs/readDirectory", {"path": os.path.join(root, "d2", "e")})
    s.request("fs/remove", {"path": os.path.join(root, "b.txt")})
    s.request("fs/remove", {"path": os.path.join(root, "d2")})
    s.request("fs/remove", {"path": os.path.join(root, "gone")})
    s.request("fs/readDirectory", {"path": root})


def errors(s: Any) -> None:
    """relative paths, missing paths, wrong kinds, bad base64"""
    s.initialize()
    root = s.cwd
    f = os.path.join(root, "a.txt")
    missing = os.path.join(root, "missing")
    s.request("fs/writeFile", {"path": f, "dataBase64": b64(b"x")})
    s.request("fs/readFile", {"path": "rel.txt"})
    s.request("fs/readFile", {})
    s.request("fs/readFile", {"path": missing})
    s.request("fs/readFile", {"path": root})
    s.request("fs/writeFile", {"path": f, "dataBase64": "not base64!"})
    s.request("fs/writeFile", {"path": os.path.join(missing, "x"), "dataBase64": ""})
    s.request("fs/writeFile", {"path": root, "dataBase64": ""})
    s.request("fs/createDirectory", {"path": os.path.join(missing, "x"), "recursive": False})
    s.request("fs/createDirectory", {"path": f})
    s.request("fs/createDirectory", {"path": f, "recursive": False})
    s.request("fs/getMetadata", {"path": missing})
    s.request("fs/getMetadata", {"path": "."})
    s.request("fs/readDirectory", {"path": missing})
    s.request("fs/readDirectory", {"path": f})
    os.makedirs(os.path.join(root, "full", "sub"))
    s.request("fs/remove", {"path": missing, "force": False})
    s.request("fs/remove", {"path": os.path.join(root, "full"), "recursive": False})
    s.request("fs/remove", {"path": os.path.join(root, "full", "sub"), "recursive": False})
    s.request("fs/copy", {"sourcePath": missing, "destinationPath": os.path.join(root, "c")})
    s.request("fs/copy", {"sourcePath": root + "/full", "destinationPath": root + "/c"})
    s.request("fs/copy", {"sourcePath": f, "destinationPath": "rel"})
    s.request("fs/copy", {"sourcePath": f, "destinationPath": os.path.join(missing, "c")})
    s.request("fs/copy", {"sourcePath": f, "destinationPath": os.path.join(root, "full")})
    s.request(
        "fs/copy", {"sourcePath": root, "destinationPath": root + "/full/in", "recursive": True}
    )


def watch(s: Any) -> None:
    """fs/watch of a directory and a file, a change, fs/unwatch"""
    s.initialize()
    root = s.cwd
    f = os.path.join(root, "w.txt")
    s.request("fs/watch", {"watchId": "w1", "path": root})
    s.settle(0.5)
    with open(f, "w") as out:
        out.write("x")
    s.wait_for("fs/changed", timeout=5)
    s.settle(1.0)
    s.request("fs/watch", {"watchId": "w2", "path": f})
    s.request("fs/watch", {"watchId": "w2", "path": root})
    s.settle(0.5)
    with open(f, "a") as out:
        out.write("y")
    s.wait_for("fs/changed", timeout=5)
    s.settle(1.0)
    s.request("fs/unwatch", {"watchId": "w1"})
    s.request("fs/unwatch", {"watchId": "w2"})
    s.request("fs/unwatch", {"watchId": "w2"})
    s.request("fs/watch", {"watchId": "w3", "path": os.path.join(root, "missing")})
    s.request("fs/watch", {"watchId": "w4", "path": "rel"})
