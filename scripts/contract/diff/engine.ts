// Compares two versions of an OpenAPI 3.1 document and names each change that breaks someone who relied on the
// older one. The document describes a server: a request schema says what the server accepts, a response schema
// what clients may rely on. So a request breaks when it accepts less (narrowed), a response when it promises
// less or may send what it never sent before (widened).
//
// Why our own: the maintained OpenAPI diff tools are either not JavaScript (oasdiff is Go, installed as a
// binary download) or stop at OpenAPI 3.0 (openapi-diff); 3.1's type arrays (`[string, 'null']`) are exactly
// what they misread. This engine covers what identity.yaml uses: local $refs, allOf, type arrays, enums,
// properties/required, items, additionalProperties and the length/range/pattern/format constraints.

export type Direction = 'request' | 'response';

export interface Finding {
  /** Stable: `<rule> <operationId> <location>`; what a changelog entry names to accept a breaking change. */
  id: string;
  rule: string;
  operationId: string;
  location: string;
  breaking: boolean;
  message: string;
}

/** The rules, each with what it means; the breaking ones fail the gate unless the changelog lists the finding. */
export const RULES = {
  'operation-removed': 'an operation (method and path) is gone',
  'operation-id-changed': 'the same method and path now has another operationId',
  'security-added': 'an operation that needed no credentials now needs them',
  'response-removed': 'a response status the operation answered is gone (a changed status is one removed)',
  'param-added-required': 'a new required parameter',
  'param-became-required': 'an optional parameter became required',
  'body-became-required': 'an optional request body became required',
  'request-media-type-removed': 'a request media type is no longer accepted',
  'request-field-required': 'a request field is newly required (new, or optional before)',
  'request-field-removed': 'a request field is gone from a schema that refuses unknown fields',
  'type-narrowed': 'a request value accepts fewer types, enum values, lengths, ranges or formats',
  'response-field-removed': 'a response field is gone',
  'response-field-optional': 'a response field that was always present may now be absent',
  'response-type-widened': 'a response value may now be of a type it never had (null, say)',
  'response-media-type-removed': 'a response no longer comes as a media type it did',
  // not breaking: reported with --verbose
  'operation-added': 'a new operation',
  'response-added': 'a new response status',
  'param-added-optional': 'a new optional parameter',
  'request-field-added': 'a new optional request field',
  'request-widened': 'a request value accepts more',
  'response-field-added': 'a new response field',
  'response-enum-widened': 'a response enum has a new value (clients must accept values they do not know)',
} as const;

export type Rule = keyof typeof RULES;

/** The rules that fail the gate. */
export const BREAKING_RULES: ReadonlySet<Rule> = new Set<Rule>([
  'operation-removed',
  'operation-id-changed',
  'security-added',
  'response-removed',
  'param-added-required',
  'param-became-required',
  'body-became-required',
  'request-media-type-removed',
  'request-field-required',
  'request-field-removed',
  'type-narrowed',
  'response-field-removed',
  'response-field-optional',
  'response-type-widened',
  'response-media-type-removed',
]);

type Json = Record<string, unknown>;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Follows local `$ref`s (`#/components/...`) until a node that is not a reference. */
function deref(doc: Json, node: unknown, seen = new Set<string>()): unknown {
  if (!isObject(node) || typeof node.$ref !== 'string') return node;
  const ref = node.$ref;
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported: ${ref}`);
  if (seen.has(ref)) throw new Error(`circular $ref: ${ref}`);
  seen.add(ref);
  let target: unknown = doc;
  for (const part of ref.slice(2).split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    target = isObject(target) ? target[key] : undefined;
  }
  if (target === undefined) throw new Error(`unresolvable $ref: ${ref}`);
  return deref(doc, target, seen);
}

/** A schema with its $refs resolved and its allOf parts merged, as far as comparison needs. */
interface Shape {
  types: Set<string> | null; // null: any type
  enum: unknown[] | undefined;
  properties: Map<string, unknown>; // raw (unresolved) schemas, resolved when compared
  required: Set<string>;
  items: unknown;
  additional: unknown; // additionalProperties: undefined (allowed), false, or a schema
  limits: Record<string, unknown>;
}

const UPPER = ['maxLength', 'maximum', 'exclusiveMaximum', 'maxItems', 'maxProperties'] as const;
const LOWER = ['minLength', 'minimum', 'exclusiveMinimum', 'minItems', 'minProperties'] as const;
const EXACT = ['pattern', 'format', 'const'] as const;
/** The value types each bound constrains (JSON Schema ignores a bound on values of other types). */
const LIMIT_TYPES: Record<string, string[]> = {
  maxLength: ['string'],
  minLength: ['string'],
  pattern: ['string'],
  format: ['string'],
  maximum: ['number', 'integer'],
  minimum: ['number', 'integer'],
  exclusiveMaximum: ['number', 'integer'],
  exclusiveMinimum: ['number', 'integer'],
  maxItems: ['array'],
  minItems: ['array'],
  maxProperties: ['object'],
  minProperties: ['object'],
};

function shape(doc: Json, raw: unknown, depth = 0): Shape {
  const s = deref(doc, raw);
  const out: Shape = {
    types: null,
    enum: undefined,
    properties: new Map(),
    required: new Set(),
    items: undefined,
    additional: undefined,
    limits: {},
  };
  if (!isObject(s) || depth > 32) return out;
  const parts = [s, ...(Array.isArray(s.allOf) ? s.allOf.map((p) => deref(doc, p)) : [])].filter(isObject);
  for (const part of parts) {
    const partShape = part === s ? part : (deref(doc, part) as Json);
    if (partShape.type !== undefined) {
      const t = new Set(Array.isArray(partShape.type) ? (partShape.type as string[]) : [partShape.type as string]);
      out.types = out.types === null ? t : new Set([...out.types].filter((x) => t.has(x)));
    }
    if (Array.isArray(partShape.enum))
      out.enum = out.enum === undefined ? [...partShape.enum] : out.enum.filter((v) => (partShape.enum as unknown[]).includes(v));
    if (partShape.const !== undefined) out.enum = [partShape.const];
    if (isObject(partShape.properties)) {
      for (const [k, v] of Object.entries(partShape.properties)) {
        const prior = out.properties.get(k);
        out.properties.set(k, prior === undefined ? v : { allOf: [prior, v] });
      }
    }
    if (Array.isArray(partShape.required)) for (const r of partShape.required) out.required.add(String(r));
    if (partShape.items !== undefined) out.items = partShape.items;
    if (partShape.additionalProperties !== undefined) out.additional = partShape.additionalProperties;
    for (const k of [...UPPER, ...LOWER, ...EXACT]) if (partShape[k] !== undefined && k !== 'const') out.limits[k] = partShape[k];
    if (part !== s && Array.isArray(partShape.allOf)) {
      const nested = shape(doc, { allOf: partShape.allOf }, depth + 1);
      for (const [k, v] of nested.properties) out.properties.set(k, out.properties.has(k) ? { allOf: [out.properties.get(k), v] } : v);
      for (const r of nested.required) out.required.add(r);
    }
  }
  return out;
}

/** `integer` values are `number`s: a type set that gains `number` where it had `integer` still accepts them. */
function covers(types: Set<string>, t: string): boolean {
  return types.has(t) || (t === 'integer' && types.has('number'));
}

class Collector {
  readonly findings: Finding[] = [];
  add(rule: Rule, operationId: string, location: string, message: string): void {
    this.findings.push({
      id: `${rule} ${operationId} ${location}`,
      rule,
      operationId,
      location,
      breaking: BREAKING_RULES.has(rule),
      message,
    });
  }
}

interface Side {
  doc: Json;
  schema: unknown;
}

function compareSchemas(out: Collector, op: string, loc: string, dir: Direction, base: Side, head: Side, depth = 0): void {
  if (depth > 24) return;
  const b = shape(base.doc, base.schema);
  const h = shape(head.doc, head.schema);
  // types
  if (dir === 'request') {
    const lost = b.types === null ? (h.types === null ? [] : ['any']) : [...b.types].filter((t) => h.types !== null && !covers(h.types, t));
    if (lost.length > 0) out.add('type-narrowed', op, loc, `no longer accepts ${lost.join(', ')}`);
    else if (h.types !== null && b.types !== null && [...h.types].some((t) => !b.types!.has(t)))
      out.add('request-widened', op, loc, 'accepts more types');
  } else {
    const gained =
      h.types === null ? (b.types === null ? [] : ['any']) : [...h.types].filter((t) => b.types !== null && !covers(b.types, t));
    if (gained.length > 0) out.add('response-type-widened', op, loc, `may now be ${gained.join(', ')}`);
  }
  // enums
  if (dir === 'request') {
    if (h.enum !== undefined) {
      const lost = b.enum === undefined ? ['(any value)'] : b.enum.filter((v) => !h.enum!.includes(v));
      if (lost.length > 0) out.add('type-narrowed', op, loc, `no longer accepts ${lost.map((v) => JSON.stringify(v)).join(', ')}`);
    }
  } else if (b.enum !== undefined) {
    const gained = h.enum === undefined ? ['(any value)'] : h.enum.filter((v) => !b.enum!.includes(v));
    if (gained.length > 0) out.add('response-enum-widened', op, loc, `may now be ${gained.map((v) => JSON.stringify(v)).join(', ')}`);
  }
  // length, range, pattern, format: a request accepts less when a bound appears or tightens, on the values it
  // applies to (a pattern only constrains strings: one that arrives with the string type itself narrows nothing)
  const applies = (k: string) => b.types === null || LIMIT_TYPES[k]!.some((t) => b.types!.has(t));
  if (dir === 'request') {
    for (const k of UPPER) {
      const bv = b.limits[k] as number | undefined;
      const hv = h.limits[k] as number | undefined;
      if (hv !== undefined && (bv === undefined || hv < bv) && applies(k))
        out.add('type-narrowed', op, loc, `${k} ${bv ?? 'none'} -> ${hv}`);
    }
    for (const k of LOWER) {
      const bv = b.limits[k] as number | undefined;
      const hv = h.limits[k] as number | undefined;
      if (hv !== undefined && (bv === undefined || hv > bv) && applies(k))
        out.add('type-narrowed', op, loc, `${k} ${bv ?? 'none'} -> ${hv}`);
    }
    for (const k of ['pattern', 'format'] as const) {
      if (h.limits[k] !== undefined && h.limits[k] !== b.limits[k] && applies(k))
        out.add('type-narrowed', op, loc, `${k} ${String(b.limits[k] ?? 'none')} -> ${String(h.limits[k])}`);
    }
  }
  // object fields
  for (const [name, bSchema] of b.properties) {
    const at = `${loc}.${name}`;
    const hSchema = h.properties.get(name);
    if (hSchema === undefined) {
      if (dir === 'response') out.add('response-field-removed', op, at, 'no longer in the response');
      else if (h.additional === false) out.add('request-field-removed', op, at, 'no longer accepted, and unknown fields are refused');
      continue;
    }
    if (dir === 'response' && b.required.has(name) && !h.required.has(name))
      out.add('response-field-optional', op, at, 'no longer always present');
    compareSchemas(out, op, at, dir, { doc: base.doc, schema: bSchema }, { doc: head.doc, schema: hSchema }, depth + 1);
  }
  for (const [name] of h.properties) {
    if (b.properties.has(name)) continue;
    const at = `${loc}.${name}`;
    if (dir === 'request')
      out.add(
        h.required.has(name) ? 'request-field-required' : 'request-field-added',
        op,
        at,
        h.required.has(name) ? 'new and required' : 'new, optional',
      );
    else out.add('response-field-added', op, at, 'new in the response');
  }
  if (dir === 'request') {
    for (const name of h.required) {
      if (!b.required.has(name) && b.properties.has(name))
        out.add('request-field-required', op, `${loc}.${name}`, 'optional before, required now');
    }
  }
  if (b.items !== undefined && h.items !== undefined) {
    compareSchemas(out, op, `${loc}[]`, dir, { doc: base.doc, schema: b.items }, { doc: head.doc, schema: h.items }, depth + 1);
  }
  if (isObject(b.additional) && isObject(h.additional)) {
    compareSchemas(out, op, `${loc}{}`, dir, { doc: base.doc, schema: b.additional }, { doc: head.doc, schema: h.additional }, depth + 1);
  } else if (dir === 'request' && h.additional === false && b.additional !== false) {
    out.add('type-narrowed', op, loc, 'unknown fields are now refused');
  }
}

interface Operation {
  method: string;
  path: string;
  op: Json;
  params: Json[]; // path-level and operation-level, resolved
}

function operations(doc: Json): Map<string, Operation> {
  const out = new Map<string, Operation>();
  for (const [path, rawItem] of Object.entries(isObject(doc.paths) ? doc.paths : {})) {
    const item = deref(doc, rawItem);
    if (!isObject(item)) continue;
    const shared = (Array.isArray(item.parameters) ? item.parameters : []).map((p) => deref(doc, p)).filter(isObject);
    for (const method of METHODS) {
      const op = item[method];
      if (!isObject(op)) continue;
      const own = (Array.isArray(op.parameters) ? op.parameters : []).map((p) => deref(doc, p)).filter(isObject);
      const params = new Map<string, Json>();
      for (const p of [...shared, ...own]) params.set(`${String(p.in)}.${String(p.name)}`, p);
      out.set(`${method.toUpperCase()} ${path}`, { method, path, op, params: [...params.values()] });
    }
  }
  return out;
}

const needsCredentials = (doc: Json, op: Json): boolean => {
  const security = op.security ?? doc.security;
  return Array.isArray(security) && security.length > 0 && !security.some((s) => isObject(s) && Object.keys(s).length === 0);
};

/** Every difference between two versions of a document, breaking or not. */
export function diffDocuments(baseDoc: Json, headDoc: Json): Finding[] {
  const out = new Collector();
  const baseOps = operations(baseDoc);
  const headOps = operations(headDoc);
  for (const [key, b] of baseOps) {
    const opId = String(b.op.operationId ?? key);
    const h = headOps.get(key);
    if (!h) {
      out.add('operation-removed', opId, key, `${key} is gone`);
      continue;
    }
    if (h.op.operationId !== b.op.operationId)
      out.add('operation-id-changed', opId, key, `operationId ${opId} -> ${String(h.op.operationId)}`);
    if (needsCredentials(headDoc, h.op) && !needsCredentials(baseDoc, b.op)) out.add('security-added', opId, key, 'now needs credentials');

    // parameters
    const baseParams = new Map(b.params.map((p) => [`${String(p.in)}.${String(p.name)}`, p]));
    for (const p of h.params) {
      const at = `${String(p.in)}.${String(p.name)}`;
      const before = baseParams.get(at);
      if (!before)
        out.add(
          p.required === true ? 'param-added-required' : 'param-added-optional',
          opId,
          at,
          p.required === true ? 'new and required' : 'new, optional',
        );
      else {
        if (p.required === true && before.required !== true) out.add('param-became-required', opId, at, 'optional before, required now');
        compareSchemas(out, opId, at, 'request', { doc: baseDoc, schema: before.schema }, { doc: headDoc, schema: p.schema });
      }
    }

    // request body
    const bBody = deref(baseDoc, b.op.requestBody);
    const hBody = deref(headDoc, h.op.requestBody);
    if (isObject(hBody)) {
      if (hBody.required === true && !(isObject(bBody) && bBody.required === true))
        out.add('body-became-required', opId, 'body', 'the request body is now required');
      const bContent = isObject(bBody) && isObject(bBody.content) ? bBody.content : {};
      const hContent = isObject(hBody.content) ? hBody.content : {};
      for (const [media, bMedia] of Object.entries(bContent)) {
        const hMedia = hContent[media];
        if (!isObject(hMedia)) {
          out.add('request-media-type-removed', opId, `body ${media}`, `${media} is no longer accepted`);
          continue;
        }
        if (media !== 'application/json') continue; // other media carry the same schema here; JSON is compared
        compareSchemas(
          out,
          opId,
          'body',
          'request',
          { doc: baseDoc, schema: isObject(bMedia) ? bMedia.schema : undefined },
          { doc: headDoc, schema: hMedia.schema },
        );
      }
    } else if (isObject(bBody)) {
      for (const media of Object.keys(isObject(bBody.content) ? bBody.content : {})) {
        out.add('request-media-type-removed', opId, `body ${media}`, 'the operation no longer takes a body');
      }
    }

    // responses
    const bResponses = isObject(b.op.responses) ? b.op.responses : {};
    const hResponses = isObject(h.op.responses) ? h.op.responses : {};
    for (const [status, rawB] of Object.entries(bResponses)) {
      const rawH = hResponses[status];
      if (rawH === undefined) {
        out.add('response-removed', opId, status, `no longer answers ${status}`);
        continue;
      }
      const bRes = deref(baseDoc, rawB);
      const hRes = deref(headDoc, rawH);
      const bContent = isObject(bRes) && isObject(bRes.content) ? bRes.content : {};
      const hContent = isObject(hRes) && isObject(hRes.content) ? hRes.content : {};
      for (const [media, bMedia] of Object.entries(bContent)) {
        const hMedia = hContent[media];
        if (!isObject(hMedia)) {
          out.add('response-media-type-removed', opId, `${status} ${media}`, `${status} no longer comes as ${media}`);
          continue;
        }
        const loc = media === 'application/json' ? `${status} body` : `${status} ${media}`;
        compareSchemas(
          out,
          opId,
          loc,
          'response',
          { doc: baseDoc, schema: isObject(bMedia) ? bMedia.schema : undefined },
          { doc: headDoc, schema: hMedia.schema },
        );
      }
    }
    for (const status of Object.keys(hResponses))
      if (!(status in bResponses)) out.add('response-added', opId, status, `now may answer ${status}`);
  }
  for (const [key, h] of headOps) if (!baseOps.has(key)) out.add('operation-added', String(h.op.operationId ?? key), key, `${key} is new`);
  return out.findings;
}

/**
 * The breaking-change entries of a changelog: every finding id named on a line `- breaking: <id> — <why>`
 * (the id up to the first ` — `, ` -- ` or `: ` after it, or the end of the line).
 */
export function acceptedChanges(changelog: string): Set<string> {
  const out = new Set<string>();
  for (const line of changelog.split('\n')) {
    const m = /^\s*[-*]\s+breaking:\s+(.+?)\s*$/i.exec(line);
    if (!m) continue;
    const id = m[1]!
      .split(/\s+(?:—|--)\s+/)[0]!
      .replace(/^`|`$/g, '')
      .trim();
    if (id) out.add(id);
  }
  return out;
}
