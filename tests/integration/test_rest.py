"""FHIR REST API of `fhirlake serve`: every endpoint, bad input, and durability."""
import json
import os
import re
import subprocess
import threading

import requests

FJ = {"Content-Type": "application/fhir+json"}


def post(srv, path, body, headers=FJ):
    return requests.post(srv.url(path), data=json.dumps(body), headers=headers)


def put(srv, path, body, headers=FJ):
    return requests.put(srv.url(path), data=json.dumps(body), headers=headers)


def assert_outcome(r, status, text=None):
    assert r.status_code == status, (r.status_code, r.text)
    oo = r.json()
    assert oo["resourceType"] == "OperationOutcome"
    if text:
        assert text in json.dumps(oo), oo
    return oo


def test_metadata(fhir_server_module):
    r = requests.get(fhir_server_module.url("metadata"))
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    types = {r["type"] for r in cs["rest"][0]["resource"]}
    assert len(types) >= 146 and {"Patient", "Observation", "ViewDefinition"} <= types
    assert any(o["name"] == "load" for o in cs["rest"][0]["operation"])


def test_create_read_update_delete(fhir_server_module):
    srv = fhir_server_module
    r = post(srv, "Patient", {"resourceType": "Patient", "id": "ignored", "name": [{"family": "A"}],
                              "meta": {"versionId": "7", "profile": ["http://x"]}})
    assert r.status_code == 201, r.text
    p = r.json()
    pid = p["id"]
    assert pid != "ignored"
    assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", pid)
    assert p["meta"]["versionId"] == "1"
    assert p["meta"]["profile"] == ["http://x"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", p["meta"]["lastUpdated"])
    assert r.headers["ETag"] == 'W/"1"'
    assert r.headers["Location"].endswith(f"/fhir/Patient/{pid}/_history/1")

    r = requests.get(srv.url(f"Patient/{pid}"))
    assert r.status_code == 200 and r.json() == p and r.headers["ETag"] == 'W/"1"'

    p2 = dict(p, name=[{"family": "B"}])
    r = put(srv, f"Patient/{pid}", p2)
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["versionId"] == "2"
    assert r.json()["meta"]["lastUpdated"] > p["meta"]["lastUpdated"]

    # vread both versions
    assert requests.get(srv.url(f"Patient/{pid}/_history/1")).json()["name"] == [{"family": "A"}]
    assert requests.get(srv.url(f"Patient/{pid}/_history/2")).json()["name"] == [{"family": "B"}]
    assert_outcome(requests.get(srv.url(f"Patient/{pid}/_history/3")), 404)

    # If-Match
    assert_outcome(put(srv, f"Patient/{pid}", p2, dict(FJ, **{"If-Match": 'W/"1"'})), 412)
    r = put(srv, f"Patient/{pid}", p2, dict(FJ, **{"If-Match": 'W/"2"'}))
    assert r.status_code == 200 and r.json()["meta"]["versionId"] == "3"

    # Prefer: return=minimal -> no body, headers still there
    r = put(srv, f"Patient/{pid}", p2, dict(FJ, Prefer="return=minimal"))
    assert r.status_code == 200 and r.content == b"" and r.headers["ETag"] == 'W/"4"'
    r = requests.get(srv.url(f"Patient/{pid}"))
    assert r.json()["meta"]["versionId"] == "4"

    # delete -> 410, history keeps the tombstone
    r = requests.delete(srv.url(f"Patient/{pid}"))
    assert r.status_code in (200, 204)
    assert_outcome(requests.get(srv.url(f"Patient/{pid}")), 410)
    h = requests.get(srv.url(f"Patient/{pid}/_history")).json()
    assert h["type"] == "history" and h["total"] == 5
    assert h["entry"][0]["request"]["method"] == "DELETE"
    assert "resource" not in h["entry"][0]
    assert [e["response"]["etag"] for e in h["entry"]] == ['W/"5"', 'W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']

    # create-on-update, then update after delete continues the version line
    r = put(srv, "Patient/explicit-id.1", {"resourceType": "Patient", "id": "explicit-id.1"})
    assert r.status_code == 201 and r.json()["meta"]["versionId"] == "1"
    r = put(srv, f"Patient/{pid}", p2)
    assert r.status_code == 201 and r.json()["meta"]["versionId"] == "6"


def test_type_and_system_history(fhir_server):
    srv = fhir_server
    ids = [post(srv, "Observation", {"resourceType": "Observation", "status": "final"}).json()["id"]
           for _ in range(3)]
    put(srv, f"Observation/{ids[0]}", {"resourceType": "Observation", "id": ids[0], "status": "amended"})
    post(srv, "Patient", {"resourceType": "Patient"})
    h = requests.get(srv.url("Observation/_history")).json()
    assert h["total"] == 4 and len(h["entry"]) == 4
    assert h["entry"][0]["resource"]["status"] == "amended"
    h = requests.get(srv.url("_history"), params={"_count": 2}).json()
    assert h["total"] == 5 and len(h["entry"]) == 2
    assert any(l["relation"] == "next" for l in h["link"])


def test_search(fhir_server):
    srv = fhir_server
    made = [post(srv, "Patient", {"resourceType": "Patient", "gender": "female"}).json() for _ in range(5)]
    post(srv, "Observation", {"resourceType": "Observation", "status": "final"})
    b = requests.get(srv.url("Patient")).json()
    assert b["type"] == "searchset" and b["total"] == 5
    assert all(e["search"]["mode"] == "match" for e in b["entry"])
    # _id
    b = requests.get(srv.url("Patient"), params={"_id": f"{made[1]['id']},{made[3]['id']},nope"}).json()
    assert sorted(e["resource"]["id"] for e in b["entry"]) == sorted([made[1]["id"], made[3]["id"]])
    # _sort and paging through next links
    seen = []
    url = srv.url("Patient") + "?_count=2&_sort=_lastUpdated"
    while url:
        b = requests.get(url).json()
        seen += [e["resource"]["id"] for e in b["entry"] if e["search"]["mode"] == "match"]
        url = next((l["url"] for l in b["link"] if l["relation"] == "next"), None)
    assert seen == [m["id"] for m in made]
    b = requests.get(srv.url("Patient"), params={"_sort": "-_lastUpdated"}).json()
    assert [e["resource"]["id"] for e in b["entry"]] == [m["id"] for m in reversed(made)]
    # _lastUpdated prefixes against the commit timestamps
    t2 = made[2]["meta"]["lastUpdated"]

    def ids(q):
        b = requests.get(srv.url("Patient"), params={"_lastUpdated": q, "_sort": "_lastUpdated"})
        assert b.status_code == 200, b.text
        return [e["resource"]["id"] for e in b.json()["entry"]]
    assert ids("ge" + t2) == [m["id"] for m in made[2:]]
    assert ids("gt" + t2) == [m["id"] for m in made[3:]]
    assert ids("lt" + t2) == [m["id"] for m in made[:2]]
    assert ids("le" + t2) == [m["id"] for m in made[:3]]
    assert ids("eq" + t2) == [made[2]["id"]]
    assert ids(t2) == [made[2]["id"]]
    assert len(ids("ge2000-01-01")) == 5 and ids("lt2000") == []
    # two bounds combine
    b = requests.get(srv.url("Patient"), params=[("_lastUpdated", "ge" + t2),
                                                 ("_lastUpdated", "le" + made[3]["meta"]["lastUpdated"])])
    assert b.json()["total"] == 2
    assert_outcome(requests.get(srv.url("Patient"), params={"_lastUpdated": "xx2020"}), 400)
    assert_outcome(requests.get(srv.url("Patient"), params={"_sort": "name"}), 400)
    assert_outcome(requests.get(srv.url("Patient"), params={"_count": "-1"}), 400)
    # deleted resources leave search
    requests.delete(srv.url(f"Patient/{made[0]['id']}"))
    assert requests.get(srv.url("Patient")).json()["total"] == 4


def test_transaction_atomic_and_references(fhir_server):
    srv = fhir_server
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111",
         "resource": {"resourceType": "Patient", "name": [{"family": "T"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final",
                      "subject": {"reference": "urn:uuid:11111111-1111-4111-8111-111111111111"}},
         "request": {"method": "POST", "url": "Observation"}},
        {"resource": {"resourceType": "Patient", "id": "fixed"},
         "request": {"method": "PUT", "url": "Patient/fixed"}},
    ]}
    r = post(srv, "", tx)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["type"] == "transaction-response"
    st = [e["response"]["status"] for e in b["entry"]]
    assert st == ["201 Created", "201 Created", "201 Created"]
    pid = b["entry"][0]["response"]["location"].split("/")[1]
    obs_id = b["entry"][1]["response"]["location"].split("/")[1]
    obs = requests.get(srv.url(f"Observation/{obs_id}")).json()
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    # all entries share one commit timestamp
    lu = {e["response"]["lastModified"] for e in b["entry"]}
    assert len(lu) == 1

    before = requests.get(srv.url("_history")).json()["total"]
    bad = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": "fixed"},
         "request": {"method": "PUT", "url": "Patient/fixed"}},
        {"resource": {"resourceType": "Patient", "id": "x"},
         "request": {"method": "PUT", "url": "Patient/fixed", "ifMatch": 'W/"1"'}},
        {"resource": {"resourceType": "Observation", "id": "y"},
         "request": {"method": "PUT", "url": "Patient/y"}},
    ]}
    assert_outcome(post(srv, "", bad), 400, "Bundle.entry[2]")
    bad["entry"] = bad["entry"][:2] + [
        {"resource": {"resourceType": "Patient", "id": "fixed"},
         "request": {"method": "PUT", "url": "Patient/fixed", "ifMatch": 'W/"9"'}}]
    assert_outcome(post(srv, "", bad), 412, "Bundle.entry[2]")
    assert requests.get(srv.url("_history")).json()["total"] == before


def test_batch(fhir_server):
    srv = fhir_server
    put(srv, "Patient/b1", {"resourceType": "Patient", "id": "b1"})
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "id": "zz"}, "request": {"method": "PUT", "url": "Patient/b1"}},
        {"request": {"method": "GET", "url": "Patient/b1"}},
        {"request": {"method": "DELETE", "url": "Patient/b1"}},
        {"request": {"method": "GET", "url": "Patient/none"}},
    ]}
    r = post(srv, "", batch)
    assert r.status_code == 200, r.text
    st = [e["response"]["status"] for e in r.json()["entry"]]
    assert st[0] == "201 Created" and st[1].startswith("400") and st[2] == "200 OK"
    assert st[3] == "204 No Content" and st[4].startswith("404")
    assert r.json()["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert requests.get(srv.url("Patient/b1")).status_code == 410


def test_errors(fhir_server_module):
    srv = fhir_server_module
    u = srv.url
    assert_outcome(requests.post(u("Patient"), data='{"resourceType": "Patient",', headers=FJ), 400,
                   "malformed JSON")
    assert_outcome(post(srv, "Patient", {"resourceType": "Observation"}), 400, "does not match")
    assert_outcome(put(srv, "Patient/a", {"resourceType": "Patient", "id": "b"}), 400, "id")
    assert_outcome(put(srv, "Patient/a", {"resourceType": "Patient"}), 400)
    assert_outcome(put(srv, "Patient/bad_id!", {"resourceType": "Patient", "id": "bad_id!"}), 400)
    assert_outcome(requests.get(u("Patient/" + "x" * 65)), 400)
    assert_outcome(requests.get(u("NotAType/1")), 404, "unknown resource type")
    assert_outcome(post(srv, "NotAType", {"resourceType": "NotAType"}), 404)
    assert_outcome(requests.get(u("Patient/missing")), 404)
    assert_outcome(requests.patch(u("Patient/x"), data="{}", headers=FJ), 405)
    assert_outcome(requests.delete(u("Patient")), 405)
    assert_outcome(requests.put(u("metadata"), data="{}", headers=FJ), 405)
    assert_outcome(requests.post(u("Patient"), data="<Patient/>",
                                 headers={"Content-Type": "application/xml"}), 415)
    assert_outcome(requests.post(u("Patient"), data=b"x" * (17 << 20), headers=FJ), 413)
    assert_outcome(post(srv, "Patient", ["not", "an", "object"]), 400)
    assert_outcome(post(srv, "", {"resourceType": "Bundle", "type": "collection"}), 400)
    assert_outcome(requests.put(u("Patient/a"), data='{"resourceType":"Patient","id":"a"}',
                                headers=dict(FJ, **{"If-Match": "garbage"})), 400)
    # invalid UTF-8 is malformed JSON, not a crash
    assert_outcome(requests.post(u("Patient"), data=b'{"resourceType":"Patient","x":"\xff"}',
                                 headers=FJ), 400)
    assert requests.get(u("metadata")).status_code == 200  # still alive


def test_load_endpoint(fhir_server):
    srv = fhir_server
    lines = [json.dumps({"resourceType": "Patient", "id": f"l{i}"}) for i in range(2500)]
    lines.append(json.dumps({"resourceType": "Observation", "status": "final"}))
    r = requests.post(srv.url("$load"), data="\n".join(lines) + "\n",
                      headers={"Content-Type": "application/fhir+ndjson"})
    assert r.status_code == 200, r.text
    assert requests.get(srv.url("Patient"), params={"_count": 0}).json()["total"] == 2500
    assert requests.get(srv.url("Patient/l7")).json()["meta"]["versionId"] == "1"
    # one bad line -> nothing written, the line is named
    bad = [json.dumps({"resourceType": "Patient", "id": f"m{i}"}) for i in range(10)]
    bad.insert(5, '{"resourceType": "Patient", "id": "oops"')
    r = requests.post(srv.url("$load"), data="\n".join(bad),
                      headers={"Content-Type": "application/x-ndjson"})
    assert_outcome(r, 400, "line 6")
    assert requests.get(srv.url("Patient/m0")).status_code == 404


def test_cli_load(tmp_path, fhir_server_factory):
    from conftest import BIN
    nd = tmp_path / "p.ndjson"
    nd.write_text("".join(json.dumps({"resourceType": "Patient", "id": f"c{i}"}) + "\n" for i in range(1200)))
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:aaaaaaaa-1111-4111-8111-111111111111",
         "resource": {"resourceType": "Patient", "id": "aaaaaaaa-1111-4111-8111-111111111111"},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:bbbbbbbb-1111-4111-8111-111111111111",
         "resource": {"resourceType": "Encounter", "id": "bbbbbbbb-1111-4111-8111-111111111111",
                      "subject": {"reference": "urn:uuid:aaaaaaaa-1111-4111-8111-111111111111"}},
         "request": {"method": "POST", "url": "Encounter"}}]}, indent=1))
    data = tmp_path / "data"
    out = subprocess.run([BIN, "load", str(nd), str(bundle), "--data", str(data), "--batch", "500"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "loaded 1202 resources" in out.stdout
    srv = fhir_server_factory(data)
    assert requests.get(srv.url("Patient"), params={"_count": 0}).json()["total"] == 1201
    enc = requests.get(srv.url("Encounter/bbbbbbbb-1111-4111-8111-111111111111")).json()
    assert enc["subject"]["reference"] == "Patient/aaaaaaaa-1111-4111-8111-111111111111"
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"resourceType":"Patient","id":"ok"}\nnot json\n')
    out = subprocess.run([BIN, "load", str(bad), "--data", str(tmp_path / "d2")],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "line 2" in out.stderr


def test_concurrent_posts(fhir_server):
    srv = fhir_server
    errors = []

    def worker(k):
        s = requests.Session()
        for i in range(40):
            r = s.post(srv.url("Observation"), data=json.dumps({"resourceType": "Observation",
                                                                 "status": "final", "id": f"{k}-{i}"}),
                       headers=FJ)
            if r.status_code != 201:
                errors.append(r.text)
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert not errors
    b = requests.get(srv.url("Observation/_history"), params={"_count": 1000}).json()
    assert b["total"] == 320
    stamps = [e["response"]["lastModified"] for e in b["entry"]]
    assert len(set(stamps)) == 320  # one commit ts per request, strictly increasing


def test_kill9_durability(fhir_server):
    srv = fhir_server
    acked = []
    for i in range(50):
        r = put(srv, f"Patient/k{i}", {"resourceType": "Patient", "id": f"k{i}"})
        assert r.status_code == 201
        acked.append(r.json())
    r = requests.delete(srv.url("Patient/k0"))
    assert r.status_code in (200, 204)
    srv.kill9()
    srv.start()
    for p in acked[1:]:
        got = requests.get(srv.url(f"Patient/{p['id']}"))
        assert got.status_code == 200 and got.json() == p
    assert requests.get(srv.url("Patient/k0")).status_code == 410
    # and new commit timestamps continue after the old ones
    r = put(srv, "Patient/k1", {"resourceType": "Patient", "id": "k1"})
    assert r.json()["meta"]["lastUpdated"] > acked[-1]["meta"]["lastUpdated"]


def test_graceful_stop(fhir_server):
    srv = fhir_server
    post(srv, "Patient", {"resourceType": "Patient"})
    assert srv.stop() == 0
    srv.start()
    assert requests.get(srv.url("Patient")).json()["total"] == 1


def test_garbage_never_crashes(fhir_server):
    """Seeded random malformed requests: every answer is a well-formed HTTP status, the
    server stays up, and nothing is half-written."""
    import random
    srv = fhir_server
    rnd = random.Random(7)
    good = json.dumps({"resourceType": "Patient", "id": "g1", "name": [{"family": "x"}]})
    paths = ["", "Patient", "Patient/g1", "Patient/g1/_history", "Patient/g1/_history/1",
             "Patient/_history", "_history", "metadata", "$load", "Patient/$x", "Patient/g1/$y",
             "Bogus", "Patient/g1/extra/more/segments", "Patient//g1", "%24load"]
    for i in range(300):
        body = bytearray(good.encode())
        for _ in range(rnd.randint(0, 4)):
            if body and rnd.random() < 0.7:
                body[rnd.randrange(len(body))] = rnd.randrange(256)
            else:
                body = body[:rnd.randrange(len(body) + 1)]
        method = rnd.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
        ct = rnd.choice(["application/fhir+json", "application/json", "application/fhir+ndjson",
                         "text/plain", None])
        params = rnd.choice([None, {"_count": rnd.choice(["1", "x", "-3", "99999999999999"])},
                             {"_lastUpdated": rnd.choice(["gt2020", "zz", "le2020-13-01", ""])},
                             {"_id": ",,,"}, {"_sort": "-_lastUpdated"}])
        r = requests.request(method, srv.url(rnd.choice(paths)), params=params, data=bytes(body),
                             headers={"Content-Type": ct} if ct else {})
        assert 200 <= r.status_code < 500, (r.status_code, r.text)
    assert requests.get(srv.url("metadata")).status_code == 200
    # whatever was accepted is readable and well-formed
    for e in requests.get(srv.url("_history"), params={"_count": 1000}).json().get("entry", []):
        if "resource" in e:
            assert e["resource"]["meta"]["versionId"]


def test_kill9_under_concurrent_writes(fhir_server):
    """kill -9 while 4 clients write: every write acknowledged before the kill is there
    after restart, exactly as acknowledged."""
    import time
    srv = fhir_server
    acked, stop = [], threading.Event()
    lock = threading.Lock()

    def writer(k):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            try:
                r = s.put(srv.url(f"Observation/w{k}-{i}"), headers=FJ, timeout=5,
                          data=json.dumps({"resourceType": "Observation", "id": f"w{k}-{i}",
                                           "status": "final"}))
            except requests.RequestException:
                return
            if r.status_code == 201:
                with lock:
                    acked.append(r.json())
            i += 1
    ts = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    [t.start() for t in ts]
    deadline = time.time() + 10
    while len(acked) < 200 and time.time() < deadline:
        time.sleep(0.02)
    srv.kill9()
    stop.set()
    [t.join() for t in ts]
    assert len(acked) >= 50
    srv.start()
    s = requests.Session()
    for res in acked:
        got = s.get(srv.url(f"Observation/{res['id']}"))
        assert got.status_code == 200 and got.json() == res


def test_big_transaction_references(fhir_server):
    """A Synthea-style transaction: 200 POSTed resources with urn:uuid fullUrls that refer
    to each other; every reference comes back as Type/id of the stored resource."""
    import uuid
    srv = fhir_server
    urns = [f"urn:uuid:{uuid.UUID(int=i + 1, version=4)}" for i in range(200)]
    entries = [{"fullUrl": urns[0], "resource": {"resourceType": "Patient"},
                "request": {"method": "POST", "url": "Patient"}}]
    for i in range(1, 200):
        entries.append({"fullUrl": urns[i],
                        "resource": {"resourceType": "Encounter", "status": "finished",
                                     "subject": {"reference": urns[0]},
                                     "partOf": {"reference": urns[i - 1]}},
                        "request": {"method": "POST", "url": "Encounter"}})
    r = post(srv, "", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert r.status_code == 200, r.text
    locs = [e["response"]["location"].split("/_history")[0] for e in r.json()["entry"]]
    for i in (1, 57, 199):
        enc = requests.get(srv.url(locs[i])).json()
        assert enc["subject"]["reference"] == locs[0]
        assert enc["partOf"]["reference"] == locs[i - 1]
