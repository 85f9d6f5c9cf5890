// The document mirrors Jeon's Java interfaces and the Matrix specification's names (the table in test/fixtures/java-mirror.md).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const doc = parse(readFileSync(new URL('../../openapi/identity.yaml', import.meta.url), 'utf8'));
const PACKAGE = 'io.github.ma1uta.matrix.identity.api';
const METHODS = ['get', 'post', 'put', 'delete', 'patch'];

interface Row {
  legacy: boolean;
  iface: string;
  method: string;
  http: string;
  path: string;
  requestModel: string;
  okModel: string;
  specId: string;
}

function rows(): Row[] {
  const text = readFileSync(new URL('../fixtures/java-mirror.md', import.meta.url), 'utf8');
  return text
    .split('\n')
    .filter((l) => /^\| (current|legacy)/.test(l))
    .map((l) =>
      l
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    )
    .map(([pkg, iface, method, http, path, requestModel, okModel, specId]) => ({
      legacy: pkg!.startsWith('legacy'),
      iface: iface!,
      method: method!,
      http: http!.toLowerCase(),
      path: `/_matrix/identity${path}`,
      requestModel: requestModel!,
      okModel: okModel!,
      specId: specId!,
    }));
}

const schemaName = (node: any): string | undefined => node?.schema?.$ref?.replace('#/components/schemas/', '');
const operationAt = (r: Row): any => doc.paths[r.path]?.[r.http];

/**
 * Where the document names a model differently from Jeon, and why. Keyed by `<interface>#<method>` plus v1/v2.
 * Anything not listed here must carry Jeon's model name exactly.
 */
const MODEL_EXCEPTIONS: Record<string, { request?: string; ok?: string; why: string }> = {
  'v2 LookupApi#lookup': {
    ok: 'LookupResponse',
    why: "the specification's v2 answer is {mappings}; Jeon reuses its v1 SingleLookupResponse",
  },
  'v1 SigningApi#sign': {
    request: 'LegacySigningRequest',
    why: 'on v1 each field may come in the query string instead, so the body requires none',
  },
  'v1 SessionApi#postValidateEmail': {
    ok: 'SessionValidationResponse',
    why: "Jeon's model.associations.ValidationResponse, renamed beside model.validation's",
  },
  'v2 SessionApi#postValidateEmail': {
    ok: 'SessionValidationResponse',
    why: "Jeon's model.associations.ValidationResponse, renamed beside model.validation's",
  },
  'v1 SessionApi#postValidatePhone': {
    ok: 'SessionValidationResponse',
    why: "Jeon's model.associations.ValidationResponse, renamed beside model.validation's",
  },
  'v2 SessionApi#postValidatePhone': {
    ok: 'SessionValidationResponse',
    why: "Jeon's model.associations.ValidationResponse, renamed beside model.validation's",
  },
  'v1 SessionApi#getValidateEmail': {
    ok: '(html)',
    why: 'the emailed link answers an HTML page for a person in a browser, as the specification says',
  },
  'v2 SessionApi#getValidateEmail': {
    ok: '(html)',
    why: 'the emailed link answers an HTML page for a person in a browser, as the specification says',
  },
};

function okModelOf(op: any): string | undefined {
  const content = op.responses?.['200']?.content;
  if (!content) return undefined;
  if (content['application/json']) return schemaName(content['application/json']);
  return content['text/html'] ? '(html)' : undefined;
}

describe('openapi/identity.yaml mirrors the Jeon identity API', () => {
  const table = rows();

  it('holds the whole table (44 methods)', () => {
    expect(table).toHaveLength(44);
  });

  for (const r of table.filter((x) => x.iface !== 'DeprecatedApi')) {
    const version = r.legacy ? 'v1' : 'v2';
    it(`${version} ${r.iface}#${r.method} (${r.http.toUpperCase()} ${r.path})`, () => {
      const op = operationAt(r);
      expect(op, 'the route is documented').toBeDefined();
      // v1: the Java method name; v2: the specification's operationId.
      expect(op.operationId).toBe(r.legacy ? r.method : r.specId);
      if (r.legacy) expect(op['x-matrix-legacy-operation-id']).toBe(r.specId);
      expect(op.tags).toEqual([r.iface]);
      expect(op['x-java-method']).toBe(`${PACKAGE}${r.legacy ? '.deprecated' : ''}.${r.iface}#${r.method}`);
      const exception = MODEL_EXCEPTIONS[`${version} ${r.iface}#${r.method}`];
      if (r.requestModel !== '-')
        expect(schemaName(op.requestBody?.content?.['application/json'])).toBe(exception?.request ?? r.requestModel);
      expect(okModelOf(op)).toBe(exception?.ok ?? r.okModel);
    });
  }

  for (const r of table.filter((x) => x.iface === 'DeprecatedApi')) {
    it(`v1 DeprecatedApi#${r.method} is the form-encoded body of ${r.http.toUpperCase()} ${r.path}`, () => {
      const op = operationAt(r);
      expect(op).toBeDefined();
      expect(op['x-java-form-method']).toBe(`${PACKAGE}.deprecated.DeprecatedApi#${r.method}`);
      const content = op.requestBody.content;
      expect(content['application/x-www-form-urlencoded']).toBeDefined();
      // The form carries the same fields as the JSON body.
      expect(schemaName(content['application/x-www-form-urlencoded'])).toBe(schemaName(content['application/json']));
      const exception = MODEL_EXCEPTIONS[`v1 ${op.tags[0]}#${op.operationId}`];
      expect(okModelOf(op)).toBe(exception?.ok ?? r.okModel);
    });
  }

  it('documents no operation outside the table but /versions, which Jeon lacks', () => {
    const known = new Set(table.map((r) => `${r.http} ${r.path}`));
    const extra: string[] = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        if (METHODS.includes(method) && !known.has(`${method} ${path}`)) extra.push(`${op.operationId} ${method} ${path}`);
      }
    }
    expect(extra).toEqual(['getVersions get /_matrix/identity/versions']);
    const versions = doc.paths['/_matrix/identity/versions'].get;
    expect(versions.tags).toEqual(['StatusApi']);
    expect(versions['x-java-method']).toBeUndefined();
  });

  it("declares exactly Jeon's interfaces as tags, each used", () => {
    const declared = doc.tags.map((t: { name: string }) => t.name).sort();
    const jeon = [...new Set(table.map((r) => r.iface))].filter((i) => i !== 'DeprecatedApi').sort();
    expect(declared).toEqual(jeon);
  });

  it("names a schema after each of Jeon's models", () => {
    const models = new Set<string>(['ErrorResponse', 'MxidErrorResponse']);
    for (const r of table) for (const m of [r.requestModel, r.okModel]) if (/^[A-Z]\w+$/.test(m)) models.add(m);
    expect(models.size).toBe(27);
    const schemas = Object.keys(doc.components.schemas);
    expect([...models].filter((m) => !schemas.includes(m))).toEqual([]);
  });

  it('shares no name between schemas, responses, request bodies and parameters', () => {
    const sections = ['schemas', 'responses', 'requestBodies', 'parameters'].map((s) => Object.keys(doc.components[s] ?? {}));
    const all = sections.flat();
    expect(all.filter((n, i) => all.indexOf(n) !== i)).toEqual([]);
  });
});
