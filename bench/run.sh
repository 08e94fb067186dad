#!/usr/bin/env bash
# bench/run.sh [NAME...] — runs every benchmark present (bench/<name>/run.sh), each one
# measuring fhirlake against a peer in the same run, and collects their figures.
#
# Before the benchmarks it builds fhirlake and makes the shared data (idempotent, reused
# when present): Synthea bulk NDJSON in bench/data/synthea/$BENCH_N/ and the Patient-only
# file bench/data/patients-100mb.ndjson. Known benchmarks run in the order json, ingest,
# views, parquet, delta, then any other bench/*/run.sh; a missing one is skipped with a
# note. With NAMEs only those run.
#
# Output: each benchmark's full output in bench/out/<name>.log; bench/out/summary.txt holds,
# per benchmark, its exit status, wall time and figures. A benchmark's figures are its
# lines starting with "result:" (see bench/README.md); with none, its last 15 lines.
#
# Environment: BENCH_N (Synthea patients, default 1000), BENCH_TIMEOUT (seconds per
# benchmark, default 1800), BENCH_SKIP_DATA=1 (do not generate data).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"
known="json ingest views parquet delta"
n="${BENCH_N:-1000}"
limit="${BENCH_TIMEOUT:-1800}"
outdir="$here/out"
summary="$outdir/summary.txt"
mkdir -p "$outdir"

note() { echo "bench: $*" >&2; }

# Which benchmarks: the NAMEs given, else the known ones then any other bench/*/run.sh.
names=()
if [ $# -gt 0 ]; then
  names=("$@")
else
  names=($known)
  for f in "$here"/*/run.sh; do
    [ -f "$f" ] || continue
    b="$(basename "$(dirname "$f")")"
    case " $known " in *" $b "*) ;; *) names+=("$b") ;; esac
  done
fi

note "building fhirlake (make -j2)"
if ! make -j2 >"$outdir/build.log" 2>&1; then
  tail -20 "$outdir/build.log" >&2
  note "build failed (bench/out/build.log); benchmarks that need build/fhirlake will fail"
fi

if [ "${BENCH_SKIP_DATA:-0}" != 1 ]; then
  "$here/synthea.sh" "$n" || note "synthea.sh $n failed: benchmarks may lack data"
  "$here/make_patients.sh" 100 || note "make_patients.sh failed: benchmarks may lack data"
fi

# What every benchmark may read (they also find these paths on their own).
# Data paths are exported only when the data is there, so a benchmark falls back to its own.
export FHIRLAKE="$root/build/fhirlake"
export BENCH_DATA="$here/data"
SYNTHEA_DIR="$here/data/synthea/$n"
PATIENTS_NDJSON="$here/data/patients-100mb.ndjson"
[ -f "$SYNTHEA_DIR/MANIFEST" ] && export SYNTHEA_DIR
[ -f "$PATIENTS_NDJSON" ] && export PATIENTS_NDJSON

{
  echo "fhirlake benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC') — $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB; $(uname -srm)"
  echo "data: $SYNTHEA_DIR ($(grep -m1 '^resources' "$SYNTHEA_DIR/MANIFEST" 2>/dev/null || echo 'missing'))"
  if [ -f "$PATIENTS_NDJSON" ]; then
    echo "      $PATIENTS_NDJSON ($(wc -l < "$PATIENTS_NDJSON") patients, $(( $(stat -c %s "$PATIENTS_NDJSON") / 1000000 )) MB)"
  else
    echo "      $PATIENTS_NDJSON (missing)"
  fi
  echo
} > "$summary"

failed=0
for b in "${names[@]}"; do
  script="$here/$b/run.sh"
  if [ ! -f "$script" ]; then
    note "skip $b: bench/$b/run.sh not present"
    printf '== %s: skipped (bench/%s/run.sh not present)\n\n' "$b" "$b" >> "$summary"
    continue
  fi
  log="$outdir/$b.log"
  note "running $b (log: bench/out/$b.log)"
  start=$(date +%s)
  # timeout signals the whole process group (servers a benchmark started), KILL 30 s later.
  timeout -k 30 "$limit" bash "$script" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  secs=$(( $(date +%s) - start ))
  status="ok"
  { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && status="TIMEOUT after ${limit}s"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && status="FAILED (exit $rc)"
  [ "$rc" -ne 0 ] && failed=$((failed + 1))
  {
    echo "== $b: $status, ${secs}s"
    if grep -q '^result:' "$log"; then grep '^result:' "$log"; else tail -15 "$log"; fi
    echo
  } >> "$summary"
done

echo
echo "======== summary (bench/out/summary.txt) ========"
cat "$summary"
[ "$failed" -eq 0 ]
