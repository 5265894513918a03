#!/usr/bin/env bash
# Prepare a fresh machine: Mosquitto (Debian package) and a virtualenv with carehub installed
# at the versions pinned in constraints.txt (the lock; regenerate it with scripts/lock.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q mosquitto mosquitto-clients
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The stamp holds the sha256 of the lock and of pyproject.toml the venv was last installed from.
# Install again when either changed, the venv is new, or a package in it is not at its pinned
# version (someone ran pip install by hand), so that the venv is what a fresh machine gets.
stamp=.venv/carehub-lock.sha256
want="$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] \
    || ! .venv/bin/python tests/support/lock.py --check >/dev/null 2>&1; then
    rm -f "$stamp"
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[bench,central,test]"
    # Drop what an earlier lock installed and this one no longer names, so that code importing an
    # undeclared package fails here as it would on a fresh machine.
    extra="$(.venv/bin/python tests/support/lock.py --leftovers)"
    if [ -n "$extra" ]; then
        # shellcheck disable=SC2086  # one distribution name per word
        .venv/bin/python -m pip uninstall -q -y $extra
    fi
    echo "$want" >"$stamp"
fi
# The contract's AsyncAPI check (contract/check: the official @asyncapi/parser, installed from its
# lock) when npm is here; again when the lock changed or node_modules is gone. Install scripts are
# off (one dependency's only runs usage analytics). Without npm the test skips and says why.
if command -v npm >/dev/null 2>&1; then
    check=contract/check
    lock="$(sha256sum "$check/package-lock.json" | cut -d' ' -f1)"
    if [ "$(cat "$check/node_modules/.carehub-lock.sha256" 2>/dev/null)" != "$lock" ]; then
        if (cd "$check" && SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error); then
            echo "$lock" >"$check/node_modules/.carehub-lock.sha256"
        else
            echo "setup: npm ci in $check failed: the AsyncAPI check (tests/test_contract_asyncapi.py) cannot run" >&2
        fi
    fi
fi
