#!/usr/bin/env bash
# The reference kit's own serve.sh, unmodified, with tests/codex_scenarios/talkback_model.py
# as its fake model: serve.sh runs the fake_model.py beside it, so this puts a symlink to
# the real serve.sh and the extended model side by side in a temporary directory.
# Arguments are serve.sh's (e.g. `stdio`). KIT: $TALKBACK_KIT, else ../shared/codex-reference.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export TALKBACK_KIT="${TALKBACK_KIT:-$(cd "$HERE/../../../shared/codex-reference" && pwd)}"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/talkback-kit.XXXXXX")"
trap 'rm -rf "$DIR"' EXIT
ln -s "$TALKBACK_KIT/serve.sh" "$DIR/serve.sh"
ln -s "$HERE/talkback_model.py" "$DIR/fake_model.py"
"$DIR/serve.sh" "$@"
