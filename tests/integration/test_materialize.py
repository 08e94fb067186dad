"""test_materialize: $materialize of the article's patient_flat into DATA/sof.db, queried as
sof.patient_flat with the stock sqlite3 shell (ATTACH ... AS sof), for the three types:
view and materialized-view (refreshed on request), table (kept current after writes)."""
import os
import shutil
import subprocess
import time

import pytest
import requests

H = {"Content-Type": "application/fhir+json"}
VIEW = {
    "resourceType": "ViewDefinition", "id": "patient_flat", "name": "patient_flat",
    "resource": "Patient",
    "select": [{"column": [
        {"name": "id", "path": "id"},
        {"name": "ts", "path": "getAidboxTs()"},
        {"name": "gender", "path": "gender"},
        {"name": "birth_date", "path": "birthDate"},
        {"name": "family_name", "path": "name.where(use = 'official').family.first()"},
        {"name": "given_name", "path": "name.where(use = 'official').given.first()"},
    ]}],
}

pytestmark = pytest.mark.skipif(not shutil.which("sqlite3"), reason="sqlite3 shell missing")


def patient(pid, family="Smith", given="John"):
    return {"resourceType": "Patient", "id": pid, "gender": "male", "birthDate": "1990-01-15",
            "name": [{"use": "official", "family": family, "given": [given]}]}


def sql(srv, query):
    main = os.path.join(srv.data_dir, "fhirlake.db")
    sof = os.path.join(srv.data_dir, "sof.db")
    out = subprocess.run(["sqlite3", "-readonly", main, f"ATTACH '{sof}' AS sof", query],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return [l.split("|") for l in out.stdout.splitlines()]


def param(m, name):
    return [p for p in m["parameter"] if p["name"] == name][0]


def test_materialize_types(fhir_server):
    srv = fhir_server
    requests.put(srv.url("ViewDefinition/patient_flat"), json=VIEW, headers=H)
    requests.put(srv.url("Patient/patient-1"), json=patient("patient-1"), headers=H)
    r = requests.post(srv.url("ViewDefinition/patient_flat/$materialize"))
    assert r.status_code == 200, r.text
    m = r.json()
    assert param(m, "viewName")["valueString"] == "sof.patient_flat"
    assert param(m, "viewType")["valueCode"] == "view"
    cols = [[p for p in c["part"] if p["name"] == "name"][0]["valueString"]
            for c in param(m, "viewSchema")["part"]]
    assert cols == ["id", "ts", "gender", "birth_date", "family_name", "given_name"]
    rows = sql(srv, "SELECT id, gender, birth_date, family_name, given_name FROM sof.patient_flat")
    assert rows == [["patient-1", "male", "1990-01-15", "Smith", "John"]]
    assert sql(srv, "SELECT ts IS NOT NULL FROM sof.patient_flat") == [["1"]]

    # materialized-view: a later write shows up only after a refresh
    requests.put(srv.url("Patient/patient-2"), json=patient("patient-2", "Garcia", "Maria"), headers=H)
    body = {"resourceType": "Parameters", "parameter": [{"name": "type", "valueCode": "materialized-view"}]}
    assert sql(srv, "SELECT count(*) FROM sof.patient_flat") == [["1"]]
    r = requests.post(srv.url("ViewDefinition/patient_flat/$materialize"), json=body, headers=H)
    assert r.status_code == 200
    assert sql(srv, "SELECT count(*) FROM sof.patient_flat") == [["2"]]

    # table (type level, viewReference): follows writes and deletes
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "type", "valueCode": "table"},
        {"name": "viewReference", "valueReference": {"reference": "ViewDefinition/patient_flat"}}]}
    r = requests.post(srv.url("ViewDefinition/$materialize"), json=body, headers=H)
    assert r.status_code == 200 and param(r.json(), "viewType")["valueCode"] == "table"
    requests.put(srv.url("Patient/patient-3"), json=patient("patient-3", "Chen", "Alex"), headers=H)
    requests.put(srv.url("Patient/patient-1"), json=patient("patient-1", "Smyth"), headers=H)
    requests.delete(srv.url("Patient/patient-2"))
    want = [["patient-1", "Smyth"], ["patient-3", "Chen"]]
    deadline = time.time() + 10
    while time.time() < deadline:
        got = sql(srv, "SELECT id, family_name FROM sof.patient_flat ORDER BY id")
        if got == want:
            break
        time.sleep(0.1)
    assert got == want


def test_materialize_errors(fhir_server):
    srv = fhir_server
    requests.put(srv.url("ViewDefinition/patient_flat"), json=VIEW, headers=H)
    body = {"resourceType": "Parameters", "parameter": [{"name": "type", "valueCode": "cube"}]}
    r = requests.post(srv.url("ViewDefinition/patient_flat/$materialize"), json=body, headers=H)
    assert r.status_code == 400
    r = requests.post(srv.url("ViewDefinition/nope/$materialize"))
    assert r.status_code in (400, 404)
    r = requests.post(srv.url("ViewDefinition/$materialize"), json={"resourceType": "Parameters"}, headers=H)
    assert r.status_code == 400
