#!/usr/bin/env bash
# Runs the integration tests; pytest's "no tests collected" (exit 5) is not a failure
# while a room has none yet, but the run must still print its summary line.
set -u
cd "$(dirname "$0")/.."
python3 -m pytest -q -p no:cacheprovider tests/integration "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest: no integration tests collected"; exit 0; fi
exit $rc
