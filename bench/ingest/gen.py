"""Generates N FHIR R4 resources as NDJSON (Patients and Observations of realistic shape,
fixed seed) for bench/ingest when no Synthea data is present. usage: gen.py N OUT"""
import json
import random
import sys
import uuid

n, out = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(42)
with open(out, "w") as f:
    pids = []
    for i in range(n):
        if i % 20 == 0 or not pids:
            pid = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            pids.append(pid)
            r = {"resourceType": "Patient", "id": pid,
                 "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
                 "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": str(rnd.randint(1, 10**9))}],
                 "name": [{"use": "official", "family": rnd.choice(["Smith", "Jones", "Müller", "García"]),
                           "given": [rnd.choice(["Ann", "Bob", "Chen", "Dara"])]}],
                 "gender": rnd.choice(["male", "female"]),
                 "birthDate": f"{rnd.randint(1930, 2020)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
                 "address": [{"line": [f"{rnd.randint(1, 999)} Main St"], "city": "Boston", "state": "MA",
                              "postalCode": "02101", "country": "US"}]}
        else:
            r = {"resourceType": "Observation", "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                 "status": "final",
                 "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                           "code": "vital-signs", "display": "Vital signs"}]}],
                 "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body Height"}],
                          "text": "Body Height"},
                 "subject": {"reference": "Patient/" + rnd.choice(pids)},
                 "effectiveDateTime": f"20{rnd.randint(10, 25)}-0{rnd.randint(1, 9)}-1{rnd.randint(0, 9)}T10:00:00Z",
                 "valueQuantity": {"value": round(rnd.uniform(50, 200), 1), "unit": "cm",
                                   "system": "http://unitsofmeasure.org", "code": "cm"}}
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
