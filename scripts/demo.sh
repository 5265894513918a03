#!/usr/bin/env bash
# Set up, then run the hub on a simulated residence against a local broker (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/carehub demo "$@"
