#!/usr/bin/env bash
# bench/views/run.sh — view benchmark: fhirlake `view run` vs @medplum/core evalSqlOnFhir on
# the same NDJSON files in one run (rows/s, MB/s of input, ratio; goal >= 50x end to end),
# plus fhirlake's parse-only vs eval time for PatientDemographics (goal eval <= parse).
# Views: the SQL-on-FHIR IG examples Pathling benchmarks (PatientDemographics,
# PatientAddresses, ConditionFlat, EncounterFlat, UsCoreBloodPressures) and the article's
# patient_flat, as JSON files beside this script.
#
# Data (made when missing): Patient views read $PATIENTS_NDJSON (bench/make_patients.sh,
# Synthea Patients replicated to 100 MB); the others read Synthea bulk NDJSON in
# $SYNTHEA_DIR (default: the largest finished bench/data/synthea/N; else bench/synthea.sh 100
# makes one). Inputs larger than VIEWS_MAX_MB (default 200) are cut to that size (whole
# lines) into bench/data/views/ so @medplum/core's side stays within minutes.
# Environment: FHIRLAKE, SYNTHEA_DIR, PATIENTS_NDJSON, VIEWS_MAX_MB, VIEWS_REPEAT (fhirlake
# runs per view, best taken; default 3), VIEWS_JOBS (fhirlake jobs settings, default "1,default":
# --jobs 1 and one thread per CPU, each printed). Row outputs go to bench/data/views/out/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
fhirlake="${FHIRLAKE:-$root/build/fhirlake}"
max_mb="${VIEWS_MAX_MB:-200}"
work="$root/bench/data/views"
mkdir -p "$work/out"

[ -x "$fhirlake" ] || make -j2 >/dev/null
[ -d tests/js/node_modules/@medplum/core ] || (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)

if [ -z "${SYNTHEA_DIR:-}" ]; then
  best=0
  for m in bench/data/synthea/*/MANIFEST; do
    [ -f "$m" ] || continue
    n="$(basename "$(dirname "$m")")"
    case "$n" in *[!0-9]*) continue ;; esac
    [ "$n" -gt "$best" ] && best="$n"
  done
  if [ "$best" -eq 0 ]; then bench/synthea.sh 100; best=100; fi
  SYNTHEA_DIR="$root/bench/data/synthea/$best"
fi
patients="${PATIENTS_NDJSON:-$root/bench/data/patients-100mb.ndjson}"
[ -f "$patients" ] || bench/make_patients.sh 100 "$patients"

# cut FILE -> a path holding at most max_mb MB of whole lines of it
cut_input() {
  local f="$1" size=$(stat -c %s "$1")
  if [ "$size" -le $(( max_mb * 1000000 )) ]; then echo "$f"; return; fi
  local out="$work/$(basename "$(dirname "$f")")-$(basename "$f" .ndjson)-${max_mb}mb.ndjson"
  [ -f "$out" ] || head -c $(( max_mb * 1000000 )) "$f" | sed '$d' > "$out"
  echo "$out"
}

# A private copy: a rebuild of build/fhirlake during the run must not break it.
cp "$fhirlake" "$work/fhirlake"
fhirlake="$work/fhirlake"

echo "views: fhirlake $(git rev-parse --short HEAD 2>/dev/null || echo '?'), node $(node --version)," \
     "@medplum/core $(node -p "require('./tests/js/node_modules/@medplum/core/package.json').version")"
echo "views: Synthea data $SYNTHEA_DIR; patients $patients"
python3 "$here/bench_views.py" "$fhirlake" "$work/out" \
  "PatientDemographics=$(cut_input "$patients")" \
  "PatientAddresses=$(cut_input "$patients")" \
  "patient_flat=$(cut_input "$patients")" \
  "ConditionFlat=$(cut_input "$SYNTHEA_DIR/Condition.ndjson")" \
  "EncounterFlat=$(cut_input "$SYNTHEA_DIR/Encounter.ndjson")" \
  "UsCoreBloodPressures=$(cut_input "$SYNTHEA_DIR/Observation.ndjson")"
