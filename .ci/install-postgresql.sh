#!/usr/bin/env bash
# Install Debian's PostgreSQL server when no initdb is found under
# /usr/lib/postgresql/*/bin (the test session starts a throwaway cluster with it:
# tests/pg_support.py). Idempotent: does nothing when it is already there.
set -euo pipefail

have_initdb() {
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if have_initdb; then
    echo "install-postgresql: $(ls -d /usr/lib/postgresql/*/bin/initdb | tail -n 1) present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends postgresql
# The package's own cluster is not needed (the tests initdb their own).
if command -v pg_ctlcluster >/dev/null 2>&1; then
    $SUDO service postgresql stop >/dev/null 2>&1 || true
fi
have_initdb || { echo "install-postgresql: initdb still missing" >&2; exit 1; }
echo "install-postgresql: installed $(ls -d /usr/lib/postgresql/*/bin/initdb | tail -n 1)"
