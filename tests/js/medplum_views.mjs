// medplum_views.mjs: the @medplum/core side of bench/views: runs one ViewDefinition over an
// NDJSON file with evalSqlOnFhir, end to end (read, JSON.parse, eval, NDJSON rows out),
// in batches so files larger than a JS string still stream.
// Usage: node medplum_views.mjs VIEW.json INPUT.ndjson OUT.ndjson
// Prints one JSON line: {resources, rows, bytes, parse_s, eval_s, write_s, total_s, cpu_s}
// (cpu_s: user+system CPU seconds over the same window, all threads).
// total_s is measured in-process (node start-up and module load excluded, in medplum's
// favour). getAidboxTs() is fhirlake/Aidbox-specific: it is evaluated as meta.lastUpdated,
// which is what fhirlake reads for it in file mode.
import { createReadStream, readFileSync, openSync, writeSync, closeSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';

globalThis.WebSocket = class {}; // @medplum/core touches WebSocket at import on Node 20
const { evalSqlOnFhir } = await import('@medplum/core');

const [viewPath, inputPath, outPath] = process.argv.slice(2);
const view = JSON.parse(readFileSync(viewPath, 'utf8').replaceAll('getAidboxTs()', 'meta.lastUpdated'));
const BATCH = 5000;

let parse = 0, evalT = 0, write = 0, resources = 0, rows = 0;
const out = openSync(outPath, 'w');
const t0 = performance.now();
const cpu0 = process.cpuUsage();
let batch = [];
function flush() {
  let t = performance.now();
  const result = evalSqlOnFhir(view, batch);
  evalT += performance.now() - t;
  t = performance.now();
  if (result.length) writeSync(out, result.map((r) => JSON.stringify(r)).join('\n') + '\n');
  write += performance.now() - t;
  rows += result.length;
  batch = [];
}
const lines = createInterface({ input: createReadStream(inputPath), crlfDelay: Infinity });
for await (const line of lines) {
  if (!line) continue;
  const t = performance.now();
  const r = JSON.parse(line);
  parse += performance.now() - t;
  resources++;
  if (r.resourceType === view.resource) batch.push(r);
  if (batch.length >= BATCH) flush();
}
if (batch.length) flush();
closeSync(out);
const total = (performance.now() - t0) / 1000;
const cpu1 = process.cpuUsage(cpu0);
console.log(JSON.stringify({ resources, rows, bytes: statSync(inputPath).size, parse_s: parse / 1000,
  eval_s: evalT / 1000, write_s: write / 1000, total_s: total,
  cpu_s: (cpu1.user + cpu1.system) / 1e6 }));
