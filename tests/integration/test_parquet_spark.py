"""Parquet interop with Spark (pyspark 3.5, parquet-mr): Spark reads every type and codec
fhirlake writes with equal values, and fhirlake reads the files Spark writes for the same
schema (parquet-mr's PLAIN_DICTIONARY pages, INT96 timestamps by default, decimals as
INT32/INT64/FIXED_LEN_BYTE_ARRAY, three-level lists). One local[1] Spark session."""
import datetime as dt
import decimal
import glob
import json
import os
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PQTOOL = os.path.join(ROOT, "build", "tools", "pqtool")
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def spark():
    pyspark = pytest.importorskip("pyspark")
    if not os.path.exists(PQTOOL):
        subprocess.run(["make", "-s", "pqtool"], cwd=ROOT, check=True)
    os.environ.setdefault("TZ", "UTC")
    from delta import configure_spark_with_delta_pip
    from delta_helpers import spark_packages
    b = (pyspark.sql.SparkSession.builder.master("local[1]").appName("fhirlake-parquet-tests")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.driver.memory", "1g"))
    # same jars as every other module's session: the first session fixes the JVM classpath
    s = configure_spark_with_delta_pip(b, extra_packages=spark_packages()).getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture()
def tmp():
    with tempfile.TemporaryDirectory(prefix="fl-pqs-") as d:
        yield d


def run(*args):
    p = subprocess.run([PQTOOL, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def fmt_ts(v):
    v = v.astimezone(UTC) if v.tzinfo else v.replace(tzinfo=UTC)
    s = v.strftime("%Y-%m-%dT%H:%M:%S")
    if v.microsecond:
        s += ("." + "%06d" % v.microsecond).rstrip("0")
    return s + "Z"


COLS = [{"name": "id", "type": "string"}, {"name": "flag", "type": "boolean"},
        {"name": "n", "type": "integer"}, {"name": "big", "type": "long"},
        {"name": "x", "type": "double"}, {"name": "amount", "type": "decimal"},
        {"name": "born", "type": "date"}, {"name": "seen", "type": "timestamp"},
        {"name": "tags", "type": "string", "list": True}]


def our_rows(n):
    rows = []
    for i in range(n):
        if i % 9 == 4:
            rows.append([f"p{i}"] + [None] * 8)
            continue
        rows.append([f"p{i}", i % 2 == 1, i * 10 - 50, 2**40 + i, i + 0.5, f"{i}.125",
                     "2001-02-%02d" % (i % 28 + 1), "2023-03-04T05:06:07.%06dZ" % (i * 7),
                     ["a", f"b{i}"] if i % 4 else []])
    return rows


def norm_spark(v):
    if isinstance(v, list):
        return [norm_spark(x) for x in v] or None
    if isinstance(v, dt.datetime):
        return fmt_ts(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


@pytest.mark.parametrize("codec,v2", [("snappy", False), ("zstd", False), ("gzip", False),
                                      ("none", False), ("snappy", True)])
def test_spark_reads_what_we_write(spark, tmp, codec, v2):
    rows = our_rows(500)
    spec = os.path.join(tmp, "spec.json")
    out = os.path.join(tmp, "ours.parquet")
    with open(spec, "w") as f:
        json.dump({"codec": codec, "columns": COLS, "rows": rows, "decimal": [20, 3],
                   "row_group_bytes": 8000, "page_v2": v2}, f)
    run("write", spec, out)
    df = spark.read.parquet(out)
    types = dict(df.dtypes)
    assert types == {"id": "string", "flag": "boolean", "n": "int", "big": "bigint", "x": "double",
                     "amount": "decimal(20,3)", "born": "date", "seen": "timestamp",
                     "tags": "array<string>"}
    got = sorted((r.asDict() for r in df.collect()), key=lambda r: int(r["id"][1:]))
    assert len(got) == len(rows)
    for want, g in zip(rows, got):
        for c, col in enumerate(COLS):
            a = norm_spark(g[col["name"]])
            b = want[c]
            if col["type"] == "decimal" and b is not None:
                b = decimal.Decimal(b)
            if col["type"] == "timestamp" and b is not None:
                b = fmt_ts(dt.datetime.fromisoformat(b.replace("Z", "+00:00")))
            if col.get("list"):
                b = b or None
            assert a == b, (want[0], col["name"], a, b)
    # Spark's filter pushdown uses our statistics: a range on n must still find its rows
    assert df.filter("n >= 4000").count() == sum(1 for r in rows if r[2] is not None and r[2] >= 4000)


def test_we_read_what_spark_writes(spark, tmp):
    from pyspark.sql import types as T
    schema = T.StructType([
        T.StructField("id", T.StringType()), T.StructField("flag", T.BooleanType()),
        T.StructField("n", T.IntegerType()), T.StructField("big", T.LongType()),
        T.StructField("x", T.DoubleType()), T.StructField("d9", T.DecimalType(9, 2)),
        T.StructField("d18", T.DecimalType(18, 4)), T.StructField("d38", T.DecimalType(38, 10)),
        T.StructField("born", T.DateType()), T.StructField("seen", T.TimestampType()),
        T.StructField("tags", T.ArrayType(T.StringType())),
    ])
    data = []
    for i in range(3000):
        if i % 11 == 5:
            data.append((f"s{i}",) + (None,) * 10)
            continue
        data.append((f"s{i}", i % 3 == 0, i - 1500, -(2**50) + i, i / 8.0,
                     decimal.Decimal("%d.%02d" % (i, i % 100)), decimal.Decimal("-%d.0001" % i),
                     decimal.Decimal("123456789012345678.%010d" % i),
                     dt.date(1990, 1, 1) + dt.timedelta(days=i),
                     dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=i, microseconds=i),
                     [f"t{i % 5}", "u"] if i % 3 else None))
    out = os.path.join(tmp, "spark_out")
    # the last round uses Spark's legacy (Hive) format: lists as bag/array, decimals as FLBA
    for ts_type, codec, legacy in (("INT96", "snappy", "false"), ("TIMESTAMP_MICROS", "zstd", "false"),
                                   ("TIMESTAMP_MILLIS", "gzip", "false"), ("INT96", "none", "true")):
        spark.conf.set("spark.sql.parquet.outputTimestampType", ts_type)
        spark.conf.set("spark.sql.parquet.writeLegacyFormat", legacy)
        spark.createDataFrame(data, schema).coalesce(1).write.mode("overwrite") \
            .option("compression", codec if codec != "none" else "uncompressed").parquet(out)
        files = glob.glob(os.path.join(out, "part-*.parquet"))
        assert len(files) == 1
        res = json.loads(run("read", files[0]), parse_float=decimal.Decimal)
        types = [c["type"] for c in res["columns"]]
        assert types == ["string", "boolean", "integer", "long", "double", "decimal", "decimal",
                         "decimal", "date", "timestamp", "string"]
        got = {r[0]: r for r in res["rows"]}
        assert len(got) == len(data)
        for row in data:
            g = got[row[0]]
            for k, v in enumerate(row):
                if isinstance(v, dt.datetime) and ts_type == "TIMESTAMP_MILLIS":
                    v = v.replace(microsecond=v.microsecond // 1000 * 1000)
                want = norm_spark(v)
                have = g[k]
                if isinstance(v, decimal.Decimal):
                    have = decimal.Decimal(str(have))
                elif isinstance(v, float):
                    have = float(have)
                assert have == want, (ts_type, row[0], k, have, want)
