"""Makes the benchmark's flat rows: the article's patient_flat columns (id, ts, gender,
birth_date, family_name, given_name, is_deleted) taken from the Synthea Patients NDJSON
(bench/data/patients-100mb.ndjson), repeated with fresh ids up to N rows, written as NDJSON
arrays. Without the Synthea file, deterministic synthetic patients are used instead.
usage: make_rows.py N OUT.ndjson [PATIENTS.ndjson]"""
import json
import os
import random
import sys


def patients(path):
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
        return
    rnd = random.Random(42)
    for i in range(20000):
        yield {"id": "p%d" % i, "gender": rnd.choice(["male", "female"]),
               "birthDate": "19%02d-%02d-%02d" % (rnd.randint(0, 99), rnd.randint(1, 12), rnd.randint(1, 28)),
               "name": [{"use": "official", "family": "Fam%d" % rnd.randint(0, 999),
                         "given": ["Giv%d" % rnd.randint(0, 999)]}]}


def flat(p):
    off = [n for n in p.get("name", []) if n.get("use") == "official"]
    fam = off[0].get("family") if off else None
    giv = (off[0].get("given") or [None])[0] if off else None
    return [p["id"], p.get("gender"), p.get("birthDate"), fam, giv]


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    src = [flat(p) for p in patients(sys.argv[3] if len(sys.argv) > 3 else None)]
    with open(out, "w") as f:
        for i in range(n):
            pid, gender, birth, fam, giv = src[i % len(src)]
            rep = i // len(src)
            ts = "2026-01-%02dT%02d:%02d:%02d.%06dZ" % (1 + i % 28, i % 24, i % 60, (i // 60) % 60, i % 1000000)
            f.write(json.dumps([pid if rep == 0 else "%s-%d" % (pid, rep), ts, gender, birth, fam, giv,
                                1 if i % 50 == 0 else 0]) + "\n")


main()
