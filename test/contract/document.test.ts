// The OpenAPI document is valid, every operation has a handler, and generated/ matches the document.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Validator } from '@seriousme/openapi-schema-validator';
import { handlers } from '../../src/handlers/index.js';
import { operations } from '../../generated/identity.validators.js';

const doc = parse(readFileSync(new URL('../../openapi/identity.yaml', import.meta.url), 'utf8'));

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
    expect(Object.keys(operations).sort()).toEqual(documentOperations().map((o) => o.id).sort());
  });

  it('documents an error schema for every non-2xx response', () => {
    for (const { id, op } of documentOperations()) {
      for (const [status, resp] of Object.entries<any>(op.responses)) {
        if (status.startsWith('2')) continue;
        expect(resp.$ref ?? resp.content, `${id} ${status}`).toBeTruthy();
      }
    }
  });

  it('keeps generated/ current (npm run generate changes nothing)', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', 'scripts/generate.ts', '--check'], { encoding: 'utf8' });
    expect(out).toContain('current');
  });
});
