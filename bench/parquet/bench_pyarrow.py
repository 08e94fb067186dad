"""Peer side of the Parquet benchmark: the same flat rows as pqtool bench-rows, loaded into
Arrow memory (not timed), then pyarrow.parquet.write_table with the same codec (timed,
best of REPEAT). Prints one JSON line like pqtool.
usage: bench_pyarrow.py ROWS.ndjson OUT.parquet CODEC REPEAT"""
import datetime as dt
import json
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

rows_path, out, codec, repeat = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cols = [[] for _ in range(7)]
with open(rows_path) as f:
    for line in f:
        r = json.loads(line)
        for i, v in enumerate(r):
            cols[i].append(v)
ts = \
    pa.array([dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in cols[1]], pa.timestamp("us", tz="UTC"))
birth = pa.array([dt.date.fromisoformat(s) if s else None for s in cols[3]], pa.date32())
table = pa.table({"id": pa.array(cols[0], pa.string()), "ts": ts, "gender": pa.array(cols[2], pa.string()),
                  "birth_date": birth, "family_name": pa.array(cols[4], pa.string()),
                  "given_name": pa.array(cols[5], pa.string()), "is_deleted": pa.array(cols[6], pa.int32())})
best = best_cpu = 1e30
for _ in range(repeat):
    t0, c0 = time.perf_counter(), time.process_time()
    pq.write_table(table, out, compression=codec,
                   compression_level=3 if codec == "zstd" else None)  # fhirlake's (and Spark's) zstd level
    best = min(best, time.perf_counter() - t0)
    best_cpu = min(best_cpu, time.process_time() - c0)  # all threads of the process
import os
print(json.dumps({"rows": table.num_rows, "seconds": best, "cpu_seconds": best_cpu,
                  "file_size": os.path.getsize(out)}))
