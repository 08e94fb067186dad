"""Continuous delivery (issue 6): AidboxSubscriptionTopic + AidboxTopicDestination of kind
data-lakehouse-at-least-once keep a Delta table (read with delta-rs) in step with every
create, update and delete; initial export; validation; $status; crash + restart.

No timing assertions beyond generous deadlines: every wait polls until a condition holds.
"""
import datetime
import json
import os
import threading
import time

import pytest
import requests
from collections import Counter

deltalake = pytest.importorskip("deltalake")
from delta_helpers import rs_table  # noqa: E402

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
TOPIC_URL = "http://example.org/subscriptions/patient-updates"

VIEW = {
    "resourceType": "ViewDefinition",
    "name": "patient_flat",
    "resource": "Patient",
    "status": "active",
    "select": [{"column": [
        {"name": "id", "path": "id"},
        {"name": "ts", "path": "getAidboxTs()"},
        {"name": "gender", "path": "gender"},
        {"name": "birth_date", "path": "birthDate"},
        {"name": "family_name", "path": "name.first().family"},
        {"name": "given_name", "path": "name.first().given.first()"},
    ]}],
}

TOPIC = {
    "resourceType": "AidboxSubscriptionTopic",
    "url": TOPIC_URL,
    "status": "active",
    "trigger": [{"resource": "Patient",
                 "supportedInteraction": ["create", "update", "delete"]}],
}


def dest(id_, **params):
    p = {"viewDefinition": "patient_flat", "batchSize": 50, "sendIntervalMs": 200}
    p.update(params)
    out = []
    for k, v in p.items():
        if isinstance(v, bool):
            out.append({"name": k, "valueBoolean": v})
        elif isinstance(v, int):
            out.append({"name": k, "valueUnsignedInt": v})
        else:
            out.append({"name": k, "valueString": v})
    return {"resourceType": "AidboxTopicDestination", "id": id_, "topic": TOPIC_URL,
            "kind": "data-lakehouse-at-least-once", "parameter": out}


def put(srv, path, body):
    r = requests.put(srv.url(path), json=body, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def post(srv, type_, body):
    r = requests.post(srv.url(type_), json=body, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def setup_view_topic(srv):
    put(srv, "ViewDefinition/patient_flat", dict(VIEW, id="patient_flat"))
    post(srv, "AidboxSubscriptionTopic", TOPIC)


def patient(i, family="Smith"):
    return {"resourceType": "Patient", "gender": "male", "birthDate": "1990-01-15",
            "name": [{"use": "official", "family": family, "given": [f"John{i}"]}]}


def table_rows(path):
    if not os.path.exists(os.path.join(path, "_delta_log")):
        return []
    try:
        return rs_table(deltalake.DeltaTable(path)).to_pylist()
    except Exception:  # table not created yet
        return []


def wait_for(cond, deadline_s=30, what="condition"):
    end = time.time() + deadline_s
    last = None
    while time.time() < end:
        last = cond()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def ts_us(text):
    d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt_us(d)


def dt_us(d):
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return (d - EPOCH) // datetime.timedelta(microseconds=1)


def history(srv, type_):
    """Every version of every resource of a type: (id, ts_us, deleted)."""
    out, offset = [], 0
    while True:
        b = requests.get(srv.url(f"{type_}/_history"),
                         params={"_count": 1000, "_offset": offset}, timeout=60).json()
        entries = b.get("entry", [])
        for e in entries:
            pid = e["fullUrl"].rsplit("/", 1)[1]
            out.append((pid, ts_us(e["response"]["lastModified"]),
                        e["request"]["method"] == "DELETE"))
        if len(entries) < 1000:
            return out
        offset += 1000


def status(srv, id_):
    r = requests.get(srv.url(f"AidboxTopicDestination/{id_}/$status"), timeout=30)
    assert r.status_code == 200, r.text
    out = {}
    for p in r.json()["parameter"]:
        out[p["name"]] = p.get("valueInteger", p.get("valueString"))
    return out


def lake(srv, name="patient_flat"):
    return os.path.join(srv.data_dir, "lake", name)


def test_continuous_flow(fhir_server):
    srv = fhir_server
    setup_view_topic(srv)
    put(srv, "AidboxTopicDestination/patient-lake", dest("patient-lake"))
    p = post(srv, "Patient", patient(1))
    pid = p["id"]
    rows = wait_for(lambda: [r for r in table_rows(lake(srv)) if r["id"] == pid],
                    deadline_s=0.2 + 10, what="created row")
    assert rows[0]["family_name"] == "Smith" and rows[0]["is_deleted"] == 0
    assert rows[0]["gender"] == "male"
    # update -> a second row set, delete -> a tombstone
    p["name"][0]["family"] = "Jones"
    put(srv, f"Patient/{pid}", p)
    wait_for(lambda: any(r["family_name"] == "Jones" for r in table_rows(lake(srv))),
             what="update row")
    assert requests.delete(srv.url(f"Patient/{pid}")).status_code in (200, 204)
    rows = wait_for(lambda: [r for r in table_rows(lake(srv)) if r["is_deleted"] == 1],
                    what="tombstone")
    assert rows[0]["id"] == pid and rows[0]["ts"] is not None
    assert len([r for r in table_rows(lake(srv)) if r["id"] == pid]) == 3
    st = wait_for(lambda: (s := status(srv, "patient-lake"))["messagesDelivered"] == 3 and s,
                  what="status counters")
    assert st["initialExportStatus"] == "completed"
    assert st["messagesQueued"] == 0 and st["messagesDeliveryAttempts"] >= 1
    # every Delta commit of a batch carries the destination's txn
    log = os.path.join(lake(srv), "_delta_log")
    txns = [l for f in sorted(os.listdir(log)) if f.endswith(".json")
            for l in open(os.path.join(log, f)) if '"txn"' in l]
    assert txns and all('"appId":"patient-lake"' in t for t in txns)


def test_initial_export_and_skip(fhir_server):
    srv = fhir_server
    setup_view_topic(srv)
    ids = [post(srv, "Patient", patient(i))["id"] for i in range(30)]
    requests.delete(srv.url(f"Patient/{ids[0]}"))
    put(srv, "AidboxTopicDestination/full", dest("full", tablePath=lake(srv, "full")))
    put(srv, "AidboxTopicDestination/skip",
        dest("skip", tablePath=lake(srv, "skip"), skipInitialExport=True))
    rows = wait_for(lambda: len(table_rows(lake(srv, "full"))) == 29 and table_rows(lake(srv, "full")),
                    what="initial export")
    assert sorted(r["id"] for r in rows) == sorted(ids[1:])
    assert status(srv, "full")["initialExportStatus"] == "completed"
    assert status(srv, "full")["initialExportProgress_rowsSent"] == 29
    assert status(srv, "skip")["initialExportStatus"] == "skipped"
    new = post(srv, "Patient", patient(99))["id"]
    wait_for(lambda: [r["id"] for r in table_rows(lake(srv, "skip"))] == [new], what="skip live")
    wait_for(lambda: len(table_rows(lake(srv, "full"))) == 30, what="full live")


def test_export_under_write_load_then_crash_restart(fhir_server):
    """Writes continue while the initial export runs; then kill -9 mid-delivery and
    restart: the table holds every change after W exactly once, and the snapshot at W."""
    srv = fhir_server
    setup_view_topic(srv)
    nd = "\n".join(json.dumps(dict(patient(i), id=f"pre{i}")) for i in range(3000))
    r = requests.post(srv.url("$load"), data=nd, timeout=120,
                      headers={"Content-Type": "application/fhir+ndjson"})
    assert r.status_code in (200, 201), r.text
    stop = threading.Event()
    written = []

    def writer():
        s = requests.Session()
        i = 0
        while not stop.is_set():
            try:
                pid = f"pre{i % 3000}"
                body = dict(patient(i, family=f"W{i}"), id=pid)
                rr = s.put(srv.url(f"Patient/{pid}"), json=body, timeout=10)
                if rr.status_code in (200, 201):
                    written.append(pid)
            except requests.RequestException:
                pass
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        put(srv, "AidboxTopicDestination/load", dest("load", batchSize=100, sendIntervalMs=100))
        time.sleep(1.0)
    finally:
        stop.set()
        t.join()
    srv.kill9()
    srv.start()
    # after restart, wait until the queue is drained
    wait_for(lambda: (s := status(srv, "load"))["messagesQueued"] == 0
             and s["messagesInProcess"] == 0 and s["initialExportStatus"] == "completed",
             deadline_s=120, what="drain after restart")
    W = ts_us(requests.get(srv.url("AidboxTopicDestination/load")).json()["meta"]["lastUpdated"])
    expected = Counter()
    by_id = {}
    for pid, ts, deleted in history(srv, "Patient"):
        by_id.setdefault(pid, []).append((ts, deleted))
    for pid, vs in by_id.items():
        vs.sort()
        at_w = [v for v in vs if v[0] <= W]
        if at_w and not at_w[-1][1]:
            expected[(pid, at_w[-1][0])] += 1       # the snapshot at W
        for ts, _deleted in vs:
            if ts > W:
                expected[(pid, ts)] += 1            # every change after W
    assert any(ts > W for (_, ts) in expected), "the writer made no change after W"
    got = Counter((r["id"], dt_us(r["ts"])) for r in table_rows(lake(srv)))
    assert got == expected, (len(got), len(expected), list((got - expected).items())[:5],
                             list((expected - got).items())[:5])


def test_validation_and_immutability(fhir_server):
    srv = fhir_server
    setup_view_topic(srv)

    def bad(body, word, status_code=400, path="AidboxTopicDestination"):
        r = requests.post(srv.url(path), json=body, timeout=30)
        assert r.status_code == status_code, r.text
        assert word in r.text, r.text
        return r

    bad({"resourceType": "AidboxSubscriptionTopic", "status": "active", "trigger": []},
        "url", path="AidboxSubscriptionTopic")
    bad(dict(TOPIC, trigger=[{"resource": "Patient", "supportedInteraction": ["read"]}]),
        "supportedInteraction", path="AidboxSubscriptionTopic")
    bad(dict(TOPIC, trigger=[{"resource": "Patience"}]), "trigger[0].resource",
        path="AidboxSubscriptionTopic")
    bad(dict(TOPIC, trigger=[{"resource": "Patient", "fhirPathCriteria": "(("}]),
        "fhirPathCriteria", path="AidboxSubscriptionTopic")
    d = dest("x")
    bad(dict(d, topic="http://nope"), "topic")
    bad(dict(d, kind="webhook"), "kind")
    bad(dict(d, parameter=[p for p in d["parameter"] if p["name"] != "viewDefinition"]),
        "viewDefinition")
    bad(dict(d, parameter=d["parameter"] + [{"name": "bogus", "valueString": "1"}]), "bogus")
    bad(dict(d, parameter=[{"name": "viewDefinition", "valueString": "patient_flat"},
                           {"name": "batchSize", "valueString": "ten"}]), "batchSize")
    bad(dict(d, parameter=[{"name": "viewDefinition", "valueString": "no_such_view"}]),
        "viewDefinition")
    bad(dict(d, parameter=[{"name": "viewDefinition", "valueString": "patient_flat"},
                           {"name": "writeMode", "valueString": "databricks-staging"}]), "writeMode")
    r = bad(dict(d, parameter=d["parameter"] + [
        {"name": "clientSecret", "valueInteger": 12345678}]), "clientSecret")
    assert "12345678" not in r.text
    # a created destination is immutable
    put(srv, "AidboxTopicDestination/imm", dest("imm", skipInitialExport=True))
    r = requests.put(srv.url("AidboxTopicDestination/imm"), json=dest("imm", batchSize=7))
    assert r.status_code == 405, r.text
    r = requests.patch(srv.url("AidboxTopicDestination/imm"), json=[])
    assert r.status_code == 405, r.text
    body = requests.get(srv.url("AidboxTopicDestination/imm")).json()
    assert {"name": "batchSize", "valueUnsignedInt": 50} in body["parameter"]
    # DELETE stops it; $status is gone, and POST makes a new one
    assert requests.delete(srv.url("AidboxTopicDestination/imm")).status_code in (200, 204)
    assert requests.get(srv.url("AidboxTopicDestination/imm/$status")).status_code == 404
    put(srv, "AidboxTopicDestination/imm", dest("imm", skipInitialExport=True, batchSize=7))
    assert status(srv, "imm")["initialExportStatus"] == "skipped"


def test_shared_topic_delete_and_counters_persist(fhir_server):
    srv = fhir_server
    setup_view_topic(srv)
    put(srv, "AidboxTopicDestination/a", dest("a", tablePath=lake(srv, "a")))
    put(srv, "AidboxTopicDestination/b", dest("b", tablePath=lake(srv, "b"), tableMode="current"))
    ids = [post(srv, "Patient", patient(i))["id"] for i in range(5)]
    p = requests.get(srv.url(f"Patient/{ids[0]}")).json()
    p["gender"] = "female"
    put(srv, f"Patient/{ids[0]}", p)
    requests.delete(srv.url(f"Patient/{ids[1]}"))
    wait_for(lambda: len(table_rows(lake(srv, "a"))) == 7, what="append table")
    cur = wait_for(lambda: (rs := table_rows(lake(srv, "b"))) and len(rs) == 5
                   and any(r["is_deleted"] == 1 for r in rs) and
                   any(r["gender"] == "female" for r in rs) and rs, what="current table")
    assert sorted(r["id"] for r in cur) == sorted(ids)
    wait_for(lambda: status(srv, "a")["messagesDelivered"] == 7, what="a delivered")
    wait_for(lambda: status(srv, "b")["messagesDelivered"] == 7, what="b delivered")
    # counters persist across a restart
    srv.restart()
    assert status(srv, "a")["messagesDelivered"] == 7
    # DELETE of a stops it; b keeps going; a's table stays
    assert requests.delete(srv.url("AidboxTopicDestination/a")).status_code in (200, 204)
    post(srv, "Patient", patient(50))
    wait_for(lambda: status(srv, "b")["messagesDelivered"] == 8, what="b after delete of a")
    time.sleep(0.5)
    assert len(table_rows(lake(srv, "a"))) == 7


def test_bad_resource_does_not_block(fhir_server):
    srv = fhir_server
    view = dict(VIEW, id="strict", name="strict", select=[{"column": [
        {"name": "id", "path": "id"}, {"name": "given", "path": "name.given"}]}])
    put(srv, "ViewDefinition/strict", view)
    post(srv, "AidboxSubscriptionTopic", TOPIC)
    put(srv, "AidboxTopicDestination/s", dest("s", viewDefinition="strict", sendIntervalMs=50))
    bad = dict(patient(1), name=[{"given": ["a", "b"]}])  # collection where a single is needed
    post(srv, "Patient", bad)
    good = post(srv, "Patient", dict(patient(2), name=[{"given": ["c"]}]))["id"]
    wait_for(lambda: [r for r in table_rows(lake(srv, "strict")) if r["id"] == good],
             what="good row after a bad one")
    st = status(srv, "s")
    assert st["messagesEvaluationErrors"] == 1 and "lastErrorDetail" in st


def test_fhirpath_criteria_current_previous(fhir_server):
    srv = fhir_server
    put(srv, "ViewDefinition/patient_flat", dict(VIEW, id="patient_flat"))
    post(srv, "AidboxSubscriptionTopic", dict(
        TOPIC, url="urn:gender-changed",
        trigger=[{"resource": "Patient", "supportedInteraction": ["update"],
                  "fhirPathCriteria": "%previous.gender != %current.gender"}]))
    post(srv, "AidboxSubscriptionTopic", dict(
        TOPIC, url="urn:female",
        trigger=[{"resource": "Patient", "fhirPathCriteria": "%current.gender = 'female'"}]))
    d1 = dest("g", tablePath=lake(srv, "g"), sendIntervalMs=50)
    d1["topic"] = "urn:gender-changed"
    d2 = dest("f", tablePath=lake(srv, "f"), sendIntervalMs=50)
    d2["topic"] = "urn:female"
    put(srv, "AidboxTopicDestination/g", d1)
    put(srv, "AidboxTopicDestination/f", d2)
    p = post(srv, "Patient", patient(1))             # create, male: neither
    p["birthDate"] = "1991-02-02"
    p = put(srv, f"Patient/{p['id']}", p)            # update, same gender: neither
    p["gender"] = "female"
    put(srv, f"Patient/{p['id']}", p)                # gender changed, female: both
    wait_for(lambda: len(table_rows(lake(srv, "g"))) == 1, what="criteria row")
    wait_for(lambda: len(table_rows(lake(srv, "f"))) == 1, what="female row")
    post(srv, "Patient", patient(2))                 # a male create: still none
    wait_for(lambda: status(srv, "g")["messagesDelivered"] == 1 and
             status(srv, "f")["messagesDelivered"] == 1 and
             status(srv, "f")["messagesQueued"] == 0, what="counters")
    rows = table_rows(lake(srv, "g"))
    assert len(rows) == 1 and rows[0]["gender"] == "female"


def test_crash_after_commit_before_position_saved(fhir_server_factory, monkeypatch):
    """The server kills itself (fault injection) right after a Delta commit and before the
    delivery position is saved; on restart the planned batch is replayed and recognised
    by its txn (appId, version): every change is in the table exactly once."""
    monkeypatch.setenv("FL_SUBS_KILL_AFTER_COMMIT", "2")
    srv = fhir_server_factory()
    monkeypatch.delenv("FL_SUBS_KILL_AFTER_COMMIT")
    setup_view_topic(srv)
    put(srv, "AidboxTopicDestination/c", dest("c", batchSize=5, sendIntervalMs=50))
    ids = []
    for i in range(20):
        try:
            ids.append(post(srv, "Patient", patient(i))["id"])
        except requests.RequestException:
            break
    wait_for(lambda: srv.proc.poll() is not None, what="the injected crash")
    srv.kill9()
    srv.start()
    wait_for(lambda: (s := status(srv, "c"))["messagesQueued"] == 0
             and s["messagesInProcess"] == 0 and s["messagesDelivered"] >= len(ids) - 10,
             what="drain after restart")
    expected = Counter((pid, ts) for pid, ts, _ in history(srv, "Patient"))
    got = Counter((r["id"], dt_us(r["ts"])) for r in table_rows(lake(srv)))
    assert got == expected
    log = os.path.join(lake(srv), "_delta_log")
    versions = [l for f in sorted(os.listdir(log)) if f.endswith(".json")
                for l in open(os.path.join(log, f)) if '"txn"' in l]
    assert len(versions) == len(set(versions))


def test_failing_target_retries_then_recovers(fhir_server, tmp_path):
    """A target the writer refuses (a non-empty directory that is no Delta table): the
    batch is retried with backoff, nothing is dropped, status shows the error; once the
    target is usable the queued change arrives."""
    srv = fhir_server
    setup_view_topic(srv)
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    junk = blocked / "not-delta.txt"
    junk.write_text("x")
    put(srv, "AidboxTopicDestination/r",
        dest("r", tablePath=str(blocked), sendIntervalMs=50, skipInitialExport=True))
    pid = post(srv, "Patient", patient(1))["id"]
    st = wait_for(lambda: (s := status(srv, "r"))["status"] == "error"
                  and s["messagesDeliveryAttempts"] >= 2 and s, what="failing status")
    assert st["lastErrorDetail"] and st["messagesDelivered"] == 0
    assert st["messagesQueued"] + st["messagesInProcess"] == 1
    junk.unlink()
    wait_for(lambda: [r for r in table_rows(str(blocked)) if r["id"] == pid], what="recovery")
    st = wait_for(lambda: (s := status(srv, "r"))["messagesDelivered"] == 1 and s, what="delivered")
    assert st["status"] == "active"


def test_current_mode_one_row_per_key_and_other_types_ignored(fhir_server):
    srv = fhir_server
    put(srv, "ViewDefinition/patient_flat", dict(VIEW, id="patient_flat"))
    post(srv, "AidboxSubscriptionTopic", dict(TOPIC, trigger=[
        {"resource": "Patient"}, {"resource": "Observation"}]))
    put(srv, "AidboxTopicDestination/cur",
        dest("cur", tableMode="current", batchSize=1000, sendIntervalMs=400))
    for i in range(10):  # ten versions of one resource, most in one batch
        put(srv, "Patient/same", dict(patient(i, family=f"V{i}"), id="same"))
    obs = post(srv, "Observation", {"resourceType": "Observation", "status": "final",
                                    "code": {"text": "x"}})
    requests.delete(srv.url(f"Observation/{obs['id']}"))
    wait_for(lambda: status(srv, "cur")["messagesDelivered"] == 12, what="delivered")
    rows = table_rows(lake(srv))
    assert [(r["id"], r["family_name"], r["is_deleted"]) for r in rows] == [("same", "V9", 0)]


def test_secret_parameters_never_echoed(fhir_server):
    """Secret-like parameters (secret/password/token/key in the name) are accepted only as
    references ("secret:NAME") to the server's secrets file, never as clear values (refused
    without echoing them); the references never reach the stored resource either: create
    response, read, vread, history and search all show "<redacted>"."""
    import sqlite3
    srv = fhir_server
    setup_view_topic(srv)
    secret = "hunter2-SECRET-VALUE"
    with open(os.path.join(srv.data_dir, "secrets.json"), "w") as f:
        json.dump({"dbx": secret, "aws-key": secret + "-2"}, f)
    clear = dest("clear", skipInitialExport=True)
    clear["parameter"] += [{"name": "clientSecret", "valueString": secret}]
    r = requests.put(srv.url("AidboxTopicDestination/clear"), json=clear)
    assert r.status_code == 400, r.text
    assert "clientSecret" in r.text and "secret:NAME" in r.text and secret not in r.text
    d = dest("sec", skipInitialExport=True)
    d["parameter"] += [{"name": "clientSecret", "valueString": "secret:dbx"},
                       {"name": "awsAccessKeyId", "valueString": "secret:aws-key"}]
    r = requests.put(srv.url("AidboxTopicDestination/sec"), json=d)
    assert r.status_code == 201, r.text
    pages = [r.text]
    pages.append(requests.get(srv.url("AidboxTopicDestination/sec")).text)
    pages.append(requests.get(srv.url("AidboxTopicDestination/sec/_history/1")).text)
    pages.append(requests.get(srv.url("AidboxTopicDestination/sec/_history")).text)
    pages.append(requests.get(srv.url("AidboxTopicDestination")).text)
    pages.append(requests.get(srv.url("_history")).text)
    for text in pages:
        assert secret not in text and "secret:dbx" not in text
    body = requests.get(srv.url("AidboxTopicDestination/sec")).json()
    assert {"name": "clientSecret", "valueString": "<redacted>"} in body["parameter"]
    # it still works
    pid = post(srv, "Patient", patient(1))["id"]
    wait_for(lambda: [r for r in table_rows(lake(srv)) if r["id"] == pid], what="row")
    # the database holds references only, never a clear secret
    db = sqlite3.connect(os.path.join(srv.data_dir, "fhirlake.db"))
    (state,) = db.execute("SELECT state FROM jobs WHERE id = 'subs-secret:sec'").fetchone()
    dump = "\n".join(db.iterdump())
    db.close()
    assert json.loads(state) == {"clientSecret": "secret:dbx", "awsAccessKeyId": "secret:aws-key"}
    assert secret not in dump
    # still immutable
    assert requests.put(srv.url("AidboxTopicDestination/sec"), json=d).status_code == 405


def test_crash_during_initial_export_resumes_exactly(fhir_server_factory, monkeypatch):
    """Chunks of 100 resources; the server kills itself right after committing chunk 2 of
    the initial export (before saving its progress). The restarted server (no fault, same
    chunking persisted in the state) replays chunk 2 (skipped by its txn) and goes on: the
    table holds the snapshot at W exactly once."""
    monkeypatch.setenv("FL_SUBS_KILL_AFTER_COMMIT", "2")
    monkeypatch.setenv("FL_SUBS_EXPORT_CHUNK", "100")
    srv = fhir_server_factory()
    monkeypatch.delenv("FL_SUBS_KILL_AFTER_COMMIT")
    monkeypatch.delenv("FL_SUBS_EXPORT_CHUNK")
    setup_view_topic(srv)
    nd = "\n".join(json.dumps(dict(patient(i), id=f"e{i:04d}")) for i in range(1000))
    r = requests.post(srv.url("$load"), data=nd, timeout=120,
                      headers={"Content-Type": "application/fhir+ndjson"})
    assert r.status_code in (200, 201), r.text
    try:
        put(srv, "AidboxTopicDestination/x", dest("x"))
    except (requests.RequestException, AssertionError):
        pass  # the crash may beat the response
    wait_for(lambda: srv.proc.poll() is not None, what="the injected crash")
    srv.kill9()
    srv.start()
    st = wait_for(lambda: (s := status(srv, "x"))["initialExportStatus"] == "completed" and s,
                  deadline_s=60, what="export completed after restart")
    assert st["initialExportProgress_rowsSent"] == 1000
    ids = Counter(r["id"] for r in table_rows(lake(srv)))
    assert len(ids) == 1000 and set(ids.values()) == {1}
