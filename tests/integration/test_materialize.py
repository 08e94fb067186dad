"""test_materialize: $materialize of the article's patient_flat into DATA/sof.db, queried as
sof.patient_flat with the stock sqlite3 shell (ATTACH ... AS sof), for the three types:
view and materialized-view (refreshed on request), table (kept current inside every write:
immediately visible, healed at start after kill -9 / when sof.db is behind or ahead, a write
the view cannot evaluate is refused)."""
import os
import shutil
import subprocess
import random
import threading
import time

import pytest
import requests

H = {"Content-Type": "application/fhir+json"}
from article_data import PATIENT_FLAT_VIEW as VIEW  # noqa: E402

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
    wm0 = int(sql(srv, "SELECT watermark FROM sof._fhirlake_views WHERE name = 'patient_flat'")[0][0])
    requests.put(srv.url("Patient/patient-3"), json=patient("patient-3", "Chen", "Alex"), headers=H)
    requests.put(srv.url("Patient/patient-1"), json=patient("patient-1", "Smyth"), headers=H)
    requests.delete(srv.url("Patient/patient-2"))
    # kept in the write's transaction: current as soon as each write is acknowledged
    want = [["patient-1", "Smyth"], ["patient-3", "Chen"]]
    assert sql(srv, "SELECT id, family_name FROM sof.patient_flat ORDER BY id") == want
    wm = int(sql(srv, "SELECT watermark FROM sof._fhirlake_views WHERE name = 'patient_flat'")[0][0])
    assert wm > wm0  # the watermark follows the writes (ts of the last one applied)


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


def table_body(name):
    return {"resourceType": "Parameters", "parameter": [
        {"name": "type", "valueCode": "table"},
        {"name": "viewReference", "valueReference": {"reference": f"ViewDefinition/{name}"}}]}


def check_equals_view(srv, name="patient_flat"):
    """sof.<name> (the table) equals the view over the store now: a fresh
    materialized-view of the same view under another name, compared row by row."""
    check = dict(VIEW, id="flat_check", name="flat_check")
    assert requests.put(srv.url("ViewDefinition/flat_check"), json=check, headers=H).status_code in (200, 201)
    body = {"resourceType": "Parameters", "parameter": [{"name": "type", "valueCode": "materialized-view"}]}
    r = requests.post(srv.url("ViewDefinition/flat_check/$materialize"), json=body, headers=H)
    assert r.status_code == 200, r.text
    cols = "id, ts, gender, birth_date, family_name, given_name"
    got = sql(srv, f"SELECT {cols} FROM sof.{name} ORDER BY id")
    want = sql(srv, f"SELECT {cols} FROM sof.flat_check ORDER BY id")
    assert got == want
    return got


def test_table_after_kill9_during_writes(fhir_server):
    """kill -9 while writers hammer Patients: after the restart sof.patient_flat equals the
    view over the store (rows, ts), whatever write the kill cut."""
    srv = fhir_server
    requests.put(srv.url("ViewDefinition/patient_flat"), json=VIEW, headers=H)
    for i in range(20):
        requests.put(srv.url(f"Patient/k{i}"), json=patient(f"k{i}"), headers=H)
    r = requests.post(srv.url("ViewDefinition/$materialize"), json=table_body("patient_flat"), headers=H)
    assert r.status_code == 200, r.text
    stop = threading.Event()
    done = [0]

    def writer(seed):
        rnd = random.Random(seed)
        s = requests.Session()
        while not stop.is_set():
            pid = f"k{rnd.randrange(40)}"
            try:
                if rnd.random() < 0.2:
                    s.delete(srv.url(f"Patient/{pid}"), timeout=5)
                else:
                    s.put(srv.url(f"Patient/{pid}"), json=patient(pid, f"F{rnd.randrange(1000)}"),
                          headers=H, timeout=5)
                done[0] += 1
            except requests.RequestException:
                return

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + 20
    while done[0] < 300 and time.time() < deadline:
        time.sleep(0.05)
    srv.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert done[0] >= 300
    srv.start()
    rows = check_equals_view(srv)
    assert len(rows) > 0
    # still followed after the restart
    requests.put(srv.url("Patient/k-new"), json=patient("k-new", "After"), headers=H)
    assert sql(srv, "SELECT family_name FROM sof.patient_flat WHERE id = 'k-new'") == [["After"]]


def test_table_behind_is_reconciled_at_start(fhir_server):
    """The state a crash between the fhirlake.db and sof.db commits leaves (sof.db behind:
    rows and watermark of the last writes missing) heals at the next start."""
    srv = fhir_server
    requests.put(srv.url("ViewDefinition/patient_flat"), json=VIEW, headers=H)
    requests.put(srv.url("Patient/a"), json=patient("a", "Old"), headers=H)
    r = requests.post(srv.url("ViewDefinition/$materialize"), json=table_body("patient_flat"), headers=H)
    assert r.status_code == 200, r.text
    wm = sql(srv, "SELECT watermark FROM sof._fhirlake_views WHERE name = 'patient_flat'")[0][0]
    requests.put(srv.url("Patient/a"), json=patient("a", "New"), headers=H)
    requests.put(srv.url("Patient/b"), json=patient("b", "Bee"), headers=H)
    requests.put(srv.url("Patient/c"), json=patient("c", "Cee"), headers=H)
    requests.delete(srv.url("Patient/c"))
    srv.stop()
    # roll sof.db back to the state before those writes, as a lost sof.db commit would
    sof = os.path.join(srv.data_dir, "sof.db")
    out = subprocess.run(["sqlite3", sof,
                          "UPDATE patient_flat SET family_name = 'Old' WHERE id = 'a'",
                          "DELETE FROM patient_flat WHERE id = 'b'",
                          "INSERT INTO patient_flat(id, family_name) VALUES ('c', 'Cee')",
                          f"UPDATE _fhirlake_views SET watermark = {wm}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    srv.start()
    rows = check_equals_view(srv)
    assert [(r[0], r[4]) for r in rows] == [("a", "New"), ("b", "Bee")]


def test_table_needs_key(fhir_server):
    srv = fhir_server
    view = dict(VIEW, id="nokey", name="nokey",
                select=[{"column": [{"name": "gender", "path": "gender"}]}])
    requests.put(srv.url("ViewDefinition/nokey"), json=view, headers=H)
    r = requests.post(srv.url("ViewDefinition/$materialize"), json=table_body("nokey"), headers=H)
    assert r.status_code == 400 and "key" in r.text


def test_table_ahead_is_refilled_at_start(fhir_server):
    """After a power loss sof.db (whose WAL the store does not fsync) can keep a commit the
    store lost: a watermark past the store's newest ts refills the table at start."""
    srv = fhir_server
    requests.put(srv.url("ViewDefinition/patient_flat"), json=VIEW, headers=H)
    requests.put(srv.url("Patient/a"), json=patient("a", "Real"), headers=H)
    r = requests.post(srv.url("ViewDefinition/$materialize"), json=table_body("patient_flat"), headers=H)
    assert r.status_code == 200, r.text
    srv.stop()
    sof = os.path.join(srv.data_dir, "sof.db")
    out = subprocess.run(["sqlite3", sof,
                          "UPDATE patient_flat SET family_name = 'Lost' WHERE id = 'a'",
                          "INSERT INTO patient_flat(id, family_name) VALUES ('ghost', 'Lost')",
                          "UPDATE _fhirlake_views SET watermark = 9000000000000000"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    srv.start()
    rows = check_equals_view(srv)
    assert [(r[0], r[4]) for r in rows] == [("a", "Real")]


def test_table_view_failing_fails_the_write(fhir_server):
    """The table must equal the view over the store: a write the view cannot evaluate (a
    single-valued column meeting two values) is refused and nothing of it is stored."""
    srv = fhir_server
    view = {"resourceType": "ViewDefinition", "id": "fam", "name": "fam", "resource": "Patient",
            "select": [{"column": [{"name": "id", "path": "id"}, {"name": "family", "path": "name.family"}]}]}
    requests.put(srv.url("ViewDefinition/fam"), json=view, headers=H)
    r = requests.post(srv.url("ViewDefinition/$materialize"), json=table_body("fam"), headers=H)
    assert r.status_code == 200, r.text
    two = {"resourceType": "Patient", "id": "two", "name": [{"family": "A"}, {"family": "B"}]}
    r = requests.put(srv.url("Patient/two"), json=two, headers=H)
    assert r.status_code == 422 and "fam" in r.text
    assert requests.get(srv.url("Patient/two")).status_code == 404
    one = {"resourceType": "Patient", "id": "one", "name": [{"family": "A"}]}
    assert requests.put(srv.url("Patient/one"), json=one, headers=H).status_code == 201
    assert sql(srv, "SELECT id, family FROM sof.fam") == [["one", "A"]]
