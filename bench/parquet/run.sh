#!/usr/bin/env bash
# bench/parquet/run.sh — Parquet write throughput, fhirlake vs pyarrow, same rows, same codec,
# one run. Both wall time and process CPU time are reported: on a shared, loaded machine
# the CPU-time ratio is the steadier figure. Rows: the article's patient_flat columns from the Synthea Patients file, repeated
# to BENCH_PQ_ROWS (default 1,000,000). Both sides start from rows already in memory
# (fhirlake rows_batch / Arrow table); only the Parquet write is timed, best of 3.
# Prints "result:" lines with rows/s, MB/s (output file bytes) and the ratio ours/pyarrow.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
n="${BENCH_PQ_ROWS:-1000000}"
data="$root/bench/data/parquet"
mkdir -p "$data"
rows="$data/patient_flat_$n.ndjson"
make -s pqtool >/dev/null
if [ ! -f "$rows" ]; then
  python3 "$here/make_rows.py" "$n" "$rows" "${PATIENTS_NDJSON:-$root/bench/data/patients-100mb.ndjson}"
fi
for codec in snappy zstd; do
  # nosync: pyarrow does not fsync either (fhirlake's default, durable, is shown below)
  ours=$("$root/build/tools/pqtool" bench-rows "$rows" "$data/ours_$codec.parquet" "$codec" 3 nosync)
  peer=$(python3 "$here/bench_pyarrow.py" "$rows" "$data/pyarrow_$codec.parquet" "$codec" 3)
  # both files must hold the same rows: read ours back with pyarrow and compare to the peer's
  python3 - "$data/ours_$codec.parquet" "$data/pyarrow_$codec.parquet" <<'PY'
import sys, pyarrow.parquet as pq
a, b = pq.read_table(sys.argv[1]), pq.read_table(sys.argv[2])
assert a.num_rows == b.num_rows and a.equals(b.cast(a.schema)), "files differ"
PY
  python3 - "$codec" "$ours" "$peer" <<'PY'
import json, sys
codec, o, p = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
def line(who, r):
    return "%s %.0f rows/s, %.1f MB/s written (wall %.3f s, cpu %.3f s), file %.1f MB" % (
        who, r["rows"] / r["seconds"], r["file_size"] / r["seconds"] / 1e6, r["seconds"],
        r["cpu_seconds"], r["file_size"] / 1e6)
print("result: parquet write %s, %d patient_flat rows: %s" % (codec, o["rows"], line("fhirlake", o)))
print("result: parquet write %s, %d patient_flat rows: %s" % (codec, p["rows"], line("pyarrow", p)))
print("result: parquet write %s ratio fhirlake/pyarrow = %.2fx wall, %.2fx cpu (higher is faster)" % (
    codec, p["seconds"] / o["seconds"], p["cpu_seconds"] / o["cpu_seconds"]))
PY
done
durable=$("$root/build/tools/pqtool" bench-rows "$rows" "$data/ours_durable.parquet" snappy 3)
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("result: fhirlake snappy with fsync (default, durable): %.0f rows/s (wall %.3f s, cpu %.3f s)" % (r["rows"]/r["seconds"], r["seconds"], r["cpu_seconds"]))' "$durable"
# Read-back (rows layer into rows_batch vs pyarrow.parquet.read_table single-threaded), CPU
# time of the whole read, on the snappy file pyarrow wrote.
ours_r=$("$root/build/tools/pqtool" count "$data/pyarrow_snappy.parquet")
python3 - "$data/pyarrow_snappy.parquet" "$ours_r" <<'PY'
import json, sys, time
import pyarrow.parquet as pq
best = 1e30
for _ in range(3):
    c0 = time.process_time()
    t = pq.read_table(sys.argv[1], use_threads=False)
    best = min(best, time.process_time() - c0)
o = json.loads(sys.argv[2])
assert o["rows"] == t.num_rows
print("result: parquet read snappy %d rows: fhirlake %.3f s cpu, pyarrow %.3f s cpu, ratio %.2fx (higher is faster)"
      % (o["rows"], o["cpu_seconds"], best, best / o["cpu_seconds"]))
PY
