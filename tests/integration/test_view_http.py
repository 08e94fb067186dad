"""test_view_http: ViewDefinition CRUD validation (400/422 OperationOutcome naming the element)
and $viewdefinition-run / $run at system, type and instance level — viewReference,
viewResource, inline resources, _format json/ndjson/csv/parquet, header, _limit, _since,
patient — against a real `fhirlake serve`."""
import io
import json

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
    ]}],
}


def patient(pid, gender="male", family="Smith"):
    return {"resourceType": "Patient", "id": pid, "gender": gender, "birthDate": "1990-01-15",
            "name": [{"use": "official", "family": family, "given": ["John"]}]}


@pytest.fixture(scope="module")
def srv(fhir_server_module):
    s = fhir_server_module
    assert requests.put(s.url("ViewDefinition/patient_flat"), json=VIEW, headers=H).status_code in (200, 201)
    for i in range(5):
        r = requests.put(s.url(f"Patient/p{i}"), json=patient(f"p{i}", "female" if i % 2 else "male"), headers=H)
        assert r.status_code in (200, 201)
    obs = {"resourceType": "Observation", "id": "o1", "status": "final",
           "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}
    requests.put(s.url("Observation/o1"), json=obs, headers=H)
    return s


def outcome_where(r):
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    return json.dumps(oo["issue"][0].get("expression", [])) + oo["issue"][0].get("diagnostics", "")


def test_create_validates_view(srv):
    bad = dict(VIEW, id="bad1", select=[{"column": [{"name": "a", "path": "id"}, {"name": "a", "path": "gender"}]}])
    r = requests.put(srv.url("ViewDefinition/bad1"), json=bad, headers=H)
    assert r.status_code in (400, 422), r.text
    assert "duplicate" in outcome_where(r) and "select" in outcome_where(r)
    bad_name = dict(VIEW, id="bad1", select=[{"column": [{"name": "a", "path": "id"}, {"name": "no good", "path": "gender"}]}])
    r = requests.put(srv.url("ViewDefinition/bad1"), json=bad_name, headers=H)
    assert r.status_code in (400, 422), r.text
    assert "select[0].column[1].name" in outcome_where(r)
    bad2 = dict(VIEW, select=[{"column": [{"name": "a", "path": "name.where("}]}])
    bad2.pop("id")
    r = requests.post(srv.url("ViewDefinition"), json=bad2, headers=H)
    assert r.status_code == 400, r.text
    assert "select[0].column[0]" in outcome_where(r)
    # nothing was stored
    assert requests.get(srv.url("ViewDefinition/bad1")).status_code == 404
    # a valid update goes through
    assert requests.put(srv.url("ViewDefinition/patient_flat"), json=VIEW, headers=H).status_code == 200


def test_run_levels_and_formats(srv):
    r = requests.get(srv.url("ViewDefinition/patient_flat/$run"))
    assert r.status_code == 200, r.text
    rows = r.json()
    assert sorted(x["id"] for x in rows) == [f"p{i}" for i in range(5)]
    assert all(x["family_name"] == "Smith" and x["ts"] for x in rows)
    r = requests.get(srv.url("ViewDefinition/$viewdefinition-run"),
                     params={"viewReference": "ViewDefinition/patient_flat", "_format": "ndjson"})
    assert r.status_code == 200
    assert len([json.loads(l) for l in r.text.splitlines() if l]) == 5
    r = requests.get(srv.url("$viewdefinition-run"),
                     params={"viewReference": "ViewDefinition/patient_flat", "_format": "csv"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == "id,ts,gender,birth_date,family_name" and len(lines) == 6
    r = requests.get(srv.url("ViewDefinition/patient_flat/$run"), params={"_format": "csv", "header": "false"})
    assert len(r.text.splitlines()) == 5
    r = requests.get(srv.url("ViewDefinition/patient_flat/$viewdefinition-run"), params={"_format": "parquet"})
    assert r.status_code == 200
    pq = pytest.importorskip("pyarrow.parquet")
    t = pq.read_table(io.BytesIO(r.content))
    assert t.num_rows == 5 and t.column_names == ["id", "ts", "gender", "birth_date", "family_name"]


def test_run_limit_since_patient(srv):
    r = requests.get(srv.url("ViewDefinition/patient_flat/$run"), params={"_limit": "2"})
    assert len(r.json()) == 2
    rows = requests.get(srv.url("ViewDefinition/patient_flat/$run")).json()
    cut = sorted(x["ts"] for x in rows)[2]
    r = requests.get(srv.url("ViewDefinition/patient_flat/$run"), params={"_since": cut})
    assert len(r.json()) == 2  # strictly after the third commit
    r = requests.get(srv.url("ViewDefinition/patient_flat/$run"), params={"patient": "Patient/p3"})
    assert [x["id"] for x in r.json()] == ["p3"]
    obs_view = {"resourceType": "ViewDefinition", "resource": "Observation",
                "select": [{"column": [{"name": "id", "path": "id"},
                                       {"name": "subject", "path": "subject.reference"}]}]}
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "viewResource", "resource": obs_view},
        {"name": "patient", "valueReference": {"reference": "Patient/p1"}}]}
    r = requests.post(srv.url("ViewDefinition/$run"), json=body, headers=H)
    assert r.json() == [{"id": "o1", "subject": "Patient/p1"}]
    body["parameter"][1] = {"name": "patient", "valueReference": {"reference": "Patient/p2"}}
    assert requests.post(srv.url("ViewDefinition/$run"), json=body, headers=H).json() == []


def test_run_inline_resources(srv):
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "viewResource", "resource": VIEW},
        {"name": "_format", "valueCode": "json"},
        {"name": "resource", "resource": patient("inline-1", family="Doe")},
        {"name": "resource", "resource": patient("inline-2", family="Roe")}]}
    r = requests.post(srv.url("ViewDefinition/$viewdefinition-run"), json=body, headers=H)
    assert r.status_code == 200, r.text
    assert [(x["id"], x["family_name"]) for x in r.json()] == [("inline-1", "Doe"), ("inline-2", "Roe")]


def test_run_errors(srv):
    r = requests.get(srv.url("ViewDefinition/$run"))
    assert r.status_code == 400 and "view" in outcome_where(r).lower()
    r = requests.get(srv.url("ViewDefinition/$run"), params={"viewReference": "ViewDefinition/missing"})
    assert r.status_code == 400 and "viewReference" in outcome_where(r)
    r = requests.get(srv.url("ViewDefinition/patient_flat/$run"), params={"_format": "xml"})
    assert r.status_code == 400 and "_format" in outcome_where(r)
    r = requests.get(srv.url("ViewDefinition/patient_flat/$run"), params={"_limit": "-1"})
    assert r.status_code == 400 and "_limit" in outcome_where(r)
    r = requests.get(srv.url("ViewDefinition/patient_flat/$run"), params={"_since": "nope"})
    assert r.status_code == 400 and "_since" in outcome_where(r)
    bad = dict(VIEW, select=[{"column": [{"name": "g", "path": "name.given"}]}])  # not singleton
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "viewResource", "resource": bad},
        {"name": "resource", "resource": patient("x")}]}
    body["parameter"][1]["resource"]["name"][0]["given"] = ["A", "B"]
    r = requests.post(srv.url("ViewDefinition/$run"), json=body, headers=H)
    assert r.status_code == 422, r.text
    assert "resource[0]" in outcome_where(r)
    r = requests.post(srv.url("ViewDefinition/$run"), data="{not json", headers=H)
    assert r.status_code == 400
