#!/usr/bin/env bash
# Set up, then run the whole test suite (each test starts its own Mosquitto).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
