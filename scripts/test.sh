#!/usr/bin/env bash
# Set up, then run the whole test suite (each test starts its own Mosquitto) on three pytest-xdist
# workers (on two cores: many end-to-end tests spend most of their time waiting for a hub, a broker
# or a rule's deadline, and a third worker uses that time). A test marked `alone` (a latency budget, a CPU storm) runs with no other test beside it
# (tests/support/alone.py). The workers take one test at a time in the order tests/conftest.py sets
# (alone tests, then slow ones, then the rest), so no long test is left to run last on one worker.
# Arguments go to pytest; with -n N / --numprocesses, -p no:xdist, --pdb
# or --trace the caller chooses, and no workers are added (`-n 0`: one process, `-s` output shown).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workers=(-n 3 --dist load --maxschedchunk 1)
prev=""
for arg in "$@"; do
    case "$arg" in
        -n | -n* | --numprocesses | --numprocesses=* | -pno:xdist | --pdb | --trace) workers=() ;;
        --dist | --dist=*) [ ${#workers[@]} -eq 0 ] || workers=(-n 3) ;;
        no:xdist) [ "$prev" = "-p" ] && workers=() ;;
    esac
    prev="$arg"
done
exec .venv/bin/python -m pytest "${workers[@]}" "$@"
