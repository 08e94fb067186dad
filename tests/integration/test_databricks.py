"""test_databricks: writeMode managed-sql (Databricks Unity Catalog) end to end against
tests/dbx_server (token endpoint + SQL Statement Execution API executing every statement
on local Spark + Delta) and the loopback S3 server of test_s3.

Unity Catalog is not run here: tests/dbx_server maps `catalog`.`schema`.`table` to the Spark
database catalog__schema (see its docstring for everything the test server cannot prove).
The SQL fhirlake sends (CREATE TABLE, DESCRIBE, ALTER TABLE ADD COLUMNS, MERGE INTO over
delta.`s3://staging`) is real Spark SQL run by a real engine, and statements are answered
asynchronously (PENDING first) so that polling is exercised.
"""
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import FhirServer
from test_s3 import BUCKET, KEY, keys, s3, uniq  # noqa: F401  (s3: the fixture)
from test_s3_spark import JAR

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLIENT_ID, CLIENT_SECRET, WAREHOUSE = "sp-fhirlake", "sp-secret-123", "wh-test"
H = {"Content-Type": "application/fhir+json"}

VIEW = {
    "resourceType": "ViewDefinition", "id": "patient_flat", "name": "patient_flat",
    "resource": "Patient", "status": "active",
    "select": [{"column": [
        {"name": "id", "path": "id"},
        {"name": "ts", "path": "getAidboxTs()"},
        {"name": "gender", "path": "gender"},
        {"name": "birth_date", "path": "birthDate", "type": "date"},
        {"name": "family_name", "path": "name.first().family"},
    ]}],
}
ARTICLE = [("patient-1", "male", "1990-01-15", "Smith"), ("patient-2", "female", "1984-07-22", "Garcia"),
           ("patient-3", "other", "2001-03-08", "Chen"), ("patient-4", "female", "1976-11-30", "Okafor")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dbx(s3, tmp_path_factory):
    pytest.importorskip("pyspark")
    if not os.path.exists(JAR):
        pytest.skip("hadoop-aws jars not fetched (scripts/setup.sh)")
    d = tmp_path_factory.mktemp("dbx")
    port = free_port()
    log = open(d / "dbx.log", "w+")
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "dbx_server", "dbx_server.py"),
                          "--port", str(port), "--s3-endpoint", s3["endpoint"],
                          "--s3-key", KEY["AWS_ACCESS_KEY_ID"], "--s3-secret", KEY["AWS_SECRET_ACCESS_KEY"],
                          "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
                          "--warehouse", WAREHOUSE, "--warehouse-dir", str(d / "warehouse"),
                          "--async-statements", "--warm"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        assert p.poll() is None, open(d / "dbx.log").read()
        try:
            if requests.get(url + "/health", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    else:
        p.kill()
        raise AssertionError("dbx server did not start: " + open(d / "dbx.log").read())
    try:
        yield {"url": url, "log": d / "dbx.log"}
    finally:
        p.terminate()
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()


def dbx_query(dbx, sql):
    tok = requests.post(dbx["url"] + "/oidc/v1/token", auth=(CLIENT_ID, CLIENT_SECRET),
                        data={"grant_type": "client_credentials", "scope": "all-apis"}).json()["access_token"]
    h = {"Authorization": "Bearer " + tok}
    r = requests.post(dbx["url"] + "/api/2.0/sql/statements", headers=h,
                      json={"warehouse_id": WAREHOUSE, "statement": sql, "wait_timeout": "30s"}).json()
    while r["status"]["state"] in ("PENDING", "RUNNING"):
        time.sleep(0.1)
        r = requests.get(dbx["url"] + "/api/2.0/sql/statements/" + r["statement_id"], headers=h).json()
    assert r["status"]["state"] == "SUCCEEDED", r
    return r["result"]["data_array"]


@pytest.fixture
def srv(dbx, tmp_path):
    saved = {k: os.environ.get(k) for k in ("FHIRLAKE_DATABRICKS_CLIENT_ID", "FHIRLAKE_DATABRICKS_CLIENT_SECRET")}
    os.environ["FHIRLAKE_DATABRICKS_CLIENT_ID"] = CLIENT_ID
    os.environ["FHIRLAKE_DATABRICKS_CLIENT_SECRET"] = CLIENT_SECRET
    s = FhirServer(tmp_path / "data").start()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    put(s, "ViewDefinition/patient_flat", VIEW)
    yield s
    s.close()


def put(srv, path, body):
    r = requests.put(srv.url(path), json=body, headers=H, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def patient(pid, gender, birth, family):
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": birth,
            "name": [{"family": family}]}


def dbx_params(dbx, table, staging, *extra, drop=()):
    p = [{"name": "view", "part": [
            {"name": "name", "valueString": "patient_flat"},
            {"name": "viewReference", "valueReference": {"reference": "ViewDefinition/patient_flat"}}]},
         {"name": "kind", "valueString": "data-lakehouse"},
         {"name": "writeMode", "valueString": "managed-sql"},
         {"name": "databricksWorkspaceUrl", "valueString": dbx["url"]},
         {"name": "databricksWarehouseId", "valueString": WAREHOUSE},
         {"name": "tableName", "valueString": table},
         {"name": "awsRegion", "valueString": "us-east-1"},
         {"name": "stagingTablePath", "valueString": staging}]
    p = [x for x in p if x["name"] not in drop] + list(extra)
    return {"resourceType": "Parameters", "parameter": p}


def kick_off(srv, body):
    return requests.post(srv.url("ViewDefinition/$viewdefinition-export"), json=body,
                         headers={**H, "Prefer": "respond-async"}, timeout=60)


def run_export(srv, body):
    r = kick_off(srv, body)
    assert r.status_code == 202, r.text
    deadline = time.time() + 180
    while time.time() < deadline:
        s = requests.get(r.headers["Content-Location"], timeout=30)
        if s.status_code == 200:
            m = s.json()
            assert [p for p in m["parameter"] if p["name"] == "status"][0]["valueCode"] == "completed", m
            return m
        assert s.status_code == 202, s.text
        time.sleep(0.2)
    raise AssertionError("export did not finish")


def test_one_shot_export_then_since_round(srv, dbx, s3):
    for p in ARTICLE:
        put(srv, "Patient/" + p[0], patient(*p))
    schema = uniq("fhir").replace("-", "_")
    table = f"main.{schema}.patient_flat"
    staging = f"s3://{BUCKET}/staging/{schema}"
    m = run_export(srv, dbx_params(dbx, table, staging))
    out = [p for p in m["parameter"] if p["name"] == "output"][0]["part"]
    assert [p for p in out if p["name"] == "location"][0]["valueUri"] == "databricks-uc:" + table
    q = f"SELECT id, gender, CAST(birth_date AS STRING), family_name, is_deleted FROM `main`.`{schema}`.`patient_flat` ORDER BY id"
    assert dbx_query(dbx, q) == [[a, b, c, d, "0"] for a, b, c, d in ARTICLE]
    assert keys(s3, f"staging/{schema}/") == []   # staging removed after the MERGE
    end1 = [p for p in m["parameter"] if p["name"] == "exportEndTime"][0]["valueInstant"]

    put(srv, "Patient/patient-2", patient("patient-2", "female", "1984-07-22", "Garcia-Lopez"))
    assert requests.delete(srv.url("Patient/patient-3"), timeout=30).status_code in (200, 204)
    run_export(srv, dbx_params(dbx, table, staging, {"name": "_since", "valueInstant": end1}))
    rows = dbx_query(dbx, q)
    assert ["patient-2", "female", "1984-07-22", "Garcia-Lopez", "0"] in rows
    assert ["patient-3", None, None, None, "1"] in rows
    assert len(rows) == 4

    # a full export later: a resource deleted meanwhile becomes a tombstone (is_deleted = 1),
    # and the service-principal token is reused, not fetched per statement
    assert requests.delete(srv.url("Patient/patient-4"), timeout=30).status_code in (200, 204)
    before = requests.get(dbx["url"] + "/test/log").json()["token_requests"]
    run_export(srv, dbx_params(dbx, table, staging))
    assert requests.get(dbx["url"] + "/test/log").json()["token_requests"] == before
    rows = dbx_query(dbx, q)
    assert [r[0] for r in rows if r[4] == "1"] == ["patient-3", "patient-4"]
    assert ["patient-1", "male", "1990-01-15", "Smith", "0"] in rows and len(rows) == 4


def test_one_shot_export_several_views(srv, dbx, s3):
    """Several views in one managed-sql export: tableName catalog.schema, each view merged
    into catalog.schema.<view name> (one MERGE per view, all read at one snapshot)."""
    put(srv, "ViewDefinition/patient_gender", {
        "resourceType": "ViewDefinition", "id": "patient_gender", "name": "patient_gender",
        "resource": "Patient", "status": "active",
        "select": [{"column": [{"name": "id", "path": "id"}, {"name": "gender", "path": "gender"}]}]})
    for p in ARTICLE:
        put(srv, "Patient/" + p[0], patient(*p))
    schema = uniq("multi").replace("-", "_")
    body = dbx_params(dbx, f"main.{schema}", f"s3://{BUCKET}/staging/{schema}")
    body["parameter"].insert(1, {"name": "view", "part": [
        {"name": "name", "valueString": "patient_gender"},
        {"name": "viewReference", "valueReference": {"reference": "ViewDefinition/patient_gender"}}]})
    m = run_export(srv, body)
    locs = sorted(p2["valueUri"] for p in m["parameter"] if p["name"] == "output"
                  for p2 in p["part"] if p2["name"] == "location")
    assert locs == [f"databricks-uc:main.{schema}.patient_flat", f"databricks-uc:main.{schema}.patient_gender"]
    assert dbx_query(dbx, f"SELECT id, gender, is_deleted FROM `main`.`{schema}`.`patient_gender` ORDER BY id") == \
        [[a, b, "0"] for a, b, _, _ in ARTICLE]
    assert dbx_query(dbx, f"SELECT id, family_name FROM `main`.`{schema}`.`patient_flat` ORDER BY id") == \
        [[a, d] for a, _, _, d in ARTICLE]
    assert keys(s3, f"staging/{schema}/") == []
    r = kick_off(srv, dbx_params(dbx, f"main.{schema}.one_table", f"s3://{BUCKET}/staging/{schema}",
                                 *[p for p in body["parameter"] if p["name"] == "view"][1:]))
    assert r.status_code == 400 and "tableName" in r.text, r.text   # two views, one table


def test_bad_parameters_fail_synchronously(srv, dbx):
    good = ("main.s.t", f"s3://{BUCKET}/staging/x")

    def bad(body, word):
        r = kick_off(srv, body)
        assert r.status_code == 400, r.text
        assert word in r.text, r.text

    bad(dbx_params(dbx, *good, drop=("databricksWarehouseId",)), "databricksWarehouseId")
    bad(dbx_params(dbx, "s.t", good[1]), "tableName")
    bad(dbx_params(dbx, good[0], "/tmp/staging"), "stagingTablePath")
    bad(dbx_params(dbx, *good, drop=("databricksWorkspaceUrl",)), "databricksWorkspaceUrl")


def test_token_endpoint_refusing(dbx, tmp_path):
    os.environ["FHIRLAKE_DATABRICKS_CLIENT_ID"] = CLIENT_ID
    os.environ["FHIRLAKE_DATABRICKS_CLIENT_SECRET"] = "wrong-secret"
    try:
        s = FhirServer(tmp_path / "data").start()
    finally:
        os.environ.pop("FHIRLAKE_DATABRICKS_CLIENT_ID", None)
        os.environ.pop("FHIRLAKE_DATABRICKS_CLIENT_SECRET", None)
    try:
        put(s, "ViewDefinition/patient_flat", VIEW)
        r = kick_off(s, dbx_params(dbx, "main.s.t", f"s3://{BUCKET}/staging/x"))
        assert r.status_code == 502, r.text   # the workspace refused: a gateway error, at once
        assert "invalid_client" in r.text and "wrong-secret" not in r.text
        assert "wrong-secret" not in s.log()
    finally:
        s.close()


def wait_rows(dbx, q, cond, what, timeout=120):
    deadline = time.time() + timeout
    rows = None
    while time.time() < deadline:
        try:
            rows = dbx_query(dbx, q)
        except AssertionError:   # table not created yet
            rows = None
        if rows is not None and cond(rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"{what}: last rows {rows}")


def start_env(s, **env):
    """(Re)starts server s with the service principal and extra environment variables."""
    env = dict(env, FHIRLAKE_DATABRICKS_CLIENT_ID=CLIENT_ID, FHIRLAKE_DATABRICKS_CLIENT_SECRET=CLIENT_SECRET)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return s.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_destination(srv, dbx, schema, dest_id, *extra):
    r = requests.post(srv.url("AidboxSubscriptionTopic"), headers=H, timeout=30, json={
        "resourceType": "AidboxSubscriptionTopic", "url": "http://example.org/dbx-topic",
        "status": "active", "trigger": [{"resource": "Patient",
                                         "supportedInteraction": ["create", "update", "delete"]}]})
    assert r.status_code == 201, r.text
    params = [("viewDefinition", "patient_flat"), ("writeMode", "managed-sql"),
              ("databricksWorkspaceUrl", dbx["url"]), ("databricksWarehouseId", WAREHOUSE),
              ("tableName", f"main.{schema}.patient_flat"), ("awsRegion", "us-east-1"),
              ("stagingTablePath", f"s3://{BUCKET}/staging/{schema}")] + list(extra)
    dest = {"resourceType": "AidboxTopicDestination", "id": dest_id, "topic": "http://example.org/dbx-topic",
            "kind": "data-lakehouse-at-least-once",
            "parameter": [{"name": k, "valueString": v} for k, v in params] +
                         [{"name": "batchSize", "valueUnsignedInt": 50},
                          {"name": "sendIntervalMs", "valueUnsignedInt": 200}]}
    bad = dict(dest, id=dest_id + "-bad",
               parameter=[p for p in dest["parameter"] if p["name"] != "databricksWarehouseId"])
    r = requests.put(srv.url(f"AidboxTopicDestination/{dest_id}-bad"), json=bad, headers=H, timeout=60)
    assert r.status_code == 400 and "databricksWarehouseId" in r.text, r.text
    put(srv, f"AidboxTopicDestination/{dest_id}", dest)


def test_continuous_destination_current(srv, dbx, s3):
    """tableMode current: the Databricks table keeps the current row set of each resource
    (initial export, then live creates/updates/deletes merged per key)."""
    for p in ARTICLE[:2]:
        put(srv, "Patient/" + p[0], patient(*p))
    schema = uniq("live").replace("-", "_")
    make_destination(srv, dbx, schema, "dbx", ("tableMode", "current"))
    q = f"SELECT id, family_name, is_deleted FROM `main`.`{schema}`.`patient_flat` ORDER BY id"
    wait_rows(dbx, q, lambda rows: rows == [["patient-1", "Smith", "0"], ["patient-2", "Garcia", "0"]],
              "initial export")
    put(srv, "Patient/patient-3", patient(*ARTICLE[2]))
    put(srv, "Patient/patient-1", patient("patient-1", "male", "1990-01-15", "Smith-Jones"))
    assert requests.delete(srv.url("Patient/patient-2"), timeout=30).status_code in (200, 204)
    want = [["patient-1", "Smith-Jones", "0"], ["patient-2", None, "1"], ["patient-3", "Chen", "0"]]
    wait_rows(dbx, q, lambda rows: rows == want, "live batches")


def test_continuous_destination_append_exactly_once(dbx, s3, tmp_path):
    """The article's continuous flow with the default tableMode append: the initial export,
    then every live create/update/delete appends its row set (deletes as is_deleted = 1
    tombstones). The server kills itself (FL_SUBS_KILL_AFTER_COMMIT=2) right after the
    first live batch reached Databricks and before its position was saved: on restart the
    batch is replayed and, recognised by its batch tag, lands once."""
    s = FhirServer(tmp_path / "data")
    start_env(s, FL_SUBS_KILL_AFTER_COMMIT="2")
    try:
        put(s, "ViewDefinition/patient_flat", VIEW)
        for p in ARTICLE[:2]:
            put(s, "Patient/" + p[0], patient(*p))
        schema = uniq("app").replace("-", "_")
        make_destination(s, dbx, schema, "dbx-app")
        q = (f"SELECT id, family_name, is_deleted FROM `main`.`{schema}`.`patient_flat` "
             "ORDER BY id, ts, is_deleted")
        wait_rows(dbx, q, lambda rows: rows == [["patient-1", "Smith", "0"], ["patient-2", "Garcia", "0"]],
                  "initial export")
        put(s, "Patient/patient-3", patient(*ARTICLE[2]))   # batch 2: applied, then the crash
        deadline = time.time() + 120
        while s.proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert s.proc.poll() is not None, "the injected crash did not happen"
        s.kill9()
        start_env(s)
        put(s, "Patient/patient-1", patient("patient-1", "male", "1990-01-15", "Smith-Jones"))
        assert requests.delete(s.url("Patient/patient-2"), timeout=30).status_code in (200, 204)
        want = [["patient-1", "Smith", "0"], ["patient-1", "Smith-Jones", "0"],
                ["patient-2", "Garcia", "0"], ["patient-2", None, "1"], ["patient-3", "Chen", "0"]]
        wait_rows(dbx, q, lambda rows: rows == want, "appended live batches")
        # batch tags: one per delivered batch, sent as a statement parameter, never in the SQL
        tags = dbx_query(dbx, f"SELECT DISTINCT `_fhirlake_batch` FROM `main`.`{schema}`.`patient_flat`")
        assert all(t[0].startswith("dbx-app#") for t in tags) and len(tags) >= 3, tags
        log = requests.get(dbx["url"] + "/test/log").json()
        merges = [(q, p) for q, p in zip(log["executed"], log["params"])
                  if q.startswith("MERGE") and schema in q]
        assert merges and all(p.get("batch", "").startswith("dbx-app#") and "dbx-app#" not in q
                              for q, p in merges), merges
    finally:
        s.close()


def test_databricks_errors_surface_in_status(srv, dbx):
    """An unknown warehouse passes the synchronous checks (fhirlake cannot list warehouses
    without extra permissions) and fails the job with the Databricks error code."""
    put(srv, "Patient/e1", patient("e1", "male", "1990-01-01", "Err"))
    body = dbx_params(dbx, "main.errs.t", f"s3://{BUCKET}/staging/errs", drop=("databricksWarehouseId",))
    body["parameter"].append({"name": "databricksWarehouseId", "valueString": "no-such-warehouse"})
    r = kick_off(srv, body)
    assert r.status_code == 202, r.text
    deadline = time.time() + 120
    while time.time() < deadline:
        s = requests.get(r.headers["Content-Location"], timeout=30)
        if s.status_code != 202:
            break
        time.sleep(0.2)
    text = s.text
    assert "failed" in text and "RESOURCE_DOES_NOT_EXIST" in text, text
