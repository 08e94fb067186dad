"""test_sof_cli: `fhirlake view run` and `fhirlake sof-test` as a user runs them.

view run: NDJSON file, Bundle on stdin, csv/json/ndjson/parquet outputs (parquet read back
with pyarrow, typed columns), clear errors for bad views (element path named) and bad
input. sof-test: a passing file, a failing file (exit 1, report says passed: false).
"""
import csv
import io
import json
import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("FHIRLAKE_BIN") or os.path.join(ROOT, "build", "fhirlake")

VIEW = {
    "resourceType": "ViewDefinition", "resource": "Patient", "name": "pt",
    "select": [
        {"column": [{"name": "id", "path": "getResourceKey()"},
                    {"name": "birth_date", "path": "birthDate"},
                    {"name": "active", "path": "active"},
                    {"name": "updated", "path": "getAidboxTs()"}]},
        {"forEachOrNull": "name", "column": [
            {"name": "family", "path": "family"},
            {"name": "given", "path": "given", "collection": True}]},
    ],
}
RESOURCES = [
    {"resourceType": "Patient", "id": "a", "birthDate": "1980-02-03", "active": True,
     "meta": {"lastUpdated": "2024-05-06T07:08:09Z"},
     "name": [{"family": "Smith", "given": ["Ann", "B"]}, {"family": "Jones"}]},
    {"resourceType": "Observation", "id": "o1", "status": "final"},
    {"resourceType": "Patient", "id": "b"},
]


def run(args, stdin=None):
    return subprocess.run([BIN] + args, input=stdin, capture_output=True, timeout=60)


@pytest.fixture
def files(tmp_path):
    view = tmp_path / "view.json"
    view.write_text(json.dumps(VIEW))
    nd = tmp_path / "in.ndjson"
    nd.write_text("\n".join(json.dumps(r) for r in RESOURCES) + "\n")
    return tmp_path, str(view), str(nd)


EXPECTED = [
    {"id": "a", "birth_date": "1980-02-03", "active": True, "updated": "2024-05-06T07:08:09Z",
     "family": "Smith", "given": ["Ann", "B"]},
    {"id": "a", "birth_date": "1980-02-03", "active": True, "updated": "2024-05-06T07:08:09Z",
     "family": "Jones", "given": []},
    {"id": "b", "birth_date": None, "active": None, "updated": None, "family": None, "given": []},
]


def test_ndjson_default(files):
    _, view, nd = files
    p = run(["view", "run", view, nd])
    assert p.returncode == 0, p.stderr
    rows = [json.loads(l) for l in p.stdout.decode().splitlines()]
    assert rows == EXPECTED
    assert list(rows[0].keys()) == ["id", "birth_date", "active", "updated", "family", "given"]


def test_bundle_on_stdin_json_and_csv(files):
    _, view, _ = files
    bundle = json.dumps({"resourceType": "Bundle", "type": "collection",
                         "entry": [{"resource": r} for r in RESOURCES]}, indent=2).encode()
    p = run(["view", "run", view, "--format", "json"], stdin=bundle)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == EXPECTED
    p = run(["view", "run", view, "-", "--format", "csv"], stdin=bundle)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout.decode())))
    assert [r["family"] for r in rows] == ["Smith", "Jones", ""]
    assert rows[0]["given"] == '["Ann","B"]' and rows[0]["active"] == "true"


def test_parquet_typed(files):
    pq = pytest.importorskip("pyarrow.parquet")
    tmp, view, nd = files
    out = tmp / "out.parquet"
    p = run(["view", "run", view, nd, "--format", "parquet", "--out", str(out)])
    if p.returncode != 0 and b"not available" in p.stderr:
        pytest.skip("parquet writer not in this build")
    assert p.returncode == 0, p.stderr
    t = pq.read_table(str(out))
    types = {f.name: str(f.type) for f in t.schema}
    assert types["birth_date"] == "date32[day]"
    assert types["active"] == "bool"
    assert types["updated"].startswith("timestamp[us")
    assert t.num_rows == 3
    assert t.column("family").to_pylist() == ["Smith", "Jones", None]


def test_bad_view_names_element(files):
    tmp, _, nd = files
    bad = dict(VIEW)
    bad["select"] = [{"column": [{"name": "id", "path": "id"}, {"name": "x", "path": "name.where("}]}]
    v = tmp / "bad.json"
    v.write_text(json.dumps(bad))
    p = run(["view", "run", str(v), nd])
    assert p.returncode == 1
    err = p.stderr.decode()
    assert "select[0].column[1].path" in err and "position" in err


def test_runtime_error_and_bad_input(files):
    tmp, view, nd = files
    v = tmp / "multi.json"
    v.write_text(json.dumps({"resource": "Patient", "select": [{"column": [
        {"name": "family", "path": "name.family"}]}]}))
    p = run(["view", "run", str(v), nd])
    assert p.returncode == 1 and b"collection" in p.stderr
    bad = tmp / "bad.ndjson"
    bad.write_text(json.dumps(RESOURCES[0]) + "\n{oops\n")
    p = run(["view", "run", view, str(bad)])
    assert p.returncode == 1 and b"line 2" in p.stderr


def test_sof_test_report(tmp_path):
    suite = {"title": "mini", "resources": RESOURCES, "tests": [
        {"title": "ok", "view": {"resource": "Patient", "select": [{"column": [
            {"name": "id", "path": "id", "type": "id"}]}]}, "expect": [{"id": "b"}, {"id": "a"}]},
        {"title": "wrong", "view": {"resource": "Patient", "select": [{"column": [
            {"name": "id", "path": "id", "type": "id"}]}]}, "expect": [{"id": "a"}]},
        {"title": "err", "view": {"select": []}, "expectError": True},
        {"title": "count", "view": {"resource": "Observation", "select": [{"column": [
            {"name": "id", "path": "id"}]}]}, "expectCount": 1},
    ]}
    f = tmp_path / "mini.json"
    f.write_text(json.dumps(suite))
    rep = tmp_path / "report.json"
    p = run(["sof-test", str(f), "--report", str(rep), "-q"])
    assert p.returncode == 1
    assert b"3 passed, 1 failed" in p.stdout
    r = json.loads(rep.read_text())
    assert [(t["name"], t["result"]["passed"]) for t in r["mini.json"]["tests"]] == \
        [("ok", True), ("wrong", False), ("err", True), ("count", True)]


def big_ndjson(path, n, seed):
    """About n * 330 bytes of NDJSON: Patients with 0-3 names, other types, a Bundle line,
    blank and CRLF lines, so chunk cuts fall everywhere."""
    lines = []
    for i in range(n):
        k = (i * 7 + seed) % 11
        if k == 0:
            lines.append(json.dumps({"resourceType": "Observation", "id": "o%d" % i}))
        elif k == 1:
            lines.append("")
        elif k == 2:
            lines.append(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": {"resourceType": "Patient", "id": "bp%d-%d" % (i, j)}}
                for j in range(2)]}) + "\r")
        else:
            lines.append(json.dumps({
                "resourceType": "Patient", "id": "p%d" % i, "active": i % 2 == 0,
                "birthDate": "19%02d-0%d-1%d" % (i % 100, 1 + i % 9, i % 10),
                "meta": {"lastUpdated": "2024-05-06T07:08:%02dZ" % (i % 60)},
                "name": [{"family": "F%d,\"q\"" % (i + j), "given": ["G%d" % i] * j}
                         for j in range(i % 4)]}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_jobs_output_matches_single_thread(files):
    """--jobs 2 on multi-MB NDJSON (many chunks, two files, a Bundle file between) writes
    exactly --jobs 1's bytes."""
    tmp, view, nd = files
    a = big_ndjson(tmp / "a.ndjson", 30000, 0)
    b = big_ndjson(tmp / "b.ndjson", 12000, 5)
    assert os.path.getsize(a) > 4_000_000
    bundle = tmp / "bundle.json"   # a whole document between NDJSON files: single-threaded
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": r} for r in RESOURCES]}, indent=2))
    for fmt in ("ndjson", "csv", "json"):
        outs = []
        for jobs in ("1", "2"):
            p = run(["view", "run", view, nd, a, str(bundle), b, "--format", fmt,
                     "--jobs", jobs])
            assert p.returncode == 0, p.stderr
            outs.append(p.stdout)
        assert outs[0] == outs[1], fmt
        assert len(outs[0]) > 1_000_000
    p = run(["view", "run", view, a, "--jobs", "2"])
    want = []   # Patient ids in input order, one per name (at least one)
    for line in open(a):
        r = json.loads(line) if line.strip() else {}
        for x in [e["resource"] for e in r.get("entry", [])] or [r]:
            if x.get("resourceType") == "Patient":
                want += [x["id"]] * max(1, len(x.get("name", [])))
    assert [json.loads(l)["id"] for l in p.stdout.decode().splitlines()] == want
    pq = pytest.importorskip("pyarrow.parquet")
    tables = []
    for jobs in ("1", "2"):
        out = tmp / ("j%s.parquet" % jobs)
        p = run(["view", "run", view, a, b, "--format", "parquet", "--out", str(out),
                 "--jobs", jobs])
        if p.returncode != 0 and b"not available" in p.stderr:
            pytest.skip("parquet writer not in this build")
        assert p.returncode == 0, p.stderr
        tables.append(pq.read_table(str(out)))
    assert tables[0].num_rows > 20000
    assert tables[0].equals(tables[1])


def test_jobs_error_names_line(files):
    tmp, view, _ = files
    a = big_ndjson(tmp / "a.ndjson", 30000, 0)
    with open(a, "a") as f:
        f.write("{oops\n")
    for jobs in ("1", "2"):
        p = run(["view", "run", view, a, "--jobs", jobs])
        assert p.returncode == 1 and b"line 30001" in p.stderr, p.stderr
