#!/usr/bin/env bash
# bench/make_patients.sh [MB] [OUT] — builds a large Patient-only NDJSON file for the JSON
# and view benchmarks by replicating Synthea Patients with fresh ids until the file holds
# at least MB megabytes (default 100; 1 MB = 10^6 bytes).
# Default OUT: bench/data/patients-100mb.ndjson (for MB=100; else patients-<MB>mb.ndjson).
#
# Source: the Patient.ndjson of the largest finished bench/data/synthea/<N>/ run (or
# $PATIENT_SRC); with none, bench/synthea.sh 100 is run first. Copy 0 of each patient is the
# original; copy k>0 gets a new UUID (derived from the original id and k, so the output is
# reproducible) everywhere the original id appears in that line (id, identifier values).
# Idempotent: an OUT already at least MB megabytes is kept.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
mb="${1:-100}"
case "$mb" in ''|*[!0-9]*) echo "usage: bench/make_patients.sh [MB] [OUT]" >&2; exit 2 ;; esac
out="${2:-$root/bench/data/patients-${mb}mb.ndjson}"
want=$(( mb * 1000000 ))

if [ -f "$out" ] && [ "$(stat -c %s "$out")" -ge "$want" ]; then
  echo "make_patients: reusing $out ($(wc -l < "$out") patients, $(( $(stat -c %s "$out") / 1000000 )) MB)"
  exit 0
fi

src="${PATIENT_SRC:-}"
if [ -z "$src" ]; then
  best=0
  for m in "$root"/bench/data/synthea/*/MANIFEST; do
    [ -f "$m" ] || continue
    d="$(dirname "$m")"; n="$(basename "$d")"
    case "$n" in *[!0-9]*) continue ;; esac
    if [ "$n" -gt "$best" ] && [ -f "$d/Patient.ndjson" ]; then best="$n"; src="$d/Patient.ndjson"; fi
  done
fi
if [ -z "$src" ]; then
  "$here/synthea.sh" 100
  src="$root/bench/data/synthea/100/Patient.ndjson"
fi
[ -s "$src" ] || { echo "make_patients: no Patient source at $src" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
python3 - "$src" "$tmp" "$want" <<'PY'
# Replicates each source Patient line, swapping its id for a fresh deterministic UUID.
import hashlib, json, sys, uuid
src, dst, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = []
with open(src, encoding='utf-8') as f:
    for line in f:
        line = line.strip()
        if line:
            lines.append((json.loads(line)['id'], line))
if not lines:
    sys.exit("make_patients: empty source")
written = count = 0
k = 0
with open(dst, 'w', encoding='utf-8') as out:
    while written < want:
        for pid, line in lines:
            if k:
                h = hashlib.sha1(f"{pid}/{k}".encode()).digest()[:16]
                line = line.replace(pid, str(uuid.UUID(bytes=h, version=4)))
            out.write(line + '\n')
            written += len(line.encode()) + 1
            count += 1
            if written >= want:
                break
        k += 1
print(f"make_patients: {count} patients ({len(lines)} originals x {k} rounds), "
      f"{written/1e6:.1f} MB")
PY
mv "$tmp" "$out"
trap - EXIT
echo "make_patients: wrote $out from $src"
