"""The article's requests, verbatim where it gives them ("How to Export FHIR Data to
Databricks Delta Lake", ../shared/article.md), against a fhirlake server with local Delta
tables: POSTed ids kept for the configuration resources, $materialize, the one-shot export
with polling, and the continuous destination with its $status. delta-rs judges the tables."""
import json
import time

import requests
from deltalake import DeltaTable

from article_data import PATIENT_FLAT_VIEW
from delta_helpers import rs_table

FHIR = {"Content-Type": "application/fhir+json"}

VIEW = dict(PATIENT_FLAT_VIEW, status="active")

PATIENT = {"resourceType": "Patient", "id": "patient-1", "gender": "male",
           "birthDate": "1990-01-15",
           "name": [{"use": "official", "family": "Smith", "given": ["John"]}]}

TOPIC = {"resourceType": "AidboxSubscriptionTopic",
         "url": "http://example.org/subscriptions/patient-updates", "status": "active",
         "trigger": [{"resource": "Patient",
                      "supportedInteraction": ["create", "update", "delete"]}]}


def rows(path):
    out = rs_table(DeltaTable(path)).to_pylist()
    return sorted(({k: v for k, v in r.items() if k != "ts"} for r in out),
                  key=lambda r: (r["id"], r["is_deleted"]))


def poll(url, deadline=30):
    end = time.time() + deadline
    while time.time() < end:
        r = requests.get(url)
        if r.status_code != 202:
            return r
        assert "X-Progress" in r.headers
        time.sleep(0.2)
    raise AssertionError("export still running after %ss" % deadline)


def test_post_keeps_ids_of_configuration_resources(fhir_server):
    r = requests.post(fhir_server.url("ViewDefinition"), headers=FHIR, data=json.dumps(VIEW))
    assert r.status_code == 201 and r.json()["id"] == "patient_flat"
    again = requests.post(fhir_server.url("ViewDefinition"), headers=FHIR, data=json.dumps(VIEW))
    assert again.status_code == 409
    assert again.json()["resourceType"] == "OperationOutcome"
    # Ordinary FHIR resources follow FHIR: the server assigns the id on POST.
    p = requests.post(fhir_server.url("Patient"), headers=FHIR, data=json.dumps(PATIENT))
    assert p.status_code == 201 and p.json()["id"] != "patient-1"


def test_one_shot_export_as_in_the_article(fhir_server):
    requests.post(fhir_server.url("ViewDefinition"), headers=FHIR,
                  data=json.dumps(VIEW)).raise_for_status()
    requests.put(fhir_server.url("Patient/patient-1"), headers=FHIR,
                 data=json.dumps(PATIENT)).raise_for_status()
    m = requests.post(fhir_server.url("ViewDefinition/patient_flat/$materialize"))
    assert m.status_code == 200
    names = {p["name"]: p for p in m.json()["parameter"]}
    assert names["viewName"]["valueString"] == "sof.patient_flat"

    kick = requests.post(
        fhir_server.url("ViewDefinition/$viewdefinition-export"),
        headers={**FHIR, "Prefer": "respond-async"},
        data=json.dumps({"resourceType": "Parameters", "parameter": [
            {"name": "view", "part": [
                {"name": "name", "valueString": "patient_flat"},
                {"name": "viewReference",
                 "valueReference": {"reference": "ViewDefinition/patient_flat"}}]},
            {"name": "kind", "valueString": "data-lakehouse"}]}))
    assert kick.status_code == 202
    loc = kick.headers["Content-Location"]
    assert "/fhir/ViewDefinition/$viewdefinition-export/status/" in loc
    done = poll(loc)
    assert done.status_code == 200
    params = {p["name"]: p for p in done.json()["parameter"]}
    assert params["status"]["valueCode"] == "completed"
    table = fhir_server.data_dir + "/lake/patient_flat"
    assert rows(table) == [{"id": "patient-1", "gender": "male",
                            "birth_date": __import__("datetime").date(1990, 1, 15),
                            "family_name": "Smith", "given_name": "John", "is_deleted": 0}]


def test_continuous_delivery_as_in_the_article(fhir_server):
    requests.post(fhir_server.url("ViewDefinition"), headers=FHIR,
                  data=json.dumps(VIEW)).raise_for_status()
    requests.post(fhir_server.url("AidboxSubscriptionTopic"), headers=FHIR,
                  data=json.dumps(TOPIC)).raise_for_status()
    table = fhir_server.data_dir + "/lake/patients"
    dest = {"resourceType": "AidboxTopicDestination", "id": "patient-databricks",
            "topic": TOPIC["url"], "kind": "data-lakehouse-at-least-once",
            "parameter": [{"name": "viewDefinition", "valueString": "patient_flat"},
                          {"name": "batchSize", "valueUnsignedInt": 50},
                          {"name": "sendIntervalMs", "valueUnsignedInt": 500},
                          {"name": "tablePath", "valueString": table}]}
    r = requests.post(fhir_server.url("AidboxTopicDestination"), headers=FHIR,
                      data=json.dumps(dest))
    assert r.status_code == 201 and r.json()["id"] == "patient-databricks"
    p = requests.post(fhir_server.url("Patient"), headers=FHIR, data=json.dumps({
        "resourceType": "Patient", "gender": "male", "birthDate": "1990-01-15",
        "name": [{"use": "official", "family": "Smith", "given": ["John"]}]}))
    pid = p.json()["id"]
    end = time.time() + 30
    while time.time() < end:
        try:
            if [r["id"] for r in rows(table)] == [pid]:
                break
        except Exception:  # the table appears with the first batch
            pass
        time.sleep(0.2)
    assert rows(table) == [{"id": pid, "gender": "male",
                            "birth_date": __import__("datetime").date(1990, 1, 15),
                            "family_name": "Smith", "given_name": "John", "is_deleted": 0}]
    st = requests.get(fhir_server.url("AidboxTopicDestination/patient-databricks/$status"))
    assert st.status_code == 200
    params = {p["name"]: p for p in st.json()["parameter"]}
    assert "messagesDelivered" in params and "initialExportStatus" in params
