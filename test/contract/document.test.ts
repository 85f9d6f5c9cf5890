// The OpenAPI document is valid, every operation has a handler, and generated/ matches the document.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Validator } from '@seriousme/openapi-schema-validator';
import { errcodesOf, identityDocument, resolveRef } from '../helpers/identityDocument.js';
import { handlers } from '../../src/handlers.js';
import { operations } from '../../generated/identity.validators.js';

const doc = identityDocument;
const resolve = (node: any): any => resolveRef(node);

function documentOperations(): { id: string; op: any }[] {
  const out: { id: string; op: any }[] = [];
  for (const item of Object.values<any>(doc.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      if (['get', 'post', 'put', 'delete', 'patch'].includes(method)) out.push({ id: op.operationId, op });
    }
  }
  return out;
}

describe('openapi/identity.yaml', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('gives every operation a unique operationId, a tag, a summary and a handler', () => {
    const ops = documentOperations();
    const ids = ops.map((o) => o.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { id, op } of ops) {
      expect(op.tags?.length, id).toBeGreaterThan(0);
      expect(op.summary, id).toBeTruthy();
      expect(typeof (handlers as Record<string, unknown>)[id], id).toBe('function');
    }
    expect(Object.keys(handlers).sort()).toEqual([...ids].sort());
  });

  it('has generated validators for exactly the documented operations', () => {
    expect(Object.keys(operations).sort()).toEqual(
      documentOperations()
        .map((o) => o.id)
        .sort(),
    );
  });

  it('gives every operation a description, a 2xx and a 4xx (or a lint exception saying why not)', () => {
    const exempt = new Set(['getVersions', 'pingV2', 'getTerms']); // openapi/.redocly.lint-ignore.yaml gives the reason
    for (const { id, op } of documentOperations()) {
      const statuses = Object.keys(op.responses);
      expect(op.description, id).toBeTruthy();
      expect(
        statuses.some((s) => s.startsWith('2')),
        id,
      ).toBe(true);
      expect(
        statuses.some((s) => s.startsWith('4')),
        id,
      ).toBe(!exempt.has(id));
    }
  });

  it('constrains errcode to an enum on every JSON error response', () => {
    for (const { id, op } of documentOperations()) {
      for (const [status, resp] of Object.entries<any>(op.responses)) {
        if (/^[23]/.test(status)) continue;
        const json = resolve(resp).content?.['application/json'];
        if (!json) {
          expect(resolve(resp).content?.['text/html'], `${id} ${status}: neither JSON nor an HTML page`).toBeTruthy();
          continue;
        }
        const codes = errcodesOf(json.schema);
        expect(codes, `${id} ${status}`).toBeDefined();
        expect(codes!.length, `${id} ${status}`).toBeGreaterThan(0);
        for (const c of codes!) expect(c, `${id} ${status}`).toMatch(/^M_[A-Z_]+$/);
      }
    }
  });

  it('leaves response objects open and request bodies typed', () => {
    // A closed response (additionalProperties: false) makes generated validators reject any server that adds a
    // field; `additionalProperties: true` on a request body erases its type in common generators.
    const closed: string[] = [];
    const erased: string[] = [];
    const visit = (node: any, where: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${where}/${i}`));
      if (!node || typeof node !== 'object') return;
      if (node.additionalProperties === false) closed.push(where);
      if (node.additionalProperties === true) erased.push(where);
      for (const [k, v] of Object.entries(node)) visit(v, `${where}/${k}`);
    };
    visit(doc.components, '#/components');
    visit(doc.paths, '#/paths');
    expect(closed).toEqual([]);
    expect(erased).toEqual([]);
  });

  it('has a templated server, not one baked-in address', () => {
    expect(doc.servers).toHaveLength(1);
    expect(doc.servers[0].url).toBe('{protocol}://{hostname}');
    expect(doc.servers[0].variables.protocol.enum).toEqual(['https', 'http']);
  });

  it('keeps generated/ current (npm run generate changes nothing)', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'scripts/generate.ts', '--check'], { encoding: 'utf8' });
    expect(out).toContain('current');
  });
});
