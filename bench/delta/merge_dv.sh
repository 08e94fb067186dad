#!/usr/bin/env bash
# bench/delta/merge_dv.sh — merging 1% of the keys into a Delta table: deletion vectors vs
# copy-on-write (issue 5: an incremental `_since` export after changing 1% of resources
# should cost <= 5% of a full export; its finalize is this merge).
# A fresh table of BENCH_DELTA_ROWS (default 1,000,000) flat rows — the deterministic rows
# of bench/delta/deltabench.c, in files of BENCH_DELTA_FILE_ROWS (default 100,000) rows — is
# written untimed before every run; then every 100th key (1%, spread over every file, as
# random FHIR ids are) is merged with new values, timed (lake_writer_open .. lake_commit):
#   dv   the table has the deletionVectors feature: key column read, DVs written;
#   cow  a table without it (lake_options.copy_on_write): the touched files rewritten.
# Also the full append of the same rows (one commit), for the merge/full ratio.
# Best of BENCH_DELTA_RUNS (default 3). BENCH_NO_BUILD=1 skips `make`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
n="${BENCH_DELTA_ROWS:-1000000}"
file_rows="${BENCH_DELTA_FILE_ROWS:-100000}"
codec="${BENCH_DELTA_CODEC:-snappy}"
runs="${BENCH_DELTA_RUNS:-3}"
data="$root/bench/data/delta"
deltabench="${DELTABENCH:-$root/build/tools/deltabench}"
mkdir -p "$data"
[ -n "${BENCH_NO_BUILD:-}" ] || make -s -j2 "$deltabench" >/dev/null

full=$("$deltabench" "$n" "$data/merge_full" "$codec" "$runs")
dv=$("$deltabench" merge "$n" "$data/merge_dv" "$codec" "$runs" "$file_rows" 100 dv)
cow=$("$deltabench" merge "$n" "$data/merge_cow" "$codec" "$runs" "$file_rows" 100 cow)
python3 - "$data/merge_dv/run0" "$dv" <<'PY'
import sys
import pyarrow as pa
from deltalake import DeltaTable
import json
t = pa.table(DeltaTable(sys.argv[1]).scan(columns=["id", "n"]).read_all())
want = json.loads(sys.argv[2])
assert t.num_rows == want["rows"], (t.num_rows, want)
PY
python3 - "$full" "$dv" "$cow" <<'PY'
import json, sys
f, d, c = (json.loads(a) for a in sys.argv[1:4])
print(f"result: delta merge of {d['merged']:,} keys (1%) into {d['rows']:,} rows: "
      f"deletion vectors {d['seconds']:.3f} s ({d['files_dv']} files given a DV, "
      f"{d['rows_rewritten']} rows rewritten), copy-on-write {c['seconds']:.3f} s "
      f"({c['files_removed']} files, {c['rows_rewritten']:,} rows rewritten) -> "
      f"{c['seconds'] / d['seconds']:.1f}x faster with DVs")
print(f"result: delta merge 1% / full write of {f['rows']:,} rows ({f['seconds']:.3f} s): "
      f"DV {100 * d['seconds'] / f['seconds']:.1f}%, copy-on-write {100 * c['seconds'] / f['seconds']:.1f}%")
PY
