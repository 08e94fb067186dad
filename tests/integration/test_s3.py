"""test_s3: Delta tables on s3:// written by fhirlake (src/lake/s3.c behind objstore.h)
against an S3-compatible server on loopback (moto's server mode, started by
scripts/s3_server.sh; it honours `If-None-Match: *`, multipart upload and ListObjectsV2).

Proves: tables written by deltatool and by `fhirlake serve` ($viewdefinition-export and a
topic destination) are read back by delta-rs (and by Spark through hadoop-aws when its jars
are in ~/.ivy2); checkpoints round-trip; two concurrent writers both commit at distinct
versions and lose nothing (conditional PUT of the commit file); files above the multipart
threshold are uploaded in parts; a killed writer leaves no visible partial object; bad
s3:// table paths are refused synchronously.
Signatures are checked separately (test_s3_sigv4.py, against botocore's signer). What
these tests cannot prove: acceptance by real AWS, virtual-host addressing, real throttling.
"""
import json
import os
import random
import signal
import subprocess
import time

import pytest
import requests

from delta_helpers import DELTATOOL, deltatool, norm_rows, rs_table

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")
deltalake = pytest.importorskip("deltalake")

KEY = {"AWS_ACCESS_KEY_ID": "fhirlake-test", "AWS_SECRET_ACCESS_KEY": "fhirlake-secret",
       "AWS_REGION": "us-east-1"}
BUCKET = "lake"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("s3server"))
    endpoint = subprocess.run([os.path.join(ROOT, "scripts", "s3_server.sh"), "start", d],
                              check=True, capture_output=True, text=True).stdout.strip()
    env = dict(KEY, AWS_ENDPOINT_URL=endpoint)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)   # deltatool and fhirlake serve inherit these
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=KEY["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield {"endpoint": endpoint, "client": client}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        subprocess.run([os.path.join(ROOT, "scripts", "s3_server.sh"), "stop", d], check=False)


def storage_options(s3):
    return {"AWS_ENDPOINT_URL": s3["endpoint"], "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": KEY["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": KEY["AWS_SECRET_ACCESS_KEY"], "AWS_REGION": "us-east-1",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true"}


def read_rs(s3, url, key="id"):
    dt = deltalake.DeltaTable(url, storage_options=storage_options(s3))
    return norm_rows(rs_table(dt).to_pylist(), key)


def keys(s3, prefix):
    out = []
    for page in s3["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)


def uniq(name):
    return f"{name}-{random.randrange(1 << 30):08x}"


def test_write_merge_checkpoint_read_by_delta_rs(s3):
    url = f"s3://{BUCKET}/t/{uniq('merge')}"
    schema = "id:string,n:long,tags:string[]"
    deltatool("write", url, "--schema", schema, "--mode", "merge", "--key", "id",
              rows=[{"id": "a", "n": 1, "tags": ["x"]}, {"id": "b", "n": 2, "tags": ["w"]}])
    deltatool("write", url, "--schema", schema, "--mode", "merge", "--key", "id",
              rows=[{"id": "a", "n": 5, "tags": ["y", "z"]}])
    deltatool("checkpoint", url)
    deltatool("write", url, "--schema", schema, "--mode", "merge", "--key", "id",
              rows=[{"id": "c", "n": 3, "tags": None}])
    _, snap, _ = deltatool("snapshot", url)
    assert snap["version"] == 2 and snap["checkpoint_version"] == 1
    rows = read_rs(s3, url)
    assert [(r["id"], r["n"], r["tags"], r["is_deleted"]) for r in rows] == [
        ("a", 5, ["y", "z"], 0), ("b", 2, ["w"], 0), ("c", 3, None, 0)]
    prefix = url[len(f"s3://{BUCKET}/"):]
    log = [k for k in keys(s3, prefix + "/_delta_log/")]
    assert prefix + "/_delta_log/00000000000000000001.checkpoint.parquet" in log
    assert prefix + "/_delta_log/_last_checkpoint" in log
    # the merge of "a" deleted its old row with a deletion vector stored in the bucket
    assert list(snap["dv_cardinality"].values()) == [1]
    assert any(k.startswith(prefix + "/deletion_vector_") for k in keys(s3, prefix + "/"))


def test_concurrent_writers_commit_at_distinct_versions(s3):
    """Two processes append 6 commits each at the same time: every commit lands once, at its
    own version (the loser of a conditional PUT retries at the next version)."""
    url = f"s3://{BUCKET}/t/{uniq('race')}"
    deltatool("write", url, "--schema", "id:string,w:int", "--mode", "append",
              rows=[{"id": "seed", "w": 0}])

    def writer(w):
        script = "".join(
            f"printf '{json.dumps({'id': f'w{w}-{i}', 'w': w})}\\n' | {DELTATOOL} write {url} "
            f"--schema id:string,w:int --mode append || exit 1\n" for i in range(6))
        return subprocess.Popen(["bash", "-c", script], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    procs = [writer(1), writer(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    rows = read_rs(s3, url)
    assert sorted(r["id"] for r in rows) == sorted(
        ["seed"] + [f"w{w}-{i}" for w in (1, 2) for i in range(6)])
    prefix = url[len(f"s3://{BUCKET}/"):]
    commits = [k for k in keys(s3, prefix + "/_delta_log/") if k.endswith(".json")]
    assert [int(os.path.basename(k)[:20]) for k in commits] == list(range(13))


def big_rows(n, width=1500):
    rnd = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
    for i in range(n):
        yield {"id": f"r{i:06d}", "blob": "".join(rnd.choice(alphabet) for _ in range(width))}


def write_big_input(path, n):
    with open(path, "w") as f:
        for r in big_rows(n):
            f.write(json.dumps(r) + "\n")


def test_large_file_goes_by_multipart_upload(s3, tmp_path):
    """A data file above the 32 MiB multipart threshold (random text does not compress)."""
    src = tmp_path / "big.ndjson"
    write_big_input(src, 26000)   # ~39 MB of incompressible text in one file
    url = f"s3://{BUCKET}/t/{uniq('big')}"
    with open(src) as f:
        r = subprocess.run([DELTATOOL, "write", url, "--schema", "id:string,blob:string",
                            "--codec", "none"], stdin=f, capture_output=True, text=True,
                           timeout=300)
    assert r.returncode == 0, r.stderr
    prefix = url[len(f"s3://{BUCKET}/"):]
    data = [k for k in keys(s3, prefix + "/") if k.endswith(".parquet")]
    assert len(data) == 1
    head = s3["client"].head_object(Bucket=BUCKET, Key=data[0])
    assert head["ContentLength"] > 32 << 20
    assert "-" in head["ETag"]   # multipart ETags are "<md5>-<parts>"
    dt = deltalake.DeltaTable(url, storage_options=storage_options(s3))
    t = rs_table(dt, columns=["id"])
    assert t.num_rows == 26000


def test_killed_writer_leaves_no_partial_object(s3, tmp_path):
    """kill -9 during a large write: whatever the moment, every visible object under the
    table is whole (Parquet footer readable) and the table, if any, reads back."""
    import pyarrow.parquet as pq
    import io
    src = tmp_path / "big.ndjson"
    write_big_input(src, 26000)
    url = f"s3://{BUCKET}/t/{uniq('kill')}"
    prefix = url[len(f"s3://{BUCKET}/"):]
    with open(src) as f:
        p = subprocess.Popen([DELTATOOL, "write", url, "--schema", "id:string,blob:string",
                              "--codec", "none"], stdin=f, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        # kill once the upload is under way (or the writer is done: then nothing to prove
        # about partial objects, the checks below still hold)
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            ups = s3["client"].list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
            if ups.get("Uploads"):
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait()
    for k in keys(s3, prefix + "/"):
        if k.endswith(".parquet"):
            body = s3["client"].get_object(Bucket=BUCKET, Key=k)["Body"].read()
            pq.ParquetFile(io.BytesIO(body)).metadata   # raises on a partial file
    commits = [k for k in keys(s3, prefix + "/_delta_log/") if k.endswith(".json")]
    if commits:
        assert len(read_rs(s3, url)) == 26000


H = {"Content-Type": "application/fhir+json"}
VIEW = {
    "resourceType": "ViewDefinition", "id": "patient_flat", "name": "patient_flat",
    "resource": "Patient", "status": "active",
    "select": [{"column": [
        {"name": "id", "path": "id"},
        {"name": "gender", "path": "gender"},
        {"name": "family_name", "path": "name.first().family"},
    ]}],
}


def put(srv, path, body):
    r = requests.put(srv.url(path), json=body, headers=H, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def export(srv, table):
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "view", "part": [
            {"name": "name", "valueString": "patient_flat"},
            {"name": "viewReference", "valueReference": {"reference": "ViewDefinition/patient_flat"}}]},
        {"name": "kind", "valueString": "data-lakehouse"},
        {"name": "tablePath", "valueString": table}]}
    return requests.post(srv.url("ViewDefinition/$viewdefinition-export"), json=body,
                         headers={**H, "Prefer": "respond-async"}, timeout=30)


def wait_done(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(url, timeout=30)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 202, r.text
        time.sleep(0.1)
    raise AssertionError("export did not finish")


def test_export_and_destination_to_s3(s3, fhir_server_factory):
    srv = fhir_server_factory()   # started after the s3 fixture set AWS_* in the environment
    put(srv, "ViewDefinition/patient_flat", VIEW)
    for i in range(5):
        put(srv, f"Patient/p{i}", {"resourceType": "Patient", "id": f"p{i}", "gender": "female",
                                   "name": [{"family": f"F{i}"}]})
    table = f"s3://{BUCKET}/t/{uniq('export')}"
    r = export(srv, table)
    assert r.status_code == 202, r.text
    m = wait_done(r.headers["Content-Location"])
    status = [p for p in m["parameter"] if p["name"] == "status"][0]["valueCode"]
    assert status == "completed", m
    rows = read_rs(s3, table)
    assert [(r["id"], r["family_name"], r["is_deleted"]) for r in rows] == [
        (f"p{i}", f"F{i}", 0) for i in range(5)]

    # bad s3 URL: refused synchronously, naming the parameter
    r = export(srv, "s3://Bad_Bucket/x")
    assert r.status_code == 400 and "bucket" in r.text.lower()

    # a topic destination writing to s3 (initial export + a live update + a delete)
    dest_table = f"s3://{BUCKET}/t/{uniq('dest')}"
    requests.post(srv.url("AidboxSubscriptionTopic"), json={
        "resourceType": "AidboxSubscriptionTopic", "url": "http://example.org/s3-topic",
        "status": "active", "trigger": [{"resource": "Patient",
                                         "supportedInteraction": ["create", "update", "delete"]}]},
        headers=H, timeout=30).raise_for_status()
    put(srv, "AidboxTopicDestination/s3d", {
        "resourceType": "AidboxTopicDestination", "id": "s3d", "topic": "http://example.org/s3-topic",
        "kind": "data-lakehouse-at-least-once", "parameter": [
            {"name": "viewDefinition", "valueString": "patient_flat"},
            {"name": "tablePath", "valueString": dest_table},
            {"name": "batchSize", "valueUnsignedInt": 10},
            {"name": "sendIntervalMs", "valueUnsignedInt": 100}]})
    put(srv, "Patient/p1", {"resourceType": "Patient", "id": "p1", "gender": "male",
                            "name": [{"family": "Changed"}]})
    assert requests.delete(srv.url("Patient/p2"), timeout=30).status_code in (200, 204)

    def current():
        try:
            return {(r["id"], r["family_name"], r["is_deleted"]) for r in read_rs(s3, dest_table)}
        except Exception:
            return set()

    deadline = time.time() + 60
    want_in = {("p1", "Changed", 0), ("p0", "F0", 0)}
    while time.time() < deadline:
        rows = current()
        if want_in <= rows and any(r[0] == "p2" and r[2] == 1 for r in rows):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"destination rows never arrived: {current()} {srv.log()[-2000:]}")


def test_export_with_endpoint_parameter_and_secret_references(s3, tmp_path):
    """No AWS_* in the server's environment: s3Endpoint, awsRegion and the credentials as
    secret references (DATA/secrets.json) carry everything; clear credentials are refused
    without being echoed; the secret never reaches the database or the log."""
    from conftest import FhirServer
    data = tmp_path / "data"
    data.mkdir()
    secret_value = "s3cr3t-" + uniq("v")
    (data / "secrets.json").write_text(json.dumps({"lake-key": KEY["AWS_ACCESS_KEY_ID"],
                                                   "lake-secret": secret_value}))
    saved = {k: os.environ.pop(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_ENDPOINT_URL", "AWS_REGION") if k in os.environ}
    try:
        srv = FhirServer(data).start()
    finally:
        os.environ.update(saved)
    try:
        put(srv, "ViewDefinition/patient_flat", VIEW)
        put(srv, "Patient/p1", {"resourceType": "Patient", "id": "p1", "name": [{"family": "A"}]})
        table = f"s3://{BUCKET}/t/{uniq('secret')}"

        def body(*extra):
            return {"resourceType": "Parameters", "parameter": [
                {"name": "view", "part": [
                    {"name": "name", "valueString": "patient_flat"},
                    {"name": "viewReference", "valueReference": {"reference": "ViewDefinition/patient_flat"}}]},
                {"name": "kind", "valueString": "data-lakehouse"},
                {"name": "tablePath", "valueString": table}] + list(extra)}

        def kick(b):
            return requests.post(srv.url("ViewDefinition/$viewdefinition-export"), json=b,
                                 headers={**H, "Prefer": "respond-async"}, timeout=30)

        ep = {"name": "s3Endpoint", "valueString": s3["endpoint"]}
        rg = {"name": "awsRegion", "valueString": "us-east-1"}
        r = kick(body(ep, rg, {"name": "awsAccessKeyId", "valueString": "AKIACLEARVALUE"},
                      {"name": "awsSecretAccessKey", "valueString": "clear-secret-value"}))
        assert r.status_code == 400 and "secret reference" in r.text, r.text
        assert "AKIACLEARVALUE" not in r.text and "clear-secret-value" not in r.text
        r = kick(body(ep, rg, {"name": "awsAccessKeyId", "valueString": "secret:lake-key"},
                      {"name": "awsSecretAccessKey", "valueString": "secret:no-such"}))
        assert r.status_code == 400 and "no-such" in r.text, r.text
        # without any credentials the export fails (asynchronously, at the first S3 call)
        r = kick(body(ep, rg))
        assert r.status_code == 202, r.text
        m = wait_done(r.headers["Content-Location"])
        assert [p for p in m["parameter"] if p["name"] == "status"][0]["valueCode"] == "failed"
        r = kick(body(ep, rg, {"name": "awsAccessKeyId", "valueString": "secret:lake-key"},
                      {"name": "awsSecretAccessKey", "valueString": "secret:lake-secret"}))
        assert r.status_code == 202, r.text
        m = wait_done(r.headers["Content-Location"])
        assert [p for p in m["parameter"] if p["name"] == "status"][0]["valueCode"] == "completed", m
        assert [(r["id"], r["family_name"]) for r in read_rs(s3, table)] == [("p1", "A")]
        srv.stop()
        for f in os.listdir(data):
            if f != "secrets.json" and os.path.isfile(data / f):
                assert secret_value.encode() not in (data / f).read_bytes(), f
    finally:
        srv.close()


def test_destination_with_secret_references_survives_restart(s3, tmp_path):
    """A topic destination on s3:// with s3Endpoint/awsRegion and secret references, in a
    server without AWS_* in its environment; after a restart it still delivers."""
    from conftest import FhirServer
    data = tmp_path / "data"
    data.mkdir()
    (data / "secrets.json").write_text(json.dumps({"k": KEY["AWS_ACCESS_KEY_ID"],
                                                   "s": KEY["AWS_SECRET_ACCESS_KEY"]}))
    saved = {k: os.environ.pop(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_ENDPOINT_URL", "AWS_REGION") if k in os.environ}
    srv = None
    try:
        srv = FhirServer(data).start()
        put(srv, "ViewDefinition/patient_flat", VIEW)
        requests.post(srv.url("AidboxSubscriptionTopic"), headers=H, timeout=30, json={
            "resourceType": "AidboxSubscriptionTopic", "url": "http://example.org/t",
            "status": "active", "trigger": [{"resource": "Patient",
                                             "supportedInteraction": ["create", "update", "delete"]}]}
        ).raise_for_status()
        table = f"s3://{BUCKET}/t/{uniq('destsecret')}"

        def dest(key_value):
            return {"resourceType": "AidboxTopicDestination", "id": "d", "topic": "http://example.org/t",
                    "kind": "data-lakehouse-at-least-once", "parameter": [
                        {"name": "viewDefinition", "valueString": "patient_flat"},
                        {"name": "tablePath", "valueString": table},
                        {"name": "s3Endpoint", "valueString": s3["endpoint"]},
                        {"name": "awsRegion", "valueString": "us-east-1"},
                        {"name": "awsAccessKeyId", "valueString": key_value},
                        {"name": "awsSecretAccessKey", "valueString": "secret:s"},
                        {"name": "sendIntervalMs", "valueUnsignedInt": 100}]}

        r = requests.put(srv.url("AidboxTopicDestination/d"), json=dest("secret:missing"), headers=H, timeout=30)
        assert r.status_code == 400 and "missing" in r.text, r.text
        put(srv, "AidboxTopicDestination/d", dest("secret:k"))
        put(srv, "Patient/a", {"resourceType": "Patient", "id": "a", "name": [{"family": "One"}]})

        def wait_for(want):
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    got = [(r["id"], r["family_name"]) for r in read_rs(s3, table)]
                    if got == want:
                        return
                except Exception:
                    pass
                time.sleep(0.2)
            raise AssertionError(f"never got {want}: {srv.log()[-1500:]}")

        wait_for([("a", "One")])
        srv.stop()
        srv.start()
        put(srv, "Patient/b", {"resourceType": "Patient", "id": "b", "name": [{"family": "Two"}]})
        wait_for([("a", "One"), ("b", "Two")])
    finally:
        os.environ.update(saved)
        if srv:
            srv.close()
