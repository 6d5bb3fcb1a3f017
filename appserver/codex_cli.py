"""`appserver-codex`: the Codex command line that Codex SDKs launch, mapped onto appserver.

SDKs start `CODEX_BIN [--config K=V]... app-server --listen stdio://` and may run
`CODEX_BIN [--config K=V]... app-server generate-json-schema --experimental --out DIR`.
Give them this entry point as CODEX_BIN. The global options of `codex --help` and the
flags of `codex app-server --help` (Codex 0.171.0) are accepted: mapped where appserver
has the setting (`--listen`, `--stdio`, the `--ws-*` authentication flags, `-C/--cd`, the
`model` and `model_provider` config keys), otherwise ignored with one warning line on
stderr each. appserver's own flags (`--data-dir`, `--in-memory`, `--log-level`, ...) work
after `app-server` too and win over mapped ones.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Sequence

import attrs

from appserver import cli
from appserver._version import __version__

CODEX_VERSION = "0.171.0"
PROG = "appserver-codex"
VERSION_LINE = f"codex-cli {CODEX_VERSION} (appserver {__version__})"

# `codex --help`: global options that take a value, and plain flags. (-c, --enable,
# --disable, -m, -C are handled on their own.)
GLOBAL_VALUE_OPTIONS = {
    "-p": "--profile",
    "--profile": "--profile",
    "-s": "--sandbox",
    "--sandbox": "--sandbox",
    "-a": "--ask-for-approval",
    "--ask-for-approval": "--ask-for-approval",
    "-i": "--image",
    "--image": "--image",
    "--add-dir": "--add-dir",
    "--local-provider": "--local-provider",
    "--remote": "--remote",
    "--remote-auth-token-env": "--remote-auth-token-env",
}
GLOBAL_FLAGS = {
    "--oss",
    "--search",
    "--strict-config",
    "--approve-for-me",
    "--dangerously-bypass-approvals-and-sandbox",
    "--dangerously-bypass-hook-trust",
    "--worktree",
    "--no-alt-screen",
    "--no-daemon",
}
# `codex app-server --help`: flags appserver has no use for.
APP_SERVER_IGNORED_VALUE = {"--startup-client-info", "--cloud-skills-snapshot", "--code-mode-host"}
APP_SERVER_IGNORED_FLAGS = {"--strict-config", "--startup-sign-out", "--analytics-default-enabled"}
# ...and the ones appserver has under the same name (passed through unchanged).
APP_SERVER_SHARED_VALUE = {
    "--listen",
    "--ws-auth",
    "--ws-token-file",
    "--ws-token-sha256",
    "--ws-shared-secret-file",
    "--ws-issuer",
    "--ws-audience",
    "--ws-max-clock-skew-seconds",
}
UNSUPPORTED_SUBCOMMANDS = {
    "daemon": "appserver runs in the foreground only",
    "proxy": "appserver has no control-socket daemon to proxy to",
    "generate-ts": "appserver exports JSON Schema only (generate-json-schema)",
}

HELP = f"""\
usage: {PROG} [-c KEY=VALUE]... [--enable F]... [--disable F]... app-server [FLAGS]
       {PROG} [-c KEY=VALUE]... app-server generate-json-schema [--experimental] --out DIR

The Codex {CODEX_VERSION} command line for Codex SDKs, served by appserver {__version__}:
give this program to an SDK as its codex binary, e.g. CodexConfig(codex_bin=...).

Mapped: --listen URL, --stdio, --ws-auth/--ws-token-file/--ws-token-sha256/
--ws-shared-secret-file/--ws-issuer/--ws-audience/--ws-max-clock-skew-seconds (as
appserver's), -C/--cd DIR (the server's working directory), -m/--model NAME and
-c model=NAME (appserver --model), -c model_provider=builtin|openai (appserver --agent),
--print-startup-config. Every other Codex option or config key is accepted and ignored
with one warning line on stderr. appserver's own flags may follow app-server (see
`appserver --help`), e.g. --data-dir DIR, --in-memory, --log-level LEVEL.
"""


class CodexUsageError(Exception):
    """A command line this program cannot serve: one line on stderr, exit 2."""


@attrs.define
class Plan:
    """What a Codex command line asks for, in appserver's terms."""

    action: str = "serve"  # serve | schema | version | help | startup-config
    argv: list[str] = attrs.Factory(list)  # appserver's argv (serve) or schema's (schema)
    warnings: list[str] = attrs.Factory(list)
    cwd: str | None = None


def _toml_value(text: str) -> object:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # as Codex: a value that is not TOML is the literal string


class _Words:
    def __init__(self, words: Sequence[str]) -> None:
        self._words = list(words)
        self._i = 0

    def next(self) -> str | None:
        if self._i >= len(self._words):
            return None
        word = self._words[self._i]
        self._i += 1
        return word

    def value(self, option: str, inline: str | None) -> str:
        if inline is not None:
            return inline
        word = self.next()
        if word is None:
            raise CodexUsageError(f"{option} needs a value")
        return word


def _split(word: str) -> tuple[str, str | None]:
    if word.startswith("--") and "=" in word:
        name, value = word.split("=", 1)
        return name, value
    if len(word) > 2 and word[0] == "-" and word[1] in "cmCpsai" and word[1] != "-":
        return word[:2], word[2:]  # -cKEY=VALUE, -mMODEL, ...
    return word, None


def _config(plan: Plan, mapped: list[str], override: str) -> None:
    key, sep, raw = override.partition("=")
    key = key.strip().strip("'\"")
    if not sep or not key:
        raise CodexUsageError(f"--config expects KEY=VALUE, got {override!r}")
    value = _toml_value(raw.strip())
    if key == "model" and isinstance(value, str):
        mapped += ["--model", value]
    elif key == "model_provider" and value in ("builtin", "openai"):
        mapped += ["--agent", str(value)]
    elif key == "model_provider":
        plan.warnings.append(
            f"ignoring --config {override} (appserver's providers are builtin and openai)"
        )
    elif key.startswith("features."):
        plan.warnings.append(f"ignoring --config {override} (appserver has no feature flags)")
    else:
        plan.warnings.append(f"ignoring --config {override} (appserver has no such setting)")


def _common(plan: Plan, mapped: list[str], words: _Words, name: str, inline: str | None) -> bool:
    """-c/--config, --enable, --disable: accepted before and after `app-server`."""
    if name in ("-c", "--config"):
        _config(plan, mapped, words.value(name, inline))
    elif name in ("--enable", "--disable"):
        feature = words.value(name, inline)
        plan.warnings.append(f"ignoring {name} {feature} (appserver has no feature flags)")
    else:
        return False
    return True


def _appserver_arity() -> dict[str, int]:
    """appserver's own options and whether each takes a value (1) or not (0)."""
    arity: dict[str, int] = {}
    for action in cli.build_parser()._actions:
        for option in action.option_strings:
            arity[option] = 0 if action.nargs == 0 else 1
    return arity


def _schema(plan: Plan, mapped: list[str], words: _Words) -> None:
    out: str | None = None
    while (word := words.next()) is not None:
        name, inline = _split(word)
        if _common(plan, mapped, words, name, inline):
            continue
        if name in ("-o", "--out"):
            out = words.value(name, inline)
        elif name == "--experimental":
            pass  # appserver's export always describes everything it offers
        elif name in ("-h", "--help"):
            plan.action = "help"
            return
        else:
            raise CodexUsageError(f"app-server generate-json-schema: unexpected argument {word!r}")
    if out is None:
        raise CodexUsageError("app-server generate-json-schema: --out DIR is required")
    plan.action = "schema"
    plan.argv = ["--out", out]


def _app_server(plan: Plan, mapped: list[str], words: _Words) -> None:
    arity = _appserver_arity()
    own: list[str] = []
    while (word := words.next()) is not None:
        name, inline = _split(word)
        if _common(plan, mapped, words, name, inline):
            continue
        if name == "generate-json-schema" and not own:
            _schema(plan, mapped, words)
            return
        if name in UNSUPPORTED_SUBCOMMANDS and not own:
            raise CodexUsageError(
                f"app-server {name} is not supported: {UNSUPPORTED_SUBCOMMANDS[name]}"
            )
        if name in ("-h", "--help", "help"):
            plan.action = "help"
            return
        if name in ("-V", "--version"):
            plan.action = "version"
            return
        if name == "--print-startup-config":
            plan.action = "startup-config"
        elif name == "--stdio":
            own += ["--listen", "stdio://"]
        elif name in APP_SERVER_IGNORED_VALUE:
            plan.warnings.append(
                f"ignoring {name} {words.value(name, inline)} (not used by appserver)"
            )
        elif name in APP_SERVER_IGNORED_FLAGS:
            plan.warnings.append(f"ignoring {name} (not used by appserver)")
        elif name in APP_SERVER_SHARED_VALUE or arity.get(name) == 1:
            own += [name, words.value(name, inline)]
        elif arity.get(name) == 0 and inline is None:
            own.append(name)
        else:
            raise CodexUsageError(f"app-server: unexpected argument {word!r}")
    plan.argv = mapped + own  # appserver's parser: the last occurrence wins


def plan_from_args(args: Sequence[str]) -> Plan:
    """Translate a Codex command line; raises CodexUsageError."""
    plan = Plan()
    mapped: list[str] = []
    words = _Words(args)
    while (word := words.next()) is not None:
        name, inline = _split(word)
        if _common(plan, mapped, words, name, inline):
            continue
        if name == "app-server":
            _app_server(plan, mapped, words)
            return plan
        if name in ("-V", "--version"):
            plan.action = "version"
            return plan
        if name in ("-h", "--help", "help"):
            plan.action = "help"
            return plan
        if name in ("-m", "--model"):
            mapped += ["--model", words.value(name, inline)]
        elif name in ("-C", "--cd"):
            plan.cwd = words.value(name, inline)
        elif name in GLOBAL_VALUE_OPTIONS:
            value = words.value(name, inline)
            plan.warnings.append(
                f"ignoring {GLOBAL_VALUE_OPTIONS[name]} {value} (not used by appserver)"
            )
        elif name in GLOBAL_FLAGS:
            plan.warnings.append(f"ignoring {name} (not used by appserver)")
        elif name.startswith("-"):
            raise CodexUsageError(f"unexpected argument {word!r}")
        else:
            raise CodexUsageError(f"only the app-server subcommand is available, not {word!r}")
    raise CodexUsageError(
        "expected the app-server subcommand (an interactive Codex is not available)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        plan = plan_from_args(sys.argv[1:] if argv is None else argv)
    except CodexUsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if plan.action == "version":
        print(VERSION_LINE)
        return 0
    if plan.action == "help":
        print(HELP, end="")
        return 0
    for warning in plan.warnings:
        print(f"{PROG}: {warning}", file=sys.stderr, flush=True)
    if plan.action == "startup-config":
        # The reference validates its config.toml and prints its requirements; appserver
        # has neither config file nor managed requirements.
        print(
            json.dumps(
                {"appServerVersion": CODEX_VERSION, "configRequirements": {"requirements": None}}
            )
        )
        return 0
    if plan.action == "schema":
        from appserver.schema import main as schema_main

        return schema_main(plan.argv)
    if plan.cwd is not None:
        try:
            os.chdir(plan.cwd)
        except OSError as exc:
            print(f"{PROG}: error: --cd {plan.cwd}: {exc.strerror}", file=sys.stderr)
            return 2
    return cli.main(plan.argv)


if __name__ == "__main__":
    raise SystemExit(main())
