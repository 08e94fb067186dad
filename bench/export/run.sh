#!/usr/bin/env bash
# bench/export/run.sh — $viewdefinition-export throughput (see bench_export.py's opening
# comment for exactly what is timed): full export of >= 1M rows of Synthea data (four views
# over Observation, Encounter, Condition, Procedure) into Delta via `fhirlake serve`, then an
# incremental _since export after changing 1% of the resources, against Pathling (PyPI,
# Spark local[2], installed into bench/data/pathling-venv on first run) running the same
# views over the same NDJSON into Delta; DuckDB + delta-rs when Pathling cannot run.
# Env: SYNTHEA_DIR (default bench/data/synthea/1000), BENCH_EXPORT_CHUNKS (4),
# BENCH_NO_BUILD=1, BENCH_EXPORT_NO_PATHLING=1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
[ -n "${BENCH_NO_BUILD:-}" ] || make -s -j2 all >/dev/null
syn="${SYNTHEA_DIR:-$root/bench/data/synthea/1000}"
[ -f "$syn/Observation.ndjson" ] || bash bench/synthea.sh 1000 "$syn"
venv="$root/bench/data/pathling-venv"
if [ -z "${BENCH_EXPORT_NO_PATHLING:-}" ] && [ ! -x "$venv/bin/python" ]; then
    (python3 -m venv "$venv" && "$venv/bin/pip" install -q pathling) \
        || echo "note: Pathling did not install; the peer will be DuckDB"
fi
SYNTHEA_DIR="$syn" python3 "$here/bench_export.py"
