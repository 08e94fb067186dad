"""test_delta_dv: deletion vectors in fhirlake's merges, judged by real readers.

fhirlake merges into a DV-enabled table by deleting the old rows of incoming keys with a
deletion vector (no data file rewritten). delta-rs (DeltaTable.scan(), the path that honours
DVs in 1.6.6), Spark + delta-spark 3.2.1 and fhirlake itself (deltatool read) must read
exactly the expected rows: after repeated merges on one file (DV union), through a
checkpoint, on a table Spark wrote with its own DVs, after concurrent merges, and after a
delete-absent rewrite of DV'd files."""
import glob
import json
import os
import subprocess
import threading

import pytest

from delta_helpers import (DELTATOOL, deltatool, norm_rows, read_rs, read_spark, snapshot,
                           write)

pytestmark = pytest.mark.skipif(not os.path.exists(DELTATOOL), reason="build/tools/deltatool not built")

SCHEMA = "id:string,n:long"


def read_ours(t):
    """The live rows as fhirlake reads them (deltatool read honours DVs)."""
    p = subprocess.run([DELTATOOL, "read", t], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return norm_rows([json.loads(line) for line in p.stdout.splitlines() if line.strip()])


def expect(d):
    return norm_rows([{"id": k, "n": v, "is_deleted": 0} for k, v in d.items()])


def data_files(t):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(t, "*.parquet")))


def dv_files(t):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(t, "deletion_vector_*.bin")))


def log_text(t):
    return "".join(open(p).read() for p in sorted(glob.glob(os.path.join(t, "_delta_log", "*.json"))))


def base_table(t, n=100, rows_per_file=50):
    write(t, SCHEMA, [{"id": f"k{i:03d}", "n": i} for i in range(n)], "--mode", "merge",
          "--file-rows", str(rows_per_file), "--batch", str(rows_per_file))
    return {f"k{i:03d}": i for i in range(n)}


def merge(t, d, *extra):
    return write(t, SCHEMA, [{"id": k, "n": v} for k, v in d.items()], "--mode", "merge",
                 "--key", "id", *extra)[1]


def test_repeated_merges_union_dvs(spark, tmp_path):
    t = str(tmp_path / "t")
    want = base_table(t)
    files0 = data_files(t)
    for step, keys in enumerate([(3, 7), (7, 11, 60), (12,), (3, 99)]):
        upd = {f"k{i:03d}": 1000 * (step + 1) + i for i in keys}
        res = merge(t, upd)
        assert res["rows_rewritten"] == 0 and res["rows_deleted"] == len(keys)
        want.update(upd)
        assert read_rs(t) == expect(want)
        assert read_spark(spark, t) == expect(want)
        assert read_ours(t) == expect(want)
    # no data file of the first version was rewritten; file 0's DV grew over three merges
    # (old ∪ new): k003, k007, k011, k012; file 1's: k060, k099. The first merge's new-row
    # file (k003, k007) lost both rows to later merges and was removed.
    assert set(files0) <= set(data_files(t))
    snap = snapshot(t)
    assert sorted(snap["dv_cardinality"].values()) == [2, 4]
    # a DV'd file's add: same size and numRecords, tightBounds false; its remove names the old DV
    adds = [json.loads(line)["add"] for line in log_text(t).splitlines() if '"add"' in line]
    dv_adds = [a for a in adds if "deletionVector" in a]
    assert dv_adds and all(json.loads(a["stats"])["tightBounds"] is False for a in dv_adds)
    first = {}
    for a in adds:
        first.setdefault(a["path"], json.loads(a["stats"])["numRecords"])
    assert all(json.loads(a["stats"])["numRecords"] == first[a["path"]] for a in dv_adds)
    removes = [json.loads(line)["remove"] for line in log_text(t).splitlines() if '"remove"' in line]
    assert any("deletionVector" in r for r in removes)


def test_whole_file_deleted_is_removed(tmp_path):
    t = str(tmp_path / "t")
    want = base_table(t, n=20, rows_per_file=10)
    upd = {f"k{i:03d}": 500 + i for i in range(10)}          # every row of the first file
    res = merge(t, upd)
    assert (res["files_removed"], res["files_dv"], res["rows_deleted"]) == (1, 0, 10)
    want.update(upd)
    assert read_rs(t) == expect(want) and read_ours(t) == expect(want)


def test_checkpoint_with_dvs(spark, tmp_path):
    t = str(tmp_path / "t")
    want = base_table(t)
    for v in range(1, 10):      # versions 1..9, then our checkpoint at 10
        upd = {f"k{(v * 13) % 100:03d}": 2000 + v}
        merge(t, upd)
        want.update(upd)
    merge(t, {"k050": 7})
    want["k050"] = 7
    cp = os.path.join(t, "_delta_log", "%020d.checkpoint.parquet" % 10)
    assert os.path.exists(cp)
    import pyarrow.parquet as pq
    adds = [r["add"] for r in pq.read_table(cp).to_pylist() if r["add"]]
    assert any(a["deletionVector"] for a in adds)     # the DV descriptors are in the checkpoint
    for v in range(10):         # only the checkpoint remains
        os.remove(os.path.join(t, "_delta_log", "%020d.json" % v))
    assert snapshot(t)["checkpoint_version"] == 10
    assert read_ours(t) == expect(want)
    assert read_rs(t) == expect(want)
    assert read_spark(spark, t) == expect(want)
    merge(t, {"k051": 8})       # and merging on from the checkpoint keeps the DVs right
    want["k051"] = 8
    assert read_ours(t) == expect(want) and read_rs(t) == expect(want)


def test_spark_dv_table_fhirlake_merges(spark, tmp_path):
    t = str(tmp_path / "s")
    spark.sql(f"CREATE TABLE delta.`{t}` (id STRING, n BIGINT, is_deleted INT) USING delta "
              "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true', "
              "'delta.checkpointInterval' = '3')")
    df = spark.createDataFrame([(f"k{i:03d}", i, 0) for i in range(60)],
                               "id string, n bigint, is_deleted int")
    df.coalesce(1).write.format("delta").mode("append").save(t)
    spark.sql(f"DELETE FROM delta.`{t}` WHERE id IN ('k003', 'k004')")
    src = spark.createDataFrame([("k010", 110, 0), ("k011", 111, 0)], "id string, n bigint, is_deleted int")
    src.createOrReplaceTempView("src")
    spark.sql(f"MERGE INTO delta.`{t}` AS t USING src AS s ON t.id = s.id "
              "WHEN MATCHED THEN UPDATE SET *")
    assert dv_files(t), "Spark wrote no deletion vector"
    assert snapshot(t)["dv_cardinality"], "no live file carries a DV"
    want = {f"k{i:03d}": i for i in range(60) if i not in (3, 4)} | {"k010": 110, "k011": 111}
    assert read_ours(t) == expect(want) == read_spark(spark, t)
    # fhirlake merges into Spark's DV'd file: its DV grows by our rows
    res = merge(t, {"k005": 5005, "k012": 5012, "k200": 200})
    assert res["rows_deleted"] == 2 and res["rows_rewritten"] == 0
    want |= {"k005": 5005, "k012": 5012, "k200": 200}
    assert read_spark(spark, t) == expect(want)
    assert read_rs(t) == expect(want) and read_ours(t) == expect(want)
    # Spark goes on after us (its checkpoint holds our DVs), and we read that too
    spark.sql(f"DELETE FROM delta.`{t}` WHERE id = 'k020'")
    del want["k020"]
    assert read_ours(t) == expect(want) == read_spark(spark, t)


def test_spark_merges_into_our_dv_table(spark, tmp_path):
    """Spark writes into a table fhirlake created (its protocol and DVs), fhirlake goes on."""
    t = str(tmp_path / "t")
    want = base_table(t, n=40, rows_per_file=20)
    merge(t, {"k001": 101})
    want["k001"] = 101
    src = spark.createDataFrame([("k002", 102, 0), ("k001", 201, 0), ("k500", 500, 0)],
                                "id string, n bigint, is_deleted int")
    src.createOrReplaceTempView("src2")
    spark.sql(f"MERGE INTO delta.`{t}` AS t USING src2 AS s ON t.id = s.id "
              "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
    want |= {"k002": 102, "k001": 201, "k500": 500}
    assert read_ours(t) == expect(want) == read_spark(spark, t)
    merge(t, {"k003": 303, "k002": 402})
    want |= {"k003": 303, "k002": 402}
    assert read_ours(t) == expect(want) == read_spark(spark, t) == read_rs(t)


def test_concurrent_merges_no_lost_update(tmp_path):
    t = str(tmp_path / "t")
    want = base_table(t, n=100, rows_per_file=100)            # one file: every merge touches it
    n_writers = 4
    upds = [{f"k{w * 20 + i:03d}": 9000 + w * 20 + i for i in range(5)} for w in range(n_writers)]
    errs = []

    def run(u):
        rc, _, err = write(t, SCHEMA, [{"id": k, "n": v} for k, v in u.items()], "--mode",
                           "merge", "--key", "id", check=False)
        if rc:
            errs.append(err)

    th = [threading.Thread(target=run, args=(u,)) for u in upds]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert errs == []
    for u in upds:
        want.update(u)
    assert read_ours(t) == expect(want) and read_rs(t) == expect(want)
    assert snapshot(t)["version"] == n_writers
    # every DV file left is named by a commit: a losing attempt's DV file was deleted
    text = log_text(t)
    snap_dv = {a["deletionVector"]["pathOrInlineDv"] for a in
               (json.loads(line)["add"] for line in text.splitlines() if '"add"' in line)
               if "deletionVector" in a}
    assert len(dv_files(t)) == len(snap_dv) == n_writers


def test_delete_absent_rewrite_honours_dv(tmp_path):
    t = str(tmp_path / "t")
    base_table(t, n=10, rows_per_file=10)
    merge(t, {"k003": 33})                       # k003's old row: deleted by a DV
    src = {f"k{i:03d}": 100 + i for i in range(5)}
    merge(t, src, "--delete-absent")              # full export: rewrite, tombstones
    got = read_rs(t)
    assert [r["id"] for r in got].count("k003") == 1
    assert [r for r in got if r["is_deleted"] == 0] == expect(src)
    assert sorted(r["id"] for r in got if r["is_deleted"] == 1) == [f"k{i:03d}" for i in range(5, 10)]
    assert read_ours(t) == got


def test_copy_on_write_tables_stay_copy_on_write(tmp_path):
    t = str(tmp_path / "t")
    write(t, SCHEMA, [{"id": "a", "n": 1}, {"id": "b", "n": 2}], "--mode", "append", "--copy-on-write")
    assert snapshot(t)["protocol"] == {"minReaderVersion": 1, "minWriterVersion": 2}
    res = merge(t, {"a": 10})
    assert (res["files_removed"], res["files_dv"], res["rows_rewritten"]) == (1, 0, 1)
    assert dv_files(t) == [] and read_rs(t) == expect({"a": 10, "b": 2})


def test_env_turns_deletion_vectors_off(tmp_path):
    t = str(tmp_path / "t")
    env = dict(os.environ, FHIRLAKE_DELETION_VECTORS="off")
    for rows in ([{"id": "a", "n": 1}, {"id": "b", "n": 2}], [{"id": "a", "n": 5}]):
        p = subprocess.run([DELTATOOL, "write", t, "--schema", SCHEMA, "--mode", "merge"],
                           input="".join(json.dumps(r) + "\n" for r in rows), env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
    assert snapshot(t)["protocol"] == {"minReaderVersion": 1, "minWriterVersion": 2}
    assert dv_files(t) == [] and read_rs(t) == expect({"a": 5, "b": 2})


def test_duckdb_reads_dv_table(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    try:
        con.execute("LOAD delta")
    except Exception as e:   # the extension is downloaded on first use; no network here
        pytest.skip(f"DuckDB delta extension not available offline: {str(e).splitlines()[0]}")
    t = str(tmp_path / "t")
    want = base_table(t, n=20, rows_per_file=20)
    merge(t, {"k002": 77})
    want["k002"] = 77
    got = con.execute(f"SELECT id, n, is_deleted FROM delta_scan('{t}')").fetchall()
    assert norm_rows([{"id": a, "n": b, "is_deleted": c} for a, b, c in got]) == expect(want)
