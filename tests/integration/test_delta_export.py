"""test_delta_export: `fhirlake view export` end to end — NDJSON and Bundle input through a
ViewDefinition into a Delta table that delta-rs reads; default merge on the view's id
column, append, overwrite, delete-absent tombstones, txn idempotency, clear errors."""
import json
import os
import subprocess

import pytest

from delta_helpers import FHIRLAKE, read_rs

pytestmark = pytest.mark.skipif(not os.path.exists(FHIRLAKE), reason="build/fhirlake not built")

VIEW = {
    "resourceType": "ViewDefinition", "name": "patient_flat", "status": "active",
    "resource": "Patient",
    "select": [{"column": [
        {"name": "id", "path": "getResourceKey()"},
        {"name": "gender", "path": "gender"},
        {"name": "birth_date", "path": "birthDate"},
        {"name": "family", "path": "name.where(use = 'official').family.first()"},
        {"name": "given", "path": "name.given", "collection": True},
    ]}],
}


def patient(i, family=None):
    return {"resourceType": "Patient", "id": f"pt-{i}", "gender": "female" if i % 2 else "male",
            "birthDate": "1980-01-%02d" % (i % 28 + 1),
            "name": [{"use": "official", "family": family or f"Fam{i}", "given": [f"G{i}", "X"]}]}


def expect(i, family=None, deleted=0):
    return {"id": f"pt-{i}", "gender": "female" if i % 2 else "male",
            "birth_date": "1980-01-%02d" % (i % 28 + 1), "family": family or f"Fam{i}",
            "given": [f"G{i}", "X"], "is_deleted": deleted}


def export(tmp_path, inputs, table, *extra, ok=True):
    view = tmp_path / "view.json"
    view.write_text(json.dumps(VIEW))
    p = subprocess.run([FHIRLAKE, "view", "export", str(view), *inputs, "--to", table, *extra],
                       capture_output=True, text=True, timeout=120)
    if ok:
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)
    assert p.returncode != 0
    return p.stderr


def ndjson(tmp_path, name, resources):
    f = tmp_path / name
    f.write_text("".join(json.dumps(r) + "\n" for r in resources))
    return str(f)


def test_export_ndjson_and_bundle_then_merge(tmp_path):
    t = str(tmp_path / "lake" / "patient_flat")
    a = ndjson(tmp_path, "a.ndjson", [patient(i) for i in range(20)]
               + [{"resourceType": "Observation", "id": "o1"}])
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient(i)} for i in range(20, 25)]}, indent=2))
    res = export(tmp_path, [a, str(bundle)], t)
    assert res["version"] == 0 and res["rows"] == 25
    assert read_rs(t) == sorted([expect(i) for i in range(25)], key=lambda r: r["id"])
    # default mode merge on the id column: updated patients replace their rows
    b = ndjson(tmp_path, "b.ndjson", [patient(i, "New") for i in (3, 30)])
    res = export(tmp_path, [b], t)
    want = {f"pt-{i}": expect(i) for i in range(25)}
    want["pt-3"] = expect(3, "New")
    want["pt-30"] = expect(30, "New")
    assert read_rs(t) == sorted(want.values(), key=lambda r: r["id"])
    # a full refresh with --delete-absent tombstones whoever is not in the source
    res = export(tmp_path, [b], t, "--delete-absent")
    got = read_rs(t)
    assert {r["id"] for r in got if r["is_deleted"] == 0} == {"pt-3", "pt-30"}
    assert len(got) == 26


def test_export_append_overwrite_txn(tmp_path):
    t = str(tmp_path / "t")
    a = ndjson(tmp_path, "a.ndjson", [patient(i) for i in range(5)])
    export(tmp_path, [a], t, "--mode", "append", "--codec", "zstd", "--app", "job", "--app-version", "1")
    res = export(tmp_path, [a], t, "--mode", "append", "--app", "job", "--app-version", "1")
    assert res["skipped"]
    assert len(read_rs(t)) == 5
    export(tmp_path, [a], t, "--mode", "append")
    assert len(read_rs(t)) == 10
    export(tmp_path, [ndjson(tmp_path, "c.ndjson", [patient(9)])], t, "--mode", "overwrite")
    assert read_rs(t) == [expect(9)]


def test_export_errors(tmp_path):
    a = ndjson(tmp_path, "a.ndjson", [patient(1)])
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "x.txt").write_text("x")
    assert "not a Delta table" in export(tmp_path, [a], str(plain), ok=False)
    bad = ndjson(tmp_path, "bad.ndjson", [patient(1)])
    with open(bad, "a") as f:
        f.write("{not json\n")
    t = str(tmp_path / "t")
    err = export(tmp_path, [bad], t, ok=False)
    assert "line 2" in err
    assert not os.path.exists(t)  # a failed first export leaves no directory behind
    err = export(tmp_path, [a], t, "--key", "nope", ok=False)
    assert "nope" in err


def test_export_big_input_in_chunks_and_line_numbers(tmp_path):
    """Over 4 MB of NDJSON: several chunks over several worker threads; stdin input too."""
    pad = "x" * 500
    pts = [dict(patient(i), text={"status": "generated", "div": pad}) for i in range(12000)]
    big = ndjson(tmp_path, "big.ndjson", pts)
    assert os.path.getsize(big) > 5_000_000
    t = str(tmp_path / "t")
    res = export(tmp_path, [big], t, "--jobs", "3", "--threads", "2")
    assert res["rows"] == 12000 and res["resources"] == 12000
    assert read_rs(t) == sorted([expect(i) for i in range(12000)], key=lambda r: r["id"])
    lines = open(big).read().splitlines()
    lines[9000] = "{broken"
    bad = tmp_path / "bad.ndjson"
    bad.write_text("\n".join(lines) + "\n")
    err = export(tmp_path, [str(bad)], str(tmp_path / "t2"), "--jobs", "2", ok=False)
    assert "line 9001" in err
    assert not os.path.exists(tmp_path / "t2" / "_delta_log" / ("%020d.json" % 0))
    view = tmp_path / "view.json"
    p = subprocess.run([FHIRLAKE, "view", "export", str(view), "-", "--to", str(tmp_path / "t3")],
                       input="".join(json.dumps(patient(i)) + "\n" for i in range(3)),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert len(read_rs(str(tmp_path / "t3"))) == 3


def test_export_gzip_input(tmp_path):
    import gzip
    src = tmp_path / "Patient.ndjson.gz"
    with gzip.open(src, "wt") as f:
        for i in range(50):
            f.write(json.dumps(patient(i)) + "\n")
    t = str(tmp_path / "t")
    res = export(tmp_path, [str(src)], t)
    assert res["rows"] == 50
    assert read_rs(t) == sorted([expect(i) for i in range(50)], key=lambda r: r["id"])
