"""delta_helpers: shared helpers of the Delta Lake integration tests (lake room).

- deltatool(): runs build/tools/deltatool (tests/tools/deltatool.c), the test driver that
  writes NDJSON rows into a Delta table through src/lake/lake.h.
- read_rs(): the table as read by delta-rs (deltalake), rows normalised for comparison.
- spark_session(): one local Spark session with delta-spark (local[1], no UI, few shuffle
  partitions). `python3 delta_helpers.py --warm-spark` fetches the io.delta jars into
  ~/.ivy2 (scripts/setup.sh runs it so CI does not download during tests).
"""
import datetime
import decimal
import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DELTATOOL = os.environ.get("DELTATOOL_BIN", os.path.join(ROOT, "build", "tools", "deltatool"))
FHIRLAKE = os.environ.get("FHIRLAKE_BIN", os.path.join(ROOT, "build", "fhirlake"))


def deltatool(*args, rows=None, check=True):
    """Runs deltatool; rows (list of dicts) go to stdin as NDJSON. Returns
    (returncode, parsed stdout JSON or None, stderr)."""
    data = "".join(json.dumps(r) + "\n" for r in (rows or []))
    p = subprocess.run([DELTATOOL, *args], input=data, capture_output=True, text=True,
                       timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"deltatool {' '.join(args)} failed: {p.stderr}")
    out = json.loads(p.stdout) if p.returncode == 0 and p.stdout.strip() else None
    return p.returncode, out, p.stderr


def write(table, schema, rows, *extra, check=True):
    return deltatool("write", table, "--schema", schema, *extra, rows=rows, check=check)


def snapshot(table):
    return deltatool("snapshot", table)[1]


def norm_value(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return v.isoformat()
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [norm_value(x) for x in v]
    if hasattr(v, "asDict"):  # pyspark Row
        return {k: norm_value(x) for k, x in v.asDict().items()}
    return v


def norm_rows(rows, key="id"):
    out = [{k: norm_value(v) for k, v in r.items()} for r in rows]
    return sorted(out, key=lambda r: (str(r.get(key)), json.dumps(r, sort_keys=True, default=str)))


def rs_table(table, columns=None):
    """The table as delta-rs reads it, as a pyarrow Table (table: a path or a DeltaTable).
    delta-rs 1.6.6's to_pyarrow_table() refuses tables with the deletionVectors reader
    feature (every table fhirlake creates); its DataFusion scan() honours the DVs."""
    import pyarrow as pa
    from deltalake import DeltaTable
    dt = table if isinstance(table, DeltaTable) else DeltaTable(table)
    if "deletionVectors" in (dt.protocol().reader_features or []):
        return pa.table(dt.scan(columns=columns).read_all())
    return dt.to_pyarrow_table(columns=columns)


def read_rs(table, key="id"):
    return norm_rows(rs_table(table).to_pylist(), key)


def read_spark(spark, table, key="id"):
    return norm_rows([r.asDict(recursive=True) for r in spark.read.format("delta").load(table).collect()], key)


HADOOP_AWS = "org.apache.hadoop:hadoop-aws:3.3.4"
HADOOP_AWS_JAR = os.path.expanduser("~/.ivy2/jars/org.apache.hadoop_hadoop-aws-3.3.4.jar")


def spark_packages():
    """Extra Maven packages for every in-process Spark session. pyspark launches ONE JVM per
    test process and its classpath is fixed by the first session, so every module's session
    asks for the same jars (delta-spark via configure_spark_with_delta_pip, plus hadoop-aws
    for s3a:// once scripts/setup.sh has fetched it), whichever module happens to run first."""
    return [HADOOP_AWS] if os.path.exists(HADOOP_AWS_JAR) else []


def spark_session():
    import pyspark
    from delta import configure_spark_with_delta_pip
    b = (pyspark.sql.SparkSession.builder.master("local[1]").appName("fhirlake-delta-tests")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.shuffle.partitions", "2")
         .config("spark.databricks.delta.snapshotPartitions", "1")  # default 50 tasks per log replay
         .config("spark.default.parallelism", "1")
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.driver.memory", "1g")
         .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
         .config("spark.sql.catalog.spark_catalog",
                 "org.apache.spark.sql.delta.catalog.DeltaCatalog"))
    s = configure_spark_with_delta_pip(b, extra_packages=spark_packages()).getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    return s


if __name__ == "__main__" and "--warm-spark" in sys.argv:
    import tempfile
    s = spark_session()
    with tempfile.TemporaryDirectory() as d:
        s.range(3).write.format("delta").save(os.path.join(d, "t"))
        assert s.read.format("delta").load(os.path.join(d, "t")).count() == 3
    s.stop()
    print("delta-spark jars ready")
