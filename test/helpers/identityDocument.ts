// openapi/identity.yaml as tests read it: the parsed document, local $refs followed, and the errcodes an error
// response lists (its schema's errcode enum, directly or in a branch of its allOf).
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export const identityDocument = parse(readFileSync(new URL('../../openapi/identity.yaml', import.meta.url), 'utf8'));

/** The node a chain of local `$ref`s ends at (the node itself when it is none). */
export function resolveRef(node: any, doc: any = identityDocument): any {
  let cur = node;
  while (cur?.$ref)
    cur = cur.$ref
      .slice(2)
      .split('/')
      .reduce((o: any, k: string) => o[k], doc);
  return cur;
}

/** The errcode enum of an error schema, or undefined when it constrains none. */
export function errcodesOf(schema: any): string[] | undefined {
  const s = resolveRef(schema);
  const branches = [s, ...(s?.allOf ?? [])].map((b) => resolveRef(b));
  return branches.find((b) => b?.properties?.errcode?.enum)?.properties.errcode.enum;
}

/** The errcodes an operation's JSON error response lists at `status` ([] when none). */
export function errcodesAt(op: any, status: number | string): string[] {
  return errcodesOf(resolveRef(op.responses?.[String(status)])?.content?.['application/json']?.schema) ?? [];
}
