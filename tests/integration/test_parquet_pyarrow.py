"""Parquet interop: files fhirlake writes are read by pyarrow with equal values and
statistics; files pyarrow writes (every codec, data page v1 and v2, dictionary or plain,
INT96 / millis / nanos timestamps, nested structs, maps and lists) are read back by
fhirlake equal. Drives build/tools/pqtool (tests/tools/pqtool.c)."""
import datetime as dt
import decimal
import json
import os
import random
import subprocess
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PQTOOL = os.path.join(ROOT, "build", "tools", "pqtool")
UTC = dt.timezone.utc

TYPES = ["string", "boolean", "integer", "long", "double", "decimal", "date", "timestamp"]


@pytest.fixture(scope="module")
def tool():
    if not os.path.exists(PQTOOL):
        subprocess.run(["make", "-s", "pqtool"], cwd=ROOT, check=True)
    return PQTOOL


@pytest.fixture()
def tmp():
    with tempfile.TemporaryDirectory(prefix="fl-pq-") as d:
        yield d


def run(tool, *args, stdin=None):
    p = subprocess.run([tool, *args], capture_output=True, text=True, input=stdin)
    assert p.returncode == 0, p.stderr
    return p.stdout


def fmt_ts(v):
    """fhirlake's RFC 3339 form: fraction trimmed of trailing zeros, omitted when zero."""
    v = v.astimezone(UTC)
    s = v.strftime("%Y-%m-%dT%H:%M:%S")
    if v.microsecond:
        s += ("." + "%06d" % v.microsecond).rstrip("0")
    return s + "Z"


def gen_value(rnd, t, i):
    if t == "string":
        return rnd.choice(["", "a", "zz", "élan ✓", "x" * 40]) + str(i % 17)
    if t == "boolean":
        return rnd.random() < 0.5
    if t == "integer":
        return rnd.randint(-2**31, 2**31 - 1)
    if t == "long":
        return rnd.randint(-2**63, 2**63 - 1)
    if t == "double":
        return rnd.choice([0.1, -2.5, 1e300, -0.0, 3.0]) * rnd.randint(1, 5)
    if t == "decimal":
        return "%d.%06d" % (rnd.randint(-10**12, 10**12), rnd.randint(0, 999999))
    if t == "date":
        return (dt.date(1970, 1, 1) + dt.timedelta(days=rnd.randint(-30000, 30000))).isoformat()
    return fmt_ts(dt.datetime(2000, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=rnd.randint(-10**15, 10**15)))


def gen_rows(n, seed=1):
    rnd = random.Random(seed)
    cols = [{"name": "c_" + t, "type": t} for t in TYPES]
    cols += [{"name": "l_" + t, "type": t, "list": True} for t in ("string", "long", "date")]
    rows = []
    for i in range(n):
        row = []
        for c in cols:
            if rnd.random() < 0.15:
                row.append(None)
            elif c.get("list"):
                row.append([gen_value(rnd, c["type"], i + k) for k in range(rnd.randint(0, 3))])
            else:
                row.append(gen_value(rnd, c["type"], i))
        rows.append(row)
    return cols, rows


def norm_arrow(v):
    """pyarrow value -> the JSON form pqtool uses."""
    if isinstance(v, list):
        return [norm_arrow(x) for x in v] or None
    if isinstance(v, dt.datetime):
        return fmt_ts(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return v
    return v


def norm_ours(v, t):
    if v is None:
        return None
    if isinstance(v, list):
        return [norm_ours(x, t) for x in v] or None
    if t == "decimal":
        return decimal.Decimal(str(v))
    if t == "double":
        return float(v)
    return v


def write_ours(tool, d, cols, rows, **opts):
    spec = dict(opts, columns=cols, rows=rows)
    sp = os.path.join(d, "spec.json")
    out = os.path.join(d, "ours.parquet")
    with open(sp, "w") as f:
        json.dump(spec, f)
    stats = json.loads(run(tool, "write", sp, out), parse_float=decimal.Decimal)
    return out, stats


@pytest.mark.parametrize("codec,dictionary,rg_bytes,v2", [
    ("snappy", True, 0, False), ("zstd", True, 20000, False), ("gzip", False, 0, False),
    ("none", True, 0, False), ("snappy", False, 15000, False), ("snappy", True, 15000, True),
    ("zstd", False, 0, True),
])
def test_pyarrow_reads_what_we_write(tool, tmp, codec, dictionary, rg_bytes, v2):
    cols, rows = gen_rows(3000)
    opts = {"codec": codec, "dictionary": dictionary, "decimal": [38, 6], "page_v2": v2}
    if rg_bytes:
        opts["row_group_bytes"] = rg_bytes
        opts["page_bytes"] = 2048
    path, stats = write_ours(tool, tmp, cols, rows, **opts)
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_rows == len(rows) == stats["num_rows"]
    if rg_bytes:
        assert pf.metadata.num_row_groups > 1
    want_codec = {"none": "UNCOMPRESSED"}.get(codec, codec.upper())
    assert pf.metadata.row_group(0).column(0).compression == want_codec
    t = pf.read()
    assert t.schema.field("c_decimal").type == pa.decimal128(38, 6)
    assert t.schema.field("c_timestamp").type == pa.timestamp("us", tz="UTC")
    assert t.schema.field("c_date").type == pa.date32()
    assert t.schema.field("c_integer").type == pa.int32()
    got = t.to_pylist()
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            a = norm_arrow(got[r][col["name"]])
            b = norm_ours(row[c], col["type"])
            if col.get("list") and b is not None:
                b = b or None
            assert a == b, (r, col["name"], a, b)
    # statistics: pyarrow's view of our footer and the per-file stats agree with the data
    for c, col in enumerate(cols):
        if col.get("list"):
            continue
        vals = [norm_ours(row[c], col["type"]) for row in rows if row[c] is not None]
        nulls = sum(1 for row in rows if row[c] is None)
        assert stats["columns"][col["name"]]["null_count"] == nulls
        keyf = (lambda s: s.encode()) if col["type"] == "string" else None
        lo, hi = min(vals, key=keyf), max(vals, key=keyf)
        st = stats["columns"][col["name"]]
        if col["type"] == "decimal":
            assert decimal.Decimal(st["min"]) == lo and decimal.Decimal(st["max"]) == hi
        elif col["type"] == "double":
            assert float(st["min"]) == lo and float(st["max"]) == hi
        else:
            assert st["min"] == lo and st["max"] == hi, col
        mins = [pf.metadata.row_group(g).column(c).statistics.min for g in range(pf.metadata.num_row_groups)]
        maxs = [pf.metadata.row_group(g).column(c).statistics.max for g in range(pf.metadata.num_row_groups)]
        assert norm_arrow(min(mins)) == lo and norm_arrow(max(maxs)) == hi, col


def arrow_table(n, seed=2):
    rnd = random.Random(seed)

    def maybe(f):
        return None if rnd.random() < 0.1 else f()

    base = dt.datetime(2020, 1, 1, tzinfo=UTC)
    data = {
        "s": [maybe(lambda: rnd.choice(["alpha", "beta", "", "ünï"]) + str(rnd.randint(0, 30))) for _ in range(n)],
        "b": [maybe(lambda: rnd.random() < 0.3) for _ in range(n)],
        "i": [maybe(lambda: rnd.randint(-1000, 1000)) for _ in range(n)],
        "l": [maybe(lambda: rnd.randint(-2**62, 2**62)) for _ in range(n)],
        "d": [maybe(lambda: rnd.random() * 1000 - 500) for _ in range(n)],
        "dec": [maybe(lambda: decimal.Decimal("%d.%02d" % (rnd.randint(-10**6, 10**6), rnd.randint(0, 99)))) for _ in range(n)],
        "dt": [maybe(lambda: dt.date(2000, 1, 1) + dt.timedelta(days=rnd.randint(-5000, 5000))) for _ in range(n)],
        "ts": [maybe(lambda: base + dt.timedelta(microseconds=rnd.randint(-10**14, 10**14))) for _ in range(n)],
        "tags": [maybe(lambda: [rnd.choice(["x", "y", "z"]) for _ in range(rnd.randint(1, 4))]) for _ in range(n)],
        "nums": [maybe(lambda: [rnd.randint(0, 9) for _ in range(rnd.randint(1, 3))]) for _ in range(n)],
    }
    schema = pa.schema([
        ("s", pa.string()), ("b", pa.bool_()), ("i", pa.int32()), ("l", pa.int64()),
        ("d", pa.float64()), ("dec", pa.decimal128(12, 2)), ("dt", pa.date32()),
        ("ts", pa.timestamp("us", tz="UTC")), ("tags", pa.list_(pa.string())),
        ("nums", pa.list_(pa.int64())),
    ])
    return pa.table(data, schema=schema)


def read_ours(tool, path, *cols):
    out = json.loads(run(tool, "read", path, *cols), parse_float=decimal.Decimal)
    return out["columns"], out["rows"]


def assert_same(t, cols, rows, ts_trunc=None):
    want = t.to_pylist()
    assert len(rows) == len(want)
    names = [c["name"] for c in cols]
    for r, w in enumerate(want):
        for c, name in enumerate(names):
            a = norm_arrow(w[name])
            if ts_trunc and name == "ts" and w[name] is not None:
                a = fmt_ts(w[name].replace(microsecond=w[name].microsecond // ts_trunc * ts_trunc))
            b = rows[r][c]
            if isinstance(a, decimal.Decimal):
                b = decimal.Decimal(str(b))
            elif isinstance(a, float):
                b = float(b)
            assert a == b, (r, name, a, b)


@pytest.mark.parametrize("codec", ["snappy", "zstd", "gzip", "none"])
@pytest.mark.parametrize("page_version", ["1.0", "2.0"])
@pytest.mark.parametrize("dictionary", [True, False])
def test_we_read_what_pyarrow_writes(tool, tmp, codec, page_version, dictionary):
    t = arrow_table(2500)
    path = os.path.join(tmp, "arrow.parquet")
    pq.write_table(t, path, compression=codec, data_page_version=page_version,
                   use_dictionary=dictionary, row_group_size=700, data_page_size=1024)
    cols, rows = read_ours(tool, path)
    assert [c["type"] for c in cols] == ["string", "boolean", "integer", "long", "double",
                                         "decimal", "date", "timestamp", "string", "long"]
    assert [c["list"] for c in cols][-2:] == [True, True]
    assert_same(t, cols, rows)


@pytest.mark.parametrize("variant", ["int96", "ms", "ns"])
def test_we_read_other_timestamp_encodings(tool, tmp, variant):
    t = arrow_table(300, seed=5).select(["s", "ts"])
    path = os.path.join(tmp, "ts.parquet")
    if variant == "int96":
        pq.write_table(t, path, use_deprecated_int96_timestamps=True)
        trunc = None
    elif variant == "ms":
        pq.write_table(t, path, coerce_timestamps="ms", allow_truncated_timestamps=True)
        trunc = 1000
    else:
        t = t.cast(pa.schema([("s", pa.string()), ("ts", pa.timestamp("ns", tz="UTC"))]))
        pq.write_table(t, path, version="2.6")
        trunc = None
    cols, rows = read_ours(tool, path)
    assert cols[1]["type"] == "timestamp"
    assert_same(t, cols, rows, ts_trunc=trunc)


def test_projection_and_missing_columns(tool, tmp):
    t = arrow_table(50)
    path = os.path.join(tmp, "p.parquet")
    pq.write_table(t, path)
    cols, rows = read_ours(tool, path, "l", "nope:string", "s")
    assert [c["name"] for c in cols] == ["l", "nope", "s"]
    want = t.to_pylist()
    for r, w in enumerate(want):
        assert rows[r] == [w["l"], None, w["s"]]


def test_empty_file_both_ways(tool, tmp):
    path, stats = write_ours(tool, tmp, [{"name": "a", "type": "string"}], [])
    assert stats["num_rows"] == 0
    t = pq.read_table(path)
    assert t.num_rows == 0 and t.schema.field("a").type == pa.string()
    p2 = os.path.join(tmp, "empty_arrow.parquet")
    pq.write_table(pa.table({"a": pa.array([], pa.string())}), p2)
    cols, rows = read_ours(tool, p2)
    assert rows == [] and cols[0]["type"] == "string"


CHECKPOINT_SCHEMA = """message spark_schema {
  optional group txn { optional binary appId (STRING); optional int64 version; optional int64 lastUpdated; }
  optional group add {
    optional binary path (STRING);
    optional group partitionValues (MAP) { repeated group key_value {
      required binary key (STRING); optional binary value (STRING); } }
    optional int64 size; optional int64 modificationTime; optional boolean dataChange;
    optional binary stats (STRING);
  }
  optional group remove { optional binary path (STRING); optional int64 deletionTimestamp; optional boolean dataChange; }
  optional group metaData {
    optional binary id (STRING);
    optional group format { optional binary provider (STRING);
      optional group options (MAP) { repeated group key_value { required binary key (STRING); optional binary value (STRING); } } }
    optional binary schemaString (STRING);
    optional group partitionColumns (LIST) { repeated group list { optional binary element (STRING); } }
    optional group configuration (MAP) { repeated group key_value { required binary key (STRING); optional binary value (STRING); } }
    optional int64 createdTime;
  }
  optional group protocol { optional int32 minReaderVersion; optional int32 minWriterVersion; }
}
"""

CHECKPOINT_RECORDS = [
    {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
    {"metaData": {"id": "id-1", "format": {"provider": "parquet", "options": {}},
                  "schemaString": "{\"type\":\"struct\",\"fields\":[]}", "partitionColumns": [],
                  "configuration": {"delta.checkpointInterval": "10"}, "createdTime": 1700}},
    {"add": {"path": "part-0.parquet", "partitionValues": {}, "size": 123, "modificationTime": 5,
             "dataChange": True, "stats": "{\"numRecords\":1}"}},
    {"add": {"path": "part-1.parquet", "partitionValues": {"p": "x", "q": None}, "size": 7,
             "modificationTime": 6, "dataChange": False}},
    {"remove": {"path": "old.parquet", "deletionTimestamp": 9, "dataChange": True}},
    {"txn": {"appId": "dest", "version": 3, "lastUpdated": 11}},
]


def test_nested_checkpoint_read_by_pyarrow(tool, tmp):
    sp = os.path.join(tmp, "schema.txt")
    nd = os.path.join(tmp, "records.ndjson")
    out = os.path.join(tmp, "00000000000000000010.checkpoint.parquet")
    with open(sp, "w") as f:
        f.write(CHECKPOINT_SCHEMA)
    with open(nd, "w") as f:
        for r in CHECKPOINT_RECORDS:
            f.write(json.dumps(r) + "\n")
    run(tool, "write-json", sp, nd, out, "snappy")
    got = pq.read_table(out).to_pylist()
    assert len(got) == len(CHECKPOINT_RECORDS)

    for g, want in zip(got, CHECKPOINT_RECORDS):
        (action, body), = want.items()
        for other in ("txn", "add", "remove", "metaData", "protocol"):
            if other != action:
                assert g[other] is None
        row = g[action]
        for k, v in body.items():
            if isinstance(v, dict) and k != "format":  # pyarrow: maps as (key, value) lists
                assert dict(row[k]) == v, (action, k)
            elif k == "format":
                assert row[k]["provider"] == v["provider"] and list(row[k]["options"]) == []
            else:
                assert row[k] == v, (action, k)
    # and our own reader gives the records back
    back = [json.loads(line) for line in run(tool, "read-json", out).splitlines()]
    assert back == CHECKPOINT_RECORDS


def test_we_read_pyarrow_nested(tool, tmp):
    t = pa.table({
        "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}],
                       pa.struct([("a", pa.int64()), ("b", pa.string())])),
        "m": pa.array([[("k", "v")], [], None], pa.map_(pa.string(), pa.string())),
        "ll": pa.array([[[1, 2], []], None, [[3], None]], pa.list_(pa.list_(pa.int32()))),
    })
    path = os.path.join(tmp, "nested.parquet")
    pq.write_table(t, path)
    back = [json.loads(line) for line in run(tool, "read-json", path).splitlines()]
    assert back == [
        {"st": {"a": 1, "b": "x"}, "m": {"k": "v"}, "ll": [[1, 2], []]},
        {"m": {}},
        {"st": {"b": "y"}, "ll": [[3], None]},
    ]


def test_duckdb_reads_what_we_write(tool, tmp):
    duckdb = pytest.importorskip("duckdb")
    cols, rows = gen_rows(2000, seed=9)
    path, _ = write_ours(tool, tmp, cols, rows, codec="zstd", decimal=[38, 6], row_group_bytes=30000)
    names = [c["name"] for c in cols]
    con = duckdb.connect()
    got = con.execute("SELECT %s FROM read_parquet(?)" % ", ".join(names), [path]).fetchall()
    want = pq.read_table(path).to_pylist()
    assert len(got) == len(want) == len(rows)
    for g, w in zip(got, want):
        for k, name in enumerate(names):
            a, b = norm_arrow(g[k]), norm_arrow(w[name])
            assert a == b, (name, a, b)
    # row-group pruning on our min/max statistics must not lose rows
    lim = sorted(r[2] for r in rows if r[2] is not None)[len(rows) // 2]
    n = con.execute("SELECT count(*) FROM read_parquet(?) WHERE c_integer >= ?", [path, lim]).fetchone()[0]
    assert n == sum(1 for r in rows if r[2] is not None and r[2] >= lim)


def test_streaming_memory_is_bounded_by_a_row_group(tool, tmp):
    """1.5M rows through 8 MiB row groups: peak RSS stays far below the data size."""
    out = os.path.join(tmp, "stream.parquet")
    r = json.loads(run(tool, "stream", "1500000", out, "8"))
    assert r["row_groups"] >= 5
    assert r["file_size"] > 50e6       # the data is much bigger than ...
    assert r["max_rss_mib"] < 60       # ... what the writer holds at once
    md = pq.ParquetFile(out).metadata
    assert md.num_rows == 1500000 and md.num_row_groups == r["row_groups"]
