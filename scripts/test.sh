#!/usr/bin/env bash
# Set up, then run the whole test suite (each test starts its own Mosquitto) on two pytest-xdist
# workers. A test marked `alone` (a latency budget, a CPU storm) runs with no other test beside it
# (tests/support/alone.py). Arguments go to pytest; with -n N / --numprocesses, -p no:xdist, --pdb
# or --trace the caller chooses, and no workers are added (`-n 0`: one process, `-s` output shown).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workers=(-n 2 --dist worksteal)
prev=""
for arg in "$@"; do
    case "$arg" in
        -n | -n* | --numprocesses | --numprocesses=* | -pno:xdist | --pdb | --trace) workers=() ;;
        --dist | --dist=*) [ ${#workers[@]} -eq 0 ] || workers=(-n 2) ;;
        no:xdist) [ "$prev" = "-p" ] && workers=() ;;
    esac
    prev="$arg"
done
exec .venv/bin/python -m pytest "${workers[@]}" "$@"
