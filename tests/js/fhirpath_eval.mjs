// fhirpath_eval.mjs: the fhirpath.js side of tests/integration/test_fhirpath_diff.py.
// Usage: node fhirpath_eval.mjs JOB.json > RESULTS.json
// JOB: {"resources": [resource...], "cases": [{"type": "Patient", "expr": "name.given"}...]}
// RESULTS: one entry per case: {"<resource id>": {"ok": [values...]} | {"error": "msg"}}
// for every resource of that case's type. Values are fhirpath.js's results with its
// internal types resolved (dates as strings, quantities as "5 'mg'"), JSON-serialised.
import { readFileSync } from 'node:fs';
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4/index.js';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const byType = new Map();
for (const r of job.resources) {
  if (!byType.has(r.resourceType)) byType.set(r.resourceType, []);
  byType.get(r.resourceType).push(r);
}

const results = job.cases.map(({ type, expr }) => {
  const out = {};
  let compiled = null;
  let compileError = null;
  try {
    compiled = fhirpath.compile(expr, r4);
  } catch (e) {
    compileError = String(e.message || e);
  }
  for (const r of byType.get(type) || []) {
    if (compileError) { out[r.id] = { error: compileError }; continue; }
    try {
      // %resource / %rootResource as a ViewDefinition defines them: the resource itself
      out[r.id] = { ok: JSON.parse(JSON.stringify(compiled(r, { resource: r, rootResource: r }))) };
    } catch (e) {
      out[r.id] = { error: String(e.message || e) };
    }
  }
  return out;
});
process.stdout.write(JSON.stringify(results));
