"""bench/export driver: $viewdefinition-export of Synthea data into Delta tables.

Steps (each printed with its wall time; only 3-5 are the measured figures):
 1. fresh data dir; `fhirlake load` of the Observation, Encounter, Condition and Procedure
    NDJSON files of a Synthea run (untimed setup, its rate is printed for information);
 2. `fhirlake serve`; PUT four views (observation_flat, procedure_flat here, the IG's
    EncounterFlat and ConditionFlat from bench/views) each with a getAidboxTs() column;
 3. FULL export: one kick-off with the four views (kind data-lakehouse, chunkCount C),
    timed from the POST to the 200 of the status URL; rows/s = rows exported / time;
 4. 1% of the resources of each type changed (every 100th line, a meta.tag added) through
    POST /fhir/$load (untimed), then an INCREMENTAL export with _since = exportEndTime of
    the full one, timed the same way; reported as a fraction of the full export; then the
    server restarted (its in-memory key indexes gone), the same 1% changed again and one
    more incremental export timed (the merge then reads the tables' key columns);
 5. PEER: Pathling (PyPI `pathling`, Spark local[2]) runs the same four views (without the
    ts column: getAidboxTs() is fhirlake's) over the same NDJSON files and writes each to a
    Delta table — end to end process time (JVM start included), the in-Spark part (NDJSON
    read + views + Delta writes) and the JVM/Spark start-up; if Pathling cannot run (the
    output says why), DuckDB flattens the same files with equivalent SQL and
    deltalake.write_deltalake writes the tables (said so in the output).
Row counts of both sides are printed and compared.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
FHIRLAKE = os.environ.get("FHIRLAKE", os.path.join(ROOT, "build", "fhirlake"))
SYNTHEA = os.environ.get("SYNTHEA_DIR", os.path.join(ROOT, "bench", "data", "synthea", "1000"))
WORK = os.path.join(ROOT, "bench", "data", "export")
CHUNKS = int(os.environ.get("BENCH_EXPORT_CHUNKS", "4"))
TYPES = ["Observation", "Encounter", "Condition", "Procedure"]
VENV_PY = os.path.join(ROOT, "bench", "data", "pathling-venv", "bin", "python")


def views():
    out = []
    for f in ("observation_flat.json", "procedure_flat.json"):
        out.append(json.load(open(os.path.join(HERE, f))))
    for f in ("EncounterFlat.json", "ConditionFlat.json"):
        v = json.load(open(os.path.join(ROOT, "bench", "views", f)))
        v["select"][0]["column"].insert(1, {"name": "ts", "path": "getAidboxTs()"})
        v["id"] = v["name"]
        out.append(v)
    return out


def without_ts(v):
    v = json.loads(json.dumps(v))
    v["select"][0]["column"] = [c for c in v["select"][0]["column"] if c["path"] != "getAidboxTs()"]
    return v


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def export(base, vs, extra=()):
    params = [{"name": "view", "part": [
        {"name": "name", "valueString": v["name"]},
        {"name": "viewReference", "valueReference": {"reference": f"ViewDefinition/{v['id']}"}}]}
        for v in vs]
    params += [{"name": "kind", "valueString": "data-lakehouse"},
               {"name": "chunkCount", "valueInteger": CHUNKS}] + list(extra)
    t0 = time.time()
    r = requests.post(f"{base}/ViewDefinition/$viewdefinition-export",
                      json={"resourceType": "Parameters", "parameter": params},
                      headers={"Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    loc = r.headers["Content-Location"]
    while True:
        s = requests.get(loc)
        if s.status_code == 200:
            break
        time.sleep(0.01)  # fine polling: the client's sleep is not the export's time
    dt = time.time() - t0
    m = s.json()
    status = [p for p in m["parameter"] if p["name"] == "status"][0]["valueCode"]
    assert status == "completed", m
    rows = {}
    for p in m["parameter"]:
        if p["name"] == "output":
            parts = {q["name"]: q for q in p["part"]}
            rows[parts["name"]["valueString"]] = parts["count"]["valueInteger"]
    end = [p for p in m["parameter"] if p["name"] == "exportEndTime"][0]["valueInstant"]
    return dt, rows, end


def start_server(data, port, log):
    srv = subprocess.Popen([FHIRLAKE, "serve", "--port", str(port), "--data", data, "--sync", "normal"],
                           stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            if requests.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.05)
    return srv


def change_one_percent(base):
    n = 0
    t0 = time.time()
    for t in TYPES:
        lines = []
        with open(os.path.join(SYNTHEA, f"{t}.ndjson")) as f:
            for i, line in enumerate(f):
                if i % 100 == 0:
                    r = json.loads(line)
                    r.setdefault("meta", {})["tag"] = [{"system": "urn:bench", "code": "changed"}]
                    lines.append(json.dumps(r))
        r = requests.post(f"{base}/$load", data="\n".join(lines).encode(),
                          headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code in (200, 201), r.text
        n += len(lines)
    return n, time.time() - t0


def run_peer(vs):
    ndjson_dir = os.path.join(WORK, "ndjson")
    os.makedirs(ndjson_dir, exist_ok=True)
    for t in TYPES:
        dst = os.path.join(ndjson_dir, f"{t}.ndjson")
        if not os.path.exists(dst):
            os.symlink(os.path.join(SYNTHEA, f"{t}.ndjson"), dst)
    spec = os.path.join(WORK, "peer_views.json")
    json.dump([without_ts(v) for v in vs], open(spec, "w"))
    out = os.path.join(WORK, "peer")
    shutil.rmtree(out, ignore_errors=True)
    why = os.environ.get("PEER_WHY", "")
    jh = os.environ.get("PATHLING_JAVA_HOME", "")
    if not why and not os.path.exists(VENV_PY):
        why = "no Pathling venv (run through bench/export/run.sh)"
    if not why and not jh:
        why = "no JDK >= 21 (PATHLING_JAVA_HOME unset; run through bench/export/run.sh)"
    if not why:
        env = dict(os.environ, JAVA_HOME=jh, PATH=os.path.join(jh, "bin") + os.pathsep + os.environ["PATH"])
        step(f"peer: Pathling (JAVA_HOME={jh})")
        t0 = time.time()
        p = subprocess.run([VENV_PY, os.path.join(HERE, "peer_pathling.py"), ndjson_dir, spec, out],
                           capture_output=True, text=True, env=env)
        dt = time.time() - t0
        if p.returncode == 0:
            res = json.loads(p.stdout.strip().splitlines()[-1])
            return f"Pathling {res.get('pathling', '?')}", dt, res
        lines = [l for l in (p.stderr or p.stdout).splitlines() if not l.lstrip().startswith("at ")]
        why = "Pathling failed: " + "\n".join(lines[-25:])
        shutil.rmtree(out, ignore_errors=True)
    step("peer: DuckDB+delta-rs, because " + why)
    t0 = time.time()
    p = subprocess.run([sys.executable, os.path.join(HERE, "peer_duckdb.py"), ndjson_dir, out],
                       capture_output=True, text=True)
    dt = time.time() - t0
    assert p.returncode == 0, p.stderr[-3000:]
    return "DuckDB+delta-rs", dt, json.loads(p.stdout.strip().splitlines()[-1])


def main():
    shutil.rmtree(os.path.join(WORK, "data"), ignore_errors=True)
    os.makedirs(os.path.join(WORK, "data"))
    data = os.path.join(WORK, "data")
    files = [os.path.join(SYNTHEA, f"{t}.ndjson") for t in TYPES]
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    step(f"loading {mb:.0f} MB ({', '.join(TYPES)}) into the store")
    t0 = time.time()
    subprocess.run([FHIRLAKE, "load", *files, "--data", data, "--sync", "normal"], check=True,
                   stdout=subprocess.DEVNULL)
    step(f"loaded in {time.time() - t0:.1f} s (setup, not measured)")
    port = free_port()
    log = open(os.path.join(WORK, "server.log"), "w")
    srv = start_server(data, port, log)
    base = f"http://127.0.0.1:{port}/fhir"
    try:
        vs = views()
        for v in vs:
            r = requests.put(f"{base}/ViewDefinition/{v['id']}", json=v,
                             headers={"Content-Type": "application/fhir+json"})
            assert r.status_code in (200, 201), r.text
        step(f"full export of {len(vs)} views, chunkCount {CHUNKS}")
        full_s, full_rows, end = export(base, vs)
        total = sum(full_rows.values())
        step(f"full export: {total} rows in {full_s:.2f} s = {total / full_s:,.0f} rows/s {full_rows}")
        n, ch_s = change_one_percent(base)
        step(f"changed {n} resources (1%) in {ch_s:.1f} s (setup)")
        inc_s, inc_rows, end2 = export(base, vs, [{"name": "_since", "valueInstant": end}])
        step(f"incremental export: {sum(inc_rows.values())} rows in {inc_s:.2f} s {inc_rows}")
        # the same after a restart: the data files' key indexes (kept in memory) are gone,
        # so the merge reads the tables' key columns
        srv.send_signal(signal.SIGTERM)
        srv.wait(60)
        srv = start_server(data, port, log)
        change_one_percent(base)
        cold_s, cold_rows, _ = export(base, vs, [{"name": "_since", "valueInstant": end2}])
        step(f"incremental export after a restart: {sum(cold_rows.values())} rows in {cold_s:.2f} s")
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(60)
    peer, peer_s, peer_res = run_peer(vs)
    peer_rows = sum(peer_res["rows"].values())
    startup = peer_res.get("startup_s")
    step(f"peer {peer}: {peer_rows} rows, {peer_s:.2f} s end to end, {peer_res['inner_s']:.2f} s "
         f"in-engine" + (f", {startup:.2f} s JVM+Spark start" if startup is not None else "")
         + f" {peer_res['rows']}")
    print(f"result: export full {total:,} rows (4 views, Synthea {os.path.basename(SYNTHEA)}) -> Delta: "
          f"fhirlake {full_s:.2f} s = {total / full_s:,.0f} rows/s; {peer} {peer_s:.2f} s end to end "
          f"= {peer_rows / peer_s:,.0f} rows/s ({peer_res['inner_s']:.2f} s in-engine) -> "
          f"{peer_s / full_s:.1f}x end to end, {peer_res['inner_s'] / full_s:.1f}x in-engine (goal >= 10x)")
    print(f"result: export peer {peer}: {peer_rows / peer_res['inner_s']:,.0f} rows/s in-engine "
          f"(NDJSON read + views + Delta write"
          + (f", JVM/Spark start-up of {startup:.2f} s excluded" if startup is not None else "") + ")")
    print(f"result: export incremental after changing 1% ({n:,} resources): {inc_s:.2f} s = "
          f"{100 * inc_s / full_s:.1f}% of the full export (goal <= 5%); after a restart (key "
          f"indexes gone, key columns read): {cold_s:.2f} s = {100 * cold_s / full_s:.1f}%")
    if peer_rows != total:
        print(f"note: row counts differ: fhirlake {full_rows}, {peer} {peer_res['rows']}")


if __name__ == "__main__":
    main()
