"""test_export: $viewdefinition-export end to end against a real `fhirlake serve` — the
article's flow (patient_flat, kick-off with Prefer: respond-async, polling, the Delta table
read with delta-rs and Spark), an incremental _since round with an update and a delete,
file output, chained _since exports under a concurrent writer, kill -9 + restart resume,
cancel, and every synchronous bad-input case."""
import json
import os
import threading
import time

import pytest
import requests

from delta_helpers import read_rs

from article_data import PATIENT_FLAT_VIEW as VIEW  # noqa: E402

ARTICLE_PATIENTS = [
    ("patient-1", "male", "1990-01-15", "Smith", "John"),
    ("patient-2", "female", "1984-07-22", "Garcia", "Maria"),
    ("patient-3", "other", "2001-03-08", "Chen", "Alex"),
    ("patient-4", "female", "1976-11-30", "Okafor", "Amara"),
]

H = {"Content-Type": "application/fhir+json"}


def patient(pid, gender, birth, family, given):
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth,
            "name": [{"use": "official", "family": family, "given": [given]}]}


def put(srv, res):
    r = requests.put(srv.url(f"{res['resourceType']}/{res['id']}"), json=res, headers=H)
    assert r.status_code in (200, 201), r.text
    return r.json()


def export_params(*extra, view_ref="ViewDefinition/patient_flat", name="patient_flat",
                  kind="data-lakehouse"):
    params = [{"name": "view", "part": [
        {"name": "name", "valueString": name},
        {"name": "viewReference", "valueReference": {"reference": view_ref}}]}]
    if kind:
        params.append({"name": "kind", "valueString": kind})
    params.extend(extra)
    return {"resourceType": "Parameters", "parameter": params}


def kick_off(srv, body):
    return requests.post(srv.url("ViewDefinition/$viewdefinition-export"), json=body,
                         headers={**H, "Prefer": "respond-async"})


def param(manifest, name):
    return [p for p in manifest["parameter"] if p["name"] == name]


def wait_done(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(url)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 202, r.text
        assert "X-Progress" in r.headers and "Retry-After" in r.headers
        time.sleep(0.1)
    raise AssertionError("export did not finish")


def run_export(srv, body):
    r = kick_off(srv, body)
    assert r.status_code == 202, r.text
    loc = r.headers["Content-Location"]
    assert "/fhir/ViewDefinition/$viewdefinition-export/status/" in loc
    m = wait_done(loc)
    assert param(m, "status")[0]["valueCode"] == "completed", m
    return m


def rows_modulo_ts(rows):
    return sorted((r["id"], r["gender"], r["birth_date"], r["family_name"], r["given_name"],
                   r["is_deleted"]) for r in rows)


@pytest.fixture
def srv(fhir_server):
    put(fhir_server, VIEW)
    return fhir_server


def test_article_flow_then_since_round(srv):
    for p in ARTICLE_PATIENTS:
        put(srv, patient(*p))
    m = run_export(srv, export_params())
    out = param(m, "output")[0]["part"]
    loc = [p for p in out if p["name"] == "location"][0]["valueUri"]
    assert [p for p in out if p["name"] == "count"][0]["valueInteger"] == 4
    table = os.path.join(srv.data_dir, "lake", "patient_flat")
    assert os.path.realpath(loc[len("file://"):]) == os.path.realpath(table)
    rows = read_rs(table)
    commits = lambda: sorted(f for f in os.listdir(os.path.join(table, "_delta_log")) if f.endswith(".json"))
    assert len(commits()) == 1  # one atomic commit per export
    want = sorted(p + (0,) for p in ARTICLE_PATIENTS)
    assert rows_modulo_ts(rows) == want
    end1 = param(m, "exportEndTime")[0]["valueInstant"]
    # ts is the commit ts of each resource, never after the watermark
    assert all(r["ts"] is not None for r in rows)
    for key in ("exportId", "exportStartTime"):
        assert param(m, key)

    # incremental round: an update and a delete after the first export
    put(srv, patient("patient-2", "female", "1984-07-22", "Garcia-Lopez", "Maria"))
    assert requests.delete(srv.url("Patient/patient-3")).status_code in (200, 204)
    m2 = run_export(srv, export_params({"name": "_since", "valueInstant": end1}))
    out2 = param(m2, "output")[0]["part"]
    assert [p for p in out2 if p["name"] == "count"][0]["valueInteger"] == 2
    rows = rows_modulo_ts(read_rs(table))
    assert len(commits()) == 2
    assert ("patient-2", "female", "1984-07-22", "Garcia-Lopez", "Maria", 0) in rows
    assert ("patient-3", None, None, None, None, 1) in rows  # tombstone: key, ts, is_deleted
    assert ("patient-1", "male", "1990-01-15", "Smith", "John", 0) in rows
    assert len(rows) == 4
    tomb = [r for r in read_rs(table) if r["id"] == "patient-3"][0]
    assert tomb["ts"] is not None
    # the next round with nothing changed exports nothing and keeps the table
    end2 = param(m2, "exportEndTime")[0]["valueInstant"]
    m3 = run_export(srv, export_params({"name": "_since", "valueInstant": end2}))
    assert [p for p in param(m3, "output")[0]["part"] if p["name"] == "count"][0]["valueInteger"] == 0
    assert rows_modulo_ts(read_rs(table)) == rows


def test_article_table_read_by_spark(srv):
    pytest.importorskip("pyspark")
    from delta_helpers import read_spark, spark_session
    for p in ARTICLE_PATIENTS:
        put(srv, patient(*p))
    run_export(srv, export_params())
    table = os.path.join(srv.data_dir, "lake", "patient_flat")
    spark = spark_session()
    try:
        rows = read_spark(spark, table)
    finally:
        spark.stop()
    assert rows_modulo_ts(rows) == sorted(p + (0,) for p in ARTICLE_PATIENTS)
    assert rows == read_rs(table)


def test_full_export_removes_deleted_and_uses_table_path(srv, tmp_path):
    for p in ARTICLE_PATIENTS:
        put(srv, patient(*p))
    table = str(tmp_path / "target")
    run_export(srv, export_params({"name": "tablePath", "valueString": "file://" + table},
                                  {"name": "writeMode", "valueString": "external-direct"},
                                  {"name": "chunkCount", "valueInteger": 3}))
    assert len(read_rs(table)) == 4
    requests.delete(srv.url("Patient/patient-4"))
    run_export(srv, export_params({"name": "tablePath", "valueString": table}))
    rows = rows_modulo_ts(read_rs(table))
    assert [r[5] for r in rows if r[0] == "patient-4"] == [1]  # absent key -> tombstone
    assert sorted(r[0] for r in rows if r[5] == 0) == ["patient-1", "patient-2", "patient-3"]


def test_file_output_and_patient_filter(srv):
    for p in ARTICLE_PATIENTS:
        put(srv, patient(*p))
    m = run_export(srv, export_params({"name": "_format", "valueString": "csv"},
                                      {"name": "patient", "valueReference": {"reference": "Patient/patient-2"}},
                                      {"name": "clientTrackingId", "valueString": "track-1"},
                                      {"name": "chunkCount", "valueInteger": 4},
                                      kind=None))
    assert param(m, "clientTrackingId")[0]["valueString"] == "track-1"
    outs = param(m, "output")
    assert len(outs) == 4  # one file per chunk
    text = ""
    total = 0
    for o in outs:
        parts = {p["name"]: p for p in o["part"]}
        path = parts["location"]["valueUri"][len("file://"):]
        assert path.endswith(".csv") and os.path.exists(path)
        assert path.startswith(os.path.realpath(srv.data_dir))
        text += open(path).read()
        total += parts["count"]["valueInteger"]
    assert total == 1
    assert "patient-2,2" in text.replace("\n", ",") or "patient-2," in text
    assert "patient-1" not in text


def test_bad_input(srv, tmp_path):
    def bad(body, where_word):
        r = kick_off(srv, body)
        assert r.status_code == 400, r.text
        oo = r.json()
        assert oo["resourceType"] == "OperationOutcome"
        assert where_word.lower() in json.dumps(oo).lower(), oo

    bad({"resourceType": "Parameters", "parameter": [{"name": "kind", "valueString": "data-lakehouse"}]}, "view")
    bad(export_params(view_ref="ViewDefinition/nope"), "unknown view")
    invalid = dict(VIEW, select=[{"column": [{"name": "id", "path": "id"}, {"name": "id", "path": "gender"}]}])
    bad({"resourceType": "Parameters", "parameter": [
        {"name": "view", "part": [{"name": "name", "valueString": "x"},
                                  {"name": "viewResource", "resource": invalid}]},
        {"name": "kind", "valueString": "data-lakehouse"}]}, "view[0]")
    bad(export_params(kind="clickhouse"), "kind")
    no_ts = dict(VIEW, id="no_ts", name="no_ts", select=[{"column": [{"name": "id", "path": "id"}]}])
    put(srv, no_ts)
    bad(export_params({"name": "_since", "valueInstant": "2026-01-01T00:00:00Z"},
                      view_ref="ViewDefinition/no_ts", name="no_ts"), "getAidboxTs()")
    bad(export_params({"name": "_since", "valueInstant": "yesterday"}), "_since")
    bad(export_params({"name": "tablePath", "valueString": "relative/path"}), "tablePath")
    bad(export_params({"name": "tablePath", "valueString": "http://example.org/t"}), "tablePath")
    f = tmp_path / "afile"
    f.write_text("x")
    bad(export_params({"name": "tablePath", "valueString": str(f)}), "tablePath")
    d = tmp_path / "notdelta"
    d.mkdir()
    (d / "junk").write_text("x")
    bad(export_params({"name": "tablePath", "valueString": str(d)}), "tablePath")
    bad(export_params({"name": "writeMode", "valueString": "databricks-managed"}), "writeMode")
    bad(export_params({"name": "chunkCount", "valueInteger": 0}), "chunkCount")
    bad(export_params({"name": "chunkCount", "valueInteger": 100000}), "chunkCount")
    bad(export_params({"name": "_format", "valueString": "xml"}, kind=None), "_format")
    # unknown status id
    assert requests.get(srv.url("ViewDefinition/$viewdefinition-export/status/nope")).status_code == 404
    assert requests.delete(srv.url("ViewDefinition/$viewdefinition-export/status/nope")).status_code == 404


def load_patients(srv, n, prefix="p"):
    lines = "\n".join(json.dumps(patient(f"{prefix}{i}", "male" if i % 2 else "female",
                                         "1970-01-%02d" % (i % 28 + 1), f"F{i}", f"G{i}"))
                      for i in range(n))
    r = requests.post(srv.url("$load"), data=lines, headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code in (200, 201), r.text


def test_deletion_vectors_by_default_and_opt_out(srv, tmp_path):
    """An export's table allows deletion vectors: the _since round deletes the replaced
    rows with a DV, no data file rewritten. deletionVectors=false gives a reader 1 /
    writer 2 table that delta-rs' to_pyarrow_table() reads, merged copy-on-write."""
    from deltalake import DeltaTable
    for p in ARTICLE_PATIENTS:
        put(srv, patient(*p))
    dv_t, cow_t = str(tmp_path / "dv"), str(tmp_path / "cow")
    off = {"name": "deletionVectors", "valueBoolean": False}
    ends = {}
    for t, extra in ((dv_t, ()), (cow_t, (off,))):
        m = run_export(srv, export_params({"name": "tablePath", "valueString": t}, *extra))
        ends[t] = param(m, "exportEndTime")[0]["valueInstant"]
    put(srv, patient("patient-2", "female", "1990-05-05", "Smith", "Janet"))
    for t, extra in ((dv_t, ()), (cow_t, (off,))):
        run_export(srv, export_params({"name": "tablePath", "valueString": t},
                                      {"name": "_since", "valueInstant": ends[t]}, *extra))
    for t in (dv_t, cow_t):
        rows = {r["id"]: r["given_name"] for r in read_rs(t)}
        assert len(rows) == 4 and rows["patient-2"] == "Janet"
    p = DeltaTable(dv_t).protocol()
    assert (p.min_reader_version, p.min_writer_version) == (3, 7)
    assert [f for f in os.listdir(dv_t) if f.startswith("deletion_vector_")]
    c = DeltaTable(cow_t)
    assert (c.protocol().min_reader_version, c.protocol().min_writer_version) == (1, 2)
    assert c.to_pyarrow_table().num_rows == 4
    assert not [f for f in os.listdir(cow_t) if f.startswith("deletion_vector_")]
    r = kick_off(srv, export_params({"name": "deletionVectors", "valueString": "maybe"}))
    assert r.status_code == 400 and "deletionVectors" in r.text


def test_small_since_export_uses_few_chunks(srv, tmp_path):
    """chunkCount is an upper bound for a _since export: a few changes make one chunk, so
    the table gets one new data file, not one per requested chunk."""
    load_patients(srv, 40)
    t = str(tmp_path / "t")
    m = run_export(srv, export_params({"name": "tablePath", "valueString": t},
                                      {"name": "chunkCount", "valueInteger": 4}))
    end = param(m, "exportEndTime")[0]["valueInstant"]
    put(srv, patient("p3", "female", "1990-05-05", "Changed", "Once"))
    requests.delete(srv.url("Patient/p7"))
    r = kick_off(srv, export_params({"name": "tablePath", "valueString": t},
                                    {"name": "chunkCount", "valueInteger": 4},
                                    {"name": "_since", "valueInstant": end}))
    assert r.status_code == 202
    m = wait_done(r.headers["Content-Location"])
    assert param(m, "status")[0]["valueCode"] == "completed"
    last = sorted(f for f in os.listdir(os.path.join(t, "_delta_log")) if f.endswith(".json"))[-1]
    acts = [json.loads(l) for l in open(os.path.join(t, "_delta_log", last))]
    new_files = [a["add"] for a in acts if "add" in a and not a["add"].get("deletionVector")]
    assert len(new_files) == 1 and json.loads(new_files[0]["stats"])["numRecords"] == 2
    rows = {r["id"]: r for r in read_rs(t)}
    assert rows["p3"]["family_name"] == "Changed" and rows["p7"]["is_deleted"] == 1
    # after a restart the key indexes of the data files are gone: the next merge finds the
    # old rows by reading key columns instead, with the same result
    end = param(m, "exportEndTime")[0]["valueInstant"]
    srv.restart()
    put(srv, patient("p3", "female", "1990-05-05", "Changed", "Twice"))
    put(srv, patient("p11", "male", "1990-05-05", "Also", "Changed"))
    run_export(srv, export_params({"name": "tablePath", "valueString": t},
                                  {"name": "_since", "valueInstant": end}))
    got = {}
    for r in read_rs(t):
        assert r["id"] not in got, r  # one row per id: every replaced row is deleted
        got[r["id"]] = r
    assert len(got) == 40 and got["p3"]["given_name"] == "Twice"
    assert got["p11"]["family_name"] == "Also" and got["p7"]["is_deleted"] == 1


def test_since_without_key_index_memory(fhir_server_factory, tmp_path):
    """With no memory for key indexes (FHIRLAKE_KEY_CACHE_MB=0) every index is dropped while
    being built; a _since export then finds the replaced rows by reading key columns."""
    os.environ["FHIRLAKE_KEY_CACHE_MB"] = "0"
    try:
        srv = fhir_server_factory()
    finally:
        del os.environ["FHIRLAKE_KEY_CACHE_MB"]
    put(srv, VIEW)
    load_patients(srv, 30)
    t = str(tmp_path / "t")
    m = run_export(srv, export_params({"name": "tablePath", "valueString": t},
                                      {"name": "chunkCount", "valueInteger": 3}))
    end = param(m, "exportEndTime")[0]["valueInstant"]
    put(srv, patient("p4", "male", "1990-05-05", "New", "Name"))
    requests.delete(srv.url("Patient/p9"))
    run_export(srv, export_params({"name": "tablePath", "valueString": t},
                                  {"name": "_since", "valueInstant": end}))
    got = {}
    for r in read_rs(t):
        assert r["id"] not in got, r
        got[r["id"]] = r
    assert len(got) == 30 and got["p4"]["family_name"] == "New" and got["p9"]["is_deleted"] == 1
    assert [f for f in os.listdir(t) if f.startswith("deletion_vector_")]


def test_cancel(fhir_server_factory, tmp_path):
    srv = fhir_server_factory(args=())
    srv.stop()
    os.environ["FHIRLAKE_EXPORT_CHUNK_DELAY_MS"] = "500"
    try:
        srv.start()
    finally:
        del os.environ["FHIRLAKE_EXPORT_CHUNK_DELAY_MS"]
    put(srv, VIEW)
    load_patients(srv, 50)
    r = kick_off(srv, export_params({"name": "chunkCount", "valueInteger": 16}))
    assert r.status_code == 202
    loc = r.headers["Content-Location"]
    assert requests.get(loc).status_code == 202
    assert requests.delete(loc).status_code == 202
    assert requests.delete(loc).status_code == 202  # idempotent
    m = wait_done(loc)
    assert param(m, "status")[0]["valueCode"] == "cancelled"
    time.sleep(1.5)  # running chunks notice the cancel; nothing is committed
    assert not os.path.exists(os.path.join(srv.data_dir, "lake", "patient_flat", "_delta_log"))
    job = loc.rsplit("/", 1)[1]
    srv.restart()
    m = wait_done(srv.url(f"ViewDefinition/$viewdefinition-export/status/{job}"))
    assert param(m, "status")[0]["valueCode"] == "cancelled"


def kill9_mid_export(srv, between=None):
    """Kicks off a 12-chunk export of 400 patients, kill -9s the server when some but not
    all chunks are done, runs between() while it is down, restarts. -> (job, done, total)"""
    put(srv, VIEW)
    load_patients(srv, 400)
    srv.stop()
    os.environ["FHIRLAKE_EXPORT_CHUNK_DELAY_MS"] = "700"
    try:
        srv.start()
        r = kick_off(srv, export_params({"name": "chunkCount", "valueInteger": 12},
                                        {"name": "clientTrackingId", "valueString": "resume-me"}))
        assert r.status_code == 202
        job = r.headers["Content-Location"].rsplit("/", 1)[1]
        deadline = time.time() + 30
        while time.time() < deadline:  # wait until some but not all chunks are done
            p = requests.get(srv.url(f"ViewDefinition/$viewdefinition-export/status/{job}"))
            done, total = map(int, p.headers.get("X-Progress", "0/12 chunks").split()[0].split("/"))
            if 0 < done < total:
                break
            time.sleep(0.05)
        assert 0 < done < total, "could not catch the export mid-way"
        # writes after W must not show up in the resumed export
        put(srv, patient("late", "male", "2000-01-01", "Late", "Writer"))
        srv.kill9()
        if between:
            between()
        srv.start()
    finally:
        del os.environ["FHIRLAKE_EXPORT_CHUNK_DELAY_MS"]
    return job, done, total


def test_kill9_resume(fhir_server_factory):
    srv = fhir_server_factory()
    job, done, total = kill9_mid_export(srv)
    assert "resuming" in srv.log()
    m = wait_done(srv.url(f"ViewDefinition/$viewdefinition-export/status/{job}"), timeout=90)
    assert param(m, "status")[0]["valueCode"] == "completed"
    assert param(m, "clientTrackingId")[0]["valueString"] == "resume-me"
    # only the chunks not finished before the kill ran again (per-chunk log lines)
    redone = srv.log().count(": done,")
    assert 0 < redone <= total - done, (redone, done, total)
    rows = read_rs(os.path.join(srv.data_dir, "lake", "patient_flat"))
    assert len(rows) == 400
    assert sorted(r["id"] for r in rows) == sorted(f"p{i}" for i in range(400))
    assert all(r["is_deleted"] == 0 for r in rows)
    # status survives a further restart
    srv.restart()
    m2 = requests.get(srv.url(f"ViewDefinition/$viewdefinition-export/status/{job}")).json()
    assert param(m2, "status")[0]["valueCode"] == "completed"


def test_lost_staging_file_fails_the_export(fhir_server_factory):
    """A chunk recorded as done whose staged rows vanished (e.g. a disk lost them) must
    fail the export with a clear error, never commit a table missing those rows."""
    srv = fhir_server_factory()
    staged = []

    def lose_staging():
        for d, _, files in os.walk(os.path.join(srv.data_dir, "exports")):
            for f in files:
                if f.endswith(".parquet"):
                    staged.append(f)
                    os.unlink(os.path.join(d, f))

    job, _, _ = kill9_mid_export(srv, lose_staging)
    assert staged, "no staging file was written before the kill"
    m = wait_done(srv.url(f"ViewDefinition/$viewdefinition-export/status/{job}"), timeout=90)
    assert param(m, "status")[0]["valueCode"] == "failed"
    assert "staging file of chunk" in json.dumps(m)
    assert not os.path.exists(os.path.join(srv.data_dir, "lake", "patient_flat", "_delta_log"))


def micros(ts):
    """RFC 3339 text -> microseconds (fractions may be trimmed differently)."""
    import datetime
    return int(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1e6 + 0.5)


def test_chained_since_under_concurrent_writer(srv):
    load_patients(srv, 30, prefix="w")
    written = {}  # id -> list of committed ts (meta.lastUpdated)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            pid = f"w{i % 30}"
            res = put(srv, patient(pid, "male", "1970-01-01", f"F{i}", "G"))
            written.setdefault(pid, []).append(micros(res["meta"]["lastUpdated"]))
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    since = "1970-01-01T00:00:00Z"
    seen = []  # (id, ts) over all rounds
    try:
        for _ in range(5):
            m = run_export(srv, export_params({"name": "_since", "valueInstant": since},
                                              {"name": "_format", "valueString": "ndjson"},
                                              {"name": "chunkCount", "valueInteger": 2}, kind=None))
            for o in param(m, "output"):
                path = [p for p in o["part"] if p["name"] == "location"][0]["valueUri"][7:]
                for line in open(path):
                    if line.strip():
                        row = json.loads(line)
                        seen.append((row["id"], micros(row["ts"])))
            since = param(m, "exportEndTime")[0]["valueInstant"]
    finally:
        stop.set()
        t.join()
    m = run_export(srv, export_params({"name": "_since", "valueInstant": since},
                                      {"name": "_format", "valueString": "ndjson"}, kind=None))
    for o in param(m, "output"):
        path = [p for p in o["part"] if p["name"] == "location"][0]["valueUri"][7:]
        seen += [(json.loads(l)["id"], micros(json.loads(l)["ts"])) for l in open(path) if l.strip()]
    assert len(seen) == len(set(seen)), "a change was exported twice"
    last = {}
    for pid, ts in seen:
        last[pid] = max(last.get(pid, 0), ts)
    for pid, tss in written.items():
        assert last[pid] == max(tss), f"{pid}: last exported {last[pid]}, last written {max(tss)}"


def read_outputs(m):
    chunks = []
    for o in param(m, "output"):
        parts = {p["name"]: p for p in o["part"]}
        path = parts["location"]["valueUri"][len("file://"):]
        with open(path) as f:
            chunks.append([json.loads(l) for l in f if l.strip()])
    return chunks


def test_chunks_are_id_ranges_and_cts(srv):
    """A full export with chunkCount K reads K disjoint id ranges of about equal size (each
    chunk scans only its range) whose union is the chunkCount 1 export; getAidboxCts() is
    the ts of version 1 (equal to getAidboxTs() until the resource is updated)."""
    view = dict(VIEW, id="pcts", name="pcts")
    view["select"] = [{"column": VIEW["select"][0]["column"] + [{"name": "cts", "path": "getAidboxCts()"}]}]
    put(srv, view)
    load_patients(srv, 100)
    for i in range(0, 100, 10):
        put(srv, patient(f"p{i}", "other", "2000-01-01", f"U{i}", "G"))
    one = read_outputs(run_export(srv, export_params(view_ref="ViewDefinition/pcts", name="pcts",
                                                     kind=None)))
    assert len(one) == 1 and len(one[0]) == 100
    chunks = read_outputs(run_export(srv, export_params({"name": "chunkCount", "valueInteger": 5},
                                                        view_ref="ViewDefinition/pcts", name="pcts",
                                                        kind=None)))
    assert len(chunks) == 5
    assert all(15 <= len(c) <= 25 for c in chunks), [len(c) for c in chunks]
    ids = [sorted(r["id"] for r in c) for c in chunks]
    for a, b in zip(ids, ids[1:]):
        assert a[-1] < b[0]  # ranges, in order, disjoint
    key = lambda r: r["id"]
    assert sorted((r for c in chunks for r in c), key=key) == sorted(one[0], key=key)
    for r in one[0]:
        updated = int(r["id"][1:]) % 10 == 0
        assert r["cts"] and r["ts"]
        assert (r["cts"] < r["ts"]) if updated else (r["cts"] == r["ts"]), r
    # a _since export of updated resources still looks up their version 1 for cts
    cts = {r["id"]: r["cts"] for r in one[0]}
    since = param(run_export(srv, export_params(view_ref="ViewDefinition/pcts", name="pcts",
                                                kind=None)), "exportEndTime")[0]["valueInstant"]
    put(srv, patient("p20", "other", "2000-01-01", "Again", "G"))
    (inc,) = read_outputs(run_export(srv, export_params({"name": "_since", "valueInstant": since},
                                                        view_ref="ViewDefinition/pcts",
                                                        name="pcts", kind=None)))
    assert [(r["id"], r["cts"]) for r in inc] == [("p20", cts["p20"])]
