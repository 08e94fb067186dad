#!/usr/bin/env bash
# bench/synthea.sh N [OUTDIR] — generates N Synthea patients as FHIR R4 bulk NDJSON
# (one file per resource type: OUTDIR/Patient.ndjson, OUTDIR/Observation.ndjson, ...)
# for the benchmarks. Default OUTDIR: bench/data/synthea/N (git-ignored).
#
# Reproducible: fixed seeds (-s, -cs) and a fixed reference date (-r), Synthea pinned to
# one version. Idempotent: an OUTDIR holding a MANIFEST from an earlier run is reused as
# it is; a half-finished run (no MANIFEST) is thrown away and generated again.
#
# Synthea comes from Maven Central (org.mitre.synthea:synthea, plain jar; Maven Central
# serves no runnable `all` jar), with its runtime dependencies resolved by Maven through
# bench/synthea/pom.xml into ~/.m2. Needs: java 17, mvn, python3.
#
# Environment: SYNTHEA_SEED (default 42), SYNTHEA_REFDATE (default 20250101),
# SYNTHEA_STATE (default Massachusetts), SYNTHEA_XMX (default 3g).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
version=3.3.0
seed="${SYNTHEA_SEED:-42}"
refdate="${SYNTHEA_REFDATE:-20250101}"
state="${SYNTHEA_STATE:-Massachusetts}"
xmx="${SYNTHEA_XMX:-3g}"

usage() { echo "usage: bench/synthea.sh N [OUTDIR]   (N = number of living patients)" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
n="$1"
case "$n" in ''|*[!0-9]*) usage ;; esac
[ "$n" -ge 1 ] || usage
out="${2:-$root/bench/data/synthea/$n}"

if [ -f "$out/MANIFEST" ]; then
  echo "synthea: reusing $out ($(grep -m1 '^resources' "$out/MANIFEST"))"
  exit 0
fi

# One generator per OUTDIR at a time: a second caller waits, then reuses the first's output.
mkdir -p "$(dirname "$out")"
exec 9>"$(dirname "$out")/.$(basename "$out").lock"
flock 9
if [ -f "$out/MANIFEST" ]; then
  echo "synthea: reusing $out ($(grep -m1 '^resources' "$out/MANIFEST"))"
  exit 0
fi

for tool in java mvn python3; do
  command -v "$tool" >/dev/null || { echo "synthea: $tool not found (run scripts/setup.sh)" >&2; exit 1; }
done

# Resolve Synthea + dependencies once; the classpath file is the cache key.
cache="$root/bench/data/synthea"
cpfile="$cache/classpath-$version.txt"
mkdir -p "$cache"
if [ ! -s "$cpfile" ]; then
  echo "synthea: resolving org.mitre.synthea:synthea:$version and dependencies (Maven Central)"
  mvn -q -B -f "$here/synthea/pom.xml" dependency:build-classpath \
      -Dmdep.includeScope=runtime -Dmdep.outputFile="$cpfile.tmp" >&2
  jar="$HOME/.m2/repository/org/mitre/synthea/synthea/$version/synthea-$version.jar"
  [ -f "$jar" ] || { echo "synthea: $jar missing after resolve" >&2; exit 1; }
  mv "$cpfile.tmp" "$cpfile"
fi

# Generate into a hidden scratch dir beside OUTDIR, then move into place: a reader never
# sees a half-written OUTDIR.
tmp="$(dirname "$out")/.$(basename "$out").tmp.$$"   # dot name: globs of */ skip it
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "synthea: generating $n patients (seed $seed, reference date $refdate, $state) -> $out"
start=$(date +%s)
java "-Xmx$xmx" -cp "$(cat "$cpfile")" App \
  -p "$n" -s "$seed" -cs "$seed" -r "$refdate" \
  --exporter.baseDirectory="$tmp/synthea" \
  --exporter.fhir.export=true \
  --exporter.fhir.bulk_data=true \
  --exporter.hospital.fhir.export=true \
  --exporter.practitioner.fhir.export=true \
  --exporter.metadata.export=false \
  "$state" > "$tmp/synthea.log" 2>&1 || {
    tail -30 "$tmp/synthea.log" >&2; echo "synthea: java failed (log above)" >&2; exit 1; }
secs=$(( $(date +%s) - start ))

# Synthea names provider files Type.<timestamp>.ndjson; give every type one stable name.
mkdir -p "$tmp/fhir"
for f in "$tmp"/synthea/fhir/*.ndjson; do
  base="$(basename "$f" .ndjson)"
  type="${base%%.*}"
  cat "$f" >> "$tmp/fhir/$type.ndjson"
done

python3 - "$tmp/fhir" "$n" "$seed" "$refdate" "$state" "$version" "$secs" > "$tmp/MANIFEST" <<'PY'
# Counts lines and bytes per resource type: the data-size figures the benchmarks quote.
import os, sys
d, n, seed, ref, state, ver, secs = sys.argv[1:]
rows, total_r, total_b = [], 0, 0
for name in sorted(os.listdir(d)):
    p = os.path.join(d, name)
    with open(p, 'rb') as f:
        lines = sum(1 for _ in f)
    size = os.path.getsize(p)
    rows.append((name[:-len('.ndjson')], lines, size))
    total_r += lines; total_b += size
print(f"resources {total_r} in {len(rows)} files, {total_b/1e6:.1f} MB")
print(f"synthea {ver}: -p {n} -s {seed} -cs {seed} -r {ref} {state}; bulk NDJSON; {secs} s")
for t, l, s in rows:
    print(f"{t:<28} {l:>10} {s/1e6:>10.1f} MB")
PY

mv "$tmp/synthea.log" "$tmp/fhir/synthea.log"
mv "$tmp/MANIFEST" "$tmp/fhir/MANIFEST"
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp/fhir" "$out"
cat "$out/MANIFEST"
