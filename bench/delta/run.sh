#!/usr/bin/env bash
# bench/delta/run.sh — Delta Lake writing, fhirlake against peers measured in the same run.
#  1. append: BENCH_DELTA_ROWS (default 1,000,000) flat rows (the same deterministic values
#     on both sides, built in memory untimed) appended as one commit to a fresh table:
#     fhirlake lake.h (bench/delta/deltabench.c) vs deltalake.write_deltalake (Arrow table),
#     same codec, best of 3; the two tables are checked to hold equal rows. Also fhirlake
#     with 2 writer threads (lake_options.threads: the batches split over 2 files).
#  2. whole path: Patient NDJSON (BENCH_DELTA_NDJSON, default bench/data/patients-500mb.ndjson
#     made by bench/make_patients.sh $BENCH_DELTA_MB, default 500; best of 2 on both sides)
#     -> the article's patient_flat view -> table: `fhirlake view export --mode append` into
#     a fresh Delta table (process wall time, everything included) vs DuckDB
#     COPY (SELECT ... FROM read_ndjson_auto(...)) TO ... (FORMAT parquet) (query time only,
#     Python start-up excluded); also fhirlake's merge of the same file into the table.
# BENCH_NO_BUILD=1 skips `make`; FHIRLAKE / DELTABENCH point at other binaries.
# Peak RSS of every side from /usr/bin/time -v. Prints "result:" lines with ratios.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
n="${BENCH_DELTA_ROWS:-1000000}"
codec="${BENCH_DELTA_CODEC:-snappy}"
mb="${BENCH_DELTA_MB:-500}"
patients="${BENCH_DELTA_NDJSON:-$root/bench/data/patients-${mb}mb.ndjson}"
data="$root/bench/data/delta"
fhirlake="${FHIRLAKE:-$root/build/fhirlake}"
deltabench="${DELTABENCH:-$root/build/tools/deltabench}"
mkdir -p "$data"
[ -n "${BENCH_NO_BUILD:-}" ] || make -s -j2 all "$deltabench" >/dev/null

rss() { grep "Maximum resident" "$1" | awk '{printf "%.0f", $6/1024}'; }
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# ---- 1. append of flat rows ----
ours=$(/usr/bin/time -v -o "$data/ours_append.time" "$deltabench" "$n" "$data/ours_append" "$codec" 3 1)
ours2=$("$deltabench" "$n" "$data/ours_append2" "$codec" 3 2)
peer=$(/usr/bin/time -v -o "$data/peer_append.time" python3 "$here/peer_append.py" "$n" "$data/peer_append" "$codec" 3)
python3 - "$data/ours_append/run0" "$data/peer_append/run0" <<'PY'
import sys
import pyarrow as pa
from deltalake import DeltaTable
a = pa.table(DeltaTable(sys.argv[1]).scan().read_all()).sort_by("id")   # scan(): DVs (to_pyarrow_table refuses them)
b = pa.table(DeltaTable(sys.argv[2]).scan().read_all()).sort_by("id")
assert a.num_rows == b.num_rows and a.equals(b.cast(a.schema)), "tables differ"
PY
python3 - "$ours" "$peer" "$codec" "$(rss "$data/ours_append.time")" "$(rss "$data/peer_append.time")" "$ours2" <<'PY'
import json, sys
o, p, codec, ro, rp = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
o2 = json.loads(sys.argv[6])
print(f"result: delta append {o['rows']:,} flat rows ({codec}): fhirlake {o['rows']/o['seconds']:,.0f} rows/s "
      f"({o['seconds']:.2f} s, {o['bytes']/1e6:.1f} MB), delta-rs {p['rows']/p['seconds']:,.0f} rows/s "
      f"({p['seconds']:.2f} s, {p['bytes']/1e6:.1f} MB) -> {p['seconds']/o['seconds']:.2f}x")
print(f"result: delta append with 2 writer threads (2 files): fhirlake {o2['rows']/o2['seconds']:,.0f} rows/s "
      f"({o2['seconds']:.2f} s) -> {p['seconds']/o2['seconds']:.2f}x delta-rs")
print(f"result: delta append peak RSS (rows held in memory on both sides): fhirlake {ro} MB, delta-rs+Python {rp} MB")
PY

# ---- 2. whole path NDJSON -> view -> table ----
[ -f "$patients" ] || bash "$root/bench/make_patients.sh" "$mb" "$patients" >&2
view="$root/bench/views/patient_flat.json"
best=1e9
for run in 1 2; do
  rm -rf "$data/ours_path"
  a=$(date +%s.%N)
  /usr/bin/time -v -o "$data/ours_path.time" "$fhirlake" view export "$view" "$patients" \
    --to "$data/ours_path" --mode append --codec "$codec" > "$data/ours_path.json"
  b=$(date +%s.%N)
  best=$(python3 -c "print(min($best, $b - $a))")
done
t0=0; t1=$best
t1b=$(date +%s.%N)
/usr/bin/time -v -o "$data/ours_merge.time" "$fhirlake" view export "$view" "$patients" \
  --to "$data/ours_path" --mode merge --codec "$codec" > "$data/ours_merge.json"
t2=$(python3 -c "print($t1 + $(date +%s.%N) - $t1b)")
rm -f "$data/duckdb.parquet"
duck=$(/usr/bin/time -v -o "$data/duckdb.time" python3 "$here/peer_duckdb.py" "$patients" "$data/duckdb.parquet" "$codec" 2)
python3 - "$data/ours_path" "$data/duckdb.parquet" <<'PY'
import sys
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
a = pa.table(DeltaTable(sys.argv[1]).scan().read_all()).drop(["is_deleted"]).sort_by("id")
b = pq.read_table(sys.argv[2]).sort_by("id")
assert a.num_rows == b.num_rows, (a.num_rows, b.num_rows)
for c in ("id", "gender", "birth_date", "family_name", "given_name"):
    assert a.column(c).to_pylist() == b.column(c).cast(a.schema.field(c).type).to_pylist(), c
PY
python3 - "$(cat "$data/ours_path.json")" "$duck" "$t0" "$t1" "$t2" "$(stat -c %s "$patients")" \
  "$(rss "$data/ours_path.time")" "$(rss "$data/ours_merge.time")" "$(rss "$data/duckdb.time")" <<'PY'
import json, sys
o, d = json.loads(sys.argv[1]), json.loads(sys.argv[2])
t0, t1, t2, size = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
ro, rm, rd = sys.argv[7], sys.argv[8], sys.argv[9]
so, sm = t1 - t0, t2 - t1
rows = o["rows"]
print(f"result: whole path {size/1e6:.0f} MB Patient NDJSON -> patient_flat -> table ({rows:,} rows): "
      f"fhirlake export {rows/so:,.0f} rows/s ({so:.2f} s, {size/1e6/so:.0f} MB/s), "
      f"DuckDB {d['rows']/d['seconds']:,.0f} rows/s ({d['seconds']:.2f} s) -> {d['seconds']/so:.2f}x")
print(f"result: whole path merge of the same file into the table: fhirlake {rows/sm:,.0f} rows/s ({sm:.2f} s)")
print(f"result: whole path peak RSS: fhirlake append {ro} MB, merge {rm} MB, DuckDB (with Python) {rd} MB")
PY
