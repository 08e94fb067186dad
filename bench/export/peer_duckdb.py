"""Fallback peer of bench/export when Pathling cannot run: DuckDB flattens the same NDJSON
files with SQL equivalent to the four views (first coding where the views take first();
ConditionFlat's forEachOrNull over code.coding unnested, its category/status codes taken
from the first coding), then deltalake.write_deltalake writes each result to a Delta table.
Prints one JSON line: {"rows": {view: n}, "inner_s": seconds of query + write}."""
import json
import os
import sys
import time

import duckdb
from deltalake import write_deltalake

src, out = sys.argv[1], sys.argv[2]


def ref(path, t):
    return f"regexp_replace(json_extract_string(j, '{path}.reference'), '^{t}/', '')"


SQL = {
    "observation_flat": f"""SELECT json_extract_string(j,'$.id') id, json_extract_string(j,'$.status') status,
        {ref('$.subject', 'Patient')} patient_id, {ref('$.encounter', 'Encounter')} encounter_id,
        json_extract_string(j,'$.code.coding[0].system') code_system, json_extract_string(j,'$.code.coding[0].code') code,
        json_extract_string(j,'$.effectiveDateTime') effective, CAST(json_extract(j,'$.valueQuantity.value') AS DOUBLE) value,
        json_extract_string(j,'$.valueQuantity.unit') unit FROM read_ndjson_objects('{src}/Observation.ndjson') t(j)""",
    "procedure_flat": f"""SELECT json_extract_string(j,'$.id') id, json_extract_string(j,'$.status') status,
        {ref('$.subject', 'Patient')} patient_id, {ref('$.encounter', 'Encounter')} encounter_id,
        json_extract_string(j,'$.code.coding[0].system') code_system, json_extract_string(j,'$.code.coding[0].code') code,
        json_extract_string(j,'$.performedPeriod.start') performed_start FROM read_ndjson_objects('{src}/Procedure.ndjson') t(j)""",
    "encounter_flat": f"""SELECT json_extract_string(j,'$.id') id, json_extract_string(j,'$.status') status,
        {ref('$.subject', 'Patient')} patient_id, {ref('$.serviceProvider', 'Organization')} service_org_id,
        json_extract_string(j,'$.period.start') period_start, json_extract_string(j,'$.period.end') period_end
        FROM read_ndjson_objects('{src}/Encounter.ndjson') t(j)""",
    "condition_flat": f"""SELECT json_extract_string(j,'$.id') id, {ref('$.subject', 'Patient')} patient_id,
        {ref('$.encounter', 'Encounter')} encounter_id, json_extract_string(j,'$.onsetDateTime') onset_datetime,
        json_extract_string(c,'$.system') system, json_extract_string(c,'$.code') code,
        json_extract_string(j,'$.category[0].coding[0].code') category,
        json_extract_string(j,'$.clinicalStatus.coding[0].code') clinical_status,
        json_extract_string(j,'$.verificationStatus.coding[0].code') verification_status
        FROM read_ndjson_objects('{src}/Condition.ndjson') t(j),
             unnest(coalesce(json_extract(j,'$.code.coding[*]'), [NULL::JSON])) u(c)""",
}

con = duckdb.connect()
con.execute("SET threads TO 2")
rows = {}
t0 = time.time()
for name, q in SQL.items():
    tbl = con.execute(q).to_arrow_table()
    write_deltalake(os.path.join(out, name), tbl, mode="overwrite")
    rows[name] = tbl.num_rows
print(json.dumps({"rows": rows, "inner_s": time.time() - t0}))
