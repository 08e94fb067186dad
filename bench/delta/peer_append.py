"""peer_append.py: the delta-rs side of bench/delta/run.sh. Builds the same N rows as
deltabench.c as an Arrow table in memory (untimed), then times
deltalake.write_deltalake(mode="append") into a fresh table; best of R runs.
   python3 peer_append.py N TABLE_DIR CODEC R  -> {"rows":N,"seconds":S,"bytes":B}"""
import glob
import json
import os
import shutil
import sys
import time

import pyarrow as pa
from deltalake import WriterProperties, write_deltalake

n, out, codec, runs = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
r = range(n)
table = pa.table({
    "id": pa.array([f"pat-{k:08d}" for k in r], pa.string()),
    "gender": pa.array(["male" if k % 2 else "female" for k in r], pa.string()),
    "birth_date": pa.array([(k * 7919) % 36500 - 10000 for k in r], pa.int32()).cast(pa.date32()),
    "family_name": pa.array([f"Fam{k % 5000}" for k in r], pa.string()),
    "given_name": pa.array([f"Giv{k % 3000}" for k in r], pa.string()),
    "n": pa.array([k * 3 for k in r], pa.int64()),
    "x": pa.array([k / 7.0 for k in r], pa.float64()),
    "ts": pa.array([1700000000000000 + k * 1000003 for k in r], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    "is_deleted": pa.array([0] * n, pa.int32()),
})
props = WriterProperties(compression=codec.upper() if codec != "none" else "UNCOMPRESSED")
best = 1e30
for r in range(runs):
    d = os.path.join(out, f"run{r}")
    shutil.rmtree(d, ignore_errors=True)
    t0 = time.perf_counter()
    write_deltalake(d, table, mode="append", writer_properties=props)
    best = min(best, time.perf_counter() - t0)
size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(out, "run0", "*.parquet")))
print(json.dumps({"rows": n, "seconds": round(best, 4), "bytes": size}))
