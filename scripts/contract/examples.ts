// npm run contract:examples: every example in the OpenAPI documents validates against its schema (ajv, JSON
// Schema 2020-12, strict off, formats not asserted: the same as the server's generated validators).
//   media types   `example` and `examples[*].value` (Example Objects, $refs followed) vs the media type's schema
//   parameters    and headers: `example` and `examples[*].value` vs the parameter's (header's) schema
//   schemas       `example` and each item of `examples` vs that schema, at every depth
// Local $refs resolve through the whole document, which ajv holds as one schema. Exit 1 on any invalid example
// or unresolvable example reference. Importable: test/contract/examples.test.ts calls checkExamples().
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, parseDocument } from 'yaml';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv';
import { DOCUMENTS, type Json, type JsonObject, deref, isObject, pointerSegment, root } from './common.js';

export interface ExampleFailure {
  document: string;
  /** JSON Pointer of the example value (for an Example Object reached by $ref: of the place that uses it). */
  example: string;
  /** Where the example's value actually is, when it came through a $ref. */
  via?: string;
  schema: string;
  line: number;
  errors: string[];
}

export interface ExampleReport {
  document: string;
  checked: number;
  failures: ExampleFailure[];
  /** externalValue examples, which are not fetched. */
  skipped: string[];
}

/** Schema keywords whose value is a schema, an array of schemas, or a map of schemas (JSON Schema 2020-12). */
const SUBSCHEMA = [
  'items',
  'additionalProperties',
  'not',
  'if',
  'then',
  'else',
  'contains',
  'propertyNames',
  'unevaluatedItems',
  'unevaluatedProperties',
  'contentSchema',
];
const SUBSCHEMA_ARRAYS = ['allOf', 'anyOf', 'oneOf', 'prefixItems'];
const SUBSCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];
const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

export function checkDocument(file: string): ExampleReport {
  const text = readFileSync(resolve(root, file), 'utf8');
  const lineCounter = new LineCounter();
  const yamlDoc = parseDocument(text, { lineCounter });
  const doc = yamlDoc.toJS() as JsonObject;
  const id = `urn:tessera:contract:${file}`;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false, validateSchema: false });
  ajv.addSchema(doc as object, id);
  const compiled = new Map<string, ValidateFunction>();
  const report: ExampleReport = { document: file, checked: 0, failures: [], skipped: [] };

  const lineOf = (pointer: string): number => {
    const path = pointer
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const node = yamlDoc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    return node?.range ? lineCounter.linePos(node.range[0]).line : 0;
  };

  const validate = (value: unknown, schemaPointer: string, examplePointer: string, via?: string): void => {
    report.checked++;
    let fn = compiled.get(schemaPointer);
    if (!fn) {
      try {
        fn = ajv.compile({ $ref: `${id}#${schemaPointer}` });
      } catch (err) {
        report.failures.push({
          document: file,
          example: examplePointer,
          via,
          schema: schemaPointer,
          line: lineOf(examplePointer),
          errors: [`schema does not compile: ${(err as Error).message}`],
        });
        return;
      }
      compiled.set(schemaPointer, fn);
    }
    if (fn(value)) return;
    const errors = (fn.errors ?? []).map((e) => {
      const extra =
        e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})` : '';
      return `${e.instancePath || '(root)'} ${e.message ?? e.keyword}${extra}`;
    });
    report.failures.push({
      document: file,
      example: examplePointer,
      via,
      schema: schemaPointer,
      line: lineOf(via ?? examplePointer),
      errors,
    });
  };

  /** Example Objects (map of name -> Example | $ref) against a schema. */
  const exampleMap = (examples: Json, at: string, schemaPointer: string): void => {
    if (!isObject(examples)) return;
    for (const [name, raw] of Object.entries(examples)) {
      const pointer = `${at}/examples/${pointerSegment(name)}`;
      let ex: Json;
      let via: string | undefined;
      try {
        ex = deref(doc, raw);
        if (isObject(raw) && typeof raw.$ref === 'string') via = raw.$ref.slice(1);
      } catch (err) {
        report.failures.push({
          document: file,
          example: pointer,
          schema: schemaPointer,
          line: lineOf(pointer),
          errors: [(err as Error).message],
        });
        continue;
      }
      if (!isObject(ex)) continue;
      if ('value' in ex) validate(ex.value, schemaPointer, `${pointer}/value`, via ? `${via}/value` : undefined);
      else if ('externalValue' in ex) report.skipped.push(`${pointer} (externalValue ${String(ex.externalValue)})`);
    }
  };

  /** A schema and every schema inside it: their own `example` / `examples`. $refs are checked where they point. */
  const schema = (node: Json, at: string): void => {
    if (!isObject(node)) return;
    if ('example' in node) validate(node.example, at, `${at}/example`);
    if (Array.isArray(node.examples)) node.examples.forEach((v, i) => validate(v, at, `${at}/examples/${i}`));
    for (const k of SUBSCHEMA) if (k in node) schema(node[k] as Json, `${at}/${k}`);
    for (const k of SUBSCHEMA_ARRAYS) if (Array.isArray(node[k])) (node[k] as Json[]).forEach((s, i) => schema(s, `${at}/${k}/${i}`));
    for (const k of SUBSCHEMA_MAPS) {
      const map = node[k];
      if (isObject(map)) for (const [name, s] of Object.entries(map)) schema(s, `${at}/${k}/${pointerSegment(name)}`);
    }
  };

  /** Media type objects under `content`. */
  const content = (node: Json, at: string): void => {
    if (!isObject(node)) return;
    for (const [type, media] of Object.entries(node)) {
      if (!isObject(media)) continue;
      const m = `${at}/${pointerSegment(type)}`;
      if ('schema' in media) {
        schema(media.schema as Json, `${m}/schema`);
        if ('example' in media) validate(media.example, `${m}/schema`, `${m}/example`);
        exampleMap(media.examples as Json, m, `${m}/schema`);
      }
    }
  };

  /** Parameter and Header objects (same shape: schema or content, example, examples). */
  const parameterLike = (node: Json, at: string): void => {
    if (!isObject(node) || typeof node.$ref === 'string') return;
    if ('schema' in node) {
      schema(node.schema as Json, `${at}/schema`);
      if ('example' in node) validate(node.example, `${at}/schema`, `${at}/example`);
      exampleMap(node.examples as Json, at, `${at}/schema`);
    }
    content(node.content as Json, `${at}/content`);
  };

  const headers = (node: Json, at: string): void => {
    if (isObject(node)) for (const [name, h] of Object.entries(node)) parameterLike(h, `${at}/${pointerSegment(name)}`);
  };

  const response = (node: Json, at: string): void => {
    if (!isObject(node) || typeof node.$ref === 'string') return;
    headers(node.headers as Json, `${at}/headers`);
    content(node.content as Json, `${at}/content`);
  };

  const requestBody = (node: Json, at: string): void => {
    if (isObject(node) && typeof node.$ref !== 'string') content(node.content as Json, `${at}/content`);
  };

  const parameters = (node: Json, at: string): void => {
    if (Array.isArray(node)) node.forEach((p, i) => parameterLike(p, `${at}/${i}`));
  };

  const pathItem = (node: Json, at: string): void => {
    if (!isObject(node) || typeof node.$ref === 'string') return;
    parameters(node.parameters as Json, `${at}/parameters`);
    for (const method of OPERATION_METHODS) {
      const op = node[method];
      if (!isObject(op)) continue;
      const o = `${at}/${method}`;
      parameters(op.parameters as Json, `${o}/parameters`);
      requestBody(op.requestBody as Json, `${o}/requestBody`);
      if (isObject(op.responses))
        for (const [code, r] of Object.entries(op.responses)) response(r, `${o}/responses/${pointerSegment(code)}`);
      if (isObject(op.callbacks)) {
        for (const [name, cb] of Object.entries(op.callbacks)) {
          if (isObject(cb) && typeof cb.$ref !== 'string')
            for (const [expr, item] of Object.entries(cb)) pathItem(item, `${o}/callbacks/${pointerSegment(name)}/${pointerSegment(expr)}`);
        }
      }
    }
  };

  for (const key of ['paths', 'webhooks']) {
    const items = doc[key];
    if (isObject(items)) for (const [p, item] of Object.entries(items)) pathItem(item, `/${key}/${pointerSegment(p)}`);
  }
  const c = isObject(doc.components) ? doc.components : {};
  const each = (k: string, fn: (n: Json, at: string) => void) => {
    const map = c[k];
    if (isObject(map)) for (const [name, n] of Object.entries(map)) fn(n, `/components/${k}/${pointerSegment(name)}`);
  };
  each('schemas', schema);
  each('responses', response);
  each('parameters', parameterLike);
  each('requestBodies', requestBody);
  each('headers', parameterLike);
  each('pathItems', pathItem);
  each('callbacks', (cb, at) => {
    if (isObject(cb) && typeof cb.$ref !== 'string')
      for (const [expr, item] of Object.entries(cb)) pathItem(item, `${at}/${pointerSegment(expr)}`);
  });
  return report;
}

export function checkExamples(documents: readonly string[] = DOCUMENTS): ExampleReport[] {
  return documents.map(checkDocument);
}

/** One line per failure, then its ajv errors: what the test and the command print. */
export function formatFailures(reports: ExampleReport[]): string {
  const lines: string[] = [];
  for (const f of reports.flatMap((r) => r.failures)) {
    lines.push(`${f.document}:${f.line}  ${f.example}${f.via ? ` (value at #${f.via})` : ''}  vs #${f.schema}`);
    for (const e of f.errors) lines.push(`    ${e}`);
  }
  return lines.join('\n');
}

function main(): void {
  const started = performance.now();
  // `--doc PATH` (repeatable) checks those documents instead.
  const docs = process.argv.flatMap((a, i) => (process.argv[i - 1] === '--doc' ? [a] : []));
  const reports = checkExamples(docs.length > 0 ? docs : DOCUMENTS);
  for (const r of reports) {
    const skipped = r.skipped.length ? `, ${r.skipped.length} skipped (externalValue)` : '';
    console.log(`${r.document.padEnd(26)} ${r.checked} examples checked, ${r.failures.length} invalid${skipped}`);
  }
  const failures = reports.flatMap((r) => r.failures);
  if (failures.length > 0) console.log(formatFailures(reports));
  const took = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  console.log(
    failures.length === 0 ? `contract:examples: ok (${took})` : `contract:examples: FAILED: ${failures.length} invalid examples (${took})`,
  );
  process.exitCode = failures.length === 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
